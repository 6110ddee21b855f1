"""A pair as an hls4ml project: a float PyTorch model hls4ml's PyTorch front end parses, and the
``hls_config`` that gives every layer the pair's bits and a reuse factor derived from its accelerator.

Where the bits live. hls4ml computes in the fixed-point types of its configuration, so the quantization is
in the types, not in the model. Every weighted layer ``L`` of the :class:`DeployGraph` becomes up to four
hls4ml layers, named after it:

- ``L_quant``: a BatchNorm computing ``x / scale + zero_point`` whose result type is
  ``ap_ufixed<A,A,AP_RND_CONV,AP_SAT>`` (``A`` = the layer's act bits): rounding half to even and
  saturating to ``[0, 2^A - 1]`` is exactly the input quantizer of the PyTorch model
  (``torch.fake_quantize_per_tensor_affine``);
- ``L_offset`` (only where the zero point is not 0): a BatchNorm subtracting the zero point, result
  ``ap_fixed<A+1,A+1>``, so zero padding pads the real value 0 as PyTorch does;
- ``L``: the ``Conv2d``/``Linear`` with the integer weights, weight type ``ap_fixed<W,W>`` (``W`` = the
  layer's weight bits; narrow-range integers ``|w| <= 2^(W-1) - 1`` need all ``W`` bits as integer bits)
  and an exact integer accumulator (its width covers the largest possible sum of the layer's own integer
  weights times the largest input);
- ``L_scale``: a BatchNorm applying the per-output-channel scale ``weight_scale * input_scale`` and the
  folded float bias. One fixed-point type cannot hold per-channel scales of the weights themselves;
  here they are a separate vector of :data:`PARAM_WIDTH`-bit constants, so the weights stay exact.

Between these, the tensors the PyTorch model holds in float (ReLU outputs, residual sums, pooling, the
logits) are :data:`ACT_PRECISION`. The preprocessing is a BatchNorm named ``preprocess`` in front: the
hls4ml model takes the data set's raw inputs, as ``model.pt2`` and the QONNX graph do. hls4ml's
optimizers fuse a BatchNorm into the layer before it only when that layer's result type is unspecified
(``FuseBatchNormalization``); every result type here is given, so none is fused.

Reuse factors. hls4ml folds a ``Conv2D``/``Dense`` layer of ``n_in * n_out`` multiplications per output
pixel (``n_in = K*K*C_in``, ``n_out = C_out``) onto ``n_in * n_out / R`` multipliers (``Resource``
strategy), so ``R`` is the number of cycles each multiplier is used per output pixel:

- ``dataflow`` and ``pipeline`` (:mod:`simulators.dataflow`, :mod:`simulators.folding`): one engine of
  ``pe * simd`` lanes per layer taking ``(MH/pe) * (MW/simd)`` cycles per output pixel, with ``MH = C_out``
  and ``MW = K*K*C_in/groups``, so ``R = MH*MW / (pe*simd)``; the pipeline template's off-chip traffic has
  no counterpart in hls4ml (every weight and feature map stays on chip);
- ``overlay`` (:mod:`simulators.overlay`, formulas in :mod:`simulators.tiling`): one shared ``tm x tn``
  array spending ``ceil(G/gp) * ceil(M/tm) * ceil(N/tn) * K*K`` cycles per output pixel (the lane passes
  times the kernel window; the idle cycles of partial edge tiles are left out, they reuse nothing), so
  ``R`` is that product. hls4ml gives each layer its own engine, so this reproduces each layer's pace on
  the overlay, not its sharing of one array; narrow layers are taken at the array's own lane count
  (hls4ml does not pack narrow operands into one multiplier as the overlay's DSP packing does).

hls4ml accepts only some reuse factors (``FPGABackend.get_valid_reuse_factors``, reproduced by
:func:`valid_reuse_factors`); the derived one is replaced by the nearest valid one at or above it, and
the ``Codesign`` block of the configuration says where that happened.

hls4ml itself is needed only to convert (``pip install codesign[hls4ml]``); writing the configuration
needs torch and PyYAML alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.core.files import write_text
from codesign.core.values import AcceleratorConfig, Candidate, Network
from codesign.results.deploy import DeployGraph, DeployNode

HLS4ML_YAML = "hls4ml.yaml"
ACT_PRECISION = "ap_fixed<40,16>"
"""The real-valued tensors (requantized layer outputs, ReLU, residual sums, pooling, logits, the raw
input), which PyTorch holds in float32: 24 fractional bits, the resolution of a float32 near 1 (2^-24,
about 6e-8), so a value that PyTorch rounds to one activation level is not pushed across a rounding
boundary (with 16 fractional bits, 27 of 359 digits test images had a logit off by more than 1e-3; with
24, none); 16 integer bits hold magnitudes up to 32767. hls4ml's own default, ``ap_fixed<16,6>``, would
wrap at 32. Override with ``act_precision``."""
PARAM_WIDTH = 24
"""Bits of every real-valued constant vector (requantization scales, folded biases, the quantizers'
``1/scale``, the preprocessing): the 24 significant bits of a float32 for the largest entry of each."""
BACKENDS = ("Vitis", "Vivado")
"""Backends whose reuse-factor rule is :func:`valid_reuse_factors` (``Vitis`` inherits ``Vivado``'s
``FPGABackend``; no Vivado installation is needed to convert or to compile the C simulation)."""
INPUT_NAME = "raw"
"""The model's input (hls4ml's input layer takes the forward argument's name)."""
QUANT_SUFFIX, OFFSET_SUFFIX, SCALE_SUFFIX = "_quant", "_offset", "_scale"


@dataclass(frozen=True)
class _Step:
    """One module of the plain model (``add`` has none), with the precisions of its hls4ml layer."""

    name: str
    op: str
    inputs: tuple[str, ...]
    precision: Mapping[str, str]
    node: str
    """The deploy node the step comes from (``preprocess`` for the preprocessing)."""
    role: str = "op"
    """``quant``, ``offset``, ``layer`` or ``scale`` for the steps of a weighted layer, else ``op``."""


@dataclass(frozen=True)
class _Plan:
    steps: tuple[_Step, ...]
    modules: tuple[tuple[str, nn.Module], ...]
    output: str


def fixed_type(max_abs: float, width: int = PARAM_WIDTH) -> str:
    """``ap_fixed<width,I>`` with the fewest integer bits ``I`` (sign included) that hold ``max_abs``:
    ``I = floor(log2(max_abs)) + 2``, so ``max_abs < 2^(I-1)``. A zero vector gets ``ap_uint<1>``."""
    if not math.isfinite(max_abs):
        raise CodesignError(f"hls4ml export: a constant of magnitude {max_abs!r} has no fixed-point type")
    if max_abs == 0:
        return "ap_uint<1>"
    integer = math.floor(math.log2(max_abs)) + 2
    return f"ap_fixed<{width},{integer}>"


def _bits_to_hold(max_abs: int) -> int:
    """Width of a signed integer type holding every value in ``[-max_abs, max_abs]``."""
    return max(2, int(max_abs).bit_length() + 1)


def _shapes(graph: DeployGraph) -> dict[str, tuple[int, ...]]:
    """Each node's output shape, one input's, (C, H, W) or (F,)."""
    shapes: dict[str, tuple[int, ...]] = {"input": graph.input_shape}
    for node in graph.nodes:
        shape = shapes[node.inputs[0]]
        if node.op == "conv":
            assert node.weight_int is not None
            (sh, sw), (ph, pw), (kh, kw) = node.attrs["stride"], node.attrs["padding"], node.attrs["kernel"]
            shape = (node.weight_int.shape[0], (shape[1] + 2 * ph - kh) // sh + 1, (shape[2] + 2 * pw - kw) // sw + 1)
        elif node.op == "linear":
            assert node.weight_int is not None
            shape = (node.weight_int.shape[0],)
        elif node.op == "global_avg_pool":
            shape = (shape[0], 1, 1)
        elif node.op in ("max_pool", "avg_pool"):
            (sh, sw), (ph, pw), (kh, kw) = node.attrs["stride"], node.attrs["padding"], node.attrs["kernel"]
            shape = (shape[0], (shape[1] + 2 * ph - kh) // sh + 1, (shape[2] + 2 * pw - kw) // sw + 1)
        elif node.op == "flatten":
            shape = (int(np.prod(shape)),)
        shapes[node.name] = shape
    return shapes


def _affine(channels: int, rank: int, scale: np.ndarray, bias: np.ndarray) -> nn.Module:
    """A BatchNorm computing ``x * scale + bias`` per channel (mean 0, variance 1, eps 0: hls4ml's parser
    turns it into exactly these two vectors)."""
    bn: nn.BatchNorm1d | nn.BatchNorm2d = nn.BatchNorm2d(channels, eps=0.0) if rank == 3 else nn.BatchNorm1d(channels, eps=0.0)
    with torch.no_grad():
        bn.weight.copy_(torch.as_tensor(np.broadcast_to(scale, (channels,)).copy(), dtype=torch.float32))
        bn.bias.copy_(torch.as_tensor(np.broadcast_to(bias, (channels,)).copy(), dtype=torch.float32))
        bn.running_mean.zero_()  # type: ignore[union-attr]
        bn.running_var.fill_(1.0)  # type: ignore[union-attr]
    return bn.eval()


def _affine_precision(scale: np.ndarray, bias: np.ndarray, result: str) -> dict[str, str]:
    return {"scale": fixed_type(float(np.abs(scale).max())), "bias": fixed_type(float(np.abs(bias).max())), "result": result}


class Hls4mlUnsupported(CodesignError):
    """A network hls4ml's PyTorch front end cannot take; the message names the node and why (one line)."""


def _unsupported(node: DeployNode, why: str) -> Hls4mlUnsupported:
    return Hls4mlUnsupported(f"hls4ml export: the PyTorch front end of hls4ml 1.3 cannot take node {node.name!r} ({why})")


def layer_precisions(node: DeployNode) -> dict[str, str]:
    """The fixed-point types of a weighted node: ``input`` (its quantizer's result: the act bits,
    unsigned), ``offset`` (the input less the zero point, one bit wider and signed; only with a non-zero
    zero point), ``weight`` (the weight bits, all integer bits) and ``accum`` (an integer type holding the
    largest sum any output can reach with these integer weights, so accumulation is exact)."""
    assert node.act is not None and node.weight_int is not None
    act, w = node.act, node.weight_int
    out = {"input": f"ap_ufixed<{act.bits},{act.bits},AP_RND_CONV,AP_SAT>"}
    max_in = 2**act.bits - 1
    if act.zero_point != 0:
        out["offset"] = f"ap_fixed<{act.bits + 1},{act.bits + 1}>"
        max_in = max(act.zero_point, 2**act.bits - 1 - act.zero_point)
    acc = _bits_to_hold(int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max()) * max_in)
    out["weight"] = f"ap_fixed<{node.weight_bits},{node.weight_bits}>"
    out["accum"] = f"ap_fixed<{acc},{acc}>"
    return out


class _Builder:
    """Collects the steps of a plan; names are the deploy nodes', a weighted layer's extra steps get a
    suffix (and ``_`` more while the name is taken)."""

    def __init__(self, graph: DeployGraph) -> None:
        self.taken = {node.name for node in graph.nodes} | {INPUT_NAME}
        self.steps: list[_Step] = []
        self.modules: list[tuple[str, nn.Module]] = []
        self.renamed: dict[str, str] = {}
        """Names that are no Python identifiers, and the ones their steps got instead."""

    def fresh(self, base: str) -> str:
        name = base
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def put(self, step: _Step, module: nn.Module | None) -> str:
        inputs = tuple(self.renamed.get(i, i) for i in step.inputs)
        if not step.name.isidentifier():
            # a module must carry the name: nn.Sequential's layers are named '0', '3', ... (kept in `node`)
            name = self.fresh("layer_" + "".join(c if c.isalnum() or c == "_" else "_" for c in step.name))
            self.renamed[step.name] = name
            step = replace(step, name=name)
        step = replace(step, inputs=inputs)
        self.steps.append(step)
        if module is not None:
            self.modules.append((step.name, module))
        return step.name


def _plan(graph: DeployGraph, act_precision: str = ACT_PRECISION) -> _Plan:
    """The plain model's modules in order, each with the precisions its hls4ml layer gets."""
    shapes = _shapes(graph)
    b = _Builder(graph)
    out_of: dict[str, str] = {}  # deploy tensor -> the step computing it
    c, pre = graph.input_shape[0], graph.preprocess
    out_of["input"] = b.put(
        _Step(b.fresh("preprocess"), "batchnorm", (INPUT_NAME,),
              _affine_precision(np.asarray([pre.mul]), np.asarray([pre.add]), act_precision), "preprocess"),
        _affine(c, 3, np.full(c, pre.mul), np.full(c, pre.add)),
    )
    real = {"result": act_precision}
    for node in graph.nodes:
        src, in_shape = out_of[node.inputs[0]], shapes[node.inputs[0]]
        module: nn.Module | None
        if node.op in ("conv", "linear"):
            out_of[node.name] = _weighted(b, node, src, in_shape, act_precision)
            continue
        if node.op == "relu":
            module, precision = nn.ReLU(), real
        elif node.op == "add":
            module, precision = None, real
        elif node.op == "flatten":
            module, precision = nn.Flatten(), real
        elif node.op == "global_avg_pool":
            module, precision = nn.AvgPool2d(kernel_size=(in_shape[1], in_shape[2])), {**real, "accum": act_precision}
        elif node.op in ("max_pool", "avg_pool"):
            if any(node.attrs["padding"]):
                raise _unsupported(node, f"{node.op} with padding {node.attrs['padding']}: hls4ml pads pooling windows with "
                                         "zeros, which PyTorch's max pooling does not, so only unpadded pooling is exported")
            kind = nn.MaxPool2d if node.op == "max_pool" else nn.AvgPool2d
            module, precision = kind(kernel_size=node.attrs["kernel"], stride=node.attrs["stride"]), {**real, "accum": act_precision}
        elif node.op == "batchnorm":
            a = node.attrs
            scale = a["weight"] / np.sqrt(a["var"] + a["eps"])
            bias = a["bias"] - a["mean"] * scale
            module, precision = _affine(len(scale), len(in_shape), scale, bias), _affine_precision(scale, bias, act_precision)
        else:
            raise _unsupported(node, f"operator {node.op!r} has no hls4ml form here")
        inputs = (src, out_of[node.inputs[1]]) if node.op == "add" else (src,)
        out_of[node.name] = b.put(_Step(node.name, node.op, inputs, precision, node.name), module)
    return _Plan(tuple(b.steps), tuple(b.modules), out_of[graph.output])


def _weighted(b: _Builder, node: DeployNode, src: str, in_shape: tuple[int, ...], act_precision: str) -> str:
    """The steps of one weighted layer (quantizer, offset, integer layer, scale); returns the last one's name."""
    assert node.act is not None and node.weight_int is not None and node.weight_scale is not None
    act, w = node.act, node.weight_int
    if node.op == "conv" and node.attrs["groups"] != 1:
        raise _unsupported(node, f"a conv with groups={node.attrs['groups']}: its parser takes only groups=1 and stops at "
                                 "depthwise and grouped convs with 'Non-default options for groups not implemented yet'")
    channels, rank, zp = in_shape[0], len(in_shape), float(act.zero_point)
    types = layer_precisions(node)
    x = b.put(
        _Step(b.fresh(node.name + QUANT_SUFFIX), "batchnorm", (src,),
              {"scale": fixed_type(1.0 / act.scale), "bias": fixed_type(zp), "result": types["input"]}, node.name, "quant"),
        _affine(channels, rank, np.full(channels, 1.0 / act.scale), np.full(channels, zp)),
    )
    if "offset" in types:
        x = b.put(
            _Step(b.fresh(node.name + OFFSET_SUFFIX), "batchnorm", (x,),
                  {"scale": "ap_uint<1>", "bias": fixed_type(zp), "result": types["offset"]}, node.name, "offset"),
            _affine(channels, rank, np.ones(channels), np.full(channels, -zp)),
        )
    layer: nn.Conv2d | nn.Linear
    if node.op == "conv":
        layer = nn.Conv2d(w.shape[1], w.shape[0], node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"], bias=False)
    else:
        layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w.astype(np.float32)))
    b.put(_Step(node.layer, node.op, (x,), {"weight": types["weight"], "bias": "ap_uint<1>", "accum": types["accum"],
                                            "result": types["accum"]}, node.name, "layer"), layer)
    multiplier = node.weight_scale * act.scale
    bias = node.bias if node.bias is not None else np.zeros(w.shape[0])
    return b.put(
        _Step(b.fresh(node.name + SCALE_SUFFIX), "batchnorm", (node.layer,), _affine_precision(multiplier, bias, act_precision),
              node.name, "scale"),
        _affine(w.shape[0], 3 if node.op == "conv" else 1, multiplier, bias),
    )


class PlainModel(nn.Module):
    """The float model hls4ml parses: BatchNorms, integer-weight ``Conv2d``/``Linear`` layers, ReLU,
    ``+``, pooling and ``Flatten``, one module per hls4ml layer (see the module docstring). In PyTorch it
    computes the quantized model without rounding its activations (the weights are exact); hls4ml's
    fixed-point types put the rounding back."""

    def __init__(self, plan: _Plan) -> None:
        super().__init__()
        self.steps = plan.steps
        self.output = plan.output
        for name, module in plan.modules:
            self.add_module(name, module)

    def forward(self, raw: Tensor) -> Tensor:
        values = {INPUT_NAME: raw}
        for step in self.steps:
            if step.op == "add":
                values[step.name] = values[step.inputs[0]] + values[step.inputs[1]]
            else:
                values[step.name] = getattr(self, step.name)(values[step.inputs[0]])
        return values[self.output]


def plain_torch_model(graph: DeployGraph) -> PlainModel:
    """``graph`` as a float PyTorch model that hls4ml 1.3's PyTorch front end converts (raw input in,
    logits out). A node it cannot take (a depthwise or grouped conv, padded pooling) is an
    :class:`Hls4mlUnsupported` error (a :class:`CodesignError`) naming the node and why, in one line."""
    return PlainModel(_plan(graph)).eval()


def hls4ml_layer_names(model: PlainModel) -> dict[str, str]:
    """The name hls4ml gives each step's layer (by the step's module name; ``INPUT_NAME`` for the input).
    hls4ml traces the model with :mod:`torch.fx` (``hls4ml.utils.torch.CustomFXTracer``, whose leaves are
    the ``torch.nn`` modules, as the default tracer's) and names each layer after its graph node; the
    additions, which have no module, are its ``call_function`` nodes in the order of the steps."""
    traced = torch.fx.Tracer().trace(model)
    names = {str(n.target): n.name for n in traced.nodes if n.op == "call_module"}
    adds = iter(n.name for n in traced.nodes if n.op == "call_function")
    for step in model.steps:
        if step.op == "add":
            names[step.name] = next(adds)
    names[INPUT_NAME] = next(n.name for n in traced.nodes if n.op == "placeholder")
    return names


def valid_reuse_factors(n_in: int, n_out: int) -> list[int]:
    """The reuse factors hls4ml accepts for a layer of ``n_in x n_out`` multiplications, ascending: the rule
    of ``FPGABackend._validate_reuse_factor`` (hls4ml 1.3, ``hls4ml/backends/fpga/fpga_backend.py``),
    tried on the divisors of ``n_in * n_out`` only (the rule requires one)."""
    total = n_in * n_out
    small = [d for d in range(1, math.isqrt(total) + 1) if total % d == 0]
    out = []
    for rf in sorted(set(small) | {total // d for d in small}):
        multipliers = math.ceil(total / min(n_in, rf))
        if (multipliers % n_out == 0 or rf >= n_in) and (rf % n_in == 0 or rf < n_in):
            out.append(rf)
    return out


def mult_size(network: Network, layer: str) -> tuple[int, int]:
    """hls4ml's ``(n_in, n_out)`` of a weighted layer: ``(K*K*C_in, C_out)`` (``get_layer_mult_size``)."""
    spec = _layer(network, layer)
    return spec.kernel * spec.kernel * spec.in_channels // spec.groups, spec.out_channels


def _layer(network: Network, name: str) -> Any:
    for layer in network.layers:
        if layer.name == name:
            return layer
    raise CodesignError(f"hls4ml export: the network {network.name!r} has no layer {name!r}")


def derived_reuse_factor(network: Network, accel: AcceleratorConfig, layer: str) -> int:
    """Cycles each multiplier of ``layer``'s engine is used per output pixel on ``accel``: ``(MH/pe) *
    (MW/simd)`` for ``dataflow``/``pipeline``, the lane passes times ``K*K`` for ``overlay`` (at the
    array's own lane count; see the module docstring)."""
    from simulators.common import int_param
    from simulators.folding import folding_param
    from simulators.tiling import input_lane_passes, output_lane_passes

    spec = _layer(network, layer)
    if accel.template in ("dataflow", "pipeline"):
        index = [item.name for item in network.layers].index(layer)
        pe = folding_param(accel, "pe", len(network.layers))[index]
        simd = folding_param(accel, "simd", len(network.layers))[index]
        mh, mw = spec.out_channels, spec.kernel * spec.kernel * spec.in_channels // spec.groups
        if mh % pe or mw % simd:
            raise CodesignError(f"{accel.template}: layer {layer!r} needs pe dividing MH={mh} and simd dividing MW={mw}, "
                                f"got pe={pe}, simd={simd}")
        return (mh // pe) * (mw // simd)
    if accel.template == "overlay":
        tm, tn = int_param(accel, "tm"), int_param(accel, "tn")
        groups = spec.groups if spec.kind == "conv" else 1
        passes = output_lane_passes(spec.out_channels, groups, tm, True) * input_lane_passes(spec.in_channels, groups, tn, True)
        return int(passes) * spec.kernel * spec.kernel
    raise CodesignError(f"hls4ml export: no reuse factor rule for the accelerator template {accel.template!r}; "
                        "known: dataflow, pipeline, overlay")


def _check_bits(graph: DeployGraph, candidate: Candidate, network: Network) -> None:
    """The graph's per-layer bits are the candidate's (an error naming the first layer that differs)."""
    order = [layer.name for layer in network.weighted_layers]
    if len(order) != len(candidate.weight_bits) or len(order) != len(candidate.act_bits):
        raise CodesignError(f"hls4ml export: the candidate has {len(candidate.weight_bits)} weight and {len(candidate.act_bits)} "
                            f"activation bit-widths for the {len(order)} weighted layers of {network.name!r}")
    wanted = dict(zip(order, zip(candidate.weight_bits, candidate.act_bits, strict=True), strict=True))
    for node in graph.weighted():
        assert node.act is not None
        if node.layer not in wanted:
            raise CodesignError(f"hls4ml export: graph layer {node.layer!r} is not a weighted layer of {network.name!r}")
        if wanted[node.layer] != (node.weight_bits, node.act.bits):
            w, a = wanted[node.layer]
            raise CodesignError(f"hls4ml export: layer {node.layer!r} has w{node.weight_bits}a{node.act.bits} in the model "
                                f"but w{w}a{a} in the candidate")


def _reuse(network: Network, accel: AcceleratorConfig | None, layer: str) -> dict[str, Any]:
    """The reuse factor of one weighted layer and how it was chosen."""
    n_in, n_out = mult_size(network, layer)
    if accel is None:
        return {"n_in": n_in, "n_out": n_out, "reuse_factor": 1, "multipliers": n_in * n_out,
                "notes": ["the pair has no accelerator: reuse factor 1 (every multiplication in parallel)"]}
    derived = derived_reuse_factor(network, accel, layer)
    valid = valid_reuse_factors(n_in, n_out)
    reuse = next((r for r in valid if r >= derived), valid[-1])
    notes = [] if reuse == derived else [
        f"the derived reuse factor {derived} is not one hls4ml accepts for n_in={n_in}, n_out={n_out}; using {reuse}"
    ]
    return {"n_in": n_in, "n_out": n_out, "reuse_factor_derived": derived, "reuse_factor": reuse,
            "multipliers": n_in * n_out // reuse, "notes": notes}


def _records(graph: DeployGraph, candidate: Candidate, network: Network) -> dict[str, dict[str, Any]]:
    """Per weighted layer: its bits, input zero point, fixed-point types and reuse factor (the ``Codesign``
    block of the configuration)."""
    records = {}
    for node in graph.weighted():
        assert node.act is not None
        types = layer_precisions(node)
        records[node.layer] = {
            "weight_bits": node.weight_bits,
            "act_bits": node.act.bits,
            "input_zero_point": node.act.zero_point,
            "input_precision": types["input"],
            **({"offset_precision": types["offset"]} if "offset" in types else {}),
            "weight_precision": types["weight"],
            "accum_precision": types["accum"],
            **_reuse(network, candidate.accelerator, node.layer),
        }
    return records


def _codesign_block(graph: DeployGraph, candidate: Candidate, network: Network, backend: str) -> dict[str, Any]:
    pre = graph.preprocess
    accel = candidate.accelerator
    return {
        "backend": backend,
        "input": f"raw inputs ({pre.raw}); the layer 'preprocess' applies {pre.to_dict()['formula']} "
                 f"(scale={pre.scale:g}, mean={pre.mean:g}, std={pre.std:g})",
        "accelerator": None if accel is None else accel.to_dict(),
        "layers": _records(graph, candidate, network),
    }


def hls4ml_config(
    graph: DeployGraph, candidate: Candidate, network: Network, *, backend: str = "Vitis", act_precision: str = ACT_PRECISION
) -> dict[str, Any]:
    """The ``hls_config`` for ``hls4ml.converters.convert_from_pytorch_model(plain_torch_model(graph),
    hls_config=..., backend=backend)``: the structure ``hls4ml.utils.config_from_pytorch_model(granularity=
    'name')`` returns, with every layer's precision and every weighted layer's reuse factor set from the
    pair. ``network`` is the pair's network (layer shapes, and the order of per-layer accelerator
    parameters); the graph's bits must be the candidate's.

    Keys: ``Model`` (defaults; ``Resource`` strategy, the one in which hls4ml shares multipliers by the
    reuse factor), ``InputShape`` (one raw input's ``(C, H, W)``, a tuple as hls4ml requires),
    ``LayerName`` (per hls4ml layer: ``Precision``, and ``ReuseFactor`` for the weighted ones) and
    ``Codesign``, which hls4ml ignores: per weighted layer its bits, input zero point, hls4ml layers,
    fixed-point types, derived and used reuse factor, and notes. A network hls4ml cannot take is an
    :class:`Hls4mlUnsupported` error. hls4ml adds entries to the dict it converts with: pass it a copy."""
    if backend not in BACKENDS:
        raise CodesignError(f"hls4ml export: backend {backend!r} is not supported; supported: {', '.join(BACKENDS)}")
    _check_bits(graph, candidate, network)
    plan = _plan(graph, act_precision)
    names = hls4ml_layer_names(PlainModel(plan))
    layer_cfg: dict[str, Any] = {names[INPUT_NAME]: {"Precision": {"result": act_precision}}}
    for step in plan.steps:
        layer_cfg[names[step.name]] = {"Precision": dict(step.precision)}
    block = _codesign_block(graph, candidate, network, backend)
    block["input"] = block["input"].replace("'preprocess'", repr(names[plan.steps[0].name]))
    layer_step = {step.node: step.name for step in plan.steps if step.role == "layer"}
    for node in graph.weighted():
        record = block["layers"][node.layer]
        layer_cfg[names[layer_step[node.name]]]["ReuseFactor"] = record["reuse_factor"]
        record["hls4ml_layers"] = [names[step.name] for step in plan.steps if step.node == node.name]
    return {
        "Model": {
            "Precision": {"default": act_precision},
            "ReuseFactor": 1,
            "Strategy": "Resource",
            "ChannelsLastConversion": "full",
            "TransposeOutputs": False,
            "BramFactor": 1_000_000_000,
            "TraceOutput": False,
        },
        "InputShape": tuple(int(d) for d in graph.input_shape),
        "LayerName": layer_cfg,
        "Codesign": block,
    }


_HEADER = """\
# hls4ml configuration of one pair (written by codesign for hls4ml's {backend} backend, hls4ml >= 1.1).
# Every weighted layer L is up to four hls4ml layers: L_quant (its input quantizer: the result type has
# the layer's act bits), L_offset (only with a non-zero zero point), L (integer weights: the weight type
# has the layer's weight bits) and L_scale (per-channel scales and the folded bias). The hls4ml model
# takes the RAW input: its layer 'preprocess' applies the data set's preprocessing. hls4ml ignores the
# 'Codesign' block: per weighted layer its bits, types, derived and used reuse factors, notes.
# Convert the model of codesign.results.hls4ml_export.plain_torch_model(graph) with it:
#   cfg = codesign.results.hls4ml_export.read_hls4ml("hls4ml.yaml")  # InputShape back to a tuple
#   hls_model = hls4ml.converters.convert_from_pytorch_model(model, hls_config=cfg, backend="{backend}",
#                   io_type="io_parallel", output_dir="hls4ml_prj", clock_period={clock_period})
#   hls_model.compile(); hls_model.predict(raw_inputs)  # the C simulation needs only a C++ compiler
"""

_UNSUPPORTED_HEADER = """\
# hls4ml configuration of one pair (written by codesign): NOT convertible.
# {reason}
# The 'Codesign' block still holds every weighted layer's bits, fixed-point types and reuse factor.
"""


def hls4ml_yaml(graph: DeployGraph, candidate: Candidate, network: Network, *, backend: str = "Vitis") -> str:
    """The text of ``hls4ml.yaml``: :func:`hls4ml_config` as YAML under a comment header saying how to use
    it. For a network hls4ml cannot take, a header saying why and only the ``Codesign`` block (every
    weighted layer's bits, types and reuse factor), so an export of such a pair still carries them."""
    import yaml

    try:
        config = hls4ml_config(graph, candidate, network, backend=backend)
    except Hls4mlUnsupported as exc:
        return _UNSUPPORTED_HEADER.format(reason=exc) + yaml.safe_dump(
            {"Codesign": {"unsupported": str(exc), **_codesign_block(graph, candidate, network, backend)}}, sort_keys=False
        )
    config["InputShape"] = list(config["InputShape"])
    clock = candidate.accelerator.clock_mhz if candidate.accelerator is not None else 200.0
    return _HEADER.format(backend=backend, clock_period=f"{1000.0 / clock:g}") + yaml.safe_dump(config, sort_keys=False)


def write_hls4ml(graph: DeployGraph, candidate: Candidate, network: Network, folder: str | Path, *, backend: str = "Vitis") -> Path:
    """Write :func:`hls4ml_yaml` to ``folder/hls4ml.yaml`` and return its path."""
    path = Path(folder) / HLS4ML_YAML
    return write_text(path, hls4ml_yaml(graph, candidate, network, backend=backend), str(path))


def read_hls4ml(path: str | Path) -> dict[str, Any]:
    """A written ``hls4ml.yaml`` as the dict to pass as ``hls_config`` (``InputShape`` a tuple again); an
    error saying why for a file written for a network hls4ml cannot take."""
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CodesignError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(config, dict) or "LayerName" not in config:
        reason = config.get("Codesign", {}).get("unsupported") if isinstance(config, dict) else None
        raise CodesignError(f"{path} is not a convertible hls4ml configuration: {reason or 'it has no LayerName'}")
    if "InputShape" in config:
        config["InputShape"] = tuple(config["InputShape"])
    return config

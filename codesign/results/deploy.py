"""A trained quantized model as a deployable graph, the one form every export is written from.

:func:`deploy_graph` traces the model with :mod:`torch.fx` (the quantized conv and linear layers are
leaves) and turns it into :class:`DeployGraph`: the data set's input preprocessing first, then per layer
its input activation quantizer (unsigned, asymmetric: scale and zero point as the model calibrated them),
its integer weights with one positive scale per output channel (signed, narrow range) and a float bias, and
the float operators between them (ReLU, residual add, pooling, flatten). A BatchNorm that follows a conv is
folded into it: per-channel symmetric quantization commutes with a per-channel factor, so folding keeps
the integers and scales the scale (a negative factor negates the channel's integers).

:class:`DeployedModule` runs the graph with plain torch (for ``model.pt2``, and as the reference the
QONNX graph is checked against); :mod:`codesign.results.qonnx_export` writes it as QONNX.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.core.values import Network
from codesign.nn.data import Preprocess
from codesign.quantization.fake import QuantConv2d, QuantLinear, quant_layers

OPS = ("conv", "linear", "batchnorm", "relu", "add", "global_avg_pool", "max_pool", "avg_pool", "flatten")
"""Operators a deploy graph holds (besides the preprocessing in front)."""


@dataclass(frozen=True)
class ActQuant:
    """An unsigned asymmetric activation quantizer: ``q = clamp(round(x / scale) + zero_point, 0, 2^bits-1)``."""

    scale: float
    zero_point: int
    bits: int


@dataclass(frozen=True, eq=False)
class DeployNode:
    """One operator; its output is named after the node. Weighted nodes (``conv``, ``linear``) carry their
    input quantizer, integer weights (int64 values in ``weight_int``), per-output-channel ``weight_scale``
    (positive) and a float ``bias``; ``layer`` names the network layer they are."""

    name: str
    op: str
    inputs: tuple[str, ...]
    layer: str = ""
    act: ActQuant | None = None
    weight_int: np.ndarray | None = None
    weight_scale: np.ndarray | None = None
    weight_bits: int = 0
    bias: np.ndarray | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    """``stride``, ``padding``, ``groups``, ``kernel`` of a conv or pool; ``mean``, ``var``, ``weight``,
    ``bias``, ``eps`` of a BatchNorm that follows no conv."""

    @property
    def weight(self) -> np.ndarray:
        """The dequantized (float64) weights: integers times their channel's scale."""
        assert self.weight_int is not None and self.weight_scale is not None
        view = (-1,) + (1,) * (self.weight_int.ndim - 1)
        return self.weight_int.astype(np.float64) * self.weight_scale.reshape(view)


@dataclass(frozen=True, eq=False)
class DeployGraph:
    """The model from raw input to logits. ``input_shape`` is one input's ``(C, H, W)``."""

    input_shape: tuple[int, int, int]
    preprocess: Preprocess
    nodes: tuple[DeployNode, ...]
    output: str

    def weighted(self) -> list[DeployNode]:
        return [n for n in self.nodes if n.op in ("conv", "linear")]

    def integer_record(self) -> dict[str, np.ndarray]:
        """Per weighted layer: integer weights, weight scales, bias, input scale, zero point and bits, by
        layer name (``<layer>.weight_int`` and so on), plus the arrays of any BatchNorm that follows no
        conv (``<node>.bn_mean`` ...), for an ``.npz`` file. Scales and biases stay float64, so
        :func:`load_graph` gives back this very graph."""
        out: dict[str, np.ndarray] = {}
        for node in self.nodes:
            if node.op == "batchnorm":
                for key in BN_ARRAYS:
                    out[f"{node.name}.bn_{key}"] = np.asarray(node.attrs[key], dtype=np.float64)
            if node.op not in ("conv", "linear"):
                continue
            assert node.act is not None and node.weight_int is not None and node.weight_scale is not None
            dtype = np.int8 if node.weight_bits <= 8 else np.int16
            out[f"{node.layer}.weight_int"] = node.weight_int.astype(dtype)
            out[f"{node.layer}.weight_scale"] = node.weight_scale.astype(np.float64)
            out[f"{node.layer}.bias"] = (node.bias if node.bias is not None else np.zeros(node.weight_int.shape[0])).astype(np.float64)
            out[f"{node.layer}.input_scale"] = np.asarray(node.act.scale, dtype=np.float64)
            out[f"{node.layer}.input_zero_point"] = np.asarray(node.act.zero_point, dtype=np.int32)
            out[f"{node.layer}.input_bits"] = np.asarray(node.act.bits, dtype=np.int32)
            out[f"{node.layer}.weight_bits"] = np.asarray(node.weight_bits, dtype=np.int32)
        return out

    def structure(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON (``pair.json``'s ``graph``): with :meth:`integer_record` it
        rebuilds the graph (:func:`load_graph`)."""
        nodes = []
        for node in self.nodes:
            attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in node.attrs.items() if k not in BN_ARRAYS}
            nodes.append({"name": node.name, "op": node.op, "inputs": list(node.inputs), "layer": node.layer, "attrs": attrs})
        return {
            "input_shape": list(self.input_shape),
            "preprocess": self.preprocess.to_dict(),
            "output": self.output,
            "nodes": nodes,
        }


BN_ARRAYS = ("mean", "var", "weight", "bias")


def load_graph(structure: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> DeployGraph:
    """The graph that :meth:`DeployGraph.structure` and :meth:`DeployGraph.integer_record` describe (an
    exported folder's ``pair.json["graph"]`` and ``integers.npz``). A missing array or key is an error
    naming it."""
    try:
        pre = structure["preprocess"]
        preprocess = Preprocess(float(pre["scale"]), float(pre["mean"]), float(pre["std"]), str(pre["raw"]))
        nodes = []
        for doc in structure["nodes"]:
            attrs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc["attrs"].items()}
            name, layer = str(doc["name"]), str(doc["layer"])
            kwargs: dict[str, Any] = {}
            if doc["op"] == "batchnorm":
                attrs.update({k: np.asarray(arrays[f"{name}.bn_{k}"], dtype=np.float64) for k in BN_ARRAYS})
            elif doc["op"] in ("conv", "linear"):
                kwargs = {
                    "act": ActQuant(float(arrays[f"{layer}.input_scale"]), int(arrays[f"{layer}.input_zero_point"]), int(arrays[f"{layer}.input_bits"])),
                    "weight_int": np.asarray(arrays[f"{layer}.weight_int"]).astype(np.int64),
                    "weight_scale": np.asarray(arrays[f"{layer}.weight_scale"], dtype=np.float64),
                    "weight_bits": int(arrays[f"{layer}.weight_bits"]),
                    "bias": np.asarray(arrays[f"{layer}.bias"], dtype=np.float64),
                }
            nodes.append(DeployNode(name, str(doc["op"]), tuple(doc["inputs"]), layer=layer, attrs=attrs, **kwargs))
        c, h, w = (int(d) for d in structure["input_shape"])
        return DeployGraph((c, h, w), preprocess, tuple(nodes), str(structure["output"]))
    except KeyError as exc:
        raise CodesignError(f"deploy graph: {exc.args[0]!r} is missing (a pair.json and integers.npz of another export?)") from None


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, QuantConv2d | QuantLinear) or super().is_leaf_module(m, module_qualified_name)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _weighted_node(name: str, layer_name: str, module: QuantConv2d | QuantLinear, src: str) -> DeployNode:
    from codesign.quantization.fake import quantize_weight

    if not bool(module.act_quant.observed):
        raise CodesignError(f"cannot export layer {layer_name!r}: its activation quantizer was never calibrated")
    scale, zero_point = module.act_quant.qparams()
    q, w_scale = quantize_weight(module.weight, module.weight_bits)
    bias = _numpy(module.bias) if module.bias is not None else None
    attrs: dict[str, Any] = {}
    if isinstance(module, QuantConv2d):
        if module.dilation != (1, 1) or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise CodesignError(f"cannot export layer {layer_name!r}: only zero-padded, undilated convs are exported")
        attrs = {
            "stride": tuple(int(s) for s in module.stride),
            "padding": tuple(int(p) for p in module.padding),
            "groups": int(module.groups),
            "kernel": tuple(int(k) for k in module.kernel_size),
        }
    return DeployNode(
        name=name,
        op="conv" if isinstance(module, QuantConv2d) else "linear",
        inputs=(src,),
        layer=layer_name,
        act=ActQuant(float(scale), int(zero_point), int(module.act_bits)),
        weight_int=q.detach().cpu().numpy().astype(np.int64),
        weight_scale=_numpy(w_scale),
        weight_bits=int(module.weight_bits),
        bias=bias,
        attrs=attrs,
    )


def _fold(conv: DeployNode, bn: nn.BatchNorm2d, name: str) -> DeployNode:
    """``conv`` followed by ``bn`` (eval mode) as one conv: the factor ``gamma / sqrt(var + eps)`` scales
    each channel's scale (its sign goes into the integers)."""
    assert conv.weight_int is not None and conv.weight_scale is not None and bn.running_var is not None
    assert bn.running_mean is not None
    gamma = _numpy(bn.weight) if bn.weight is not None else np.ones(bn.num_features)
    beta = _numpy(bn.bias) if bn.bias is not None else np.zeros(bn.num_features)
    factor = gamma / np.sqrt(_numpy(bn.running_var) + bn.eps)
    bias = conv.bias if conv.bias is not None else np.zeros(len(factor))
    sign = np.where(factor < 0, -1, 1)
    view = (-1,) + (1,) * (conv.weight_int.ndim - 1)
    return DeployNode(
        name=name,
        op="conv",
        inputs=conv.inputs,
        layer=conv.layer,
        act=conv.act,
        weight_int=conv.weight_int * sign.reshape(view),
        weight_scale=conv.weight_scale * np.abs(factor),
        weight_bits=conv.weight_bits,
        bias=(bias - _numpy(bn.running_mean)) * factor + beta,
        attrs=conv.attrs,
    )


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def deploy_graph(model: nn.Module, network: Network, input_shape: Sequence[int], preprocess: Preprocess) -> DeployGraph:
    """The calibrated, quantized ``model`` (its quantized layers in the order of ``network``'s weighted
    layers) as a :class:`DeployGraph`. An operator with no deploy form is an error naming it and the
    operators that are supported."""
    model = model.eval()
    layer_names = [layer.name for layer in network.weighted_layers]
    qlayers = quant_layers(model)
    if len(qlayers) != len(layer_names):
        raise CodesignError(f"cannot export: the model has {len(qlayers)} quantized layers, the network {len(layer_names)} weighted layers")
    by_module = {id(m): name for m, name in zip(qlayers, layer_names, strict=True)}
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - torch.fx raises many types; the user needs the reason
        raise CodesignError(f"cannot export: torch.fx cannot trace the model ({type(exc).__name__}: {exc})") from None
    modules = dict(model.named_modules())
    users: dict[str, int] = {}
    for node in graph.nodes:
        for arg in node.all_input_nodes:
            users[arg.name] = users.get(arg.name, 0) + 1
    nodes: dict[str, DeployNode] = {}
    alias: dict[str, str] = {}  # fx node name -> deploy output name (identity-like ops pass through)
    rename: dict[str, str] = {}  # a weighted node takes its network layer's name
    output = ""

    def src(arg: Any, what: str) -> str:
        if not isinstance(arg, torch.fx.Node):
            raise CodesignError(f"cannot export {what}: an input is the constant {arg!r}, not a tensor")
        return alias[arg.name]

    def put(node: DeployNode) -> None:
        nodes[node.name] = node
        alias[node.name] = node.name

    unsupported = f"supported: conv/linear layers of codesign.quantization.fake, BatchNorm2d, ReLU, +, pooling, flatten ({', '.join(OPS)})"
    for node in graph.nodes:
        where = f"node {node.name!r} ({node.op} {node.target})"
        if node.op == "placeholder":
            alias[node.name] = "input"
        elif node.op == "output":
            output = src(node.args[0], where)
        elif node.op == "call_module":
            module = modules[str(node.target)]
            if isinstance(module, QuantConv2d | QuantLinear):
                put(_weighted_node(node.name, by_module[id(module)], module, src(node.args[0], where)))
                rename[node.name] = by_module[id(module)]
            elif isinstance(module, nn.BatchNorm2d):
                inp = node.args[0]
                prev = nodes.get(alias[inp.name]) if isinstance(inp, torch.fx.Node) else None
                if prev is not None and prev.op == "conv" and users.get(inp.name, 0) == 1 and alias[inp.name] == inp.name:
                    del nodes[prev.name]
                    put(_fold(prev, module, node.name))
                    rename[node.name] = prev.layer
                else:
                    put(DeployNode(node.name, "batchnorm", (src(inp, where),), attrs={
                        "mean": _numpy(module.running_mean), "var": _numpy(module.running_var),  # type: ignore[arg-type]
                        "weight": _numpy(module.weight), "bias": _numpy(module.bias), "eps": float(module.eps),
                    }))
            elif isinstance(module, nn.ReLU):
                put(DeployNode(node.name, "relu", (src(node.args[0], where),)))
            elif isinstance(module, nn.Identity | nn.Dropout):
                alias[node.name] = src(node.args[0], where)
            elif isinstance(module, nn.AdaptiveAvgPool2d) and _pair(module.output_size) == (1, 1):
                put(DeployNode(node.name, "global_avg_pool", (src(node.args[0], where),)))
            elif isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
                put(DeployNode(node.name, "flatten", (src(node.args[0], where),)))
            elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
                put(_pool(node.name, "max_pool" if isinstance(module, nn.MaxPool2d) else "avg_pool",
                          src(node.args[0], where), module.kernel_size, module.stride, module.padding))
            else:
                raise CodesignError(f"cannot export {where}: module {type(module).__name__} has no deploy form; {unsupported}")
        elif node.op in ("call_function", "call_method"):
            target = node.target
            args = node.args
            if target in (F.relu, torch.relu, "relu"):
                put(DeployNode(node.name, "relu", (src(args[0], where),)))
            elif target in (operator.add, torch.add, "add") and len(args) == 2 and not node.kwargs:
                put(DeployNode(node.name, "add", (src(args[0], where), src(args[1], where))))
            elif target in (F.adaptive_avg_pool2d,) and _pair(args[1]) == (1, 1):
                put(DeployNode(node.name, "global_avg_pool", (src(args[0], where),)))
            elif target in (torch.flatten, "flatten") and tuple(args[1:]) in ((1,), (1, -1)):
                put(DeployNode(node.name, "flatten", (src(args[0], where),)))
            elif target in (F.max_pool2d, F.avg_pool2d):
                kernel = args[1] if len(args) > 1 else node.kwargs["kernel_size"]
                stride = args[2] if len(args) > 2 else node.kwargs.get("stride") or kernel
                padding = args[3] if len(args) > 3 else node.kwargs.get("padding", 0)
                put(_pool(node.name, "max_pool" if target is F.max_pool2d else "avg_pool", src(args[0], where), kernel, stride, padding))
            else:
                raise CodesignError(f"cannot export {where}: no deploy form; {unsupported}")
        else:
            raise CodesignError(f"cannot export {where}: no deploy form; {unsupported}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3:
        raise CodesignError(f"cannot export: the input shape must be (C, H, W), got {shape}")
    return _renamed(DeployGraph((shape[0], shape[1], shape[2]), preprocess, tuple(nodes.values()), output), rename)


def _renamed(graph: DeployGraph, rename: Mapping[str, str]) -> DeployGraph:
    """``graph`` with its weighted nodes named as their network layers (the names pair.json, the QONNX
    nodes and the hls4ml configuration share); another node whose name a layer took gets an ``_op``
    suffix (torch.fx names are unique among themselves)."""
    layer_names = set(rename.values())
    names = {"input": "input"}
    for node in graph.nodes:
        name = rename.get(node.name, node.name)
        while node.name not in rename and (name in layer_names or name == "input"):
            name += "_op"
        names[node.name] = name
    nodes = tuple(
        dataclasses.replace(node, name=names[node.name], inputs=tuple(names[i] for i in node.inputs)) for node in graph.nodes
    )
    return dataclasses.replace(graph, nodes=nodes, output=names[graph.output])


def _pool(name: str, op: str, src: str, kernel: Any, stride: Any, padding: Any) -> DeployNode:
    return DeployNode(name, op, (src,), attrs={"kernel": _pair(kernel), "stride": _pair(stride or kernel), "padding": _pair(padding)})


def _act_quant(x: Tensor, inv_scale: Tensor, act: ActQuant) -> Tensor:
    """The activation fake quantization of :func:`torch.fake_quantize_per_tensor_affine` (the same
    arithmetic: ``round(x * (1 / scale)) + zero_point``, clamped) in plain operators, which
    :func:`torch.export.export` can trace."""
    q = torch.clamp(torch.round(x * inv_scale) + act.zero_point, 0, 2**act.bits - 1)
    return (q - act.zero_point) * act.scale


class DeployedModule(nn.Module):
    """A :class:`DeployGraph` run with plain torch: raw input in, logits out. Integer weights are buffers
    (int8/int16) with their float scales; nothing of codesign is needed to run it (``model.pt2`` is this
    module saved with :func:`torch.export.save`)."""

    def __init__(self, graph: DeployGraph) -> None:
        super().__init__()
        self.graph = graph
        self.pre_mul = graph.preprocess.mul
        self.pre_add = graph.preprocess.add
        for i, node in enumerate(graph.nodes):
            if node.op in ("conv", "linear"):
                assert node.weight_int is not None and node.weight_scale is not None
                dtype = torch.int8 if node.weight_bits <= 8 else torch.int16
                self.register_buffer(f"w{i}", torch.from_numpy(node.weight_int).to(dtype))
                self.register_buffer(f"s{i}", torch.from_numpy(node.weight_scale).float())
                bias = node.bias if node.bias is not None else np.zeros(node.weight_int.shape[0])
                self.register_buffer(f"b{i}", torch.from_numpy(np.asarray(bias)).float())
                assert node.act is not None
                self.register_buffer(f"inv{i}", torch.tensor(node.act.scale, dtype=torch.float32).reciprocal())
            elif node.op == "batchnorm":
                for key in ("mean", "var", "weight", "bias"):
                    self.register_buffer(f"{key}{i}", torch.from_numpy(node.attrs[key]).float())

    def forward(self, raw: Tensor) -> Tensor:
        values: dict[str, Tensor] = {"input": raw * self.pre_mul + self.pre_add}
        for i, node in enumerate(self.graph.nodes):
            x = values[node.inputs[0]]
            if node.op in ("conv", "linear"):
                assert node.act is not None
                x = _act_quant(x, getattr(self, f"inv{i}"), node.act)
                scale = getattr(self, f"s{i}")
                w = getattr(self, f"w{i}").float() * scale.view((-1,) + (1,) * (getattr(self, f"w{i}").dim() - 1))
                b = getattr(self, f"b{i}")
                if node.op == "conv":
                    y = F.conv2d(x, w, b, node.attrs["stride"], node.attrs["padding"], 1, node.attrs["groups"])
                else:
                    y = F.linear(x, w, b)
            elif node.op == "batchnorm":
                y = F.batch_norm(x, getattr(self, f"mean{i}"), getattr(self, f"var{i}"), getattr(self, f"weight{i}"),
                                 getattr(self, f"bias{i}"), False, 0.0, node.attrs["eps"])
            elif node.op == "relu":
                y = F.relu(x)
            elif node.op == "add":
                y = x + values[node.inputs[1]]
            elif node.op == "global_avg_pool":
                y = F.adaptive_avg_pool2d(x, 1)
            elif node.op == "flatten":
                y = torch.flatten(x, 1)
            elif node.op == "max_pool":
                y = F.max_pool2d(x, node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"])
            elif node.op == "avg_pool":
                y = F.avg_pool2d(x, node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"])
            else:  # pragma: no cover - deploy_graph emits only OPS
                raise CodesignError(f"unknown deploy operator {node.op!r}")
            values[node.name] = y
        return values[self.graph.output]


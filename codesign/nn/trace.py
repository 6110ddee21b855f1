"""Any PyTorch model as a :class:`~codesign.core.values.Network` for the hardware models.

:func:`trace_network` traces an ``nn.Module`` with :mod:`torch.fx` (symbolic tracing; conv, linear and
BatchNorm modules, subclasses such as :class:`codesign.quantization.fake.QuantConv2d` included, are
leaves), runs the graph once on an example input to learn the shape of every tensor, and maps every graph
node to a layer, to nothing, or to an error. The shapes come from a :class:`torch.fx.Interpreter`, the
mechanism of :class:`torch.fx.passes.shape_prop.ShapeProp`, not from ShapeProp itself: ShapeProp prints a
traceback to stderr when a node fails, and library code here never writes to the terminal (the failure
becomes the one-line error below). BatchNorm and dropout pass their input through and quantizers are not
called while the shapes are recorded, so the model is not changed (BatchNorm statistics, observers,
training mode).

========================================================  ============================================
PyTorch                                                   network
========================================================  ============================================
``nn.Conv2d`` (any subclass): any square kernel, stride,  ``conv`` (``groups``, ``dilation``, ``bias``
padding, dilation and groups (depthwise included)         from the module)
``nn.Linear`` on ``(N, F)``                               ``linear``; on ``(N, ..., F)`` a pointwise
                                                          ``conv`` over the ``prod(...)`` positions
BatchNorm                                                 nothing: folded into the layer before it
activations (ReLU, ReLU6, LeakyReLU, Hardtanh, clamp,     nothing (see below)
SiLU, GELU, Hardswish, Sigmoid, Tanh, ...), dropout
max/avg pooling, adaptive pooling with equal windows,     ``pool`` (global when the window is the
``mean``/``amax`` over height and width                   whole map)
``+``/``-`` of two tensors of one shape                   ``add``, with a residual edge
``torch.cat`` along the channels                          ``concat``, with residual edges
``nn.Upsample``, ``F.interpolate`` (nearest, bilinear;    ``upsample`` (``stride`` = the factor)
one integer factor)
view, reshape, flatten, unflatten, squeeze, contiguous,   nothing: a relabelling
chunk/split/slices along the channels, channel shuffle
(``view`` + ``transpose`` + ``reshape``,
``nn.ChannelShuffle``), ``*``/``/``/``+`` by a number
``softmax``/``log_softmax`` whose result is the output    nothing (left to the host)
========================================================  ============================================

Anything else (``torch.fft``, a tensor-times-tensor product such as squeeze-and-excitation gating, a
transpose that moves the height or width axis, padding, LayerNorm and GroupNorm, which normalise by each
input's own statistics and so fold into nothing, a transposed conv, a module the table does not know) is
a :class:`CodesignError` of one line naming the graph node and its operation, e.g. ``cannot cost node
'fft_fft2' (call_function torch._C._fft.fft_fft2): ...``: a hardware model never sees an operation it
would cost as zero. A forward that torch.fx cannot
trace (data-dependent control flow) is an error saying so; mark such code with ``torch.fx.wrap`` or make
its module a leaf, and it becomes a node this function names.

Choices, and why:

- **Concatenation and upsampling** are layer kinds of their own (``concat``, ``upsample``), costed by
  every hardware model as the data they move: a copy through the vector unit (overlay) or their own
  streaming engine (dataflow, pipeline) that reads the input bytes once and writes the output bytes once
  at the model's bandwidth, with the stream buffers a dataflow engine needs (see the models' docstrings).
  They cannot be relabellings: an upsample writes ``stride^2`` times the bytes it reads, and a concat's
  inputs arrive at different times and must be buffered on a streaming design.
- **Channel shuffle, reshapes and channel slices** are relabellings: a fixed permutation or regrouping of
  the channels is an address mapping, absorbed offline into the weight order of the layer that reads it
  (its input-channel axis) or into the write addresses of the layer that produces it, so it moves no
  data. That holds only while height and width stay in place: a ``transpose``/``permute`` that moves one
  of the last two axes (or the batch axis) is a real layout change and an error.
- **Activations** carry no layer, as in the built-in networks: ReLU, ReLU6, Hardtanh and clamps are the
  clipping bounds of the producing layer's requantization (free); smooth ones (SiLU, GELU, Sigmoid,
  Hardswish, ...) are a lookup table on the producer's output stream (hls4ml and FINN build them that
  way, one table per output lane) whose LUT/BRAM cost the hardware models leave out. The same holds for
  multiplying or adding a number (a requantization scale or offset).
- **BatchNorm** folds into the preceding layer's weights and per-channel offset (after an add or pool,
  into the per-channel thresholds of the next quantization, as FINN's streamlining does); as in the
  built-in networks the offset is not counted as a bias parameter (``bias`` is the module's own).
- **Dilation** is the layer's ``dilation`` field: the MACs stay ``kernel x kernel`` per output, the
  window (input tiles, line buffers) spans the effective kernel ``dilation * (kernel - 1) + 1``.

Layer order, names and bits:

- The layers are in a topological order of the data flow in which the weighted layers (conv, linear)
  follow the order their modules are registered in wherever the data flow allows it, and every other
  layer comes where it executes relative to the weighted ones. That is the order of the model's quantized
  layers (:func:`codesign.quantization.fake.quant_layers`, which ``set_bits`` follows): in the built-in
  ResNet the 1x1 shortcut conv, registered between a block's two convs, comes right after the first one,
  as in the hand-built network, although it executes after the second. Where the registration order
  contradicts the data flow the data flow wins (the network is always in an order that can execute).
- Names come from the module path (``blocks.0.dw.conv`` -> ``blocks_0_dw_conv``); a function inside a
  module is named after the module and the operation (``blocks_0_add``), at the top level after the
  operation (``adaptive_avg_pool2d``); a module called twice gets ``_1``, ``_2`` ... on its later layers;
  a model that is itself one layer (a bare ``nn.Conv2d``) is named after its class (``conv2d``).
- ``weight_bits``/``act_bits`` give one entry per weighted layer in network order; by default each
  quantized module's own bits (8 for a plain ``nn.Conv2d``/``nn.Linear``). A layer without weights reads
  activations at the bits of the first weighted layer that reads the tensor its branches fork from (an
  add or concat: the block input, as the built-in networks count a residual), else of one that reads the
  same input, else of the first that reads its output (global pooling before the classifier), else of the
  nearest weighted layer before it.
- A residual edge ``(source, layer)`` links an add or concat to each of its inputs that is not the layer
  just before it; ``ties`` group the layers that read one tensor (channel slices of it included);
  ``dead`` lists layers whose result never reaches the output.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.core.values import Layer, Network
from codesign.nn._trace_nodes import NodeMapper, ProtoLayer, record_shapes, trace_graph
from codesign.quantization.fake import QuantConv2d, QuantLinear


def _example(example_input: Tensor | tuple[int, ...], name: str) -> Tensor:
    if isinstance(example_input, Tensor):
        if example_input.dim() < 2:
            raise CodesignError(
                f"{name}: the example input needs a batch axis first, got shape {tuple(example_input.shape)}"
            )
        return example_input
    shape = tuple(example_input)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise CodesignError(
            f"{name}: the example input shape must be positive integers, e.g. (3, 32, 32), got {shape!r}"
        )
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))


def _input_shape(example: Tensor, name: str) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in example.shape[1:])
    if len(shape) > 3:
        raise CodesignError(f"{name}: one input must be (C, H, W), (C, L) or (F,), got {shape}")
    c, h, w = (*shape, 1, 1)[:3]
    return (c, h, w)


def _order(protos: Sequence[ProtoLayer]) -> list[ProtoLayer]:
    """Kahn's topological sort: among the layers whose inputs are ready, the weighted one of lowest
    registration rank, or a layer without weights placed after as many weighted layers as ran before it."""
    by_name = {p.name: p for p in protos}
    weighted_before = 0
    keys: dict[str, tuple[int, int, int]] = {}
    for p in protos:  # protos are in execution order
        if p.weighted:
            keys[p.name] = (p.rank if p.rank is not None else weighted_before, 1, p.step)
            weighted_before += 1
        else:
            keys[p.name] = (weighted_before, 0, p.step)
    waiting = {p.name: {s for s in p.inputs if s in by_name} for p in protos}
    users: dict[str, list[str]] = {p.name: [] for p in protos}
    for p in protos:
        for s in waiting[p.name]:
            users[s].append(p.name)
    ready = [n for n, deps in waiting.items() if not deps]
    out: list[ProtoLayer] = []
    while ready:
        ready.sort(key=keys.__getitem__)
        name = ready.pop(0)
        out.append(by_name[name])
        for user in users[name]:
            waiting[user].discard(name)
            if not waiting[user]:
                ready.append(user)
    return out


def _bits(
    ordered: Sequence[ProtoLayer], given: Sequence[int] | None, label: str, name: str
) -> dict[str, int]:
    weighted = [p for p in ordered if p.weighted]
    if given is not None:
        if len(given) != len(weighted):
            raise CodesignError(
                f"{name}: {label} has {len(given)} entries; the network has {len(weighted)} weighted layers"
            )
        return {p.name: int(b) for p, b in zip(weighted, given, strict=True)}
    out = {}
    for p in weighted:
        module = p.module
        quantized = isinstance(module, QuantConv2d | QuantLinear)
        out[p.name] = int(getattr(module, label)) if quantized else 8
    return out


def _dominators(ordered: Sequence[ProtoLayer]) -> dict[str, set[str]]:
    dom: dict[str, set[str]] = {"input": {"input"}}
    for p in ordered:
        preds = [dom[s] for s in p.inputs if s in dom]
        dom[p.name] = {p.name} | (set.intersection(*preds) if preds else set())
    return dom


def _free_act_bits(ordered: Sequence[ProtoLayer], act: Mapping[str, int]) -> dict[str, int]:
    """Activation bits of the layers without weights (the rule in the module docstring)."""
    position = {p.name: i for i, p in enumerate(ordered)}
    position["input"] = -1
    readers: dict[str, list[str]] = {}
    for p in ordered:
        for s in p.inputs:
            readers.setdefault(s, []).append(p.name)

    def first_weighted_reader(sources: Iterator[str]) -> int | None:
        found = [r for s in sources for r in readers.get(s, ()) if r in act]
        return act[min(found, key=position.__getitem__)] if found else None

    dom: dict[str, set[str]] | None = None
    out: dict[str, int] = {}
    for i, p in enumerate(ordered):
        if p.weighted:
            continue
        bits = None
        if len(p.inputs) > 1:
            dom = dom if dom is not None else _dominators(ordered)
            fork = max(dom[p.name] - {p.name}, key=position.__getitem__, default=None)
            bits = first_weighted_reader(iter([fork])) if fork is not None else None
        if bits is None:
            bits = first_weighted_reader(iter(p.inputs))
        if bits is None:
            bits = first_weighted_reader(iter([p.name]))
        if bits is None:
            before = [act[q.name] for q in ordered[:i] if q.weighted]
            bits = before[-1] if before else next((act[q.name] for q in ordered[i:] if q.weighted), 8)
        out[p.name] = bits
    return out


def _edges(ordered: Sequence[ProtoLayer]) -> tuple[tuple[str, str], ...]:
    edges: list[tuple[str, str]] = []
    previous = "input"
    for p in ordered:
        if p.fields["kind"] in ("add", "concat"):
            edges += [(s, p.name) for s in p.inputs if s != previous]
        previous = p.name
    return tuple(edges)


def _ties(ordered: Sequence[ProtoLayer]) -> tuple[tuple[str, ...], ...]:
    readers: dict[str, list[str]] = {}
    for p in ordered:
        for s in p.inputs:
            readers.setdefault(s, []).append(p.name)
    return tuple(tuple(group) for group in readers.values() if len(group) > 1)


def _dead(ordered: Sequence[ProtoLayer], outputs: Sequence[str]) -> tuple[str, ...]:
    by_name = {p.name: p for p in ordered}
    live: set[str] = set()
    stack = [s for s in outputs if s in by_name]
    while stack:
        name = stack.pop()
        if name not in live:
            live.add(name)
            stack += [s for s in by_name[name].inputs if s in by_name]
    return tuple(p.name for p in ordered if p.name not in live)


def trace_network(
    model: nn.Module,
    example_input: Tensor | tuple[int, ...],
    *,
    name: str,
    weight_bits: Sequence[int] | None = None,
    act_bits: Sequence[int] | None = None,
) -> Network:
    """``model`` as a network for the hardware models (see the module docstring for what maps to what).

    ``example_input`` is a batch of inputs (a tensor, batch axis first) or the shape of one input
    (``(C, H, W)`` or ``(F,)``; a seeded random tensor of batch 1 is made). Shapes are per input (batch 1).
    ``weight_bits``/``act_bits`` have one entry per weighted layer in network order (default: each
    quantized module's own bits, 8 for plain modules). An operation no layer kind can cost, a forward that
    torch.fx cannot trace and a node that fails on the example input are each a one-line
    :class:`CodesignError` naming the node. The model is not changed.
    """
    example = _example(example_input, name)
    input_shape = _input_shape(example, name)
    gm = trace_graph(model, name)
    shapes = record_shapes(gm, example, name)
    modules = dict(gm.named_modules())
    weighted_modules = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    builder = NodeMapper(
        modules=modules,
        ranks={id(m): i for i, m in enumerate(weighted_modules)},
        shapes=shapes,
        batch=int(example.shape[0]),
    )
    for node in gm.graph.nodes:
        builder.values[node.name] = builder.visit(node)
    if not builder.protos:
        raise CodesignError(f"{name}: the model has no layer the hardware models cost (only relabellings)")
    ordered = _order(builder.protos)
    wbits = _bits(ordered, weight_bits, "weight_bits", name)
    abits = _bits(ordered, act_bits, "act_bits", name)
    abits.update(_free_act_bits(ordered, abits))
    layers = tuple(
        Layer(**p.fields, weight_bits=wbits.get(p.name, 8), act_bits=abits[p.name]) for p in ordered
    )
    return Network(
        name=name,
        layers=layers,
        input_shape=input_shape,
        residuals=_edges(ordered),
        ties=_ties(ordered),
        dead=_dead(ordered, builder.outputs),
    )

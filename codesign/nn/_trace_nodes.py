"""The node-by-node half of :func:`codesign.nn.trace.trace_network`: the torch.fx tracer, the shape
recorder and :class:`NodeMapper`, which turns every graph node into a layer (:class:`ProtoLayer`, before
the order and bits are known), a relabelling of its input, a constant, or a one-line error naming the node.
What maps to what, and why, is written in :mod:`codesign.nn.trace`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.core.network import UPSAMPLE_TAPS
from codesign.core.values import LAYER_KINDS, Layer

Shape = tuple[int, ...]

_LEAVES = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
"""Modules the tracer never enters (their subclasses included): they become one node each."""

_ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign,
    nn.Tanhshrink, nn.Threshold, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.AlphaDropout, nn.FeatureAlphaDropout,
)  # fmt: skip
_ACTIVATION_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.leaky_relu_, F.prelu, F.rrelu,
    F.hardtanh, F.hardtanh_, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid,
    F.sigmoid, torch.sigmoid, F.tanh, torch.tanh, F.softplus, F.softsign, F.tanhshrink, F.threshold,
    torch.clamp, torch.clip, torch.clamp_min, torch.clamp_max, F.dropout, F.dropout1d, F.dropout2d,
    F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
)  # fmt: skip
_ACTIVATION_METHODS = frozenset({
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clip", "clip_",
    "clamp_min", "clamp_max", "hardtanh", "hardtanh_",
})  # fmt: skip
_RESHAPE_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
)
_RESHAPE_METHODS = frozenset({
    "view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "contiguous", "view_as", "reshape_as",
})  # fmt: skip
_PERMUTE_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.transpose, torch.swapaxes, torch.permute)
_PERMUTE_METHODS = frozenset({"transpose", "swapaxes", "permute"})
_SHUFFLE_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.channel_shuffle, torch.native_channel_shuffle)
_SPLIT_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.chunk, torch.split, torch.tensor_split)
_SPLIT_METHODS = frozenset({"chunk", "split", "tensor_split"})
_ADD_TARGETS: tuple[Any, ...] = (
    operator.add,
    operator.iadd,
    torch.add,
    operator.sub,
    operator.isub,
    torch.sub,
)
_ADD_METHODS = frozenset({"add", "add_", "sub", "sub_"})
_SCALE_TARGETS: tuple[Any, ...] = (
    operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div, operator.neg, torch.neg,
)  # fmt: skip
_SCALE_METHODS = frozenset({"mul", "mul_", "div", "div_", "neg"})
_CAT_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.cat, torch.concat, torch.concatenate)
_SOFTMAX: tuple[Any, ...] = (
    F.softmax,
    F.log_softmax,
    torch.softmax,
    torch.log_softmax,
    "softmax",
    "log_softmax",
)
_UPSAMPLE_MODES = {"nearest": "nearest", "nearest-exact": "nearest", "bilinear": "bilinear"}
"""Interpolation modes the ``upsample`` kind costs (nearest-exact moves the same data as nearest)."""


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, module_qualified_name)


class _TraceFailed(Exception):
    """Running a node on the example input failed (carries the node and the cause)."""

    def __init__(self, node: torch.fx.Node, cause: BaseException) -> None:
        super().__init__(node.name)
        self.node, self.cause = node, cause


class _ShapeRecorder(torch.fx.Interpreter):
    """Runs the graph once and records the shape of every tensor a node returns (a tuple of shapes for a
    tuple of tensors, None for anything else). BatchNorm and dropout return their input, conv and linear
    modules are computed with their plain weights (quantizers are not called), so nothing in the model
    changes."""

    def __init__(self, module: torch.fx.GraphModule) -> None:
        super().__init__(module)
        self.shapes: dict[str, Any] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except _TraceFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything; we name the node
            raise _TraceFailed(n, exc) from exc
        self.shapes[n.name] = _shapes_of(result)
        return result

    def call_module(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        module = self.fetch_attr(target)
        if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.Dropout | nn.modules.dropout._DropoutNd):
            return args[0]
        if isinstance(module, nn.Conv2d):
            return nn.Conv2d._conv_forward(module, args[0], module.weight, module.bias)
        if isinstance(module, nn.Linear):
            return F.linear(args[0], module.weight, module.bias)
        return super().call_module(target, args, kwargs)


def _shapes_of(value: Any) -> Any:
    if isinstance(value, Tensor):
        return tuple(int(d) for d in value.shape)
    if isinstance(value, tuple | list) and value and all(isinstance(v, Tensor) for v in value):
        return tuple(tuple(int(d) for d in v.shape) for v in value)
    return None


@dataclass(frozen=True)
class Value:
    """What a node's result is to the network: data from ``source`` (a layer name or ``"input"``) of full
    ``shape`` (batch axis first), a tuple of such tensors (``parts``), or a constant (``source`` None)."""

    source: str | None
    shape: Shape | None = None
    parts: tuple[Shape, ...] | None = None

    @property
    def is_data(self) -> bool:
        return self.source is not None


@dataclass
class ProtoLayer:
    """A layer before the order (and so the bits) is known."""

    fields: dict[str, Any]
    inputs: tuple[str, ...]
    module: nn.Module | None
    step: int
    """Position of its node in execution order."""
    rank: int | None = None
    """Registration rank of its weighted module (None for a layer without weights)."""

    @property
    def name(self) -> str:
        return str(self.fields["name"])

    @property
    def weighted(self) -> bool:
        return self.fields["kind"] in ("conv", "linear")


@dataclass
class NodeMapper:
    """The state of one trace: values of the nodes seen so far and the layers made."""

    modules: Mapping[str, nn.Module]
    ranks: Mapping[int, int]
    shapes: Mapping[str, Any]
    batch: int
    values: dict[str, Value] = field(default_factory=dict)
    protos: list[ProtoLayer] = field(default_factory=list)
    taken: set[str] = field(default_factory=lambda: {"input"})
    outputs: list[str] = field(default_factory=list)

    # ----- helpers ----------------------------------------------------------------------------------
    def value(self, arg: Any) -> Value:
        if isinstance(arg, torch.fx.Node):
            return self.values[arg.name]
        return Value(None)

    def operands(self, node: torch.fx.Node) -> list[Value]:
        """The two operands of a binary operation (``other`` may come as a keyword)."""
        return [
            self.value(node.args[0] if node.args else node.kwargs.get("input")),
            self.value(_arg(node, 1, "other", None)),
        ]

    def data_inputs(self, node: torch.fx.Node) -> list[Value]:
        return [v for v in (self.values[a.name] for a in node.all_input_nodes) if v.is_data]

    def unique(self, base: str) -> str:
        base = base.replace(".", "_") or "layer"
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def layer(
        self,
        node: torch.fx.Node,
        inputs: Sequence[Value],
        module: nn.Module | None,
        *,
        expect: Shape | None = None,
        **fields: Any,
    ) -> Value:
        """A new layer of ``fields`` reading ``inputs``; its output must have the shape the model gives
        (``expect``: that shape per input when the layer's own ``C x H x W`` is laid out otherwise)."""
        name = self.unique(_layer_base(node))
        try:
            probe = Layer(name=name, **fields)
        except CodesignError as exc:
            raise _cannot(node, self.modules, str(exc)) from None
        out = self.shapes.get(node.name)
        expected = expect if expect is not None else _expected_shape(probe)
        if not isinstance(out, tuple) or out[1:] != expected:
            raise _cannot(
                node, self.modules,
                f"the layer it maps to gives {expected}, the model gives {None if out is None else out[1:]} "
                "(asymmetric padding, ceil_mode or uneven windows have no layer form)",
            )  # fmt: skip
        rank = self.ranks.get(id(module)) if module is not None and probe.has_weights else None
        sources = tuple(dict.fromkeys(str(v.source) for v in inputs))
        self.protos.append(ProtoLayer({"name": name, **fields}, sources, module, len(self.protos), rank))
        return Value(name, out)

    def relabel(self, node: torch.fx.Node, source: Value) -> Value:
        out = self.shapes.get(node.name)
        if isinstance(out, tuple) and out and isinstance(out[0], tuple):
            return Value(source.source, None, out)
        if not isinstance(out, tuple):
            raise _cannot(node, self.modules, "its data input gives no tensor")
        if not out or out[0] != self.batch:
            raise _cannot(
                node,
                self.modules,
                f"it moves the batch axis (shape {out}); a layer reads one input at a time",
            )
        return Value(source.source, out)

    # ----- the node kinds ---------------------------------------------------------------------------
    def visit(self, node: torch.fx.Node) -> Value:
        if node.op == "placeholder":
            shape = self.shapes.get(node.name)
            if any(v.source == "input" for v in self.values.values()):
                if isinstance(shape, tuple):
                    raise _cannot(node, self.modules, "the network takes one input tensor")
                return Value(None)
            return Value("input", shape)
        if node.op == "get_attr":
            return Value(None, self.shapes.get(node.name))
        if node.op == "output":
            self.outputs = [str(v.source) for v in self.data_inputs(node)]
            return Value(None)
        data = self.data_inputs(node)
        if not data or _is_size_query(node):  # constants and sizes: folded before the hardware sees them
            return Value(None, self.shapes.get(node.name))
        if node.op == "call_module":
            return self.call_module(node, self.modules[str(node.target)], data)
        return self.call_op(node, data)

    def call_module(self, node: torch.fx.Node, module: nn.Module, data: list[Value]) -> Value:
        x = data[0]
        if isinstance(module, nn.Conv2d):
            return self.conv(node, module, x)
        if isinstance(module, nn.Linear):
            return self.linear(node, module, x)
        if isinstance(
            module, (nn.modules.batchnorm._BatchNorm, *_ACTIVATION_MODULES, nn.Flatten, nn.Unflatten)
        ):
            return self.relabel(node, x)
        if isinstance(module, nn.ChannelShuffle):
            return self.relabel(node, x)
        if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            if isinstance(module, nn.MaxPool2d) and module.return_indices:
                raise _cannot(node, self.modules, "pooling indices have no layer form")
            mode = "max" if isinstance(module, nn.MaxPool2d) else "avg"
            dilation = module.dilation if isinstance(module, nn.MaxPool2d) else 1
            stride = module.stride if module.stride is not None else module.kernel_size
            return self.pool(node, x, mode, module.kernel_size, stride, module.padding, dilation)
        if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            mode = "max" if isinstance(module, nn.AdaptiveMaxPool2d) else "avg"
            return self.adaptive_pool(node, x, mode)
        if isinstance(module, nn.Upsample):
            return self.upsample(node, x, str(module.mode))
        if isinstance(module, nn.Softmax | nn.LogSoftmax):
            return self.softmax(node, x)
        raise _cannot(node, self.modules, _NO_KIND)

    def call_op(self, node: torch.fx.Node, data: list[Value]) -> Value:
        target, method = node.target, node.op == "call_method"
        x = self.value(node.args[0]) if node.args else data[0]
        if (target in _ACTIVATION_METHODS) if method else (target in _ACTIVATION_FUNCTIONS):
            return self.relabel(node, data[0])
        if (target in _RESHAPE_METHODS) if method else (target in _RESHAPE_FUNCTIONS):
            return self.relabel(node, x)
        if (target in _PERMUTE_METHODS) if method else (target in _PERMUTE_FUNCTIONS):
            return self.permute(node, x)
        if not method and target in _SHUFFLE_FUNCTIONS:
            return self.relabel(node, x)
        if (target in _SPLIT_METHODS) if method else (target in _SPLIT_FUNCTIONS):
            return self.split(node, x)
        if not method and target is operator.getitem:
            return self.getitem(node, x)
        if (target in _ADD_METHODS) if method else (target in _ADD_TARGETS):
            return self.add(node)
        if (target in _SCALE_METHODS) if method else (target in _SCALE_TARGETS):
            return self.scale(node)
        if not method and target in _CAT_FUNCTIONS:
            return self.concat(node)
        if target in _SOFTMAX:
            return self.softmax(node, x)
        if (method and target in ("mean", "amax")) or (not method and target in (torch.mean, torch.amax)):
            return self.global_pool(node, x, "avg" if target in ("mean", torch.mean) else "max")
        if not method and target in (F.max_pool2d, F.avg_pool2d):
            return self.functional_pool(node, x)
        if not method and target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            if _arg(node, 2, "return_indices", False):
                raise _cannot(node, self.modules, "pooling indices have no layer form")
            return self.adaptive_pool(node, x, "avg" if target is F.adaptive_avg_pool2d else "max")
        if not method and target is F.interpolate:
            return self.upsample(node, x, str(_arg(node, 3, "mode", "nearest")))
        raise _cannot(node, self.modules, _NO_KIND)

    # ----- layers -----------------------------------------------------------------------------------
    def conv(self, node: torch.fx.Node, m: nn.Conv2d, x: Value) -> Value:
        c, h, w = self.chw(node, x)
        kernel = _square(node, self.modules, "kernel", m.kernel_size)
        dilation = _square(node, self.modules, "dilation", m.dilation)
        if isinstance(m.padding, str):
            total = 0 if m.padding == "valid" else dilation * (kernel - 1)
            if total % 2:
                raise _cannot(
                    node, self.modules, f"padding='same' with an even kernel {kernel} pads unevenly"
                )
            padding = total // 2
        else:
            padding = _square(node, self.modules, "padding", m.padding)
        return self.layer(
            node, [x], m, kind="conv", in_channels=c, out_channels=m.out_channels, in_h=h, in_w=w,
            kernel=kernel, stride=_square(node, self.modules, "stride", m.stride), padding=padding,
            groups=m.groups, bias=m.bias is not None, dilation=dilation,
        )  # fmt: skip

    def linear(self, node: torch.fx.Node, m: nn.Linear, x: Value) -> Value:
        shape = self.sample_shape(node, x)
        positions = math.prod(shape[:-1])
        if positions == 1:
            return self.layer(
                node, [x], m, kind="linear", in_channels=m.in_features, out_channels=m.out_features,
                bias=m.bias is not None,
            )  # fmt: skip
        # the same matrix at every position: a pointwise convolution over a positions x 1 map
        return self.layer(
            node, [x], m, expect=(*shape[:-1], m.out_features), kind="conv", in_channels=m.in_features,
            out_channels=m.out_features, in_h=positions, in_w=1, bias=m.bias is not None,
        )  # fmt: skip

    def pool(
        self,
        node: torch.fx.Node,
        x: Value,
        mode: str,
        kernel: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        expect: Shape | None = None,
    ) -> Value:
        c, h, w = self.chw(node, x)
        return self.layer(
            node, [x], None, expect=expect, kind="pool", in_channels=c, out_channels=c, in_h=h, in_w=w,
            kernel=_square(node, self.modules, "kernel", kernel), stride=_square(node, self.modules, "stride", stride),
            padding=_square(node, self.modules, "padding", padding), mode=mode,
            dilation=_square(node, self.modules, "dilation", dilation),
        )  # fmt: skip

    def functional_pool(self, node: torch.fx.Node, x: Value) -> Value:
        is_max = node.target is F.max_pool2d
        kernel = _arg(node, 1, "kernel_size", None)
        stride = _arg(node, 2, "stride", None) or kernel
        padding = _arg(node, 3, "padding", 0)
        dilation = _arg(node, 4, "dilation", 1) if is_max else 1
        if is_max and _arg(node, 6, "return_indices", False):
            raise _cannot(node, self.modules, "pooling indices have no layer form")
        return self.pool(node, x, "max" if is_max else "avg", kernel, stride, padding, dilation)

    def adaptive_pool(self, node: torch.fx.Node, x: Value, mode: str) -> Value:
        c, h, w = self.chw(node, x)
        out = self.shapes.get(node.name)
        oh, ow = (out[-2], out[-1]) if isinstance(out, tuple) and len(out) == 4 else (0, 0)
        if not oh or h % oh or w % ow or h // oh != w // ow:
            raise _cannot(node, self.modules, f"adaptive pooling of {h}x{w} to {oh}x{ow} has uneven windows")
        window = h // oh
        return self.pool(node, x, mode, window, window, 0, 1)

    def global_pool(self, node: torch.fx.Node, x: Value, mode: str) -> Value:
        """``mean``/``amax`` over height and width: global pooling (the pixel axes kept or dropped)."""
        shape = self.sample_shape(node, x)
        dims = _arg(node, 1, "dim", None)
        dims = list(dims) if isinstance(dims, list | tuple) else [dims]
        if len(shape) != 3 or None in dims or sorted(int(d) % 4 for d in dims) != [2, 3]:
            what = "a mean" if mode == "avg" else "a maximum"
            raise _cannot(node, self.modules, f"{what} over axes {dims} is not pooling over height and width")
        c, h, w = shape
        if h != w:
            raise _cannot(
                node, self.modules, f"global pooling of a {h}x{w} map: a pool layer's window is square"
            )
        out = self.shapes.get(node.name)
        expect = out[1:] if isinstance(out, tuple) and len(out) == 2 else None
        return self.pool(node, x, mode, h, h, 0, 1, expect=expect)

    def upsample(self, node: torch.fx.Node, x: Value, mode: str) -> Value:
        c, h, w = self.chw(node, x)
        kind = _UPSAMPLE_MODES.get(mode)
        if kind is None:
            raise _cannot(
                node, self.modules, f"interpolation mode {mode!r} has no cost model (nearest, bilinear)"
            )
        out = self.shapes.get(node.name)
        oh, ow = (out[-2], out[-1]) if isinstance(out, tuple) and len(out) == 4 else (0, 0)
        if not oh or oh % h or ow % w or oh // h != ow // w:
            raise _cannot(node, self.modules, f"upsampling {h}x{w} to {oh}x{ow} is not by one integer factor")
        if oh == h:  # a factor of 1 reproduces the input
            return self.relabel(node, x)
        return self.layer(
            node, [x], None, kind="upsample", in_channels=c, out_channels=c, in_h=h, in_w=w,
            kernel=UPSAMPLE_TAPS[kind], stride=oh // h, mode=kind,
        )  # fmt: skip

    def add(self, node: torch.fx.Node) -> Value:
        operands = self.operands(node)
        data = [v for v in operands if v.is_data]
        if len(data) == 1:
            return self.fold_constant(node, operands)
        a, b = data
        if a.shape != b.shape:
            raise _cannot(
                node,
                self.modules,
                f"adds tensors of shapes {a.shape} and {b.shape}; an add layer needs one shape",
            )
        c, h, w = self.chw(node, a)
        return self.layer(node, data, None, kind="add", in_channels=c, out_channels=c, in_h=h, in_w=w)

    def scale(self, node: torch.fx.Node) -> Value:
        operands = self.operands(node)
        if sum(v.is_data for v in operands) > 1:
            raise _cannot(
                node, self.modules, "an elementwise product of two tensors (e.g. gating) has no layer kind"
            )
        divides = node.target in (operator.truediv, operator.itruediv, torch.div, "div", "div_")
        if divides and not operands[0].is_data:
            raise _cannot(node, self.modules, "dividing by the data (a reciprocal) has no layer kind")
        return self.fold_constant(node, operands)

    def fold_constant(self, node: torch.fx.Node, operands: list[Value]) -> Value:
        """A number (or a one-element constant) applied to data: a requantization scale or offset."""
        data = next(v for v in operands if v.is_data)
        for v in operands:
            if not v.is_data and v.shape is not None and math.prod(v.shape) != 1:
                raise _cannot(
                    node,
                    self.modules,
                    f"combines the data with a constant tensor of shape {v.shape}; only numbers fold away",
                )
        return self.relabel(node, data)

    def concat(self, node: torch.fx.Node) -> Value:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors", ())
        items = [self.value(a) for a in (tensors if isinstance(tensors, list | tuple) else [tensors])]
        if any(not v.is_data for v in items):
            raise _cannot(
                node, self.modules, "joins the data with a constant tensor; a concat joins layer outputs"
            )
        out = self.shapes.get(node.name)
        rank = len(out) if isinstance(out, tuple) else 0
        dim = int(_arg(node, 1, "dim", 0))
        if rank < 2 or dim % rank != 1:
            raise _cannot(
                node,
                self.modules,
                f"joins along axis {dim} of a {rank}-d tensor; a concat joins channels (axis 1)",
            )
        c, h, w = self.chw(node, Value(items[0].source, out))
        return self.layer(node, items, None, kind="concat", in_channels=c, out_channels=c, in_h=h, in_w=w)

    # ----- relabellings -----------------------------------------------------------------------------
    def softmax(self, node: torch.fx.Node, x: Value) -> Value:
        """A softmax of the network output is the host's: monotone, so the class decision needs only
        the logits the hardware computes."""
        if list(node.users) and all(user.op == "output" for user in node.users):
            return self.relabel(node, x)
        raise _cannot(node, self.modules, "a softmax is left to the host only on the network output")

    def permute(self, node: torch.fx.Node, x: Value) -> Value:
        rank = len(x.shape) if x.shape is not None else 0
        args: list[Any] = list(node.args[1:]) or list(node.kwargs.values())
        if node.target in ("permute", torch.permute):
            order = list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)
            moved = [i for i, d in enumerate(order) if int(d) % rank != i] if rank else [0]
        else:
            moved = [int(d) % rank for d in args[:2]] if rank else [0]
            moved = moved if moved[0] != moved[1] else []
        if moved and (rank < 4 or any(d == 0 or d >= rank - 2 for d in moved)):
            raise _cannot(
                node, self.modules,
                "it moves the batch, height or width axis: a real layout change, not a channel permutation",
            )  # fmt: skip
        return self.relabel(node, x)

    def split(self, node: torch.fx.Node, x: Value) -> Value:
        rank = len(x.shape) if x.shape is not None else 0
        dim = int(_arg(node, 2, "dim", 0))
        if rank < 2 or dim % rank != 1:
            raise _cannot(
                node, self.modules, f"splits axis {dim}; only channel slices (axis 1) are relabellings"
            )
        return self.relabel(node, x)

    def getitem(self, node: torch.fx.Node, x: Value) -> Value:
        index = node.args[1]
        if x.parts is not None and isinstance(index, int):
            return Value(x.source, x.parts[index])
        items = index if isinstance(index, tuple) else (index,)
        whole = slice(None)
        channel_slice = (
            x.shape is not None
            and len(items) >= 2
            and items[0] == whole
            and isinstance(items[1], slice)
            and items[1].step in (None, 1)
            and all(i == whole or i is Ellipsis for i in items[2:])
        )
        if not channel_slice:
            raise _cannot(node, self.modules, f"indexing with {index!r} is not a channel slice x[:, a:b]")
        return self.relabel(node, x)

    # ----- shapes -----------------------------------------------------------------------------------
    def sample_shape(self, node: torch.fx.Node, x: Value) -> Shape:
        if x.shape is None or len(x.shape) < 2:
            raise _cannot(node, self.modules, "its input is not a batch of tensors")
        return x.shape[1:]

    def chw(self, node: torch.fx.Node, x: Value) -> tuple[int, int, int]:
        """Channels, height and width of one input: ``(C,)`` is ``C x 1 x 1``, ``(C, L)`` is ``C x L x 1``."""
        shape = self.sample_shape(node, x)
        if len(shape) > 3:
            raise _cannot(
                node, self.modules, f"its input has {len(shape)} axes per sample; a layer reads C x H x W"
            )
        c, h, w = (*shape, 1, 1)[:3]
        return c, h, w


_NO_KIND = (
    f"no layer kind for this operation (the hardware models cost {', '.join(LAYER_KINDS)}; activations, "
    "BatchNorm and reshapes fold away)"
)


_SIZE_METHODS = frozenset({"size", "dim", "numel", "nelement", "ndimension"})
_SIZE_ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "device"})


def _is_size_query(node: torch.fx.Node) -> bool:
    """``x.size()``, ``x.shape`` and the like: numbers about the data, not data."""
    if node.op == "call_method":
        return node.target in _SIZE_METHODS
    if node.op == "call_function" and node.target is getattr:
        return len(node.args) > 1 and node.args[1] in _SIZE_ATTRIBUTES
    return node.op == "call_function" and node.target in (len, torch.numel)


def _arg(node: torch.fx.Node, index: int, name: str, default: Any) -> Any:
    """Positional argument ``index`` (counting the input as 0) or keyword ``name`` of a call."""
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _square(node: torch.fx.Node, modules: Mapping[str, nn.Module], what: str, value: Any) -> int:
    values = tuple(value) if isinstance(value, list | tuple) else (value,)
    if len(set(values)) != 1 or not isinstance(values[0], int):
        raise _cannot(
            node, modules, f"{what} {value!r} differs between height and width; a layer has one {what}"
        )
    return int(values[0])


def _expected_shape(layer: Layer) -> Shape:
    if layer.kind == "linear":
        return (layer.out_channels,)
    return (layer.out_channels, layer.out_h, layer.out_w)


def _layer_base(node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack.values()))[0] if stack else ""
    op = node.name.rstrip("0123456789").rstrip("_") or node.name
    return f"{owner}.{op}" if owner else op


def _describe(node: torch.fx.Node, modules: Mapping[str, nn.Module]) -> str:
    target = node.target
    if node.op == "call_module":
        module = modules.get(str(target))
        return f"call_module {target}: {type(module).__name__}"
    if node.op == "call_method":
        return f"call_method Tensor.{target}"
    if node.op == "call_function":
        owner = getattr(target, "__module__", None) or ""
        owner = {"_operator": "operator"}.get(owner, owner)
        name = getattr(target, "__name__", None) or repr(target)
        return f"call_function {owner + '.' if owner else ''}{name}"
    return str(node.op)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cannot(node: torch.fx.Node, modules: Mapping[str, nn.Module], why: str) -> CodesignError:
    return CodesignError(_one_line(f"cannot cost node {node.name!r} ({_describe(node, modules)}): {why}"))


class _Root(nn.Module):
    """Holds a model that is itself a leaf (a bare ``nn.Conv2d``), so that it becomes a node of its own,
    named after its class."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.key = type(model).__name__.lower()
        self.add_module(self.key, model)

    def forward(self, x: Tensor) -> Tensor:
        return self.get_submodule(self.key)(x)


def trace_graph(model: nn.Module, name: str) -> torch.fx.GraphModule:
    """The graph of ``model``'s forward (a model that is itself a leaf is one node)."""
    tracer = _Tracer()
    if tracer.is_leaf_module(model, ""):
        model = _Root(model)
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - torch.fx raises many types; the user needs the reason
        raise CodesignError(_one_line(
            f"cannot trace {name!r}: torch.fx cannot follow its forward ({type(exc).__name__}: {exc}); mark "
            "untraceable code with torch.fx.wrap or make its module a leaf"
        )) from None  # fmt: skip
    return torch.fx.GraphModule(model, graph)


def record_shapes(gm: torch.fx.GraphModule, example: Tensor, name: str) -> dict[str, Any]:
    recorder = _ShapeRecorder(gm)
    try:
        with torch.no_grad():
            recorder.run(example)
    except _TraceFailed as failed:
        modules = dict(gm.named_modules())
        raise CodesignError(_one_line(
            f"cannot trace {name!r}: node {failed.node.name!r} ({_describe(failed.node, modules)}) fails on the "
            f"example input ({type(failed.cause).__name__}: {failed.cause})"
        )) from None  # fmt: skip
    return recorder.shapes

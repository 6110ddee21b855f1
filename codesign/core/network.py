"""Layers and networks: the shapes, bit-widths and residual edges every hardware model and accuracy
source reads.

Sizes are in elements unless a name says bytes or bits. Both values are frozen dataclasses, hashable and
safe to share. Re-exported by :mod:`codesign.core.values`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from codesign.core.errors import CodesignError

LAYER_KINDS = ("conv", "linear", "pool", "add", "concat", "upsample")
"""Layer kinds every hardware model must cost. Pointwise and depthwise convolutions are ``conv`` layers
(kernel 1, or groups equal to the channel count); global pooling is ``pool`` with the kernel equal to the
input size. ``concat`` and ``upsample`` do no arithmetic worth counting but move data: a hardware model
costs them by the bytes they read and write."""
UPSAMPLE_TAPS = {"nearest": 1, "bilinear": 2}
"""The ``kernel`` (input taps per axis of one output pixel) of each ``upsample`` mode."""


@dataclass(frozen=True)
class Layer:
    """One layer of a network with its shapes and bit-widths.

    ``in_h``/``in_w`` is the input feature-map size; the output size is derived. ``weight_bits`` is the
    precision of the weights (0 for layers without weights), ``act_bits`` the precision of the input
    activations. A ``linear`` layer has ``in_h == in_w == kernel == 1``. A ``pool`` layer's ``mode`` is
    ``"max"`` or ``"avg"``. An ``add`` layer sums ``in_channels``-wide inputs elementwise (a residual).
    A ``concat`` layer joins its inputs along the channels: ``in_channels`` is the sum of their widths
    (so it equals ``out_channels``), every input has the same ``in_h x in_w``. An ``upsample`` layer turns
    every input pixel into a ``stride x stride`` block of output pixels (``mode`` ``"nearest"``: copies,
    ``kernel`` 1; ``"bilinear"``: each output interpolates ``kernel x kernel = 2 x 2`` inputs).
    ``dilation`` spaces a conv's (or max-pool's) kernel taps: the window spans
    :attr:`effective_kernel` ``= dilation * (kernel - 1) + 1`` pixels per axis while the taps (MACs) stay
    ``kernel x kernel``.
    """

    name: str
    kind: str
    in_channels: int
    out_channels: int
    in_h: int = 1
    in_w: int = 1
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    weight_bits: int = 8
    act_bits: int = 8
    bias: bool = False
    mode: str = ""
    dilation: int = 1

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise CodesignError(f"layer {self.name!r}: unknown kind {self.kind!r}; known: {', '.join(LAYER_KINDS)}")
        for name in ("in_channels", "out_channels", "in_h", "in_w", "kernel", "stride", "groups", "dilation"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CodesignError(f"layer {self.name!r}: {name} must be a positive integer, got {value!r}")
        if self.padding < 0:
            raise CodesignError(f"layer {self.name!r}: padding must be >= 0, got {self.padding}")
        if self.kind == "conv" and (self.in_channels % self.groups or self.out_channels % self.groups):
            raise CodesignError(
                f"layer {self.name!r}: groups={self.groups} must divide in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}"
            )
        if self.kind in ("pool", "add", "concat", "upsample") and self.in_channels != self.out_channels:
            raise CodesignError(f"layer {self.name!r}: a {self.kind} layer keeps its channel count")
        if self.dilation != 1 and self.kind not in ("conv", "pool"):
            raise CodesignError(f"layer {self.name!r}: only conv and pool layers are dilated, got dilation={self.dilation}")
        if self.kind == "upsample" and (UPSAMPLE_TAPS.get(self.mode) != self.kernel or self.padding):
            raise CodesignError(
                f"layer {self.name!r}: an upsample layer's mode/kernel must be one of "
                f"{', '.join(f'{m}/{k}' for m, k in UPSAMPLE_TAPS.items())} without padding, "
                f"got {self.mode!r}/{self.kernel}, padding {self.padding}"
            )
        if self.has_weights and self.weight_bits < 1:
            raise CodesignError(f"layer {self.name!r}: weight_bits must be >= 1, got {self.weight_bits}")
        if self.act_bits < 1:
            raise CodesignError(f"layer {self.name!r}: act_bits must be >= 1, got {self.act_bits}")
        if self.out_h < 1 or self.out_w < 1:
            raise CodesignError(
                f"layer {self.name!r}: kernel {self.kernel}, stride {self.stride}, padding {self.padding} "
                f"leave no output from a {self.in_h}x{self.in_w} input"
            )

    @property
    def has_weights(self) -> bool:
        return self.kind in ("conv", "linear")

    @property
    def effective_kernel(self) -> int:
        """Pixels per axis the kernel window spans: ``dilation * (kernel - 1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def out_h(self) -> int:
        return self._out_size(self.in_h)

    @property
    def out_w(self) -> int:
        return self._out_size(self.in_w)

    def _out_size(self, size: int) -> int:
        if self.kind in ("add", "concat"):
            return size
        if self.kind == "upsample":
            return size * self.stride
        return (size + 2 * self.padding - self.effective_kernel) // self.stride + 1

    @property
    def is_depthwise(self) -> bool:
        return self.kind == "conv" and self.groups > 1 and self.groups == self.in_channels

    @property
    def is_pointwise(self) -> bool:
        return self.kind == "conv" and self.kernel == 1 and self.groups == 1

    @property
    def output_pixels(self) -> int:
        return self.out_h * self.out_w

    @property
    def params(self) -> int:
        """Number of weights (plus biases) of the layer."""
        if not self.has_weights:
            return 0
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel * self.kernel
        return weights + (self.out_channels if self.bias else 0)

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one input (batch 1). Pooling and adds have none."""
        if not self.has_weights:
            return 0
        per_pixel = self.out_channels * (self.in_channels // self.groups) * self.kernel * self.kernel
        return per_pixel * self.output_pixels

    @property
    def ops(self) -> int:
        """Elementary operations for one input: MACs for weighted layers, comparisons or additions for
        pooling and residual adds, one move per output element of a concat and one per input tap of an
        output element of an upsample (so no layer is free)."""
        if self.kind in ("pool", "upsample"):
            return self.out_channels * self.output_pixels * self.kernel * self.kernel
        if self.kind in ("add", "concat"):
            return self.out_channels * self.output_pixels
        return self.macs

    @property
    def bit_ops(self) -> int:
        """MACs weighted by weight bits x activation bits (HAWQ-V3's BOPs)."""
        return self.macs * self.weight_bits * self.act_bits

    @property
    def weight_bytes(self) -> float:
        return self.params * self.weight_bits / 8.0

    @property
    def input_elems(self) -> int:
        return self.in_channels * self.in_h * self.in_w * (2 if self.kind == "add" else 1)

    @property
    def output_elems(self) -> int:
        return self.out_channels * self.out_h * self.out_w

    def with_bits(self, weight_bits: int, act_bits: int) -> Layer:
        from dataclasses import replace

        return replace(self, weight_bits=weight_bits, act_bits=act_bits)

    def to_dict(self) -> dict[str, Any]:
        """Every field; ``dilation`` only when it is not 1 (so records of undilated layers keep their form)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.dilation == 1:
            del out["dilation"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CodesignError(f"layer: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Network:
    """An ordered list of layers plus the residual edges.

    ``residuals`` holds ``(source, add)`` layer-name pairs: the output of ``source`` (or the network input
    when ``source`` is ``"input"``) is kept until the ``add`` (or ``concat``) layer consumes it. ``ties``
    groups layer names that read the same activation and so must share their bit-widths. ``dead`` names
    layers whose result never reaches the network output (a branch nothing consumes, or one fed only by a
    branch that carries no data): they are listed because a runtime that does not prune them still spends time on
    them, and latency models see their work apart from the live layers'.
    """

    name: str
    layers: tuple[Layer, ...]
    input_shape: tuple[int, int, int] = (1, 28, 28)
    residuals: tuple[tuple[str, str], ...] = ()
    ties: tuple[tuple[str, ...], ...] = ()
    dead: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.layers:
            raise CodesignError(f"network {self.name!r} has no layers")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise CodesignError(f"network {self.name!r}: duplicate layer name(s) {', '.join(dup)}")
        known = set(names) | {"input"}
        for src, dst in self.residuals:
            if src not in known or dst not in known:
                raise CodesignError(f"network {self.name!r}: residual ({src!r}, {dst!r}) names an unknown layer")
        for group in self.ties:
            missing = [n for n in group if n not in known]
            if missing:
                raise CodesignError(f"network {self.name!r}: tie group names unknown layer(s) {', '.join(missing)}")
        unknown = [n for n in self.dead if n not in known or n == "input"]
        if unknown:
            raise CodesignError(f"network {self.name!r}: dead names unknown layer(s) {', '.join(unknown)}")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def bit_ops(self) -> int:
        return sum(layer.bit_ops for layer in self.layers)

    @property
    def weight_bytes(self) -> float:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def model_size_mb(self) -> float:
        return self.weight_bytes / 1e6

    @property
    def weighted_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.has_weights)

    def with_bits(self, weight_bits: Mapping[str, int], act_bits: Mapping[str, int] | None = None) -> Network:
        """A copy with new bit-widths for the named layers (others unchanged)."""
        from dataclasses import replace

        act_bits = act_bits or {}
        unknown = sorted((set(weight_bits) | set(act_bits)) - {layer.name for layer in self.layers})
        if unknown:
            raise CodesignError(f"network {self.name!r}: no layer named {', '.join(unknown)}")
        layers = tuple(
            layer.with_bits(weight_bits.get(layer.name, layer.weight_bits), act_bits.get(layer.name, layer.act_bits))
            for layer in self.layers
        )
        return replace(self, layers=layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "residuals": [list(edge) for edge in self.residuals],
            "ties": [list(group) for group in self.ties],
            **({"dead": list(self.dead)} if self.dead else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Network:
        return cls(
            name=str(data["name"]),
            layers=tuple(Layer.from_dict(layer) for layer in data["layers"]),
            input_shape=tuple(data.get("input_shape", (1, 28, 28))),
            residuals=tuple(tuple(edge) for edge in data.get("residuals", ())),
            ties=tuple(tuple(group) for group in data.get("ties", ())),
            dead=tuple(str(name) for name in data.get("dead", ())),
        )

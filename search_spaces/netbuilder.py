"""A small helper that appends layers to a network while tracking the feature-map shape.

Spaces describe their architectures layer by layer with it, so every layer's input size follows from the
previous layer's output and the shapes cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from codesign.core.errors import CodesignError
from codesign.core.values import Layer, Network


class NetworkBuilder:
    """Appends layers in execution order; ``channels``/``h``/``w`` is the current activation's shape.

    Bits are given per weighted layer in the order the weighted layers are added; ``act_bits`` of an
    ``add`` or ``pool`` layer is taken from the weighted layer that reads the same activation (set with
    ``act_bits=``) or, failing that, from the last weighted layer.
    """

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, int, int],
        weight_bits: Sequence[int] | None,
        act_bits: Sequence[int] | None,
        n_weighted: int,
    ) -> None:
        for label, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
            if bits is not None and len(bits) != n_weighted:
                raise CodesignError(
                    f"{name}: {label} has {len(bits)} entries; the network has {n_weighted} weighted layers"
                )
        self.name = name
        self.input_shape = input_shape
        self.channels, self.h, self.w = input_shape
        self._weight_bits = tuple(weight_bits) if weight_bits is not None else (8,) * n_weighted
        self._act_bits = tuple(act_bits) if act_bits is not None else (8,) * n_weighted
        self.layers: list[Layer] = []
        self.residuals: list[tuple[str, str]] = []
        self.ties: list[tuple[str, ...]] = []
        self._n_weighted = 0
        self.last = "input"
        """Name of the layer that produced the current activation (``"input"`` at the start)."""

    def next_act_bits(self) -> int:
        """Activation bits of the next weighted layer to be added."""
        return self._act_bits[self._n_weighted]

    def conv(
        self,
        name: str,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        *,
        bias: bool = False,
    ) -> Layer:
        layer = Layer(
            name=name,
            kind="conv",
            in_channels=self.channels,
            out_channels=out_channels,
            in_h=self.h,
            in_w=self.w,
            kernel=kernel,
            stride=stride,
            padding=kernel // 2,
            groups=groups,
            weight_bits=self._weight_bits[self._n_weighted],
            act_bits=self._act_bits[self._n_weighted],
            bias=bias,
        )
        return self._push(layer, weighted=True)

    def linear(self, name: str, out_features: int) -> Layer:
        if self.h != 1 or self.w != 1:
            raise CodesignError(
                f"{self.name}: linear layer {name!r} needs a 1x1 input, got {self.h}x{self.w}"
            )
        layer = Layer(
            name=name,
            kind="linear",
            in_channels=self.channels,
            out_channels=out_features,
            weight_bits=self._weight_bits[self._n_weighted],
            act_bits=self._act_bits[self._n_weighted],
            bias=True,
        )
        return self._push(layer, weighted=True)

    def global_pool(self, name: str, act_bits: int) -> Layer:
        layer = Layer(
            name=name,
            kind="pool",
            in_channels=self.channels,
            out_channels=self.channels,
            in_h=self.h,
            in_w=self.w,
            kernel=self.h,
            stride=self.h,
            act_bits=act_bits,
            mode="avg",
        )
        if self.h != self.w:
            raise CodesignError(f"{self.name}: global pooling needs a square input, got {self.h}x{self.w}")
        return self._push(layer, weighted=False)

    def add(self, name: str, source: str, act_bits: int) -> Layer:
        """A residual add of the current activation and the output of ``source`` (same shape)."""
        layer = Layer(
            name=name,
            kind="add",
            in_channels=self.channels,
            out_channels=self.channels,
            in_h=self.h,
            in_w=self.w,
            act_bits=act_bits,
        )
        self.residuals.append((source, name))
        return self._push(layer, weighted=False)

    def set_shape(self, channels: int, h: int, w: int, last: str) -> None:
        """Rewind the current activation (e.g. to a block's input before its shortcut branch)."""
        self.channels, self.h, self.w, self.last = channels, h, w, last

    def tie(self, *names: str) -> None:
        if len(names) > 1:
            self.ties.append(tuple(names))

    def build(self) -> Network:
        if self._n_weighted != len(self._weight_bits):
            raise CodesignError(
                f"{self.name}: built {self._n_weighted} weighted layers, expected {len(self._weight_bits)}"
            )
        return Network(
            name=self.name,
            layers=tuple(self.layers),
            input_shape=self.input_shape,
            residuals=tuple(self.residuals),
            ties=tuple(self.ties),
        )

    def _push(self, layer: Layer, *, weighted: bool) -> Layer:
        self.layers.append(layer)
        if weighted:
            self._n_weighted += 1
        self.channels, self.h, self.w = layer.out_channels, layer.out_h, layer.out_w
        self.last = layer.name
        return layer

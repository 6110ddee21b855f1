"""The ResNet basic-block search space.

A stem conv, ``len(stage_widths)`` stages of basic blocks (two 3x3 convs and a residual add), global
average pooling and a linear classifier. Each stage chooses its depth and width; the first block of a stage
downsamples by the stage's stride. A block that downsamples or changes width has a 1x1 shortcut conv,
which reads the same activation as the block's first conv and so is tied to it.

Architecture id: stages joined by ``_``, each ``<width>x<depth>``, e.g. ``16x2_32x1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import Network
from search_spaces.staged import StagedSpaceMixin


@dataclass(frozen=True)
class ResNetArch:
    widths: tuple[int, ...]
    depths: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class ResNetSpace(StagedSpaceMixin):
    name: str = "resnet"
    input_shape: tuple[int, int, int] = (1, 8, 8)
    num_classes: int = 10
    stem_channels: int = 8
    stem_stride: int = 1
    stage_widths: tuple[tuple[int, ...], ...] = ((8, 16), (16, 32), (32, 48))
    stage_strides: tuple[int, ...] = (1, 2, 2)
    depths: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        self._check_options((("depths", self.depths),))

    def choices(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for s, widths in enumerate(self.stage_widths):
            out[f"s{s}_depth"] = list(self.depths)
            out[f"s{s}_width"] = list(widths)
        return out

    def from_choices(self, values: Mapping[str, Any]) -> ResNetArch:
        missing = [key for key in self.choices() if key not in values]
        if missing:
            raise CodesignError(f"{self.name}: missing choice(s) {', '.join(missing)}")
        n = len(self.stage_widths)
        arch = ResNetArch(
            tuple(int(values[f"s{s}_width"]) for s in range(n)),
            tuple(int(values[f"s{s}_depth"]) for s in range(n)),
        )
        self.validate(arch)
        return arch

    def to_choices(self, arch: ResNetArch) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in range(len(self.stage_widths)):
            out[f"s{s}_depth"] = arch.depths[s]
            out[f"s{s}_width"] = arch.widths[s]
        return out

    def validate(self, arch: ResNetArch) -> None:
        if not (len(arch.widths) == len(arch.depths) == len(self.stage_widths)):
            raise CodesignError(
                f"{self.name}: an architecture needs {len(self.stage_widths)} stages, got {arch!r}"
            )
        for s, (width, depth) in enumerate(zip(arch.widths, arch.depths, strict=True)):
            if width not in self.stage_widths[s]:
                raise CodesignError(f"{self.name}: stage {s} width {width} not in {self.stage_widths[s]}")
            if depth not in self.depths:
                raise CodesignError(f"{self.name}: stage {s} depth {depth} not in {self.depths}")

    def arch_id(self, arch: ResNetArch) -> str:
        return "_".join(f"{w}x{d}" for w, d in zip(arch.widths, arch.depths, strict=True))

    def from_id(self, arch_id: str) -> ResNetArch:
        try:
            pairs = [stage.split("x") for stage in arch_id.split("_")]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("each stage is <width>x<depth>")
            arch = ResNetArch(tuple(int(w) for w, _ in pairs), tuple(int(d) for _, d in pairs))
            self.validate(arch)
        except (ValueError, CodesignError) as exc:
            raise self._bad_id(arch_id, self.largest(), exc) from None
        return arch

    def encode(self, arch: ResNetArch) -> np.ndarray:
        parts: list[float] = []
        for s, widths in enumerate(self.stage_widths):
            parts += [float(arch.depths[s] == d) for d in self.depths]
            parts += [float(arch.widths[s] == w) for w in widths]
        return np.asarray(parts, dtype=np.float64)

    def _has_shortcut(self, arch: ResNetArch, s: int, b: int, in_ch: int) -> bool:
        return b == 0 and (self.stage_strides[s] != 1 or in_ch != arch.widths[s])

    def n_weighted(self, arch: ResNetArch) -> int:
        count, in_ch = 1, self.stem_channels
        for s, (width, depth) in enumerate(zip(arch.widths, arch.depths, strict=True)):
            count += 2 * depth + self._has_shortcut(arch, s, 0, in_ch)
            in_ch = width
        return count + 1

    def network(
        self,
        arch: ResNetArch,
        weight_bits: Sequence[int] | None = None,
        act_bits: Sequence[int] | None = None,
    ) -> Network:
        nb = self._builder(arch, weight_bits, act_bits)
        nb.conv("stem", self.stem_channels, 3, self.stem_stride)
        for s, (width, depth) in enumerate(zip(arch.widths, arch.depths, strict=True)):
            for b in range(depth):
                stride = self.stage_strides[s] if b == 0 else 1
                name = f"s{s}b{b}"
                source, in_shape, first_bits = nb.last, (nb.channels, nb.h, nb.w), nb.next_act_bits()
                shortcut = self._has_shortcut(arch, s, b, nb.channels)
                conv1 = nb.conv(f"{name}_conv1", width, 3, stride)
                if shortcut:
                    nb.set_shape(*in_shape, last=source)
                    nb.conv(f"{name}_shortcut", width, 1, stride)
                    nb.tie(conv1.name, f"{name}_shortcut")
                    source = f"{name}_shortcut"
                    nb.set_shape(conv1.out_channels, conv1.out_h, conv1.out_w, last=conv1.name)
                nb.conv(f"{name}_conv2", width, 3)
                nb.add(f"{name}_add", source, first_bits)
                if not shortcut:
                    nb.tie(conv1.name, f"{name}_add")
        fc_bits = nb.next_act_bits()
        nb.global_pool("pool", fc_bits)
        nb.linear("fc", self.num_classes)
        return nb.build()

    def largest(self) -> ResNetArch:
        return ResNetArch(
            tuple(max(w) for w in self.stage_widths), (max(self.depths),) * len(self.stage_widths)
        )

    def smallest(self) -> ResNetArch:
        return ResNetArch(
            tuple(min(w) for w in self.stage_widths), (min(self.depths),) * len(self.stage_widths)
        )

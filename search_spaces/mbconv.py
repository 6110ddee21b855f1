"""The MBConv (MobileNetV2-style) macro search space.

A network is a stem conv, ``len(stage_widths)`` stages of inverted-residual blocks and a head (an optional
pointwise conv, global average pooling and a linear classifier). Each stage chooses its depth and width;
each block chooses its depthwise kernel size and expansion ratio. The first block of a stage downsamples
by the stage's stride. A block is ``expand 1x1 -> depthwise kxk -> project 1x1`` (no expand conv at
expansion 1) with a residual add when its stride is 1 and its input and output widths match.

Architecture id: stages joined by ``_``; a stage is its width followed by one ``k<kernel>e<expansion>``
per block, joined by ``-``; e.g. ``16-k3e4-k5e6_24-k3e1`` is two stages (widths 16, 24; depths 2, 1).
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
class MBConvArch:
    """One architecture: per-stage widths and per-block kernels and expansions (depth = blocks per stage)."""

    widths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    expansions: tuple[tuple[int, ...], ...]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(k) for k in self.kernels)


@dataclass(frozen=True, kw_only=True)
class MBConvSpace(StagedSpaceMixin):
    """The space's choices and the data it serves (``input_shape`` is channels, height, width)."""

    name: str = "mbconv"
    input_shape: tuple[int, int, int] = (1, 8, 8)
    num_classes: int = 10
    stem_channels: int = 8
    stem_stride: int = 1
    stage_widths: tuple[tuple[int, ...], ...] = ((8, 12, 16), (16, 24, 32), (24, 32, 48))
    stage_strides: tuple[int, ...] = (1, 2, 2)
    depths: tuple[int, ...] = (1, 2)
    kernels: tuple[int, ...] = (3, 5)
    expansions: tuple[int, ...] = (1, 3, 6)
    head_channels: int = 0
    """Width of the pointwise head conv before pooling; 0 for no head conv."""

    def __post_init__(self) -> None:
        self._check_options(
            (("depths", self.depths), ("kernels", self.kernels), ("expansions", self.expansions)),
            (("head_channels", self.head_channels, 0),),
        )
        if any(k % 2 == 0 for k in self.kernels):
            raise CodesignError(f"{self.name}: kernel sizes must be odd, got {self.kernels!r}")

    # ----- the four views ---------------------------------------------------------------------------
    def choices(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for s, widths in enumerate(self.stage_widths):
            out[f"s{s}_depth"] = list(self.depths)
            out[f"s{s}_width"] = list(widths)
            for b in range(max(self.depths)):
                out[f"s{s}_b{b}_kernel"] = list(self.kernels)
                out[f"s{s}_b{b}_expand"] = list(self.expansions)
        return out

    def from_choices(self, values: Mapping[str, Any]) -> MBConvArch:
        def get(key: str) -> int:
            if key not in values:
                raise CodesignError(f"{self.name}: missing choice {key!r}")
            return int(values[key])

        widths, kernels, expansions = [], [], []
        for s in range(len(self.stage_widths)):
            depth = get(f"s{s}_depth")
            widths.append(get(f"s{s}_width"))
            kernels.append(tuple(get(f"s{s}_b{b}_kernel") for b in range(depth)))
            expansions.append(tuple(get(f"s{s}_b{b}_expand") for b in range(depth)))
        arch = MBConvArch(tuple(widths), tuple(kernels), tuple(expansions))
        self.validate(arch)
        return arch

    def validate(self, arch: MBConvArch) -> None:
        """Raise :class:`CodesignError` naming the first value outside the space's choices."""
        if not (len(arch.widths) == len(arch.kernels) == len(arch.expansions) == len(self.stage_widths)):
            raise CodesignError(
                f"{self.name}: an architecture needs {len(self.stage_widths)} stages, got {arch!r}"
            )
        for s, (width, ks, es) in enumerate(zip(arch.widths, arch.kernels, arch.expansions, strict=True)):
            if width not in self.stage_widths[s]:
                raise CodesignError(f"{self.name}: stage {s} width {width} not in {self.stage_widths[s]}")
            if len(ks) not in self.depths or len(es) != len(ks):
                raise CodesignError(f"{self.name}: stage {s} depth {len(ks)} not in {self.depths}")
            for k, e in zip(ks, es, strict=True):
                if k not in self.kernels:
                    raise CodesignError(f"{self.name}: stage {s} kernel {k} not in {self.kernels}")
                if e not in self.expansions:
                    raise CodesignError(f"{self.name}: stage {s} expansion {e} not in {self.expansions}")

    def arch_id(self, arch: MBConvArch) -> str:
        return "_".join(
            "-".join([str(w), *(f"k{k}e{e}" for k, e in zip(ks, es, strict=True))])
            for w, ks, es in zip(arch.widths, arch.kernels, arch.expansions, strict=True)
        )

    def from_id(self, arch_id: str) -> MBConvArch:
        try:
            widths, kernels, expansions = [], [], []
            for stage in arch_id.split("_"):
                head, *blocks = stage.split("-")
                widths.append(int(head))
                pairs = [block.removeprefix("k").split("e") for block in blocks]
                if any(
                    not block.startswith("k") or len(p) != 2 for block, p in zip(blocks, pairs, strict=True)
                ):
                    raise ValueError(stage)
                kernels.append(tuple(int(k) for k, _ in pairs))
                expansions.append(tuple(int(e) for _, e in pairs))
            arch = MBConvArch(tuple(widths), tuple(kernels), tuple(expansions))
            self.validate(arch)
        except (ValueError, CodesignError) as exc:
            raise self._bad_id(arch_id, self.largest(), exc) from None
        return arch

    def encode(self, arch: MBConvArch) -> np.ndarray:
        """One-hot depth and width per stage, one-hot kernel and expansion per block slot (zeros when the
        slot is beyond the stage's depth)."""
        parts: list[float] = []
        for s, widths in enumerate(self.stage_widths):
            parts += [float(len(arch.kernels[s]) == d) for d in self.depths]
            parts += [float(arch.widths[s] == w) for w in widths]
            for b in range(max(self.depths)):
                active = b < len(arch.kernels[s])
                parts += [float(active and arch.kernels[s][b] == k) for k in self.kernels]
                parts += [float(active and arch.expansions[s][b] == e) for e in self.expansions]
        return np.asarray(parts, dtype=np.float64)

    def n_weighted(self, arch: MBConvArch) -> int:
        blocks = sum(2 + (e != 1) for es in arch.expansions for e in es)
        return 1 + blocks + (self.head_channels > 0) + 1

    def network(
        self,
        arch: MBConvArch,
        weight_bits: Sequence[int] | None = None,
        act_bits: Sequence[int] | None = None,
    ) -> Network:
        nb = self._builder(arch, weight_bits, act_bits)
        nb.conv("stem", self.stem_channels, 3, self.stem_stride)
        for s, (width, ks, es) in enumerate(zip(arch.widths, arch.kernels, arch.expansions, strict=True)):
            for b, (k, e) in enumerate(zip(ks, es, strict=True)):
                stride = self.stage_strides[s] if b == 0 else 1
                source, in_ch, first_bits = nb.last, nb.channels, nb.next_act_bits()
                first = f"s{s}b{b}_expand" if e != 1 else f"s{s}b{b}_dw"
                if e != 1:
                    nb.conv(first, in_ch * e, 1)
                nb.conv(f"s{s}b{b}_dw", in_ch * e, k, stride, groups=in_ch * e)
                nb.conv(f"s{s}b{b}_project", width, 1)
                if stride == 1 and in_ch == width:
                    nb.add(f"s{s}b{b}_add", source, first_bits)
                    nb.tie(first, f"s{s}b{b}_add")
        if self.head_channels:
            nb.conv("head", self.head_channels, 1)
        fc_bits = nb.next_act_bits()
        nb.global_pool("pool", fc_bits)
        nb.linear("fc", self.num_classes)
        return nb.build()

    # ----- sampling ---------------------------------------------------------------------------------
    def _is_active(self, key: str, arch: MBConvArch) -> bool:
        stage, _, rest = key.partition("_")
        return not rest.startswith("b") or int(rest[1:].split("_")[0]) < len(arch.kernels[int(stage[1:])])

    def to_choices(self, arch: MBConvArch) -> dict[str, Any]:
        """The active decisions of ``arch`` (inactive block slots get the first choice, so that a
        depth mutation has settings to grow into)."""
        out: dict[str, Any] = {}
        for s in range(len(self.stage_widths)):
            out[f"s{s}_depth"] = len(arch.kernels[s])
            out[f"s{s}_width"] = arch.widths[s]
            for b in range(max(self.depths)):
                inside = b < len(arch.kernels[s])
                out[f"s{s}_b{b}_kernel"] = arch.kernels[s][b] if inside else self.kernels[0]
                out[f"s{s}_b{b}_expand"] = arch.expansions[s][b] if inside else self.expansions[0]
        return out

    def largest(self) -> MBConvArch:
        d = max(self.depths)
        return MBConvArch(
            tuple(max(w) for w in self.stage_widths),
            tuple((max(self.kernels),) * d for _ in self.stage_widths),
            tuple((max(self.expansions),) * d for _ in self.stage_widths),
        )

    def smallest(self) -> MBConvArch:
        d = min(self.depths)
        return MBConvArch(
            tuple(min(w) for w in self.stage_widths),
            tuple((min(self.kernels),) * d for _ in self.stage_widths),
            tuple((min(self.expansions),) * d for _ in self.stage_widths),
        )

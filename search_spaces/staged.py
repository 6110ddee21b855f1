"""What the staged macro spaces (MBConv, ResNet) share: option checks, sampling and mutation over their
decision dictionaries, and the network builder set up for one architecture."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from search_spaces.netbuilder import NetworkBuilder

MAX_SIZE = 65_536
"""The largest width, channel count or input side a staged space accepts (a larger one is a slip)."""
MAX_SMALL = 64
"""The largest depth, kernel, expansion or stride a staged space accepts."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class StagedSpaceMixin:
    """Mixed into a frozen space dataclass that defines ``choices``, ``to_choices``, ``from_choices``,
    ``arch_id``, ``validate`` and ``n_weighted``."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    stem_channels: int
    stem_stride: int
    stage_widths: tuple[tuple[int, ...], ...]
    stage_strides: tuple[int, ...]

    def choices(self) -> dict[str, list[Any]]:
        raise NotImplementedError

    def to_choices(self, arch: Any) -> dict[str, Any]:
        raise NotImplementedError

    def from_choices(self, values: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def arch_id(self, arch: Any) -> str:
        raise NotImplementedError

    def validate(self, arch: Any) -> None:
        raise NotImplementedError

    def n_weighted(self, arch: Any) -> int:
        raise NotImplementedError

    def _check_options(
        self,
        lists: Iterable[tuple[str, tuple[int, ...]]],
        scalars: Iterable[tuple[str, int, int]] = (),
    ) -> None:
        """Raise :class:`CodesignError` naming the first option that is not what the space needs: ``lists``
        (label, values) must hold distinct positive integers, ``scalars`` (label, value, lowest) integers
        from ``lowest`` to :data:`MAX_SIZE`; the shared fields are checked too."""
        shape = self.input_shape
        if not isinstance(shape, tuple) or len(shape) != 3 or any(not _is_int(v) or not 1 <= v <= MAX_SIZE for v in shape):
            raise CodesignError(
                f"{self.name}: input_shape must be (channels, height, width), positive integers, got {shape!r}"
            )
        for label, value, low in (
            ("num_classes", self.num_classes, 2),
            ("stem_channels", self.stem_channels, 1),
            ("stem_stride", self.stem_stride, 1),
            *scalars,
        ):
            if not _is_int(value) or not low <= value <= MAX_SIZE:
                raise CodesignError(f"{self.name}: {label} must be an integer in [{low}, {MAX_SIZE}], got {value!r}")
        if not isinstance(self.stage_widths, tuple) or not self.stage_widths:
            raise CodesignError(f"{self.name}: stage_widths must be a list of width lists, one per stage, got {self.stage_widths!r}")
        self._check_list("stage_strides", self.stage_strides, MAX_SMALL, distinct=False)
        if len(self.stage_widths) != len(self.stage_strides):
            raise CodesignError(
                f"{self.name}: need one stride per stage, got {len(self.stage_widths)} stages and "
                f"{len(self.stage_strides)} strides"
            )
        for i, values in enumerate(self.stage_widths):
            self._check_list(f"stage_widths[{i}]", values, MAX_SIZE, distinct=True)
        for label, values in lists:
            self._check_list(label, values, MAX_SMALL, distinct=True)

    def _check_list(self, label: str, values: object, high: int, *, distinct: bool) -> None:
        if (
            not isinstance(values, tuple)
            or not values
            or any(not _is_int(v) or not 1 <= v <= high for v in values)
            or (distinct and len(set(values)) != len(values))
        ):
            what = "distinct integers" if distinct else "integers"
            raise CodesignError(f"{self.name}: {label} must be {what} in [1, {high}], got {values!r}")

    def _is_active(self, key: str, arch: Any) -> bool:
        """Whether decision ``key`` matters for ``arch`` (all do unless a space says otherwise)."""
        return True

    def sample(self, rng: np.random.Generator) -> Any:
        """A uniformly random value for every decision."""
        return self.from_choices(
            {key: values[int(rng.integers(len(values)))] for key, values in self.choices().items()}
        )

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """``arch`` with one active decision changed to another of its values."""
        values, options = self.to_choices(arch), self.choices()
        keys = [key for key in options if len(options[key]) > 1 and self._is_active(key, arch)]
        if not keys:
            raise CodesignError(f"{self.name}: every choice has a single value; nothing to mutate")
        key = keys[int(rng.integers(len(keys)))]
        others = [v for v in options[key] if v != values[key]]
        values[key] = others[int(rng.integers(len(others)))]
        return self.from_choices(values)

    def _builder(
        self, arch: Any, weight_bits: Sequence[int] | None, act_bits: Sequence[int] | None
    ) -> NetworkBuilder:
        self.validate(arch)
        return NetworkBuilder(
            f"{self.name}:{self.arch_id(arch)}",
            self.input_shape,
            weight_bits,
            act_bits,
            self.n_weighted(arch),
        )

    def _bad_id(self, arch_id: str, example: Any, exc: Exception) -> CodesignError:
        return CodesignError(
            f"{self.name}: bad architecture id {arch_id!r} (expected e.g. {self.arch_id(example)!r}): {exc}"
        )

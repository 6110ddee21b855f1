"""What the staged macro spaces (MBConv, ResNet) share: option checks, sampling and mutation over their
decision dictionaries, and the network builder set up for one architecture."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from search_spaces.netbuilder import NetworkBuilder


class StagedSpaceMixin:
    """Mixed into a frozen space dataclass that defines ``choices``, ``to_choices``, ``from_choices``,
    ``arch_id``, ``validate`` and ``n_weighted``."""

    name: str
    input_shape: tuple[int, int, int]
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

    def _check_options(self, lists: Iterable[tuple[str, tuple[int, ...]]]) -> None:
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise CodesignError(
                f"{self.name}: input_shape must be (channels, height, width), got {self.input_shape!r}"
            )
        if not self.stage_widths or len(self.stage_widths) != len(self.stage_strides):
            raise CodesignError(
                f"{self.name}: need one stride per stage, got {len(self.stage_widths)} stages and "
                f"{len(self.stage_strides)} strides"
            )
        widths = ((f"stage_widths[{i}]", w) for i, w in enumerate(self.stage_widths))
        for label, values in (*lists, *widths):
            if (
                not values
                or any(not isinstance(v, int) or v < 1 for v in values)
                or len(set(values)) != len(values)
            ):
                raise CodesignError(
                    f"{self.name}: {label} must be distinct positive integers, got {values!r}"
                )

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

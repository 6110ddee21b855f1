"""The search-space contract.

An architecture space maps between four views of one architecture: a frozen ``Arch`` value (the space's
own dataclass), a stable string id, a fixed-length numeric encoding for predictors, and a
:class:`codesign.core.values.Network` (layers with shapes and bits) for the hardware models. Spaces whose
architectures can be trained also build a ``torch.nn.Module``.

Every random choice takes a ``numpy.random.Generator`` that the caller seeds; spaces hold no state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from codesign.core.values import Network

if TYPE_CHECKING:
    from torch import nn


@runtime_checkable
class ArchitectureSpace(Protocol):
    name: str

    def sample(self, rng: np.random.Generator) -> Any:
        """A uniformly random architecture."""
        ...

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """A neighbour of ``arch`` that differs in one choice."""
        ...

    def choices(self) -> Mapping[str, Sequence[Any]]:
        """Every decision of the space with its allowed values (for Optuna's ``suggest_categorical``)."""
        ...

    def from_choices(self, values: Mapping[str, Any]) -> Any:
        """The architecture for one value per decision of :meth:`choices` (inactive ones ignored)."""
        ...

    def arch_id(self, arch: Any) -> str:
        """A stable, human-readable string id; ``from_id(arch_id(a)) == a``."""
        ...

    def from_id(self, arch_id: str) -> Any:
        """Raises :class:`codesign.core.errors.CodesignError` naming the bad id."""
        ...

    def encode(self, arch: Any) -> np.ndarray:
        """A fixed-length float vector (same length for every architecture of the space)."""
        ...

    def network(
        self, arch: Any, weight_bits: Sequence[int] | None = None, act_bits: Sequence[int] | None = None
    ) -> Network:
        """The layer list with shapes; bits follow the order of the weighted layers (default 8/8)."""
        ...


@runtime_checkable
class TrainableSpace(Protocol):
    """Optional capability of a third-party space: it builds its own torch model. The built-in spaces stay
    torch-free; their models are built on the torch side (:func:`codesign.nn.models.build_model`)."""

    def build_model(self, arch: Any) -> nn.Module:
        """A fresh, untrained model whose weighted layers follow ``network(arch)``'s weighted layers."""
        ...

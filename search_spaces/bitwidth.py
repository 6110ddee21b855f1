"""Per-layer weight and activation bit-widths.

Decisions are made per tie group: weighted layers that read the same activation (listed in the
network's ``ties``) share their weight and activation bits, as integer pipelines and HAWQ-V3 require.
Every untied weighted layer is a group of its own. Bit tuples follow the network's weighted layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import Network

Bits = tuple[tuple[int, ...], tuple[int, ...]]
"""``(weight_bits, act_bits)``, one entry per weighted layer."""


def tie_groups(network: Network) -> tuple[tuple[int, ...], ...]:
    """Indices into ``network.weighted_layers`` grouped by ties, ordered by each group's first layer."""
    index = {layer.name: i for i, layer in enumerate(network.weighted_layers)}
    parent = list(range(len(index)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for group in network.ties:
        members = [index[name] for name in group if name in index]
        for other in members[1:]:
            parent[find(other)] = find(members[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(index)):
        groups.setdefault(find(i), []).append(i)
    return tuple(sorted((tuple(g) for g in groups.values()), key=lambda g: g[0]))


@dataclass(frozen=True)
class BitWidthSpace:
    """Allowed weight and activation bit-widths (bits, ascending)."""

    weight_bits: tuple[int, ...] = (2, 4, 8)
    act_bits: tuple[int, ...] = (4, 8)

    def __post_init__(self) -> None:
        for label, values in (("weight_bits", self.weight_bits), ("act_bits", self.act_bits)):
            if (
                not values
                or any(not isinstance(b, int) or not 1 <= b <= 32 for b in values)
                or len(set(values)) != len(values)
            ):
                raise CodesignError(
                    f"bit-width space: {label} must be distinct integers in [1, 32], got {values!r}"
                )

    def choices(self, network: Network) -> dict[str, list[int]]:
        """One weight and one activation decision per tie group, named after the group's first layer
        (``w:<layer>`` and ``a:<layer>``) for Optuna's ``suggest_categorical``."""
        layers = network.weighted_layers
        out: dict[str, list[int]] = {}
        for group in tie_groups(network):
            out[f"w:{layers[group[0]].name}"] = list(self.weight_bits)
            out[f"a:{layers[group[0]].name}"] = list(self.act_bits)
        return out

    def expand(self, group_values: Mapping[str, int], network: Network) -> Bits:
        """Per-layer bits from one value per decision of :meth:`choices`."""
        layers = network.weighted_layers
        weight = [0] * len(layers)
        act = [0] * len(layers)
        for group in tie_groups(network):
            first = layers[group[0]].name
            w, a = (
                self._get(group_values, f"w:{first}", self.weight_bits),
                self._get(group_values, f"a:{first}", self.act_bits),
            )
            for i in group:
                weight[i], act[i] = w, a
        return tuple(weight), tuple(act)

    def sample(self, rng: np.random.Generator, network: Network) -> Bits:
        values = {
            key: options[int(rng.integers(len(options)))] for key, options in self.choices(network).items()
        }
        return self.expand(values, network)

    def uniform(self, network: Network, weight_bits: int, act_bits: int) -> Bits:
        """The same bits for every weighted layer."""
        n = len(network.weighted_layers)
        return (weight_bits,) * n, (act_bits,) * n

    def validate(self, network: Network, weight_bits: tuple[int, ...], act_bits: tuple[int, ...]) -> None:
        """Raise :class:`CodesignError` if the bits have the wrong length, an unknown value or break a tie."""
        layers = network.weighted_layers
        if len(weight_bits) != len(layers) or len(act_bits) != len(layers):
            raise CodesignError(
                f"{network.name}: expected {len(layers)} weight and act bits, got {len(weight_bits)} and {len(act_bits)}"
            )
        for i, (w, a) in enumerate(zip(weight_bits, act_bits, strict=True)):
            if w not in self.weight_bits or a not in self.act_bits:
                raise CodesignError(
                    f"{network.name}: layer {layers[i].name} bits w{w}/a{a} outside weight {self.weight_bits} / act {self.act_bits}"
                )
        for group in tie_groups(network):
            if len({(weight_bits[i], act_bits[i]) for i in group}) > 1:
                raise CodesignError(
                    f"{network.name}: tied layers {', '.join(layers[i].name for i in group)} need equal bits"
                )

    @staticmethod
    def _get(values: Mapping[str, int], key: str, allowed: tuple[int, ...]) -> int:
        if key not in values:
            raise CodesignError(f"bit-width space: missing decision {key!r}")
        value = int(values[key])
        if value not in allowed:
            raise CodesignError(f"bit-width space: {key} = {value} not in {allowed}")
        return value

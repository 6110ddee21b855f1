"""The bit-allocation problem and its answer: per-layer bit choices, perturbations (Omega) and cost
columns aligned by layer, with ties, fixed layers and budgets; tied layers merged into one decision each
(:class:`_Group`), the form the integer program is built from; and :class:`BitAllocation`, a solved
assignment.

Private: import these names from :mod:`codesign.quantization.allocation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.quantization._budget import Budget

MIN_VALUE = 1e-100
MAX_VALUE = 1e100
"""The range of a non-zero omega or cost value: far beyond any unit's, and narrow enough that the program's
scaled rows (values and budget limits divided by a column's largest value) stay finite."""


@dataclass(frozen=True)
class BitAllocationProblem:
    """Everything the program needs, aligned by layer.

    ``choices[i]`` are the allowed bit-widths of ``layers[i]`` (ascending), ``omega[i][k]`` the
    perturbation of that layer at ``choices[i][k]``, and ``costs`` maps each cost column to a table of the
    same shape. Every omega and cost value must be 0 or between :data:`MIN_VALUE` and :data:`MAX_VALUE`.
    ``ties`` are groups of layers that must share their bit-width, ``fixed`` pins layers to one
    bit-width. Build one from nested mappings with :meth:`from_tables`.
    """

    layers: tuple[str, ...]
    choices: tuple[tuple[int, ...], ...]
    omega: tuple[tuple[float, ...], ...]
    costs: tuple[tuple[str, tuple[tuple[float, ...], ...]], ...] = ()
    ties: tuple[tuple[str, ...], ...] = ()
    fixed: tuple[tuple[str, int], ...] = ()
    budgets: tuple[Budget, ...] = ()
    _groups: tuple[_Group, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.layers:
            raise CodesignError("bit allocation: no layers")
        if len(set(self.layers)) != len(self.layers):
            dup = sorted({n for n in self.layers if self.layers.count(n) > 1})
            raise CodesignError(f"bit allocation: duplicate layer(s) {', '.join(dup)}")
        n = len(self.layers)
        if len(self.choices) != n or len(self.omega) != n:
            raise CodesignError(
                f"bit allocation: {n} layers but {len(self.choices)} choice sets and {len(self.omega)} omega rows"
            )
        for name, bits, row in zip(self.layers, self.choices, self.omega, strict=True):
            _check_row(name, bits, row, "omega")
        columns = [c for c, _ in self.costs]
        if len(set(columns)) != len(columns):
            raise CodesignError(f"bit allocation: duplicate cost column(s) in {columns}")
        for column, table in self.costs:
            if len(table) != n:
                raise CodesignError(
                    f"bit allocation: cost column {column!r} has {len(table)} rows, expected {n}"
                )
            for name, bits, row in zip(self.layers, self.choices, table, strict=True):
                _check_row(name, bits, row, column)
        for budget in self.budgets:
            if budget.column not in columns:
                raise CodesignError(
                    f"budget {budget}: unknown cost column {budget.column!r}; known: {', '.join(columns) or 'none'}"
                )
        object.__setattr__(self, "_groups", _build_groups(self))

    @classmethod
    def from_tables(
        cls,
        *,
        omega: Mapping[str, Mapping[int, float]],
        costs: Mapping[str, Mapping[str, Mapping[int, float]]] | None = None,
        ties: Sequence[Sequence[str]] = (),
        fixed: Mapping[str, int] | None = None,
        budgets: Sequence[Budget] = (),
        allowed: Mapping[str, Sequence[int]] | None = None,
    ) -> BitAllocationProblem:
        """``omega[layer][bits]``; ``costs[column][layer][bits]``; ``allowed[layer]`` narrows a layer's
        bit-widths (default: every bit-width ``omega`` gives for it). Layer order is ``omega``'s order."""
        costs = costs or {}
        allowed = allowed or {}
        unknown = sorted(set(allowed) - set(omega))
        if unknown:
            raise CodesignError(
                f"bit allocation: allowed bits given for unknown layer(s) {', '.join(unknown)}"
            )
        layers = tuple(omega)
        choices = []
        for name in layers:
            bits = sorted(int(b) for b in omega[name])
            if name in allowed:
                missing = sorted(set(allowed[name]) - set(bits))
                if missing:
                    raise CodesignError(f"layer {name!r}: allowed bits {missing} have no omega value")
                bits = sorted({int(b) for b in allowed[name]})
            choices.append(tuple(bits))
        tables = []
        for column, per_layer in costs.items():
            table = []
            for name, layer_bits in zip(layers, choices, strict=True):
                row = per_layer.get(name)
                missing = [b for b in layer_bits if row is None or b not in row]
                if row is None or missing:
                    raise CodesignError(
                        f"cost column {column!r}: no value for layer {name!r} at bits {missing or list(layer_bits)}"
                    )
                table.append(tuple(float(row[b]) for b in layer_bits))
            tables.append((column, tuple(table)))
        return cls(
            layers=layers,
            choices=tuple(choices),
            omega=tuple(
                tuple(float(omega[n][b]) for b in layer_bits)
                for n, layer_bits in zip(layers, choices, strict=True)
            ),
            costs=tuple(tables),
            ties=tuple(tuple(group) for group in ties),
            fixed=tuple(sorted((fixed or {}).items())),
            budgets=tuple(budgets),
        )

    def with_budgets(self, budgets: Sequence[Budget]) -> BitAllocationProblem:
        return BitAllocationProblem(
            self.layers, self.choices, self.omega, self.costs, self.ties, self.fixed, tuple(budgets)
        )

    def narrowed(self, max_bits: int) -> BitAllocationProblem | None:
        """The same problem with every layer limited to bit-widths ``<= max_bits`` and every ``alpha``
        budget turned into its absolute limit on this (un-narrowed) problem; ``None`` when some group of
        tied layers would have no bit-width left."""
        if any(min(g.bits) > max_bits for g in self._groups):
            return None
        keep = [tuple(k for k, b in enumerate(bits) if b <= max_bits) for bits in self.choices]

        def cut(table: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(row[k] for k in ks) for row, ks in zip(table, keep, strict=True))

        return BitAllocationProblem(
            self.layers,
            tuple(tuple(bits[k] for k in ks) for bits, ks in zip(self.choices, keep, strict=True)),
            cut(self.omega),
            tuple((column, cut(table)) for column, table in self.costs),
            self.ties,
            self.fixed,
            tuple(Budget(b.column, limit=self.limit(b)) for b in self.budgets),
        )

    @property
    def assignments(self) -> int:
        """How many distinct bit assignments the problem admits (ties and fixed layers respected): no
        front of it has more points."""
        return math.prod(len(g.bits) for g in self._groups)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.costs)

    def cost_range(self, column: str) -> tuple[float, float]:
        """The column's total with every layer at its lowest and at its highest allowed bit-width (ties
        and fixed layers respected): the two ends ``alpha`` interpolates between."""
        c = self.columns.index(column) if column in self.columns else -1
        if c < 0:
            raise CodesignError(f"unknown cost column {column!r}; known: {', '.join(self.columns) or 'none'}")
        return (
            sum(float(g.costs[c][0]) for g in self._groups),
            sum(float(g.costs[c][-1]) for g in self._groups),
        )

    def limit(self, budget: Budget) -> float:
        """The absolute limit of ``budget`` in its column's unit."""
        if budget.limit is not None:
            return budget.limit
        low, high = self.cost_range(budget.column)
        return low + float(budget.alpha or 0.0) * (high - low)


@dataclass(frozen=True)
class BitAllocation:
    """A proven-optimal bit assignment: ``bits`` in layer order, the summed ``objective`` (Omega),
    ``values`` of every cost column and the absolute ``limits`` of the budgets that were imposed."""

    bits: tuple[tuple[str, int], ...]
    objective: float
    values: tuple[tuple[str, float], ...]
    limits: tuple[tuple[str, float], ...]

    def bits_dict(self) -> dict[str, int]:
        return dict(self.bits)

    def values_dict(self) -> dict[str, float]:
        return dict(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bits": self.bits_dict(),
            "objective": self.objective,
            "values": self.values_dict(),
            "budgets": {
                column: {"limit": limit, "value": self.values_dict()[column]} for column, limit in self.limits
            },
        }


@dataclass(frozen=True)
class _Group:
    """Tied layers merged into one decision: summed omega and costs per common bit-width."""

    members: tuple[int, ...]
    bits: tuple[int, ...]
    omega: np.ndarray
    costs: tuple[np.ndarray, ...]


def _check_row(name: str, bits: tuple[int, ...], row: tuple[float, ...], what: str) -> None:
    if not bits:
        raise CodesignError(f"layer {name!r}: no allowed bit-widths")
    if list(bits) != sorted(set(bits)) or any(b < 1 for b in bits):
        raise CodesignError(
            f"layer {name!r}: bit choices must be distinct positive integers in ascending order, got {bits}"
        )
    if len(row) != len(bits):
        raise CodesignError(f"layer {name!r}: {what} has {len(row)} values for {len(bits)} bit choices")
    for b, v in zip(bits, row, strict=True):
        if not math.isfinite(v):
            raise CodesignError(f"layer {name!r} at {b} bits: {what} is {v!r}; values must be finite")
        if v < 0:
            raise CodesignError(
                f"layer {name!r} at {b} bits: {what} is {v!r}; values must be non-negative "
                "(a perturbation or cost below zero is not meaningful)"
            )
        if v != 0 and not MIN_VALUE <= v <= MAX_VALUE:
            raise CodesignError(
                f"layer {name!r} at {b} bits: {what} is {v!r}; values must be 0 or between {MIN_VALUE:g} and "
                f"{MAX_VALUE:g} (give the column in another unit)"
            )


def _build_groups(problem: BitAllocationProblem) -> tuple[_Group, ...]:
    index = {name: i for i, name in enumerate(problem.layers)}
    parent = list(range(len(problem.layers)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for group in problem.ties:
        unknown = [n for n in group if n not in index]
        if unknown:
            raise CodesignError(f"tie {','.join(group)}: unknown layer(s) {', '.join(unknown)}")
        for name in group[1:]:
            parent[find(index[name])] = find(index[group[0]])
    fixed = dict(problem.fixed)
    unknown = sorted(set(fixed) - set(index))
    if unknown:
        raise CodesignError(f"fixed bits given for unknown layer(s) {', '.join(unknown)}")
    members: dict[int, list[int]] = {}
    for i in range(len(problem.layers)):
        members.setdefault(find(i), []).append(i)
    groups = []
    for idx in members.values():
        names = [problem.layers[i] for i in idx]
        common = set(problem.choices[idx[0]]).intersection(*(problem.choices[i] for i in idx[1:]))
        pins = {fixed[n] for n in names if n in fixed}
        if len(pins) > 1:
            raise CodesignError(
                f"tied layers {', '.join(names)} are fixed to different bit-widths {sorted(pins)}"
            )
        if pins:
            pin = pins.pop()
            if pin not in common:
                raise CodesignError(
                    f"layers {', '.join(names)}: fixed bits {pin} not among allowed {sorted(common)}"
                )
            common = {pin}
        if not common:
            raise CodesignError(f"tied layers {', '.join(names)} share no allowed bit-width")
        bits = tuple(sorted(common))

        def summed(
            table: tuple[tuple[float, ...], ...], idx: list[int] = idx, bits: tuple[int, ...] = bits
        ) -> np.ndarray:
            return np.array(
                [sum(table[i][problem.choices[i].index(b)] for i in idx) for b in bits], dtype=float
            )

        groups.append(
            _Group(tuple(idx), bits, summed(problem.omega), tuple(summed(t) for _, t in problem.costs))
        )
    return tuple(groups)

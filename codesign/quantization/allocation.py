"""Exact bit allocation by integer linear programming (HAWQ-V3's program, generalised).

One binary variable per (layer group, allowed bit-width): every group of tied layers takes exactly one
bit-width, the summed perturbation ``Omega`` is minimised, and every budget is a linear constraint on a
named per-(layer, bits) cost column (model size, bit-ops, latency from a hardware model's table, DSP or
any other resource total). The program is solved by CBC (bundled with pulp) and only a *proven* optimum is
returned; an infeasible budget raises :class:`codesign.core.errors.InfeasibleError` whose message states the
smallest value that budget can take.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import pulp

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import Network

_BUDGET_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*<=\s*(alpha\s*:)?\s*(\S+)\s*$")
_FEASIBILITY_TOL = 1e-9
"""Relative slack on budget limits, so a configuration whose cost equals the limit up to float rounding
counts as feasible (the same slack the brute-force checks use)."""


@dataclass(frozen=True)
class Budget:
    """An upper bound on the summed cost column ``column``.

    Exactly one of ``limit`` (absolute, in the column's unit) and ``alpha`` (a fraction between the
    all-lowest and the all-highest network, ``B_low + alpha * (B_high - B_low)``) is given.
    """

    column: str
    limit: float | None = None
    alpha: float | None = None

    def __post_init__(self) -> None:
        if (self.limit is None) == (self.alpha is None):
            raise CodesignError(f"budget on {self.column!r}: give exactly one of limit and alpha")
        value = self.limit if self.limit is not None else self.alpha
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise CodesignError(f"budget on {self.column!r}: expected a finite number, got {value!r}")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise CodesignError(f"budget on {self.column!r}: alpha must lie in [0, 1], got {self.alpha}")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"latency_ms<=3.5"`` (absolute) or ``"size_mb<=alpha:0.5"`` (fraction of the range)."""
        match = _BUDGET_RE.match(text)
        if match is None:
            raise CodesignError(f"budget {text!r}: expected COLUMN<=VALUE or COLUMN<=alpha:FRACTION")
        column, is_alpha, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise CodesignError(f"budget {text!r}: {raw!r} is not a number") from None
        return cls(column, alpha=value) if is_alpha else cls(column, limit=value)

    def __str__(self) -> str:
        return (
            f"{self.column}<=alpha:{self.alpha:g}"
            if self.alpha is not None
            else f"{self.column}<={self.limit:g}"
        )


@dataclass(frozen=True)
class BitAllocationProblem:
    """Everything the program needs, aligned by layer.

    ``choices[i]`` are the allowed bit-widths of ``layers[i]`` (ascending), ``omega[i][k]`` the
    perturbation of that layer at ``choices[i][k]``, and ``costs`` maps each cost column to a table of the
    same shape. ``ties`` are groups of layers that must share their bit-width, ``fixed`` pins layers to one
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
    if not all(math.isfinite(v) for v in row):
        raise CodesignError(f"layer {name!r}: {what} values must be finite, got {row}")


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


def _scale(values: Sequence[np.ndarray]) -> float:
    top = max((float(np.max(np.abs(v))) for v in values), default=0.0)
    return top if top > 0 else 1.0


def _solve(
    problem: BitAllocationProblem,
    objective: int | None,
    limits: Mapping[int, float],
    time_limit_s: float | None,
    require_bits: int | None = None,
) -> list[int] | None:
    """Index of the chosen bit-width per group, or ``None`` when the constraints admit no point.

    ``objective`` is a cost-column index to minimise, or ``None`` for the summed omega; with
    ``require_bits`` at least one group takes that bit-width. Rows are scaled to unit magnitude so CBC's
    absolute tolerances work for omega values of any size.
    """
    groups = problem._groups
    if require_bits is not None and not any(require_bits in grp.bits for grp in groups):
        return None
    prog = pulp.LpProblem("bit_allocation", pulp.LpMinimize)
    x = [
        [prog.add_variable(f"x_{g}_{k}", 0, 1, cat="Binary") for k in range(len(grp.bits))]
        for g, grp in enumerate(groups)
    ]
    weights = [grp.omega if objective is None else grp.costs[objective] for grp in groups]
    scale = _objective_scale(weights)
    prog += pulp.lpSum(float(w[k]) / scale * x[g][k] for g, w in enumerate(weights) for k in range(len(w)))
    for g in range(len(groups)):
        prog += pulp.lpSum(x[g]) == 1
    if require_bits is not None:
        prog += (
            pulp.lpSum(
                x[g][grp.bits.index(require_bits)] for g, grp in enumerate(groups) if require_bits in grp.bits
            )
            >= 1
        )
    for c, limit in limits.items():
        rows = [grp.costs[c] for grp in groups]
        cs = _scale(rows)
        slack = _FEASIBILITY_TOL * max(1.0, abs(limit)) / cs
        prog += (
            pulp.lpSum(float(r[k]) / cs * x[g][k] for g, r in enumerate(rows) for k in range(len(r)))
            <= limit / cs + slack
        )
    with warnings.catch_warnings():
        # pulp 3.x announces the bundled CBC's removal in 4.0; it is the only CBC a plain install has
        warnings.simplefilter("ignore", DeprecationWarning)
        # CBC 2.10's integer preprocessing can drop the optimum after substituting fixed rows: keep it off
        solver = pulp.PULP_CBC_CMD(
            msg=False, timeLimit=time_limit_s, gapRel=0.0, threads=1, options=["preprocess off"]
        )
        status = prog.solve(solver)
    if status == pulp.LpStatusInfeasible:
        return None
    if status != pulp.LpStatusOptimal or prog.sol_status != pulp.LpSolutionOptimal:
        raise CodesignError(
            f"bit allocation: CBC did not prove optimality (status {pulp.LpStatus[status]}, "
            f"solution {pulp.LpSolution.get(prog.sol_status, prog.sol_status)}); raise the time limit"
        )
    return [max(range(len(row)), key=lambda k, row=row: float(row[k].varValue or 0.0)) for row in x]  # type: ignore[misc]


def _result(
    problem: BitAllocationProblem, chosen: Sequence[int], limits: Mapping[int, float]
) -> BitAllocation:
    bits: dict[str, int] = {}
    for grp, k in zip(problem._groups, chosen, strict=True):
        for i in grp.members:
            bits[problem.layers[i]] = grp.bits[k]
    objective = float(sum(grp.omega[k] for grp, k in zip(problem._groups, chosen, strict=True)))
    values = tuple(
        (column, float(sum(grp.costs[c][k] for grp, k in zip(problem._groups, chosen, strict=True))))
        for c, column in enumerate(problem.columns)
    )
    return BitAllocation(
        bits=tuple((name, bits[name]) for name in problem.layers),
        objective=objective,
        values=values,
        limits=tuple((problem.columns[c], limit) for c, limit in limits.items()),
    )


def _resolved_limits(problem: BitAllocationProblem) -> dict[int, float]:
    limits: dict[int, float] = {}
    for budget in problem.budgets:
        c = problem.columns.index(budget.column)
        limits[c] = min(limits.get(c, math.inf), problem.limit(budget))
    return limits


def _raise_infeasible(problem: BitAllocationProblem, time_limit_s: float | None) -> NoReturn:
    """Find the first budget that cannot be met given the budgets before it and report its smallest
    feasible value (the optimum of the program that minimises that budget's column)."""
    imposed: dict[int, float] = {}
    for budget in problem.budgets:
        c = problem.columns.index(budget.column)
        limit = problem.limit(budget)
        best = _solve(problem, c, imposed, time_limit_s)
        if best is None:  # pragma: no cover - the previous budgets were checked feasible
            break
        smallest = float(sum(grp.costs[c][k] for grp, k in zip(problem._groups, best, strict=True)))
        if smallest > limit + _FEASIBILITY_TOL * max(1.0, abs(limit)):
            given = (
                f" given {', '.join(str(b) for b in problem.budgets[: problem.budgets.index(budget)])}"
                if imposed
                else ""
            )
            raise InfeasibleError(
                f"budget {budget} (limit {limit:.6g}) is infeasible{given}: the smallest feasible {budget.column} is {smallest:.6g}"
            )
        imposed[c] = min(imposed.get(c, math.inf), limit)
    raise InfeasibleError("the budgets admit no bit assignment")  # pragma: no cover


def allocate_bits(problem: BitAllocationProblem, *, time_limit_s: float | None = None) -> BitAllocation:
    """The assignment minimising summed Omega under every budget of ``problem``, proven optimal by CBC.

    Raises :class:`InfeasibleError` naming the first budget that cannot be met and its smallest feasible
    value, and :class:`CodesignError` when CBC stops before proving optimality (``time_limit_s``).
    """
    limits = _resolved_limits(problem)
    chosen = _solve(problem, None, limits, time_limit_s)
    if chosen is None:
        _raise_infeasible(problem, time_limit_s)
    return _result(problem, chosen, limits)


def solve_program(
    problem: BitAllocationProblem,
    *,
    minimise: str | None = None,
    require_bits: int | None = None,
    time_limit_s: float | None = None,
) -> BitAllocation | None:
    """The proven optimum of summed Omega (or of the cost column ``minimise``) under the problem's
    budgets, with at least one layer at ``require_bits`` when given; ``None`` when nothing is feasible."""
    if minimise is not None and minimise not in problem.columns:
        raise CodesignError(
            f"unknown cost column {minimise!r}; known: {', '.join(problem.columns) or 'none'}"
        )
    limits = _resolved_limits(problem)
    objective = None if minimise is None else problem.columns.index(minimise)
    chosen = _solve(problem, objective, limits, time_limit_s, require_bits)
    return None if chosen is None else _result(problem, chosen, limits)


def sensitivity_front(
    problem: BitAllocationProblem, column: str, *, points: int | None = 25, max_points: int = 10_000
) -> tuple[BitAllocation, ...]:
    """The sensitivity-versus-cost front on ``column`` (HAWQ-V2's Pareto frontier), other budgets kept.

    With ``points`` the budget on ``column`` sweeps that many evenly spaced values from its smallest
    feasible total to the total of the unconstrained optimum (beyond it Omega cannot fall); with ``points=None`` the sweep is exact (epsilon-constraint:
    each next budget is just below the last optimum's cost), so every Pareto-optimal point is found.
    Returns the distinct non-dominated optima, cheapest first.
    """
    if column not in problem.columns:
        raise CodesignError(
            f"front: unknown cost column {column!r}; known: {', '.join(problem.columns) or 'none'}"
        )
    if points is not None and points < 2:
        raise CodesignError(f"front: points must be >= 2 or None, got {points}")
    others = problem.with_budgets([b for b in problem.budgets if b.column != column])
    c = problem.columns.index(column)
    base = _resolved_limits(others)
    cheapest = _solve(others, c, base, None)
    if cheapest is None:
        _raise_infeasible(others, None)
    low = _result(others, cheapest, base).values_dict()[column]
    found: list[BitAllocation] = []
    if points is not None:
        best = _solve(others, None, base, None)
        if best is None:  # pragma: no cover - cheapest is feasible under the same budgets
            _raise_infeasible(others, None)
        high = _result(others, best, base).values_dict()[column]
        for limit in np.linspace(low, max(low, high), points):
            chosen = _solve(others, None, {**base, c: float(limit)}, None)
            if chosen is not None:
                found.append(_result(others, chosen, {**base, c: float(limit)}))
    else:
        limit = math.inf
        while len(found) < max_points:
            chosen = _solve(others, None, base if math.isinf(limit) else {**base, c: limit}, None)
            if chosen is None:
                break
            point = _result(others, chosen, {**base, c: limit})
            found.append(point)
            cost = point.values_dict()[column]
            if cost <= low:
                break
            limit = cost - max(1e-7 * max(abs(cost), 1.0), 2 * _FEASIBILITY_TOL * max(1.0, abs(cost)))
    return _non_dominated(found, column)


def _non_dominated(points: Sequence[BitAllocation], column: str) -> tuple[BitAllocation, ...]:
    ordered = sorted(points, key=lambda p: (p.values_dict()[column], p.objective))
    front: list[BitAllocation] = []
    for point in ordered:
        if not front or point.objective < front[-1].objective - 1e-12 * max(1.0, abs(front[-1].objective)):
            front.append(point)
    return tuple(front)


def network_costs(network: Network, bit_choices: Sequence[int]) -> dict[str, dict[str, dict[int, float]]]:
    """Model-size and bit-ops cost columns for the weighted layers of ``network`` at each weight
    bit-width: ``size_mb`` (params x bits / 8 / 1e6) and ``bops`` (MACs x weight bits x activation bits,
    activation bits as the network gives them)."""
    size: dict[str, dict[int, float]] = {}
    bops: dict[str, dict[int, float]] = {}
    for layer in network.weighted_layers:
        size[layer.name] = {b: layer.params * b / 8e6 for b in bit_choices}
        bops[layer.name] = {b: float(layer.macs * b * layer.act_bits) for b in bit_choices}
    return {"size_mb": size, "bops": bops}


def _objective_scale(weights: Sequence[np.ndarray]) -> float:
    """A divisor that puts the smallest possible objective (every group at its cheapest choice) near
    1000: CBC's tolerances are absolute, and with Omega spanning many orders of magnitude a unit-scaled
    objective let it stop at a point 1e-6 to 1e-2 worse than the optimum. Bounded so that no coefficient
    exceeds 1e9."""
    top = _scale(weights)
    low = sum(float(np.min(np.abs(w))) for w in weights)
    return max(low / 1000.0, top * 1e-9)

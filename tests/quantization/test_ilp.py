"""The bit-allocation program against brute-force enumeration."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import Layer, Network
from codesign.quantization.allocation import (
    BitAllocationProblem,
    Budget,
    allocate_bits,
    network_costs,
    sensitivity_front,
)

BITS = (2, 4, 8)


def random_case(seed: int) -> tuple[BitAllocationProblem, list[list[str]]]:
    """A random problem whose tie groups are known: up to 16 layers in at most 10 groups."""
    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(3, 17))
    n_groups = int(rng.integers(2, min(10, n_layers) + 1))
    owner = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n_layers - n_groups)])
    rng.shuffle(owner)
    names = [f"layer{i}" for i in range(n_layers)]
    groups = [[names[i] for i in range(n_layers) if owner[i] == g] for g in range(n_groups)]
    allowed: dict[str, list[int]] = {}
    for group in groups:
        common = int(rng.choice(BITS))  # every member keeps this one, so the group has a choice
        for name in group:
            extra = [b for b in BITS if b != common and rng.random() < 0.7]
            allowed[name] = sorted([common, *extra])
    omega = {n: {b: float(rng.random() * 10.0 ** rng.uniform(-6, 0) / b**2) for b in BITS} for n in names}
    params = rng.integers(100, 50_000, n_layers)
    size = {n: {b: float(params[i] * b / 8e6) for b in BITS} for i, n in enumerate(names)}
    latency = {n: {b: float(rng.random() * (1 + b / 4) + 0.1 * rng.random()) for b in BITS} for n in names}
    fixed = {}
    if rng.random() < 0.3:
        name = names[int(rng.integers(n_layers))]
        group = next(g for g in groups if name in g)
        shared = sorted(set.intersection(*(set(allowed[m]) for m in group)))
        fixed[name] = int(rng.choice(shared))
    budgets = []
    for column in ("size_mb", "latency_ms"):
        kind = rng.random()
        if kind < 0.35:
            budgets.append(Budget(column, alpha=float(rng.random())))
        elif kind < 0.7:
            table = size if column == "size_mb" else latency
            low = sum(min(table[n].values()) for n in names)
            high = sum(max(table[n].values()) for n in names)
            budgets.append(Budget(column, limit=float(low + rng.uniform(-0.05, 0.6) * (high - low))))
    ties = [g for g in groups if len(g) > 1]
    problem = BitAllocationProblem.from_tables(
        omega=omega,
        costs={"size_mb": size, "latency_ms": latency},
        ties=ties,
        fixed=fixed,
        budgets=budgets,
        allowed=allowed,
    )
    return problem, groups


def enumerate_all(
    problem: BitAllocationProblem, groups: list[list[str]]
) -> tuple[list[dict[str, int]], np.ndarray, dict[str, np.ndarray]]:
    """Every assignment the ties, allowed sets and fixed layers permit, with its omega and cost totals."""
    fixed = dict(problem.fixed)
    options = []
    for group in groups:
        common = set.intersection(*(set(problem.choices[problem.layers.index(n)]) for n in group))
        pins = {fixed[n] for n in group if n in fixed}
        options.append(sorted(pins or common))
    assignments = []
    for combo in itertools.product(*options):
        assignments.append({n: b for group, b in zip(groups, combo, strict=True) for n in group})

    def total(table: tuple[tuple[float, ...], ...]) -> np.ndarray:
        lookup = [dict(zip(problem.choices[i], table[i], strict=True)) for i in range(len(problem.layers))]
        return np.array([sum(lookup[i][a[n]] for i, n in enumerate(problem.layers)) for a in assignments])

    return assignments, total(problem.omega), {c: total(t) for c, t in problem.costs}


@pytest.mark.parametrize("seed", [*range(60), 1074, 1264, 1271, 1293])  # the last four once fooled CBC
def test_ilp_equals_brute_force(seed: int) -> None:
    problem, groups = random_case(seed)
    assignments, omega, costs = enumerate_all(problem, groups)
    feasible = np.ones(len(assignments), dtype=bool)
    for budget in problem.budgets:
        limit = problem.limit(budget)
        feasible &= costs[budget.column] <= limit + 1e-9 * max(1.0, abs(limit))
    if not feasible.any():
        with pytest.raises(InfeasibleError):
            allocate_bits(problem)
        return
    result = allocate_bits(problem)
    assert result.objective == pytest.approx(float(omega[feasible].min()), rel=1e-9, abs=1e-15)
    chosen = result.bits_dict()
    index = assignments.index(chosen)  # a permitted assignment: ties, allowed sets and fixed bits hold
    assert omega[index] == pytest.approx(result.objective, rel=1e-12)
    for budget in problem.budgets:
        assert result.values_dict()[budget.column] == pytest.approx(costs[budget.column][index], rel=1e-12)
        assert result.values_dict()[budget.column] <= problem.limit(budget) * (1 + 1e-9) + 1e-12
    assert dict(result.limits) == {b.column: pytest.approx(problem.limit(b)) for b in problem.budgets}


def smallest_in_message(error: pytest.ExceptionInfo[InfeasibleError]) -> float:
    match = re.search(r"smallest feasible \w+ is ([-+0-9.e]+)", str(error.value))
    assert match, str(error.value)
    return float(match.group(1))


@pytest.mark.parametrize("seed", range(6))
def test_infeasible_budget_reports_smallest_feasible_value(seed: int) -> None:
    problem, groups = random_case(100 + seed)
    _, _, costs = enumerate_all(problem, groups)
    smallest = float(costs["latency_ms"].min())
    tight = problem.with_budgets([Budget("latency_ms", limit=smallest * 0.98)])
    with pytest.raises(InfeasibleError, match="latency_ms") as error:
        allocate_bits(tight)
    assert smallest_in_message(error) == pytest.approx(smallest, rel=1e-5)
    # exactly the reported value is feasible again
    assert allocate_bits(problem.with_budgets([Budget("latency_ms", limit=smallest)])).values_dict()[
        "latency_ms"
    ] <= smallest * (1 + 1e-9)


def test_conflicting_budgets_report_the_second_given_the_first() -> None:
    problem, groups = random_case(7)
    _, _, costs = enumerate_all(problem, groups)
    size_limit = float(np.quantile(costs["size_mb"], 0.05))
    within = costs["size_mb"] <= size_limit * (1 + 1e-9)
    smallest_latency = float(costs["latency_ms"][within].min())
    assert smallest_latency > costs["latency_ms"].min()  # the conflict is real, not the latency alone
    budgets = [
        Budget("size_mb", limit=size_limit),
        Budget("latency_ms", limit=float(costs["latency_ms"].min())),
    ]
    with pytest.raises(InfeasibleError, match=r"given size_mb<=") as error:
        allocate_bits(problem.with_budgets(budgets))
    assert smallest_in_message(error) == pytest.approx(smallest_latency, rel=1e-5)


def test_alpha_budgets_span_all_lowest_to_all_highest() -> None:
    omega = {"a": {2: 3.0, 4: 1.0, 8: 0.0}, "b": {2: 5.0, 4: 2.0, 8: 0.5}}
    size = {"a": {2: 2.0, 4: 4.0, 8: 8.0}, "b": {2: 1.0, 4: 2.0, 8: 4.0}}
    base = BitAllocationProblem.from_tables(omega=omega, costs={"size": size})
    assert base.cost_range("size") == (3.0, 12.0)
    lowest = allocate_bits(base.with_budgets([Budget.parse("size<=alpha:0")]))
    assert lowest.bits_dict() == {"a": 2, "b": 2} and lowest.objective == 8.0
    highest = allocate_bits(base.with_budgets([Budget.parse("size<=alpha:1")]))
    assert highest.bits_dict() == {"a": 8, "b": 8} and highest.values_dict()["size"] == 12.0
    # limit 3 + 0.5 * 9 = 7.5: a@4 + b@2 (5, omega 6), a@2 + b@4 (4, omega 5), a@2+b@8 (6, omega 3.5)
    middle = allocate_bits(base.with_budgets([Budget.parse("size<=alpha:0.5")]))
    assert middle.bits_dict() == {"a": 4, "b": 4} and middle.objective == 3.0
    assert middle.to_dict()["budgets"] == {"size": {"limit": 7.5, "value": 6.0}}


def test_ties_fixed_and_allowed_sets() -> None:
    omega = {n: {2: 10.0, 4: 1.0, 8: 0.0} for n in "abcd"}
    size = {n: {2: 1.0, 4: 2.0, 8: 4.0} for n in "abcd"}
    problem = BitAllocationProblem.from_tables(
        omega=omega,
        costs={"size": size},
        ties=[("a", "b")],
        fixed={"c": 2},
        allowed={"d": [2, 4]},
        budgets=[Budget("size", limit=10.0)],
    )
    result = allocate_bits(problem)
    bits = result.bits_dict()
    assert bits["a"] == bits["b"] and bits["c"] == 2 and bits["d"] in (2, 4)
    assert bits == {"a": 4, "b": 4, "c": 2, "d": 4} and result.objective == 13.0


def test_bad_problems_are_rejected_with_the_bad_value() -> None:
    omega = {"a": {2: 1.0, 4: 0.5}, "b": {4: 0.3, 8: 0.1}}
    size = {"a": {2: 1.0, 4: 2.0}, "b": {4: 2.0, 8: 4.0}}
    with pytest.raises(CodesignError, match="share no allowed bit-width"):
        BitAllocationProblem.from_tables(omega={"a": {2: 1.0}, "b": {8: 1.0}}, ties=[("a", "b")])
    with pytest.raises(CodesignError, match="unknown cost column 'bops'"):
        BitAllocationProblem.from_tables(
            omega=omega, costs={"size": size}, budgets=[Budget("bops", limit=1.0)]
        )
    with pytest.raises(CodesignError, match="no value for layer 'b'"):
        BitAllocationProblem.from_tables(omega=omega, costs={"size": {"a": size["a"]}})
    with pytest.raises(CodesignError, match="fixed bits 2 not among"):
        BitAllocationProblem.from_tables(omega=omega, fixed={"b": 2})
    with pytest.raises(CodesignError, match="unknown layer"):
        BitAllocationProblem.from_tables(omega=omega, ties=[("a", "zz")])
    with pytest.raises(CodesignError, match="finite"):
        BitAllocationProblem.from_tables(omega={"a": {2: float("nan")}})


@pytest.mark.parametrize("text", ["size<3", "size<=", "size<=alpha:x", "size<=alpha:1.5", "<=3", "size<=nan"])
def test_budget_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(CodesignError):
        Budget.parse(text)


def test_budget_parse() -> None:
    assert Budget.parse("latency_ms<=3.5") == Budget("latency_ms", limit=3.5)
    assert Budget.parse(" size_mb <= alpha:0.25 ") == Budget("size_mb", alpha=0.25)
    assert str(Budget.parse("size_mb<=alpha:0.25")) == "size_mb<=alpha:0.25"


def brute_front(omega: np.ndarray, cost: np.ndarray) -> list[tuple[float, float]]:
    order = np.lexsort((omega, cost))
    front: list[tuple[float, float]] = []
    for i in order:
        if not front or omega[i] < front[-1][1] - 1e-12:
            front.append((float(cost[i]), float(omega[i])))
    return front


@pytest.mark.parametrize("seed", [5, 7, 11, 17])
def test_exact_front_equals_brute_force_front(seed: int) -> None:
    problem, groups = random_case(seed)
    problem = problem.with_budgets([])
    _, omega, costs = enumerate_all(problem, groups)
    expected = brute_front(omega, costs["size_mb"])
    front = sensitivity_front(problem, "size_mb", points=None)
    assert [(p.values_dict()["size_mb"], p.objective) for p in front] == [
        (pytest.approx(c, rel=1e-9), pytest.approx(o, rel=1e-9)) for c, o in expected
    ]
    swept = sensitivity_front(problem, "size_mb", points=8)
    assert 3 <= len(swept) <= 8
    on_front = {round(c, 12) for c, _ in expected}
    assert all(round(p.values_dict()["size_mb"], 12) in on_front for p in swept)
    assert swept[0].objective == pytest.approx(expected[0][1]) and swept[-1].objective == pytest.approx(
        expected[-1][1]
    )


def test_network_costs_follow_layer_shapes() -> None:
    net = Network(
        "tiny",
        (
            Layer("c1", "conv", 1, 8, in_h=8, in_w=8, kernel=3, padding=1),
            Layer("p", "pool", 8, 8, in_h=8, in_w=8, kernel=2, stride=2, mode="max"),
            Layer("fc", "linear", 128, 10, act_bits=4),
        ),
    )
    costs = network_costs(net, (2, 8))
    assert set(costs["size_mb"]) == {"c1", "fc"}
    assert costs["size_mb"]["c1"][8] == 72 * 8 / 8e6
    assert costs["bops"]["fc"][2] == 1280 * 2 * 4

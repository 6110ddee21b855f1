"""Honest budgets: an allocation is checked against its budgets in the user's units before it is
returned, however far apart the cost values lie (one entry of 1e15 once let CBC return an answer that
broke its budget and ``allocate-bits`` print "4.1 <= 3.5"), and negative or non-finite inputs are errors."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.cli import main
from codesign.core.errors import CodesignError, InfeasibleError
from codesign.quantization import _allocation_program
from codesign.quantization.allocation import (
    BitAllocationProblem,
    Budget,
    allocate_bits,
    sensitivity_front,
    solve_program,
)

HUGE = """layer,bits,omega,size_mb,latency_ms
conv1,2,0.90,0.01,0.5
conv1,4,0.30,0.02,1e15
conv1,8,0.05,0.04,1.5
conv2,2,0.70,0.05,0.6
conv2,4,0.20,0.10,1.0
conv2,8,0.02,0.20,2.0
fc,2,0.40,0.02,0.2
fc,4,0.10,0.04,0.3
fc,8,0.01,0.08,0.6
"""

Table = dict[str, dict[int, float]]


def parse(text: str) -> tuple[Table, dict[str, Table]]:
    lines = [line.split(",") for line in text.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    omega: Table = {}
    costs: dict[str, Table] = {c: {} for c in header[3:]}
    for row in rows:
        layer, bits = row[0], int(row[1])
        omega.setdefault(layer, {})[bits] = float(row[2])
        for column, value in zip(header[3:], row[3:], strict=True):
            costs[column].setdefault(layer, {})[bits] = float(value)
    return omega, costs


def within(value: float, limit: float) -> bool:
    return value <= limit + 1e-9 * max(1.0, abs(limit))


def brute_force(
    omega: Table, costs: dict[str, Table], limits: dict[str, float]
) -> tuple[float, list[dict[str, int]]] | None:
    """The least summed omega over every assignment within every limit, and the assignments reaching
    it; ``None`` when none is within the limits."""
    layers = list(omega)
    best: tuple[float, list[dict[str, int]]] | None = None
    for combo in itertools.product(*(sorted(omega[n]) for n in layers)):
        bits = dict(zip(layers, combo, strict=True))
        if not all(within(math.fsum(costs[c][n][bits[n]] for n in layers), lim) for c, lim in limits.items()):
            continue
        total = math.fsum(omega[n][bits[n]] for n in layers)
        if best is None or total < best[0] - 1e-12 * max(1.0, best[0]):
            best = (total, [bits])
        elif total <= best[0] + 1e-12 * max(1.0, best[0]):
            best[1].append(bits)
    return best


def huge_problem(limit: float = 3.5) -> BitAllocationProblem:
    omega, costs = parse(HUGE)
    return BitAllocationProblem.from_tables(
        omega=omega, costs=costs, budgets=[Budget("latency_ms", limit=limit)]
    )


def test_a_huge_cost_on_an_unpicked_option_does_not_break_the_budget() -> None:
    omega, costs = parse(HUGE)
    result = allocate_bits(huge_problem())
    best = brute_force(omega, {"latency_ms": costs["latency_ms"]}, {"latency_ms": 3.5})
    assert best is not None
    assert result.values_dict()["latency_ms"] <= 3.5
    assert result.objective == pytest.approx(best[0], rel=1e-12)
    assert result.bits_dict() in best[1]
    assert result.bits_dict() == {"conv1": 8, "conv2": 4, "fc": 8}  # latency 3.1, omega 0.26
    # the other solves share the check
    least = solve_program(huge_problem(), minimise="latency_ms")
    assert least is not None and least.values_dict()["latency_ms"] == pytest.approx(1.3)
    front = sensitivity_front(huge_problem(), "latency_ms", points=None)
    assert front and all(p.values_dict()["latency_ms"] < 1e15 for p in front)
    for point in front:
        assert all(within(point.values_dict()[column], limit) for column, limit in point.limits)


def test_the_check_re_solves_when_the_solver_breaks_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # without leaving out the options that cannot meet the budget alone, CBC's scaled row (1e15 on the
    # huge option) is too coarse and its first answer breaks the budget: the check must catch it
    monkeypatch.setattr(
        _allocation_program,
        "_usable",
        lambda problem, limits: [list(range(len(g.bits))) for g in problem._groups],
    )
    calls: list[list[int] | None] = []
    solve_once = _allocation_program._solve_once

    def counted(*args: object) -> list[int] | None:
        out = solve_once(*args)  # type: ignore[arg-type]
        calls.append(out)
        return out

    monkeypatch.setattr(_allocation_program, "_solve_once", counted)
    result = allocate_bits(huge_problem())
    assert result.bits_dict() == {"conv1": 8, "conv2": 4, "fc": 8}
    assert result.values_dict()["latency_ms"] <= 3.5
    assert len(calls) >= 2  # the first answer broke the budget and was excluded


def test_a_budget_the_solver_keeps_breaking_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_allocation_program, "_solve_once", lambda *args: [2, 2, 2])  # 4.1 ms
    with pytest.raises(CodesignError, match=r"breaks the budget on 'latency_ms' \(4\.1 > 3\.5\)") as info:
        allocate_bits(huge_problem())
    assert "\n" not in str(info.value)


def test_an_option_beyond_the_budget_alone_can_leave_nothing_feasible() -> None:
    with pytest.raises(InfeasibleError, match="smallest feasible latency_ms is 1.3"):
        allocate_bits(huge_problem(limit=1.0))


def test_cli_with_a_huge_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "T.csv"
    path.write_text(HUGE)
    assert main(["allocate-bits", str(path), "--budget", "latency_ms<=3.5"]) == 0
    out = capsys.readouterr().out
    assert "budget latency_ms<=3.5: 3.1 <= 3.5" in out and "4.1" not in out
    assert main(["allocate-bits", str(path), "--budget", "latency_ms<=3.5", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bits"] == {"conv1": 8, "conv2": 4, "fc": 8}
    assert result["objective"] == pytest.approx(0.26)
    assert result["budgets"]["latency_ms<=3.5"]["value"] <= 3.5


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "conv2,4,0.20,",
            "conv2,4,-0.20,",
            "layer 'conv2' at 4 bits: omega is -0.2; values must be non-negative",
        ),
        ("fc,8,0.01,0.08,0.6", "fc,8,0.01,0.08,-0.6", "layer 'fc' at 8 bits: latency_ms is -0.6"),
        (
            "fc,8,0.01,0.08,0.6",
            "fc,8,0.01,0.08,inf",
            "row 10, column 'latency_ms': 'inf' is not a finite number",
        ),
    ],
)
def test_cli_rejects_negative_and_non_finite_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    path = tmp_path / "T.csv"
    path.write_text(HUGE.replace(old, new))
    assert main(["allocate-bits", str(path), "--budget", "latency_ms<=3.5"]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("value", [-1.0, -1e-300, float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("column", ["omega", "size"])
def test_api_rejects_negative_and_non_finite_values(value: float, column: str) -> None:
    omega = {"a": {2: 1.0, 4: 0.5}, "b": {2: 2.0, 4: 1.0}}
    size = {"a": {2: 1.0, 4: 2.0}, "b": {2: 1.0, 4: 2.0}}
    (omega if column == "omega" else size)["b"][4] = value
    kind = "finite" if not math.isfinite(value) or value != value else "non-negative"
    with pytest.raises(CodesignError, match=rf"layer 'b' at 4 bits: {column} is .*values must be {kind}"):
        BitAllocationProblem.from_tables(omega=omega, costs={"size": size})


def power_of_ten(exponent: float) -> float:
    return float(10.0**exponent)


magnitudes = st.floats(min_value=-6.0, max_value=15.0).map(power_of_ten)
"""Cost values from 1e-6 to 1e15."""


@st.composite
def tables(draw: st.DrawFn) -> tuple[Table, dict[str, Table], dict[str, float]]:
    n_layers = draw(st.integers(2, 4))
    names = [f"l{i}" for i in range(n_layers)]
    bits = {n: sorted(draw(st.sets(st.sampled_from((2, 4, 8)), min_size=2, max_size=3))) for n in names}
    omega = {n: {b: draw(st.floats(1e-3, 1.0)) for b in bits[n]} for n in names}
    columns = ["c0", "c1"][: draw(st.integers(1, 2))]
    costs = {c: {n: {b: draw(magnitudes) for b in bits[n]} for n in names} for c in columns}
    limits = {}
    for c in columns:
        # a budget at, just below or above some assignment's cost, or anywhere between 1e-6 and 1e16
        pick = {n: draw(st.sampled_from(bits[n])) for n in names}
        at = math.fsum(costs[c][n][pick[n]] for n in names)
        kind = draw(st.sampled_from(("at", "near", "anywhere")))
        if kind == "at":
            limits[c] = at
        elif kind == "near":
            limits[c] = at * draw(st.floats(0.5, 2.0))
        else:
            limits[c] = draw(magnitudes) * 10.0
    return omega, costs, limits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_costs_spanning_many_orders_of_magnitude_meet_every_budget_and_are_optimal(
    case: tuple[Table, dict[str, Table], dict[str, float]],
) -> None:
    omega, costs, limits = case
    problem = BitAllocationProblem.from_tables(
        omega=omega, costs=costs, budgets=[Budget(c, limit=lim) for c, lim in limits.items()]
    )
    best = brute_force(omega, costs, limits)
    if best is None:
        with pytest.raises(InfeasibleError):
            allocate_bits(problem)
        return
    result = allocate_bits(problem)
    bits = result.bits_dict()
    for column, limit in limits.items():
        assert within(math.fsum(costs[column][n][b] for n, b in bits.items()), limit)
    assert result.objective == pytest.approx(best[0], rel=1e-9)
    assert bits in best[1]

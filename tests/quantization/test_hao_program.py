"""HAO's joint bit and overlay-configuration program against brute-force enumeration of the simulator."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import Layer, Network
from codesign.quantization.allocation import BitAllocationProblem, Budget, allocate_bits, network_costs
from codesign.quantization.joint import hao_program, layer_cost_table
from simulators.dataflow import DataflowModel
from simulators.devices import default_catalog
from simulators.folding import DataflowSpace
from simulators.overlay import OverlayModel, OverlaySpace

MODEL = OverlayModel()
SPACE = OverlaySpace(
    device="xc7z020", clocks_mhz=(100.0, 150.0), tm=(4, 8, 16, 32), tn=(2, 4, 8), tr=(4, 8), tc=(4, 8)
)


def small_network(rng: np.random.Generator) -> Network:
    c1, c2, c3 = (int(rng.choice([4, 8, 16])) for _ in range(3))
    return Network(
        "small",
        (
            Layer("c1", "conv", 1, c1, in_h=12, in_w=12, kernel=3, padding=1),
            Layer("c2", "conv", c1, c2, in_h=12, in_w=12, kernel=3, stride=2, padding=1),
            Layer("dw", "conv", c2, c2, in_h=6, in_w=6, kernel=3, padding=1, groups=c2),
            Layer("pw", "conv", c2, c3, in_h=6, in_w=6, kernel=1),
            Layer("gap", "pool", c3, c3, in_h=6, in_w=6, kernel=6, stride=6, mode="avg"),
            Layer("fc", "linear", c3, 10),
        ),
        input_shape=(1, 12, 12),
    )


def case(seed: int, bits: tuple[int, ...]) -> tuple[Network, BitAllocationProblem, list[list[str]]]:
    rng = np.random.default_rng(seed)
    net = small_network(rng)
    names = [layer.name for layer in net.weighted_layers]
    omega = {n: {b: float(rng.random() * 4.0 ** -bits.index(b)) for b in bits} for n in names}
    groups = [["c1"], ["c2", "dw"], ["pw"], ["fc"]] if seed % 2 else [[n] for n in names]
    size = network_costs(net, bits)["size_mb"]
    budgets = [Budget("size_mb", alpha=0.7)] if seed % 3 == 0 else []
    problem = BitAllocationProblem.from_tables(
        omega=omega, costs={"size_mb": size}, ties=[g for g in groups if len(g) > 1], budgets=budgets
    )
    return net, problem, groups


def brute_force(
    net: Network, problem: BitAllocationProblem, groups: list[list[str]], follow: bool
) -> list[tuple[float, float]]:
    """(omega, latency) of the best configuration of every permitted assignment (inf when none fits)."""
    configs = SPACE.configs(net)
    choices = problem.choices[0]
    index = {n: i for i, n in enumerate(problem.layers)}
    out = []
    for combo in itertools.product(choices, repeat=len(groups)):
        bits = {n: b for g, b in zip(groups, combo, strict=True) for n in g}
        omega = sum(problem.omega[index[n]][choices.index(b)] for n, b in bits.items())
        size = sum(dict(problem.costs)["size_mb"][index[n]][choices.index(b)] for n, b in bits.items())
        if any(size > problem.limit(budget) * (1 + 1e-9) for budget in problem.budgets):
            continue
        totals = MODEL.evaluate_batch(net.with_bits(bits, bits if follow else None), configs)
        latency = float(np.where(totals["feasible"], totals["latency_ms"], np.inf).min())
        out.append((omega, latency))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("follow", [False, True])
def test_min_latency_equals_brute_force(seed: int, follow: bool) -> None:
    net, problem, groups = case(seed, (2, 4, 8) if follow else (4, 8, 16))
    points = brute_force(net, problem, groups, follow)
    omegas = sorted(o for o, _ in points)
    budget = omegas[len(omegas) // 3]
    best = min(lat for o, lat in points if o <= budget * (1 + 1e-12))
    result = hao_program(
        net, problem, space=SPACE, model=MODEL, omega_budget=budget, act_follows_weights=follow
    )
    assert result.latency_ms == pytest.approx(best, rel=1e-9)
    assert result.omega <= budget * (1 + 1e-9)
    assert result.report.feasible and result.report.latency_ms == result.latency_ms
    chosen = result.allocation.bits_dict()
    assert all(chosen[g[0]] == chosen[n] for g in groups for n in g)
    assert result.programs_solved <= result.candidates


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("follow", [False, True])
def test_min_omega_equals_brute_force(seed: int, follow: bool) -> None:
    net, problem, groups = case(10 + seed, (2, 4, 8) if follow else (4, 8, 16))
    points = brute_force(net, problem, groups, follow)
    latencies = sorted(lat for _, lat in points if np.isfinite(lat))
    budget = latencies[len(latencies) // 4]
    best = min(o for o, lat in points if lat <= budget * (1 + 1e-9))
    result = hao_program(
        net,
        problem,
        space=SPACE,
        model=MODEL,
        minimise="omega",
        latency_budget_ms=budget,
        act_follows_weights=follow,
    )
    assert result.omega == pytest.approx(best, rel=1e-9)
    assert result.latency_ms <= budget * (1 + 1e-9)


def test_infeasible_budgets_report_the_smallest_feasible_value() -> None:
    net, problem, groups = case(3, (2, 4, 8))
    points = brute_force(net, problem, groups, True)
    fastest = min(lat for _, lat in points)
    with pytest.raises(InfeasibleError, match="smallest feasible latency") as error:
        hao_program(
            net,
            problem,
            space=SPACE,
            minimise="omega",
            latency_budget_ms=fastest * 0.9,
            act_follows_weights=True,
        )
    reported = float(re.search(r"latency is ([0-9.e+-]+) ms", str(error.value)).group(1))  # type: ignore[union-attr]
    assert reported == pytest.approx(fastest, rel=1e-5)
    least = min(o for o, _ in points)
    with pytest.raises(InfeasibleError, match="smallest feasible summed omega") as error:
        hao_program(net, problem, space=SPACE, omega_budget=least * 0.5, act_follows_weights=True)
    assert float(str(error.value).rsplit(" ", 1)[1]) == pytest.approx(least, rel=1e-5)


def test_device_too_small_names_the_resource() -> None:
    net, problem, _ = case(0, (4, 8, 16))
    space = OverlaySpace(device="xc7z020", clocks_mhz=(100.0,), tm=(128,), tn=(64,), tr=(8,), tc=(8,))
    with pytest.raises(InfeasibleError, match="dsp"):
        hao_program(net, problem, space=space)


def test_rejects_mismatched_layers_and_missing_budget() -> None:
    net, problem, _ = case(0, (4, 8, 16))
    other = BitAllocationProblem.from_tables(omega={"c1": {8: 1.0}})
    with pytest.raises(CodesignError, match="weighted layers"):
        hao_program(net, other, space=SPACE)
    with pytest.raises(CodesignError, match="latency_budget_ms"):
        hao_program(net, problem, space=SPACE, minimise="omega")


def test_layer_cost_table_adds_up_on_the_dataflow_template() -> None:
    net = small_network(np.random.default_rng(0))
    model = DataflowModel()
    accel = DataflowSpace.for_device(default_catalog().get("xczu7ev")).sample(net, np.random.default_rng(1))
    table = layer_cost_table(model, net, accel, (2, 4, 8))
    names = [layer.name for layer in net.weighted_layers]
    assert set(table["latency_ms"]) == set(names)
    rng = np.random.default_rng(2)
    for _ in range(5):
        bits = {n: int(rng.choice([2, 4, 8])) for n in names}
        report = model.evaluate(net.with_bits(bits), accel)
        constant = sum(c.latency_ms for c in report.per_layer if c.name not in bits)
        assert sum(table["latency_ms"][n][b] for n, b in bits.items()) + constant == pytest.approx(
            report.latency_ms, rel=1e-12
        )
    # the table feeds a latency budget of the bit program
    omega = {n: {2: 1.0, 4: 0.1, 8: 0.0} for n in names}
    low, high = (
        sum(min(v.values()) for v in table["latency_ms"].values()),
        sum(max(v.values()) for v in table["latency_ms"].values()),
    )
    result = allocate_bits(
        BitAllocationProblem.from_tables(
            omega=omega, costs=table, budgets=[Budget("latency_ms", limit=(low + high) / 2)]
        )
    )
    assert result.values_dict()["latency_ms"] <= (low + high) / 2 * (1 + 1e-9)


def test_layer_cost_table_is_exact_on_the_overlay_at_uniform_bits() -> None:
    net = small_network(np.random.default_rng(1))
    accel = SPACE.config_at(5)
    table = layer_cost_table(MODEL, net, accel, (4, 8))
    for b in (4, 8):
        report = MODEL.evaluate(net.with_bits(dict.fromkeys(table["latency_ms"], b)), accel)
        by_name = {c.name: c for c in report.per_layer}
        assert all(table["latency_ms"][n][b] == by_name[n].latency_ms for n in table["latency_ms"])
        assert all(table["energy_mj"][n][b] == by_name[n].energy_mj for n in table["energy_mj"])

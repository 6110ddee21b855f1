"""Accelerator spaces and the exact latency-optimal accelerator, checked against brute force."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import AcceleratorConfig, HardwareReport, Layer, Network
from simulators import mckp
from simulators.dataflow import DataflowModel
from simulators.devices import DeviceCatalog
from simulators.folding import DataflowSpace, best_dataflow
from simulators.mckp import solve_mckp
from simulators.overlay import OverlayModel, OverlaySpace, best_overlay
from simulators.testing import conv_stack

DEVICE = """\
name: {name}
board: Test
resources: {{lut: {lut}, ff: 100000, bram18: {bram}, uram: 0, dsp: {dsp}}}
usable_fractions: {{lut: 1.0, ff: 1.0, bram18: 1.0, uram: 1.0, dsp: 1.0}}
max_clock_mhz: 250
default_clock_mhz: 200
offchip_gb_per_s: 4.0
static_power_w: 0.2
dsp_kind: dsp48e2
ddr_overhead: {{lut: 0, ff: 0, bram18: 0, uram: 0, dsp: 0}}
"""


def small_net() -> Network:
    layers = (
        Layer("c1", "conv", 3, 8, 12, 12, 3, 1, 1),
        Layer("c2", "conv", 8, 12, 12, 12, 3, 2, 1, weight_bits=4, act_bits=4),
        Layer("p", "pool", 12, 12, 6, 6, 2, 2, 0, mode="max"),
        Layer("fc", "linear", 12 * 9, 6),
    )
    return Network("small", layers, (3, 12, 12))


def catalog(tmp_path: Path, name: str, lut: int, bram: int, dsp: int) -> DeviceCatalog:
    path = tmp_path / f"{name}.yaml"
    path.write_text(DEVICE.format(name=name, lut=lut, bram=bram, dsp=dsp))
    return DeviceCatalog.load([path])


def brute_force(
    model: OverlayModel, network: Network, configs: tuple[AcceleratorConfig, ...]
) -> tuple[AcceleratorConfig, HardwareReport] | None:
    best: tuple[AcceleratorConfig, HardwareReport] | None = None
    for config in configs:
        report = model.evaluate(network, config)
        if report.feasible and (best is None or report.latency_ms < best[1].latency_ms):
            best = (config, report)
    return best


def test_overlay_space_enumeration_order_and_sampling() -> None:
    space = OverlaySpace(device="xczu3eg", clocks_mhz=(100.0, 200.0), tm=(4, 8), tn=(2,), tr=(4, 8), tc=(8,))
    configs = space.configs(small_net())
    assert len(configs) == len(space) == 8
    assert [space.config_at(i) for i in range(8)] == list(configs)
    grid = space.grid()
    assert [int(v) for v in grid["tm"]] == [c.get("tm") for c in configs]
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    assert space.sample(small_net(), rng1) == space.sample(small_net(), rng2)
    assert len(OverlaySpace(device="xczu3eg", clocks_mhz=(200.0,))) >= 1000
    with pytest.raises(CodesignError, match="tm must be"):
        OverlaySpace(device="x", clocks_mhz=(200.0,), tm=())


@pytest.mark.parametrize(("lut", "bram", "dsp"), [(20000, 40, 40), (9000, 12, 16), (200000, 400, 400)])
def test_best_overlay_equals_brute_force(tmp_path: Path, lut: int, bram: int, dsp: int) -> None:
    model = OverlayModel(catalog=catalog(tmp_path, "tiny", lut, bram, dsp))
    space = OverlaySpace(
        device="tiny",
        clocks_mhz=(150.0, 250.0, 300.0),
        tm=(4, 8, 16, 32),
        tn=(2, 4, 8, 16),
        tr=(4, 6, 12),
        tc=(4, 12),
    )
    net = small_net()
    expected = brute_force(model, net, space.configs(net))
    assert expected is not None
    config, report = best_overlay(model, net, space)
    assert config == expected[0]
    assert report == expected[1]


def test_best_overlay_default_space_equals_brute_force() -> None:
    stack20 = conv_stack(20)
    model = OverlayModel()
    space = OverlaySpace.for_device(model.catalog.get("xczu3eg"))
    configs = space.configs(stack20)
    assert len(configs) >= 1000
    totals = model.evaluate_batch(stack20, configs)
    latency = np.where(totals["feasible"], totals["latency_ms"], np.inf)
    config, report = model.best_accelerator(stack20, "xczu3eg")
    assert config == configs[int(np.argmin(latency))]
    assert report.feasible and report.latency_ms == latency.min()
    # and the scalar evaluate agrees with the batch on every configuration it could have chosen
    for j in np.argsort(latency)[:25]:
        assert model.evaluate(stack20, configs[j]).latency_ms == totals["latency_ms"][j]


def test_nothing_fits_names_tightest_resource(tmp_path: Path) -> None:
    model = OverlayModel(catalog=catalog(tmp_path, "nodsp", 200000, 400, 1))
    with pytest.raises(InfeasibleError, match="dsp needs at least 4 but 1 are usable"):
        model.best_accelerator(small_net(), "nodsp")
    with pytest.raises(InfeasibleError, match="clock_mhz 900 exceeds"):
        OverlayModel().best_accelerator(small_net(), "xczu3eg", clock_mhz=900)


def test_dataflow_space_choices_are_divisors() -> None:
    space = DataflowSpace(device="xczu3eg", clocks_mhz=(200.0,), max_pe=4, max_simd=9)
    choices = space.layer_choices(small_net())
    assert choices[0] == tuple(itertools.product((1, 2, 4), (1, 3, 9)))  # MH = 8, MW = 27
    assert choices[2] == tuple(itertools.product((1, 2, 3, 4), (1, 2, 4)))  # pool: MH = 12, MW = 4
    assert space.size(small_net()) == len(space.configs(small_net()))
    with pytest.raises(CodesignError, match="exceed max_configs"):
        DataflowSpace(device="xczu3eg", clocks_mhz=(200.0,), max_configs=10).configs(small_net())
    config = space.sample(small_net(), np.random.default_rng(0))
    assert DataflowModel().evaluate(small_net(), config).latency_ms > 0


@pytest.mark.parametrize(
    ("lut", "bram", "dsp"), [(6000, 30, 12), (3800, 30, 40), (100000, 8, 6), (20000, 60, 30)]
)
def test_best_dataflow_equals_brute_force(tmp_path: Path, lut: int, bram: int, dsp: int) -> None:
    model = DataflowModel(catalog=catalog(tmp_path, "tiny", lut, bram, dsp))
    space = DataflowSpace(device="tiny", clocks_mhz=(200.0,), max_pe=4, max_simd=9, ilp_gap_rel=0.0)
    net = small_net()
    configs = space.configs(net)
    totals = model.evaluate_batch(net, configs)
    assert totals["feasible"].any() and not totals["feasible"].all()
    latency = np.where(totals["feasible"], totals["latency_ms"], np.inf)
    config, report = best_dataflow(model, net, space)
    assert report.feasible
    assert report.latency_ms == pytest.approx(latency.min(), rel=1e-12)


def test_dataflow_nothing_fits(tmp_path: Path) -> None:
    model = DataflowModel(catalog=catalog(tmp_path, "tiny", 100000, 100, 2))
    with pytest.raises(InfeasibleError, match="dsp needs at least"):
        model.best_accelerator(small_net(), "tiny")


@pytest.mark.parametrize("force_ilp", [False, True])
def test_mckp_matches_brute_force_on_random_instances(
    force_ilp: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if force_ilp:  # no budget is small enough for the DP relaxation: every binding case goes to CBC
        monkeypatch.setattr(mckp, "DP_MAX_CAPACITY", -1)
    rng = np.random.default_rng(7)
    for _ in range(60):
        n_layers, n_res = int(rng.integers(2, 5)), int(rng.integers(1, 4))
        cycles = [rng.integers(1, 100, size=int(rng.integers(2, 6))) for _ in range(n_layers)]
        costs = [rng.integers(0, 20, size=(len(c), n_res)) for c in cycles]
        if rng.random() < 0.5:  # identical layers, which the integer program groups
            cycles.append(cycles[0].copy())
            costs.append(costs[0].copy())
        budget = rng.integers(5, 20 * len(cycles), size=n_res)
        best = None
        for combo in itertools.product(*(range(len(c)) for c in cycles)):
            used = sum(costs[i][j] for i, j in enumerate(combo))
            if (used <= budget).all():
                value = sum(int(cycles[i][j]) for i, j in enumerate(combo))
                best = value if best is None else min(best, value)
        solution = solve_mckp(cycles, costs, budget)
        got = None if solution is None else solution.choice
        if best is None:
            assert got is None
        else:
            assert got is not None
            assert (sum(costs[i][j] for i, j in enumerate(got)) <= budget).all()
            assert sum(int(cycles[i][j]) for i, j in enumerate(got)) == best


def test_an_unproven_multiple_choice_answer_says_so() -> None:
    """Budgets too large for the dynamic program go to the integer program; stopped at a positive gap its
    answer is flagged as not proven optimal, and at gap 0 it is proven."""
    from simulators.mckp import DP_MAX_CAPACITY

    rng = np.random.default_rng(7)
    cycles = [rng.integers(1_000, 100_000, size=6) for _ in range(8)]
    costs = [rng.integers(10_000, 40_000, size=(6, 2)) for _ in range(8)]
    budget = np.array([8 * 22_000, 8 * 24_000])
    assert (budget > DP_MAX_CAPACITY).all()
    exact = solve_mckp(cycles, costs, budget)
    assert exact is not None and exact.proven
    loose = solve_mckp(cycles, costs, budget, gap_rel=0.5)
    assert loose is not None and not loose.proven
    assert (sum(costs[i][j] for i, j in enumerate(loose.choice)) <= budget).all()

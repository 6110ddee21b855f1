"""The methods ``codesign hardware import`` chooses among: dead layers costed apart, fits on absolute error
for near-zero latencies, the choice by cross-validated rank, and a poor fit that warns and is noted."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from codesign.cli import hardware_import
from codesign.core.errors import CodesignError
from codesign.core.values import Layer, Network
from codesign.predictors.features import network_features
from codesign.predictors.latency import LatencyPredictor, LinearFit
from codesign.predictors.measured import (
    POOR_FIT_NOTE,
    Confidence,
    Method,
    candidate_methods,
    choose,
    load_measured,
)
from codesign.predictors.metrics import spearman
from search_spaces.nb201 import NB201Space


def _net(name: str, convs: int, dead: int) -> Network:
    layers = [Layer(f"c{i}", "conv", 8, 8, 8, 8, 3, padding=1) for i in range(convs + dead)]
    return Network(name, tuple(layers), (8, 8, 8), dead=tuple(f"c{i}" for i in range(convs, convs + dead)))


def run_import(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    hardware_import.register(parser.add_subparsers())
    args = parser.parse_args(["import", *argv])
    return int(args.handler(args))


def test_dead_layers_round_trip_and_must_exist() -> None:
    net = _net("n", 2, 1)
    assert Network.from_dict(net.to_dict()) == net
    assert "dead" not in _net("m", 2, 0).to_dict()  # unchanged records (and content hashes) without any
    with pytest.raises(CodesignError, match="dead names unknown layer"):
        Network("x", net.layers, dead=("nope",))


def test_dead_work_is_counted_apart() -> None:
    live, dead = network_features(_net("a", 3, 0)), network_features(_net("b", 2, 1))
    assert live["macs_k3"] == dead["macs_k3"] > 0  # totals count every layer
    assert live["dead_macs_k3"] == 0 and dead["dead_macs_k3"] == pytest.approx(dead["macs_k3"] / 3)


def test_dead_bases_cost_dead_work_apart() -> None:
    """A runtime that skips dead layers: ``live_kernels`` recovers it exactly, ``kernels`` cannot."""
    rng = np.random.default_rng(0)
    nets = [_net(f"n{i}", int(c), int(d)) for i, (c, d) in enumerate(rng.integers(1, 6, size=(12, 2)))]
    y = np.array([0.2 + 1.5 * (len(n) - len(n.dead)) for n in nets])
    accels = [None] * len(nets)
    for base, exact in (("live_kernels", True), ("kernels+dead", True), ("kernels", False)):
        predicted = LatencyPredictor(base=base, residual="none").fit(nets, accels, y).predict(nets, accels)
        assert (np.max(np.abs(predicted - y) / y) < 1e-6) == exact, base


def test_absolute_loss_is_not_dominated_by_near_zero_latencies() -> None:
    work = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array([0.001, 2.0, 3.0, 4.0, 5.0])  # the first network is folded away by its runtime
    relative = LinearFit.fit(("w",), work, y, relative=True)
    absolute = LinearFit.fit(("w",), work, y, relative=False)
    assert relative.predict(work)[0] < 0.01  # bent to fit the near-zero row
    assert abs(absolute.coef[0] - 1.0) < 0.1 and np.all(np.abs(absolute.predict(work)[1:] - y[1:]) < 0.3)
    with pytest.raises(CodesignError, match="loss 'huber' unknown"):
        LatencyPredictor(loss="huber").fit([_net("a", 1, 0)] * 3, [None] * 3, [1.0, 1.0, 1.0])


def test_candidates_and_choice() -> None:
    labels = [m.label for m in candidate_methods(10, prior=False, dead=False)]
    assert "kernels/none/absolute" in labels and not any("dead" in m or "live" in m for m in labels)
    assert not any("xgboost" in m for m in labels)  # trees need 20 rows
    with_dead = [m.base for m in candidate_methods(30, prior=False, dead=True)]
    assert {"kernels+dead", "live_kernels"} <= set(with_dead)
    assert {m.base for m in candidate_methods(30, prior=True, dead=True)} == {"prior", "prior+kernels"}
    a, b, c = (Method(base, "none", "absolute") for base in ("kernels", "scale", "live_kernels"))
    # the best rank wins; within the tolerance the lower error
    assert choose([(a, 0.95, 0.2), (b, 0.90, 0.01)]) == a
    assert choose([(a, 0.95, 0.2), (b, 0.945, 0.1), (c, 0.80, 0.0)]) == b


def test_poor_fit_warns_and_every_report_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    nets = [_net(f"n{i}", int(c), 0) for i, c in enumerate(rng.integers(1, 8, size=12))]
    noise = rng.uniform(1.0, 10.0, size=len(nets))  # latency unrelated to the work
    frame = pd.DataFrame({"layers": [n.to_dict() for n in nets], "latency_ms": noise})
    frame["layers"] = frame["layers"].map(json.dumps)
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert run_import([str(tmp_path / "t.csv"), "--name", "noisy", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: the latency fit is poor" in err
    model = load_measured("noisy", tmp_path)
    assert model.confidence.poor
    note = POOR_FIT_NOTE.format(name="noisy", spearman=model.confidence.cv_spearman, nmae=model.confidence.cv_nmae)
    assert note in model.evaluate(nets[0]).notes


def test_confidence_round_trips() -> None:
    c = Confidence("kernels/none/absolute", 10, 0.1, 0.5, 0.9, 0.8, 1.2, (("kernels/none/absolute", 0.9, 0.1),), 0.1, 2)
    assert Confidence.from_dict(c.to_dict()) == c and not c.poor
    assert Confidence(**{**c.to_dict(), "candidates": c.candidates, "cv_spearman": 0.5}).poor


def test_near_zero_cells_are_counted_and_ranked(nb201_table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pixel 3 latencies of NAS-Bench-201: cells whose output does not depend on their input take microseconds.
    With them in 40 training cells, the import still ranks 1,000 other cells, costing dead operations apart."""
    y = nb201_table["lat_ms_pixel3"].to_numpy()
    arch = nb201_table["arch_str"].to_numpy()
    order = np.random.default_rng(3).permutation(len(y))
    near = order[y[order] < 0.01][:3]
    train = np.concatenate([near, order[~np.isin(order, near)][:37]])
    test = order[~np.isin(order, train)][:1000]
    pd.DataFrame({"arch": arch[train], "latency_ms": y[train]}).to_csv(tmp_path / "p.csv", index=False)
    argv = [str(tmp_path / "p.csv"), "--name", "p3", "--space", "nb201", "--space-option", "prune=false", "--out", str(tmp_path)]
    assert run_import(argv) == 0
    out = capsys.readouterr().out
    assert "note: 3 measurement(s) below 1% of the median latency" in out
    model = load_measured("p3", tmp_path)
    assert model.confidence.near_zero == 3
    assert model.confidence.method.endswith("/absolute")  # a relative fit bends to the microsecond cells
    space = NB201Space(prune=False)
    nets = [space.network(space.from_id(a)) for a in arch[test]]
    chosen = spearman(y[test], model.latency.predict(nets, [None] * len(test)))
    assert chosen > 0.9
    train_nets = [space.network(space.from_id(a)) for a in arch[train]]
    relative = LatencyPredictor(base=model.latency.base, residual="none", loss="relative")
    relative.fit(train_nets, [None] * len(train), y[train])
    assert spearman(y[test], relative.predict(nets, [None] * len(test))) < chosen - 0.05


def test_equal_measurements_say_the_model_ranks_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nets = [_net(f"n{i}", i + 1, 0) for i in range(8)]
    frame = pd.DataFrame({"layers": [json.dumps(n.to_dict()) for n in nets], "latency_ms": [2.0] * len(nets)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning reaches the user
        assert run_import([str(tmp_path / "t.csv"), "--name", "flat", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "all 8 measured latencies are equal (2 ms)" in err and "fit is poor" not in err
    model = load_measured("flat", tmp_path)
    assert model.confidence.constant and not model.confidence.poor
    assert model.evaluate(_net("x", 20, 0)).latency_ms == pytest.approx(2.0, rel=1e-6)

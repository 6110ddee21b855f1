"""An experiment on a board known only from a table of measured latencies: import, then search on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from codesign.cli import main
from codesign.config.experiment import load_config
from codesign.experiment.run import run_experiment
from search_spaces.registry import make_space
from simulators.overlay import OverlayModel
from tests.helpers import digits_yaml

SLOWDOWN = 1.25  # the "board" is 25% slower than the simulator says, plus a fixed 2 us


def _board_table(path: Path, n: int, seed: int, *, scale: float = 1.0, offset_ms: float = 0.0) -> None:
    """A table of ``n`` MBConv networks "measured" on a board ``scale`` times slower than the overlay
    simulator's latency-optimal design, plus ``offset_ms``."""
    space = make_space("mbconv_digits", depths=[1], expansions=[1, 3])
    sim = OverlayModel()
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        net = space.network(space.sample(rng))
        _, report = sim.best_accelerator(net, "xczu3eg", 200.0)
        rows.append({"layers": json.dumps(net.to_dict()), "latency_ms": scale * report.latency_ms + offset_ms})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_search_on_a_measured_board(tmp_path: Path) -> None:
    space = make_space("mbconv_digits", depths=[1], expansions=[1, 3])
    sim = OverlayModel()
    _board_table(tmp_path / "board.csv", 24, 0, scale=SLOWDOWN, offset_ms=0.002)
    models = tmp_path / "models"
    args = ["hardware", "import", str(tmp_path / "board.csv"), "--name", "myboard", "--prior", "overlay", "--device", "xczu3eg", "--out", str(models)]
    assert main(args) == 0

    text = digits_yaml(tmp_path, trials=2).replace(
        "hardware: {model: overlay, device: xczu3eg, clock_mhz: 200}",
        f"hardware: {{model: 'measured:myboard', options: {{models_dir: {models}}}}}",
    )
    (tmp_path / "exp.yaml").write_text(text)
    result = run_experiment(load_config(tmp_path / "exp.yaml"), out_dir=tmp_path / "out")
    assert result.outcome.completed == 2
    for pair in result.front.pairs():
        assert pair.fidelity["latency_ms"] == "predicted"
        net = space.network(space.from_id(pair.candidate.arch_id), pair.candidate.weight_bits, pair.candidate.act_bits)
        simulated = sim.best_accelerator(net, "xczu3eg", 200.0)[1].latency_ms
        assert abs(pair.metrics["latency_ms"] - (SLOWDOWN * simulated + 0.002)) <= 0.2 * SLOWDOWN * simulated
    assert result.verification is not None and "latency_ms" in result.verification.unverified


def test_a_measured_model_without_prior_is_noted_and_refuses_resource_constraints(tmp_path: Path) -> None:
    """Without a prior a measured model knows no resources: a resource constraint on it is refused at
    build, and every report says that its resources are unknown."""
    from codesign.core.errors import ConfigError
    from codesign.search.build import build_problem

    _board_table(tmp_path / "board.csv", 16, 1)
    models = tmp_path / "models"
    assert main(["hardware", "import", str(tmp_path / "board.csv"), "--name", "bare", "--out", str(models)]) == 0
    text = digits_yaml(tmp_path, trials=1).replace(
        "hardware: {model: overlay, device: xczu3eg, clock_mhz: 200}",
        f"hardware: {{model: 'measured:bare', options: {{models_dir: {models}}}}}",
    )
    (tmp_path / "exp.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"^constraints\.dsp_fraction: measured model 'bare' was learned without a prior"):
        build_problem(load_config(tmp_path / "exp.yaml"))
    (tmp_path / "exp.yaml").write_text(text.replace('constraints: {dsp_fraction: "<= 0.8"}\n', ""))
    problem = build_problem(load_config(tmp_path / "exp.yaml"))
    _, candidate = problem.suggest(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask())
    evaluation = problem.evaluate(candidate)
    assert any("has no prior: resources are unknown" in note for note in evaluation.notes)

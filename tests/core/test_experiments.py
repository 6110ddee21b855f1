"""Every experiment shipped in experiments/ validates and resolves all its names."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign.config.experiment import load_config
from codesign.search.build import build_problem

EXPERIMENTS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))


def test_the_shipped_experiments_are_found() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"quickstart", "mnist_ultra96", "mnist_zcu102"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_builds(path: Path, nb201_table: Path) -> None:
    config = load_config(path)
    problem = build_problem(config)
    assert set(config.objective_names) <= set(problem.metric_names)

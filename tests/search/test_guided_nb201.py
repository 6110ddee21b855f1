"""The guided sampler on the NAS-Bench-201 table through the product's search loop: every proposal is a
new cell, and a short seeded run reaches clearly more of the true front's hypervolume than random search."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from codesign.config.experiment import ExperimentConfig, config_from_mapping
from codesign.core import pareto
from codesign.search.build import build_problem
from codesign.search.guided import guided_sampler_for
from codesign.search.loop import open_study, run_trials
from codesign.search.problem import TableProblem
from codesign.search.strategies import RandomStrategy, make_strategy
from search_spaces.nb201 import NB201Table

optuna.logging.set_verbosity(optuna.logging.WARNING)
EVALS = 100
FAST = {"n_estimators": 0, "batch_size": 5}


def config(table: Path, strategy: str, seed: int) -> ExperimentConfig:
    return config_from_mapping(
        {
            "name": f"nb201_{strategy}_{seed}",
            "space": {"architecture": "nb201"},
            "accuracy": {"method": "table", "metric": "cifar10_test_acc", "data_dir": str(table.resolve())},
            "objectives": {"accuracy": "maximize", "lat_ms_fpga": "minimize"},
            "strategy": {"name": strategy},
            "budget": {"trials": EVALS, "seed": seed},
        }
    )


@pytest.fixture(scope="module")
def problem(nb201_table: Path) -> TableProblem:
    built = build_problem(config(nb201_table, "random", 0))
    assert isinstance(built, TableProblem)
    return built


@pytest.fixture(scope="module")
def true_front(problem: TableProblem) -> tuple[np.ndarray, float]:
    table = problem.table
    assert isinstance(table, NB201Table)
    values = np.column_stack([table.column("cifar10_test_acc"), table.column("lat_ms_fpga")])
    losses = pareto.to_losses(values, ["maximize", "minimize"])
    front = losses[pareto.pareto_mask(losses)]
    reference = front.max(axis=0) + 0.01 * (losses.max(axis=0) - losses.min(axis=0))
    return reference, pareto.hypervolume(front, reference)


def search(problem: TableProblem, strategy: str, seed: int) -> optuna.Study:
    assert isinstance(problem.table, NB201Table)
    cfg = config(Path(problem.table.path), strategy, seed)
    sampler = guided_sampler_for(problem, seed=seed, options=FAST) if strategy == "hao" else make_strategy(strategy, {}).sampler(problem, seed)
    study = open_study(cfg, optuna.storages.InMemoryStorage(), sampler)
    run_trials(cfg, study, RandomStrategy().evaluator(problem), target=EVALS)
    return study


def hv_ratio(study: optuna.Study, true_front: tuple[np.ndarray, float]) -> float:
    reference, true_hv = true_front
    values = np.asarray([t.values for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))])
    losses = pareto.to_losses(values, ["maximize", "minimize"])
    return pareto.hypervolume(losses[pareto.pareto_mask(losses)], reference) / true_hv


def test_guided_beats_random_by_a_clear_margin(problem: TableProblem, true_front: tuple[np.ndarray, float]) -> None:
    guided, random = [], []
    for seed in range(3):
        study = search(problem, "hao", seed)
        arch_ids = [t.user_attrs.get("codesign.candidate", t.params) for t in study.trials]
        assert len({repr(a) for a in arch_ids}) == EVALS  # every look-up is a new cell
        guided.append(hv_ratio(study, true_front))
        random.append(hv_ratio(search(problem, "random", seed), true_front))
    # measured: guided 0.915 / 0.942 / 0.925, random 0.821 / 0.870 / 0.852
    assert statistics.median(guided) >= statistics.median(random) + 0.05, (guided, random)
    assert all(g > r for g, r in zip(guided, random, strict=True)), (guided, random)

"""One call from an experiment to its stored front: build the problem, open or resume the study, search,
and write ``front.csv`` / ``front.json`` into the output folder."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from codesign.config.experiment import ExperimentConfig
from codesign.results.front import ParetoFront, compute_front, trial_rows
from codesign.results.verify import VerificationReport, verify_front
from codesign.search.build import build, build_problem
from codesign.search.loop import Interruption, Progress, SearchOutcome, prepare_study, run_trials
from codesign.search.problem import Problem
from codesign.search.strategies import Strategy

FRONT_CSV = "front.csv"
FRONT_JSON = "front.json"


@dataclass(frozen=True)
class RunResult:
    outcome: SearchOutcome
    front: ParetoFront
    out_dir: Path
    files: tuple[Path, ...]
    verification: VerificationReport | None = None


def sampler_factory(strategy: Strategy, problem: Problem) -> Callable[[int], optuna.samplers.BaseSampler]:
    """Seed -> the strategy's sampler over ``problem``."""
    return lambda seed: strategy.sampler(problem, seed)


def front_of(config: ExperimentConfig, study: optuna.Study) -> ParetoFront:
    """The experiment's front over every completed trial, on the searched numbers."""
    _, rows = trial_rows(study)
    return compute_front(rows, study=study.study_name, objectives=config.objectives, constraints=config.constraints)


def write_front(front: ParetoFront, out_dir: Path, report: VerificationReport | None = None) -> tuple[Path, ...]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = front.to_csv(out_dir / FRONT_CSV)
    json_path = out_dir / FRONT_JSON
    front.to_json(json_path, extra={"verification": report.to_dict() if report else None})
    return csv_path, json_path


def run_experiment(
    config: ExperimentConfig,
    *,
    storage: str | None = None,
    out_dir: str | Path | None = None,
    trials: int | None = None,
    worker: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
    verify: bool = True,
    interruption: Interruption | None = None,
    strategy: Strategy | None = None,
) -> RunResult:
    """Search until the study holds ``trials`` (default: the experiment's budget) completed trials, then
    (``verify``) measure the front's pairs on the test split. The front is chosen on the numbers the
    search saw; the test numbers are shown beside them (``accuracy_test``) and never used to select.

    ``strategy`` replaces the experiment's named strategy by an object (e.g. one under test that is not
    registered); the study still records the experiment as written."""
    if strategy is None:
        problem, strategy = build(config)
    else:
        problem = build_problem(config)
    out = config.output_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study, _ = prepare_study(config, storage=storage, out_dir=out, make_sampler=sampler_factory(strategy, problem), worker=worker)
    target = trials if trials is not None else config.budget.trials
    evaluate = strategy.evaluator(problem, cache_dir=config.resolve(config.accuracy.cache_dir))
    label = f"{socket.gethostname()}:{os.getpid()}:{worker}"
    outcome = run_trials(
        config,
        study,
        evaluate,
        target=target,
        timeout_s=config.budget.timeout_s,
        on_progress=on_progress,
        worker=label,
        interruption=interruption,
    )
    front = front_of(config, study)
    report = None
    if verify and not outcome.interrupted:  # the trial budget, or the time budget, was used up
        # the chosen pairs are measured on the test split; the front is not re-chosen on those numbers
        report = verify_front(problem, study, front)
        if report is not None:
            front = front_of(config, study)  # the same pairs, now with their test numbers beside
    files = write_front(front, out, report)
    return RunResult(outcome, front, out, files, report)

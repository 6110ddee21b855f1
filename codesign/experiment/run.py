"""One call from an experiment to its stored front: build the problem, open or resume the study, search,
and write ``front.csv`` / ``front.json`` into the output folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from codesign.config.experiment import ExperimentConfig
from codesign.core.errors import CodesignError
from codesign.results.front import ParetoFront, compute_front, trial_rows
from codesign.results.verify import VerificationReport, verify_front
from codesign.search.build import build_problem, build_strategy
from codesign.search.loop import Interruption, Progress, SearchOutcome, prepare_study, run_trials
from codesign.search.problem import Problem
from codesign.search.storage import HEARTBEAT_S
from codesign.search.strategies import Strategy
from codesign.search.workers import worker_label

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


def prepare_out_dir(out: Path) -> Path:
    """``out``, created; a path that is a file, or cannot be made, is a one-line error."""
    if out.exists() and not out.is_dir():
        raise CodesignError(f"output folder {str(out)!r} is a file; name a folder with --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CodesignError(f"cannot create the output folder {str(out)[:200]!r}: {exc.strerror}") from None
    return out


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
    cache_dir: str | Path | None = None,
    heartbeat_s: int | None = HEARTBEAT_S,
    space: Any = None,
    data: Any = None,
) -> RunResult:
    """Search until the study holds ``trials`` (default: the experiment's budget) completed trials, then
    (``verify``) measure the front's pairs on the test split. The front is chosen on the numbers the
    search saw; the test numbers are shown beside them (``accuracy_test``) and never used to select.

    ``strategy`` replaces the experiment's named strategy by an object (e.g. one under test that is not
    registered); the study still records the experiment as written. ``cache_dir`` replaces the
    experiment's ``accuracy.cache_dir`` (a folder of this machine: workers on other machines need none of
    this one's files to compute the same numbers). ``heartbeat_s``: seconds between the heartbeats of a
    worker on a database storage (a trial without one for twice as long is failed as lost and retried).
    ``space`` and ``data`` replace the space and the data set the experiment names by objects (the model
    and data :func:`codesign.optimize_model` is given; see :func:`codesign.search.build.build_problem`).
    """
    config = config.with_cache_dir(cache_dir)
    if strategy is None:
        strategy = build_strategy(config)
    problem = build_problem(config, space=space, data=data)
    out = prepare_out_dir(config.output_dir(out_dir))
    prepared = prepare_study(
        config, storage=storage, out_dir=out, make_sampler=sampler_factory(strategy, problem), heartbeat_s=heartbeat_s
    )
    study = prepared.study
    target = trials if trials is not None else config.budget.trials
    evaluate = strategy.evaluator(problem, cache_dir=config.resolve(config.accuracy.cache_dir))
    outcome = run_trials(
        config,
        study,
        evaluate,
        target=target,
        timeout_s=config.budget.timeout_s,
        on_progress=on_progress,
        worker=worker_label(worker),
        interruption=interruption,
        lock=prepared.lock,
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

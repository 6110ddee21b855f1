"""The search loop: one Optuna study per experiment, resumable, shared by any number of workers.

Every worker opens the same study (``load_if_exists``) and stops when the study holds ``trials`` completed
trials, so an interrupted run resumes where it stopped and several workers share one budget. A trial
whose evaluation crashes is recorded as failed with its error and the search goes on; completed trials are
never redone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from codesign.config.experiment import ExperimentConfig, config_record
from codesign.core import pareto
from codesign.core.errors import CodesignError
from codesign.core.values import Evaluation
from codesign.search.storage import (
    ATTR_ERROR,
    ATTR_WORKER,
    load_experiment,
    open_storage,
    record_evaluation,
    save_experiment,
)

MAX_FAILURES_IN_A_ROW = 10
DEVICE_CONSTRAINT = "device_fit"


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress displays, sent after every finished trial."""

    completed: int
    target: int
    failed: int
    feasible: int
    front_size: int
    hypervolume: float
    last_error: str = ""


@dataclass
class Interruption:
    """A stop request shared with a signal handler (mutable on purpose).

    :meth:`request` (call it from a SIGINT/SIGTERM handler) interrupts a running evaluation at once, but
    never Optuna's storage writes: outside an evaluation it only asks the loop to stop once the current
    trial is saved, so a stop never leaves a half-written trial or a held journal lock behind."""

    requested: bool = False
    in_evaluation: bool = False

    def request(self) -> None:
        self.requested = True
        if self.in_evaluation:
            raise KeyboardInterrupt


@dataclass(frozen=True)
class SearchOutcome:
    study_name: str
    completed: int
    failed: int
    interrupted: bool


def derived_seed(seed: int, *parts: object) -> int:
    """A seed for one sampler instance, so a resumed or second worker does not replay the first's draws."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def open_study(config: ExperimentConfig, storage: optuna.storages.BaseStorage, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """Create the experiment's study or reopen it, refusing one made by a different experiment."""
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        sampler=sampler,
        directions=list(config.directions),  # type: ignore[arg-type]  # validated as minimize/maximize
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != list(config.directions):
        raise CodesignError(
            f"study {config.name!r} exists with directions {[d.name.lower() for d in study.directions]}; "
            f"this experiment has {list(config.directions)} (use another name or output folder)"
        )
    identity = json.loads(json.dumps(config_record(config)["identity"]))  # as stored: tuples become lists
    try:
        stored = load_experiment(study)
    except CodesignError:
        save_experiment(study, config_record(config))
        return study
    if stored.get("identity") != identity:
        changed = sorted(k for k in identity if stored.get("identity", {}).get(k) != identity[k])
        raise CodesignError(
            f"study {config.name!r} already holds a different experiment (changed: {', '.join(changed)}); "
            "use another name or output folder"
        )
    return study


class _Tracker:
    """Running counts for the progress display, fed one finished trial at a time."""

    def __init__(self, config: ExperimentConfig, target: int) -> None:
        self.names = config.objective_names
        self.directions = config.directions
        self.target = target
        self.losses: list[np.ndarray] = []
        self.feasible: list[bool] = []
        self.failed = 0
        self.failed_in_a_row = 0
        self.last_error = ""

    def add(self, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE and trial.values is not None:
            self.losses.append(pareto.to_losses(np.asarray([trial.values]), self.directions)[0])
            self.feasible.append(all(v <= 0 for v in trial.constraints.values()))
            self.failed_in_a_row = 0
        elif trial.state == TrialState.FAIL:
            self.failed += 1
            self.failed_in_a_row += 1
            self.last_error = str(trial.user_attrs.get(ATTR_ERROR, "")) or self.last_error

    def snapshot(self) -> Progress:
        n = len(self.losses)
        if n == 0:
            return Progress(0, self.target, self.failed, 0, 0, 0.0, self.last_error)
        losses = np.vstack(self.losses)
        feasible = np.asarray(self.feasible)
        mask = pareto.pareto_mask(losses, np.where(feasible, 0.0, 1.0)[:, None])
        hv = 0.0
        if feasible.any() and np.isfinite(losses[feasible]).all():
            hv = pareto.hypervolume(losses[mask], pareto.reference_point(losses[feasible]).tolist())
        return Progress(n, self.target, self.failed, int(feasible.sum()), int(mask.sum()), hv, self.last_error)


Evaluator = Callable[[optuna.Trial], Evaluation]


def run_trials(
    config: ExperimentConfig,
    study: optuna.Study,
    evaluate: Evaluator,
    *,
    target: int,
    timeout_s: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    worker: str = "",
    interruption: Interruption | None = None,
) -> SearchOutcome:
    """Run trials until the study holds ``target`` completed ones. ``evaluate`` proposes and evaluates one
    candidate from a live trial; what it returns is recorded, with the experiment's constraints and the
    device fit as Optuna constraints (feasible when <= 0)."""
    tracker = _Tracker(config, target)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        tracker.add(t)
    tracker.failed_in_a_row = 0
    if on_progress is not None:
        on_progress(tracker.snapshot())

    stop = interruption if interruption is not None else Interruption()

    def objective(trial: optuna.Trial) -> Sequence[float]:
        stop.in_evaluation = True
        try:
            if stop.requested:
                raise KeyboardInterrupt
            evaluation = evaluate(trial)
        except (KeyboardInterrupt, optuna.TrialPruned):
            raise
        except Exception as exc:  # a crashed evaluation fails this trial only; the error is kept on it
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            trial.set_user_attr(ATTR_ERROR, message)
            raise _EvaluationFailed(message) from exc
        finally:
            stop.in_evaluation = False
        record_evaluation(trial, evaluation)
        if worker:
            trial.set_user_attr(ATTR_WORKER, worker)
        for constraint in config.constraints:
            if constraint.metric not in evaluation.metrics:
                raise CodesignError(f"constraints.{constraint.metric}: the problem reports no such metric")
            trial.set_constraint(constraint.metric, constraint.value(evaluation.metrics[constraint.metric]))
        trial.set_constraint(DEVICE_CONSTRAINT, float(len(evaluation.violations)))
        return [evaluation.metrics[name] for name in config.objective_names]

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        tracker.add(trial)
        if on_progress is not None:
            on_progress(tracker.snapshot())
        if stop.requested or tracker.failed_in_a_row >= MAX_FAILURES_IN_A_ROW or _completed(study) >= target:
            study.stop()

    interrupted = False
    if _completed(study) < target:
        try:
            study.optimize(objective, timeout=timeout_s, callbacks=[after], catch=(_EvaluationFailed,), gc_after_trial=False)
        except KeyboardInterrupt:
            interrupted = True
    interrupted = interrupted or stop.requested
    if tracker.failed_in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise CodesignError(
            f"{MAX_FAILURES_IN_A_ROW} evaluations in a row failed, stopping (completed trials are kept); last error: {tracker.last_error}"
        )
    return SearchOutcome(study.study_name, _completed(study), tracker.failed, interrupted)


class _EvaluationFailed(Exception):
    pass


def _completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def prepare_study(
    config: ExperimentConfig,
    *,
    storage: str | None,
    out_dir: Path,
    make_sampler: Callable[[int], optuna.samplers.BaseSampler],
    worker: int = 0,
) -> tuple[optuna.Study, int]:
    """Open the study with a sampler seeded from the experiment seed, the trials already in the study and
    the worker index (so resumed runs and parallel workers draw new points). Returns the study and the
    number of trials it already held."""
    backend = open_storage(storage if storage is not None else out_dir)
    try:
        existing = len(backend.get_all_trials(backend.get_study_id_from_name(config.name), deepcopy=False))
    except KeyError:
        existing = 0
    seed = config.budget.seed if existing == 0 and worker == 0 else derived_seed(config.budget.seed, existing, worker)
    return open_study(config, backend, make_sampler(seed)), existing

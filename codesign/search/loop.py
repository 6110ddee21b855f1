"""The search loop: one Optuna study per experiment, resumable, shared by any number of workers.

Every worker opens the same study (``load_if_exists``) and runs trials until the study holds ``trials``
completed ones: an interrupted run resumes where it stopped, and several workers share one budget, met
exactly (:mod:`codesign.search.workers`: the budget lock, lost workers, retries). A trial whose
evaluation crashes or returns NaN is recorded as failed with its reason and the search goes on; ten in a
row stop the run. Completed trials are never redone; an interrupted or lost trial's candidate is evaluated
again, in its place (:func:`codesign.search.workers.trial_position`), so a resumed seeded run ends with the
front of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from codesign.config.experiment import ExperimentConfig, config_record
from codesign.core import pareto
from codesign.core.errors import CodesignError
from codesign.core.values import Evaluation
from codesign.search.storage import (
    ATTR_ERROR,
    ATTR_INTERRUPTED,
    ATTR_WORKER,
    journal_path,
    load_experiment,
    open_storage,
    record_evaluation,
    save_experiment,
)
from codesign.search.workers import (
    BudgetLock,
    ThreadLock,
    budget_lock,
    is_lost_reason,
    queue_interrupted,
    reap_lost,
    stale_trial_callback,
    trial_position,
    worker_label,
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
    trial is saved, so a stop never leaves a half-written trial or a held journal lock behind. The
    interrupted trial is recorded with the signal's name and evaluated again by the next run."""

    requested: bool = False
    in_evaluation: bool = False
    reason: str = "interrupted"

    def request(self, signum: int | None = None) -> None:
        self.requested = True
        if signum is not None:
            self.reason = f"interrupted by {signal.Signals(signum).name}"
        if self.in_evaluation:
            raise KeyboardInterrupt


@dataclass(frozen=True)
class SearchOutcome:
    study_name: str
    completed: int
    failed: int
    interrupted: bool


def derived_seed(seed: int, *parts: object) -> int:
    """A seed for one sampler instance, from the experiment seed and what the instance is for."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class PositionSeeded(optuna.samplers.BaseSampler):
    """An Optuna sampler rebuilt for each trial, seeded from the experiment seed and the trial's position
    (:func:`codesign.search.workers.trial_position`): what trial *k* proposes depends only on the seed and
    the trials before it, so a resumed run or a retried trial proposes what an uninterrupted run would.
    Samplers that derive their draws from the position themselves (``seeds_each_trial = True``, like the
    ``hao`` strategy's guided sampler) are used as they are."""

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._position: int | None = None
        self._inner = make(derived_seed(seed, "position", 0))

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        position = trial_position(study.get_trials(deepcopy=False), trial.number)
        if position != self._position:
            self._inner = self._make(derived_seed(self._seed, "position", position))
            self._position = position
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def seeded_sampler(make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> optuna.samplers.BaseSampler:
    """``make(seed)`` when its sampler seeds each trial from its position itself, else :class:`PositionSeeded`."""
    sampler = make(seed)
    if getattr(sampler, "seeds_each_trial", False):
        return sampler
    return PositionSeeded(make, seed)


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
    if study.metric_names != list(config.objective_names):  # named in optuna-dashboard and study.trials_dataframe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objective_names))
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


def _is_fault(trial: FrozenTrial) -> bool:
    """A failed evaluation (not an interruption or a lost worker)."""
    reason = trial.user_attrs.get(ATTR_ERROR)
    return trial.state == TrialState.FAIL and reason is not None and not trial.user_attrs.get(ATTR_INTERRUPTED) and not is_lost_reason(str(reason))


class _Tracker:
    """Running counts for the progress display, fed one finished trial at a time."""

    def __init__(self, config: ExperimentConfig, target: int) -> None:
        self.names = config.objective_names
        self.directions = config.directions
        self.target = target
        self.losses: list[np.ndarray] = []
        self.feasible: list[bool] = []
        self.failed = 0
        self.recent_faults: list[str] = []
        self.last_error = ""

    @property
    def failed_in_a_row(self) -> int:
        return len(self.recent_faults)

    def add(self, trial: FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE and trial.values is not None:
            self.losses.append(pareto.to_losses(np.asarray([trial.values]), self.directions)[0])
            self.feasible.append(all(v <= 0 for v in trial.constraints.values()))
            self.recent_faults = []
        elif _is_fault(trial):
            self.failed += 1
            self.last_error = str(trial.user_attrs.get(ATTR_ERROR, "")) or self.last_error
            self.recent_faults.append(self.last_error)

    def fault_summary(self) -> str:
        counts = Counter(self.recent_faults)
        return "; ".join(f"{n}x {reason}" if n > 1 else reason for reason, n in counts.most_common())

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


def _reaped_counts(study: optuna.Study) -> tuple[int, int]:
    """Completed and running trials, after failing those of dead workers (under the budget lock)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    if reap_lost(study, holding_lock=True, trials=trials):
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    completed = sum(t.state == TrialState.COMPLETE for t in trials)
    return completed, len(trials) - completed


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
    lock: BudgetLock | None = None,
    poll_s: float = 0.5,
) -> SearchOutcome:
    """Run trials until the study holds ``target`` completed trials. ``evaluate`` proposes and evaluates one
    candidate from a live trial; what it returns is recorded, with the experiment's constraints and the
    device fit as Optuna constraints (feasible when <= 0).

    ``lock`` is the study's budget lock (:func:`prepare_study` gives it; the default only excludes threads
    of this process). While other workers run the last trials this one waits, ``poll_s`` seconds at a
    time, in case one of them fails or is lost. ``worker`` labels the trials (default: host, process)."""
    tracker = _Tracker(config, target)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        tracker.add(t)
    tracker.recent_faults = []
    if on_progress is not None:
        on_progress(tracker.snapshot())
    stop = interruption if interruption is not None else Interruption()
    lock = lock if lock is not None else ThreadLock()
    label = worker or worker_label()
    with lock:
        reap_lost(study, holding_lock=True)
        queue_interrupted(study)

    def objective(trial: optuna.Trial) -> Sequence[float]:
        trial.set_user_attr(ATTR_WORKER, label)
        lock.release()  # the trial is proposed and labelled: other workers may create theirs
        stop.in_evaluation = True
        try:
            if stop.requested:
                raise KeyboardInterrupt
            evaluation = evaluate(trial)
        except KeyboardInterrupt:
            stop.in_evaluation = False
            trial.set_user_attr(ATTR_ERROR, stop.reason)
            trial.set_user_attr(ATTR_INTERRUPTED, True)
            raise
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # a crashed evaluation fails this trial only; the error is kept on it
            stop.in_evaluation = False
            first = str(exc).splitlines()[0] if str(exc).strip() else ""
            raise _fault(trial, f"{type(exc).__name__}: {first}" if first else type(exc).__name__) from exc
        finally:
            stop.in_evaluation = False
        values = [evaluation.metrics.get(name, math.nan) for name in config.objective_names]
        missing = [name for name in config.objective_names if name not in evaluation.metrics]
        if missing:
            raise _fault(trial, f"the evaluation reports no {missing[0]!r} (an objective)")
        bad = [name for name, v in zip(config.objective_names, values, strict=True) if math.isnan(float(v))]
        if bad:
            raise _fault(trial, f"objective {bad[0]} is NaN")
        record_evaluation(trial, evaluation)
        for constraint in config.constraints:
            if constraint.metric not in evaluation.metrics:
                raise CodesignError(f"constraints.{constraint.metric}: the problem reports no such metric")
            trial.set_constraint(constraint.metric, constraint.value(evaluation.metrics[constraint.metric]))
        trial.set_constraint(DEVICE_CONSTRAINT, float(len(evaluation.violations)))
        return values

    def after(study: optuna.Study, trial: FrozenTrial) -> None:
        tracker.add(trial)
        if on_progress is not None:
            on_progress(tracker.snapshot())

    interrupted = False
    started = time.monotonic()
    while not stop.requested and tracker.failed_in_a_row < MAX_FAILURES_IN_A_ROW:
        if timeout_s is not None and time.monotonic() - started >= timeout_s:
            break
        wait = False
        lock.acquire()
        try:
            completed, running = _reaped_counts(study)
            if completed >= target:
                break
            if completed + running >= target:
                wait = True  # the others are running the last trials; one may fail and leave a slot
            else:
                study.optimize(objective, n_trials=1, callbacks=[after], catch=(_EvaluationFailed,), gc_after_trial=False)
        except KeyboardInterrupt:
            interrupted = True
            break
        finally:
            lock.release()
        if wait:
            try:
                time.sleep(poll_s)
            except KeyboardInterrupt:
                interrupted = True
                break
    interrupted = interrupted or stop.requested
    if tracker.failed_in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise CodesignError(
            f"{MAX_FAILURES_IN_A_ROW} evaluations in a row failed, stopping (completed trials are kept): {tracker.fault_summary()}"
        )
    return SearchOutcome(study.study_name, _completed(study), tracker.failed, interrupted)


class _EvaluationFailed(Exception):
    pass


def _fault(trial: optuna.Trial, message: str) -> _EvaluationFailed:
    trial.set_user_attr(ATTR_ERROR, message)
    return _EvaluationFailed(message)


def _completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


@dataclass(frozen=True)
class PreparedStudy:
    """An opened study and its budget lock."""

    study: optuna.Study
    lock: BudgetLock = field(default_factory=ThreadLock)


def prepare_study(
    config: ExperimentConfig,
    *,
    storage: str | None,
    out_dir: Path,
    make_sampler: Callable[[int], optuna.samplers.BaseSampler],
    heartbeat_s: int | None = None,
) -> PreparedStudy:
    """Open the study with a sampler seeded from the experiment seed (:func:`seeded_sampler`: each trial
    from its position, so resumed runs and parallel workers draw new points and a resumed run draws what an
    uninterrupted one would), and the study's budget lock. ``heartbeat_s``: see
    :func:`codesign.search.storage.open_storage`."""
    target = storage if storage is not None else out_dir
    backend = open_storage(target, heartbeat_s=heartbeat_s, on_stale=stale_trial_callback(2 * heartbeat_s) if heartbeat_s else None)
    study = open_study(config, backend, seeded_sampler(make_sampler, config.budget.seed))
    return PreparedStudy(study, budget_lock(backend, config.name, journal_path(target)))

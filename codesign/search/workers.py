"""Workers sharing one study: the trial budget, lost workers, retries and trial positions.

**Budget.** A worker creates a trial only while it holds the study's budget lock, and only while the study
holds fewer completed plus running trials than the budget; it releases the lock once the trial is proposed
and labelled with the worker. So any number of workers meet the budget exactly, and a worker whose
colleagues are running the last trials waits (one of them may fail and leave a slot) instead of stopping
early. The lock is a lock file beside a journal (Optuna's own ``JournalFileOpenLock``), a PostgreSQL
advisory lock (released by the server when its holder dies), a lock file beside an SQLite database, or a
thread lock for an in-memory study. Other databases get no lock (:class:`NoLock`, shown as a warning):
workers that start trials at the same moment may then overshoot the budget.

**Lost workers.** A trial whose worker died is failed with the reason ``worker lost`` and queued once
more (its parameters enqueued; a retry of a lost trial is not retried again, so a candidate that kills its
worker cannot kill them all):

- on a database storage, by Optuna's heartbeat: a running trial whose heartbeat is older than the grace
  period is failed by the next worker that starts a trial (:func:`stale_trial_callback`);
- on a journal (Optuna's journal has no heartbeat), by the process table: a running trial labelled with
  this host and a process that no longer runs (workers of one journal share a host);
- on any storage, a running trial that has no worker label while the reaper holds the budget lock: its
  creator died between creating and labelling it, which happens only under the lock.

**Interruptions.** A trial stopped by Ctrl-C or SIGTERM is failed with that reason and queued again by
the next run, so the resumed run evaluates the same candidate.

**Positions.** A retry takes the place of the trial it repeats: :func:`trial_position` is the trial's
number minus the retries up to it. Samplers draw from the experiment seed and the position, so a resumed
run proposes exactly what an uninterrupted run with the same seed proposes.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from codesign.core.errors import CodesignWarning
from codesign.search.storage import (
    ATTR_ERROR,
    ATTR_INTERRUPTED,
    ATTR_LOST,
    ATTR_RETRY_OF,
    ATTR_WORKER,
)

LOCK_GRACE_S = 30
"""A budget lock file older than this is taken as left by a dead worker (Optuna's journal-lock default)."""
LOST = "worker lost"
"""How every lost worker's reason begins."""
LOST_BEFORE_LABEL = f"{LOST} before the trial started"


def is_lost_reason(reason: str) -> bool:
    """Whether a failed trial's reason says its worker was lost (not that its evaluation failed)."""
    return reason.startswith(LOST)


def worker_label(index: int = 0) -> str:
    """``host:pid:index``: who runs a trial (stored on it; the journal's liveness check reads it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


# -- the budget lock --------------------------------------------------------------------------------------


class BudgetLock(ABC):
    """Mutual exclusion between the workers of one study while a trial is created. ``release`` may be
    called when the lock is not held (it then does nothing)."""

    @abstractmethod
    def acquire(self) -> None: ...

    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> BudgetLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileLock(BudgetLock):
    """A lock file (``O_CREAT | O_EXCL``, Optuna's ``JournalFileOpenLock``); one left by a dead worker is
    broken after :data:`LOCK_GRACE_S` seconds."""

    def __init__(self, path: str | Path) -> None:
        from optuna.storages.journal import JournalFileOpenLock

        self.path = Path(path)
        self._lock = JournalFileOpenLock(str(self.path), grace_period=LOCK_GRACE_S)
        self._held = False

    def acquire(self) -> None:
        self._lock.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


class AdvisoryLock(BudgetLock):
    """A PostgreSQL session advisory lock keyed by the study name, held on its own connection (the server
    releases it when the connection of a dead worker closes)."""

    def __init__(self, storage: RDBStorage, study_name: str) -> None:
        self.engine = storage.engine
        digest = hashlib.sha256(f"codesign.budget:{study_name}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._connection: Any = None

    def acquire(self) -> None:
        from sqlalchemy import text

        connection = self.engine.connect()
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
        connection.commit()
        self._connection = connection

    def release(self) -> None:
        from sqlalchemy import text

        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            connection.commit()
            connection.close()
        except Exception:  # the connection broke: dropping it ends the session, and the lock with it
            connection.invalidate()


class ThreadLock(BudgetLock):
    """For an in-memory study, which only threads of this process share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        if self._lock.locked():
            self._lock.release()


class NoLock(BudgetLock):
    """No mutual exclusion (a database without a supported lock): the budget may be overshot."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


def budget_lock(storage: BaseStorage, study_name: str, journal: Path | None = None) -> BudgetLock:
    """The budget lock of ``study_name`` on ``storage`` (``journal``: the journal file, when it is one)."""
    if isinstance(storage, JournalStorage) and journal is not None:
        return FileLock(journal.with_name(f"{journal.name}.{_safe(study_name)}.budget.lock"))
    if isinstance(storage, RDBStorage):
        dialect = storage.engine.dialect.name
        if dialect == "postgresql":
            return AdvisoryLock(storage, study_name)
        database = storage.engine.url.database
        if dialect == "sqlite" and database and database != ":memory:":
            return FileLock(f"{database}.{_safe(study_name)}.budget.lock")
        if dialect == "sqlite":
            return ThreadLock()
        warnings.warn(
            f"storage {dialect}: no budget lock for this database (PostgreSQL, SQLite and journal files have "
            "one); workers that start trials at the same moment may overshoot the trial budget",
            CodesignWarning,
            stacklevel=2,
        )
        return NoLock()
    return ThreadLock()


def _safe(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


# -- lost workers and retries ------------------------------------------------------------------------------


def trial_position(trials: Sequence[FrozenTrial], number: int) -> int:
    """``number`` minus the retries numbered up to it: a retry stands where the trial it repeats stood."""
    return number - sum(1 for t in trials if t.number <= number and ATTR_RETRY_OF in t.user_attrs)


def _retried(trials: Sequence[FrozenTrial]) -> set[int]:
    out = set()
    for t in trials:
        record = t.user_attrs.get(ATTR_RETRY_OF)
        if isinstance(record, dict) and isinstance(record.get("trial"), int):
            out.add(record["trial"])
    return out


def _is_retry_of_lost(trial: FrozenTrial) -> bool:
    record = trial.user_attrs.get(ATTR_RETRY_OF)
    return isinstance(record, dict) and record.get("why") == "lost"


def queue_retry(study: optuna.Study, trial: FrozenTrial, *, why: str, reason: str) -> None:
    """Enqueue ``trial``'s parameters again, recording what it repeats and why."""
    study.enqueue_trial(dict(trial.params), user_attrs={ATTR_RETRY_OF: {"trial": trial.number, "why": why, "reason": reason}})


def record_lost(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Keep why ``trial`` was lost (on the study: a failed trial cannot be changed) and queue it once."""
    study.set_user_attr(f"{ATTR_LOST}{trial.number}", reason)
    if not _is_retry_of_lost(trial) and trial.number not in _retried(study.get_trials(deepcopy=False)):
        queue_retry(study, trial, why="lost", reason=reason)


def stale_trial_callback(grace_s: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Optuna's heartbeat callback: a trial failed for a stale heartbeat is a lost worker's."""

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        record_lost(study, trial, f"{LOST}: no heartbeat for {grace_s} s")

    return on_stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _dead_pid_here(label: object, host: str) -> int | None:
    """The process id in worker ``label`` when it names a process on ``host`` that no longer runs."""
    if not isinstance(label, str) or label.count(":") < 2:
        return None
    where, pid, _ = label.rsplit(":", 2)
    return int(pid) if where == host and pid.isdigit() and not _alive(int(pid)) else None


def _fail(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    storage = study._storage  # noqa: SLF001 - Optuna has no public way to fail another process's trial
    try:
        storage.set_trial_user_attr(trial._trial_id, ATTR_ERROR, reason)  # noqa: SLF001
        return bool(storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))  # noqa: SLF001
    except UpdateFinishedTrialError:  # another worker got there first
        return False


def reap_lost(study: optuna.Study, *, holding_lock: bool, trials: Sequence[FrozenTrial] | None = None) -> int:
    """Fail the running trials of dead workers (see the module docstring) and queue them once; returns
    how many this call failed. ``trials``: the study's trials, when the caller has just read them."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    heartbeat = is_heartbeat_enabled(study._storage)  # noqa: SLF001
    if heartbeat:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        trials = None  # it may have failed some
    host = socket.gethostname()
    lost = 0
    running = [t for t in (trials if trials is not None else study.get_trials(deepcopy=False)) if t.state == TrialState.RUNNING]
    for trial in running:
        label = trial.user_attrs.get(ATTR_WORKER)
        pid = None if heartbeat else _dead_pid_here(label, host)
        if label is None and holding_lock:
            reason = LOST_BEFORE_LABEL
        elif pid is not None:
            reason = f"{LOST}: process {pid} on {host} ended"
        else:
            continue
        if _fail(study, trial, reason):
            lost += 1
            record_lost(study, study._storage.get_trial(trial._trial_id), reason)  # noqa: SLF001
    return lost


def queue_interrupted(study: optuna.Study) -> int:
    """Enqueue once more every interrupted trial not queued yet; returns how many."""
    trials = study.get_trials(deepcopy=False)
    retried = _retried(trials)
    queued = 0
    for trial in trials:
        if trial.state == TrialState.FAIL and trial.user_attrs.get(ATTR_INTERRUPTED) and trial.number not in retried:
            queue_retry(study, trial, why="interrupted", reason=str(trial.user_attrs.get(ATTR_ERROR, "interrupted")))
            queued += 1
    return queued


def lost_reasons(study: optuna.Study) -> dict[int, str]:
    """Trial number -> why its worker was lost, for trials failed by the heartbeat."""
    prefix = ATTR_LOST
    return {int(k[len(prefix):]): str(v) for k, v in study.user_attrs.items() if k.startswith(prefix) and k[len(prefix):].isdigit()}

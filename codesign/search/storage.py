"""Study storage: one Optuna study per experiment.

The embedded default is a journal file (``study.journal``) in the experiment's output folder: no server,
safe for several processes on one host. Any Optuna storage URL (``postgresql://...``, ``mysql://...``,
``sqlite:///...``) is accepted for many workers on many machines.

Each trial records the whole candidate, every metric and the fidelity of each number as user attributes,
and the study records the experiment, so a front can be rebuilt from the storage alone.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from codesign.core.errors import CodesignError
from codesign.core.values import Evaluation, LayerRecord
from codesign.search.journal import check_journal

JOURNAL_NAME = "study.journal"
URL_SCHEMES = ("postgresql", "mysql", "sqlite", "oracle", "mssql")
URL_ALIASES = {"postgres": "postgresql"}
"""Scheme spellings accepted for the SQLAlchemy name (``postgres://`` is what Heroku and libpq print)."""

ATTR_CANDIDATE = "codesign.candidate"
ATTR_METRICS = "codesign.metrics"
ATTR_FIDELITY = "codesign.fidelity"
ATTR_NOTES = "codesign.notes"
ATTR_LAYERS = "codesign.layers"
ATTR_SUMMARY = "codesign.summary"
ATTR_VIOLATIONS = "codesign.violations"
ATTR_ERROR = "codesign.error"
ATTR_WORKER = "codesign.worker"
ATTR_EXPERIMENT = "codesign.experiment"
ATTR_VERIFIED = "codesign.verified"
"""Prefix of the study attributes holding each verified pair (``codesign.verified.<trial>``; studies
written before it hold one ``codesign.verified`` mapping, still read)."""
ATTR_INTERRUPTED = "codesign.interrupted"
ATTR_RETRY_OF = "codesign.retry_of"
ATTR_LOST = "codesign.lost."
"""Prefix of the study attributes that keep why a trial's worker was lost (``codesign.lost.<number>``)."""
HEARTBEAT_S = 10
"""Default seconds between a database worker's heartbeats; a trial without one for twice as long is lost."""


def is_url(text: str) -> bool:
    """Whether ``text`` names a storage by URL (``scheme://...``) rather than a path; an unknown scheme is
    an error, not a folder named after the URL."""
    if "://" not in text:
        return False
    scheme = text.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in URL_SCHEMES and scheme not in URL_ALIASES:
        raise CodesignError(
            f"storage {_redact(text)!r}: unknown scheme {scheme!r}; expected one of {', '.join(URL_SCHEMES)} "
            "(postgres:// is read as postgresql://), or a path to a folder or .journal file"
        )
    return True


def normalize_url(url: str) -> str:
    """``url`` with an aliased scheme (:data:`URL_ALIASES`) spelled as SQLAlchemy expects."""
    scheme, rest = url.split("://", 1)
    base, plus, driver = scheme.partition("+")
    return f"{URL_ALIASES.get(base.lower(), base)}{plus}{driver}://{rest}"


def journal_path(target: str | Path) -> Path | None:
    """The journal file that ``target`` names (a ``.journal`` file, or ``study.journal`` in a folder);
    None for a URL."""
    text = str(target)
    if is_url(text):
        return None
    path = Path(text)
    return path if path.suffix == ".journal" else path / JOURNAL_NAME


def open_storage(
    target: str | Path,
    *,
    heartbeat_s: int | None = None,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> BaseStorage:
    """A storage from a URL, a journal file, or a folder holding ``study.journal``.

    A folder or journal path that does not exist yet is created (for writing); use
    :func:`open_existing_storage` to read. On a database, ``heartbeat_s`` turns on Optuna's heartbeat
    (a running trial without a heartbeat for twice as long is failed and passed to ``on_stale``); a journal
    has none (:mod:`codesign.search.workers` checks its workers' processes instead).
    """
    text = str(target)
    path = journal_path(text)
    if path is None:
        return _database(normalize_url(text), heartbeat_s=heartbeat_s, on_stale=on_stale)
    if path.parent.exists() and not path.parent.is_dir():
        raise CodesignError(f"storage {text!r}: {str(path.parent)!r} is a file, not a folder")
    if path.exists() and not path.is_file():
        raise CodesignError(f"storage {text!r}: {str(path)!r} is a folder, not a journal file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CodesignError(f"storage {text!r}: cannot create {str(path.parent)!r} ({exc.strerror})") from None
    if path.is_file():
        check_journal(path, repair=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _database(
    url: str,
    attempts: int = 5,
    *,
    heartbeat_s: int | None = None,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> RDBStorage:
    """An RDB storage, retried: workers starting together on an empty database race to create Optuna's
    tables, and all but one fail once before finding them."""
    beat: dict[str, Any] = {}
    if heartbeat_s is not None:
        beat = {"heartbeat_interval": heartbeat_s, "grace_period": 2 * heartbeat_s, "heartbeat_stale_trial_callback": on_stale}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **beat)
        except ImportError as exc:
            raise CodesignError(f"storage {_redact(url)!r}: database driver missing ({exc}); install codesign[postgres]") from None
        except Exception as exc:  # sqlalchemy raises many types for a bad URL or an unreachable server
            if attempt == attempts - 1:
                raise CodesignError(f"storage {_redact(url)!r}: cannot connect: {str(exc).splitlines()[0]}") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def open_existing_storage(target: str | Path) -> BaseStorage:
    """Like :func:`open_storage`, but a missing folder or file is an error, not a new empty study."""
    text = str(target)
    if not is_url(text):
        path = Path(text)
        journal = path if path.suffix == ".journal" else path / JOURNAL_NAME
        if not journal.is_file():
            raise CodesignError(f"no study found at {text!r} (expected a storage URL, a .journal file, or a folder holding {JOURNAL_NAME})")
        check_journal(journal, repair=False)
        return JournalStorage(JournalFileBackend(str(journal)))
    return open_storage(text)


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def study_names(storage: BaseStorage) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))


def pick_study(storage: BaseStorage, name: str | None) -> str:
    """``name`` if the storage has it; the only study when ``name`` is None; otherwise an error listing them."""
    names = study_names(storage)
    if name is not None:
        if name not in names:
            raise CodesignError(f"study {name!r} not found; the storage has: {', '.join(names) or 'no study'}")
        return name
    if len(names) == 1:
        return names[0]
    if not names:
        raise CodesignError("the storage holds no study")
    raise CodesignError(f"the storage holds several studies, choose one with --study: {', '.join(names)}")


def record_evaluation(trial: optuna.trial.BaseTrial, evaluation: Evaluation) -> None:
    """Store everything about one evaluated candidate on its trial."""
    trial.set_user_attr(ATTR_CANDIDATE, evaluation.candidate.to_dict())
    trial.set_user_attr(ATTR_METRICS, {k: json_float(v) for k, v in evaluation.metrics.items()})
    trial.set_user_attr(ATTR_FIDELITY, {k: v.value for k, v in evaluation.fidelity.items()})
    trial.set_user_attr(ATTR_VIOLATIONS, list(evaluation.violations))
    if evaluation.notes:
        trial.set_user_attr(ATTR_NOTES, list(evaluation.notes))
    trial.set_user_attr(ATTR_SUMMARY, evaluation.candidate.summary())
    if evaluation.layers:
        trial.set_user_attr(ATTR_LAYERS, [json_layer(layer) for layer in evaluation.layers])


def json_layer(layer: LayerRecord) -> dict[str, Any]:
    return {k: json_float(v) if isinstance(v, float) else v for k, v in layer.to_dict().items()}


def stored_layers(trial: FrozenTrial) -> tuple[LayerRecord, ...]:
    """The per-layer breakdown stored with ``trial`` (empty for a trial recorded without one)."""
    return tuple(LayerRecord.from_dict(row) for row in trial.user_attrs.get(ATTR_LAYERS) or ())


def json_float(value: float) -> float | str:
    """Optuna stores user attributes as JSON: keep infinities readable rather than invalid."""
    value = float(value)
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def verified_records(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """Trial number (as text) -> its verification record (test-split metrics and the searched ones)."""
    attrs = study.user_attrs
    records = {str(k): v for k, v in (attrs.get(ATTR_VERIFIED) or {}).items() if isinstance(v, dict)}
    prefix = f"{ATTR_VERIFIED}."
    for key, value in attrs.items():
        if key.startswith(prefix) and isinstance(value, dict):
            records[key[len(prefix):]] = value
    return records


def save_verified(study: optuna.Study, trial: int, record: Mapping[str, Any]) -> None:
    """Store one pair's verification under its own key (workers verifying at once never lose each other's)."""
    study.set_user_attr(f"{ATTR_VERIFIED}.{trial}", json.loads(json.dumps(dict(record))))


def save_experiment(study: optuna.Study, experiment: Mapping[str, Any]) -> None:
    """Remember the experiment on the study (checked on resume, used to rebuild the front)."""
    study.set_user_attr(ATTR_EXPERIMENT, json.loads(json.dumps(experiment)))


def load_experiment(study: optuna.Study) -> dict[str, Any]:
    data = study.user_attrs.get(ATTR_EXPERIMENT)
    if not isinstance(data, dict):
        raise CodesignError(f"study {study.study_name!r} was not written by codesign (no experiment recorded)")
    return data

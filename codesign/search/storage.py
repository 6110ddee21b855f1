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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from codesign.core.errors import CodesignError
from codesign.core.values import Evaluation
from codesign.search.journal import check_journal

JOURNAL_NAME = "study.journal"
URL_SCHEMES = ("postgresql", "mysql", "sqlite", "oracle", "mssql")
URL_ALIASES = {"postgres": "postgresql"}
"""Scheme spellings accepted for the SQLAlchemy name (``postgres://`` is what Heroku and libpq print)."""

ATTR_CANDIDATE = "codesign.candidate"
ATTR_METRICS = "codesign.metrics"
ATTR_FIDELITY = "codesign.fidelity"
ATTR_NOTES = "codesign.notes"
ATTR_VIOLATIONS = "codesign.violations"
ATTR_ERROR = "codesign.error"
ATTR_WORKER = "codesign.worker"
ATTR_EXPERIMENT = "codesign.experiment"
ATTR_VERIFIED = "codesign.verified"


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


def open_storage(target: str | Path) -> BaseStorage:
    """A storage from a URL, a journal file, or a folder holding ``study.journal``.

    A folder or journal path that does not exist yet is created (for writing); use
    :func:`open_existing_storage` to read.
    """
    text = str(target)
    if is_url(text):
        return _database(normalize_url(text))
    path = Path(text)
    if path.suffix != ".journal":
        path.mkdir(parents=True, exist_ok=True)
        path = path / JOURNAL_NAME
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        check_journal(path, repair=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _database(url: str, attempts: int = 5) -> RDBStorage:
    """An RDB storage, retried: workers starting together on an empty database race to create Optuna's
    tables, and all but one fail once before finding them."""
    for attempt in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
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


def json_float(value: float) -> float | str:
    """Optuna stores user attributes as JSON: keep infinities readable rather than invalid."""
    value = float(value)
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def save_experiment(study: optuna.Study, experiment: Mapping[str, Any]) -> None:
    """Remember the experiment on the study (checked on resume, used to rebuild the front)."""
    study.set_user_attr(ATTR_EXPERIMENT, json.loads(json.dumps(experiment)))


def load_experiment(study: optuna.Study) -> dict[str, Any]:
    data = study.user_attrs.get(ATTR_EXPERIMENT)
    if not isinstance(data, dict):
        raise CodesignError(f"study {study.study_name!r} was not written by codesign (no experiment recorded)")
    return data

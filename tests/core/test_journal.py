"""Corrupt journals: a partial last record is moved aside before anything is appended, a garbled line is a
one-line error naming it, and the trials before either are kept."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from codesign.cli import main
from codesign.core.errors import CodesignError, CodesignWarning
from codesign.search.journal import check_journal
from codesign.search.storage import is_url, normalize_url, open_existing_storage, open_storage


def _study(folder: Path, trials: int) -> Path:
    storage = open_storage(folder)
    study = optuna.create_study(study_name="s", storage=storage)
    for i in range(trials):
        study.add_trial(optuna.trial.create_trial(params={"x": float(i)}, distributions={"x": optuna.distributions.FloatDistribution(0, 10)}, value=float(i)))
    return folder / "study.journal"


def _trials(target: Path) -> int:
    return len(optuna.load_study(study_name="s", storage=open_existing_storage(target)).trials)


def test_partial_last_record_is_moved_aside_before_appending(tmp_path: Path) -> None:
    journal = _study(tmp_path, 3)
    intact = journal.read_bytes()
    journal.write_bytes(intact + b'{"op_code": 4, "worker_id": "w", "study_id": 0, "dat' + b"\x00" * 64)
    with pytest.warns(CodesignWarning, match="last record is incomplete .* ignored, the .* records before it are intact"):
        assert _trials(tmp_path) == 3  # reading leaves the file alone
    assert journal.read_bytes() != intact
    with pytest.warns(CodesignWarning, match="moved to .*study.journal.partial"):
        storage = open_storage(tmp_path)
    assert journal.read_bytes() == intact
    assert b"\x00" in (tmp_path / "study.journal.partial").read_bytes()
    study = optuna.load_study(study_name="s", storage=storage)
    study.add_trial(optuna.trial.create_trial(params={"x": 4.0}, distributions={"x": optuna.distributions.FloatDistribution(0, 10)}, value=4.0))
    assert _trials(tmp_path) == 4  # the resumed study appends cleanly and stays readable


@pytest.mark.parametrize(
    ("garbage", "problem"),
    [(b"{not json", "not valid JSON"), (b"\x00" * 16, "NUL bytes"), (b'{"op_code": 99}', "unknown operation 99"), (b"[1, 2]", "not a record")],
)
def test_garbled_line_names_its_number_and_writes_nothing(tmp_path: Path, garbage: bytes, problem: str) -> None:
    journal = _study(tmp_path, 2)
    lines = journal.read_bytes().split(b"\n")
    lines.insert(3, garbage)
    journal.write_bytes(b"\n".join(lines))
    before = journal.read_bytes()
    with pytest.raises(CodesignError, match=rf"line 4 is not a journal record \({problem}\); the 3 records before it are intact"):
        check_journal(journal, repair=True)
    with pytest.raises(CodesignError, match="line 4"):
        open_storage(tmp_path)
    assert journal.read_bytes() == before


def test_commands_on_a_garbled_journal_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = _study(tmp_path, 2)
    journal.write_bytes(journal.read_bytes() + b"garbage\n")
    assert main(["pareto", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a journal record" in err[0]


def test_storage_urls_accept_postgres_and_refuse_unknown_schemes(tmp_path: Path) -> None:
    assert is_url("postgres://u:p@h/db") and normalize_url("postgres://u:p@h/db") == "postgresql://u:p@h/db"
    assert normalize_url("postgres+psycopg2://h/db") == "postgresql+psycopg2://h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert not is_url(str(tmp_path / "runs"))
    with pytest.raises(CodesignError, match=r"storage 'postgre://u:\*\*\*@h/db': unknown scheme 'postgre'; expected one of postgresql"):
        open_storage("postgre://u:secret@h/db")
    assert not (Path.cwd() / "postgre:").exists()

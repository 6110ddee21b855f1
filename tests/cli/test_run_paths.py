"""``codesign run`` and ``worker`` on bad paths and options: one-line errors before any trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign.cli import main
from tests.helpers import digits_yaml


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_out_naming_a_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(tmp_path))
    taken = tmp_path / "taken"
    taken.write_text("a file the user keeps")
    code, err = _run(["run", str(exp), "--out", str(taken), "--quiet"], capsys)
    assert code == 2 and err.strip() == f"codesign: error: output folder {str(taken)!r} is a file; name a folder with --out"
    assert taken.read_text() == "a file the user keeps"


def test_a_journal_inside_a_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(tmp_path))
    taken = tmp_path / "taken"
    taken.write_text("x")
    code, err = _run(["run", str(exp), "--storage", str(taken / "study.journal"), "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert code == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--heartbeat", "0"], "--heartbeat: expected a positive integer, got 0"),
        (["--trials", "-3"], "--trials: expected a positive integer, got -3"),
        (["--trials", "true"], "--trials: expected a positive integer, got 'true'"),
        (["--worker", "-1"], "--worker: expected a non-negative integer, got -1"),
    ],
)
def test_bad_numbers_are_argparse_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(tmp_path))
    with pytest.raises(SystemExit) as stop:
        main(["run", str(exp), *args])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_worker_needs_a_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(tmp_path))
    with pytest.raises(SystemExit) as stop:
        main(["worker", str(exp)])
    assert stop.value.code == 2 and "--storage" in capsys.readouterr().err

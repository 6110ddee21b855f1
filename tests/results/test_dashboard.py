"""A study written by a run opens in optuna-dashboard: the real server, started on the run's journal file,
serves the study over its HTTP API with the objectives named, the candidate on each trial and the verified
numbers as a note on each trial of the front. A note that cannot be written costs the note, never the
record, and says so in one line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from codesign.cli import main
from codesign.config import load_config
from codesign.experiment import RunResult, run_experiment
from codesign.results.dashboard import NOTE_TITLE, save_trial_note
from codesign.search.storage import (
    ATTR_CANDIDATE,
    journal_path,
    open_existing_storage,
    open_storage,
    verified_records,
)
from tests.helpers import digits_yaml, postgres_url

STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Run:
    folder: Path
    journal: Path
    study: optuna.Study
    result: RunResult


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("dashboard")
    (tmp / "exp.yaml").write_text(digits_yaml(tmp, trials=4, strategy="random"))
    result = run_experiment(load_config(tmp / "exp.yaml"), out_dir=tmp / "out")
    journal = journal_path(tmp / "out")
    assert journal is not None and journal.is_file()
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(journal))
    return Run(tmp, journal, study, result)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@contextmanager
def dashboard_server(storage: Path, log: Path) -> Iterator[str]:
    """``optuna-dashboard STORAGE`` on 127.0.0.1 (the console script installed beside this Python), its
    base URL once it answers; always stopped afterwards."""
    script = Path(sys.executable).with_name("optuna-dashboard")
    assert script.is_file(), f"optuna-dashboard is a dependency; its console script is missing at {script}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen([str(script), str(storage), "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"optuna-dashboard exited with {proc.returncode}:\n{log.read_text()}")
            try:
                _get(f"{base}/api/meta")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"optuna-dashboard did not answer on {base} within {STARTUP_TIMEOUT_S:g} s:\n{log.read_text()}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _attrs(serialized: list[dict[str, str]]) -> dict[str, str]:
    return {a["key"]: a["value"] for a in serialized}


def test_the_dashboard_serves_the_run_with_names_candidates_and_verified_notes(run: Run, tmp_path: Path) -> None:
    study = run.study
    front = {p.trial: p for p in run.result.front.pairs()}
    records = verified_records(study)
    assert front and set(records) == {str(n) for n in front}
    with dashboard_server(run.journal, tmp_path / "dashboard.log") as base:
        listed = [s for s in _get(f"{base}/api/studies")["study_summaries"] if s["study_name"] == "dg"]
        assert len(listed) == 1
        detail = _get(f"{base}/api/studies/{listed[0]['study_id']}")
    assert len(detail["trials"]) == len(study.trials) == 4
    assert detail["objective_names"] == ["accuracy", "latency_ms"]
    assert detail["directions"] == ["maximize", "minimize"]
    for served in detail["trials"]:
        trial = study.trials[served["number"]]
        candidate = json.loads(_attrs(served["user_attrs"])[ATTR_CANDIDATE])
        assert candidate == trial.user_attrs[ATTR_CANDIDATE]
        assert {"arch_id", "weight_bits", "act_bits", "accelerator"} <= set(candidate)
        note = served["note"]["body"]
        if served["number"] not in front:
            assert note == "", "only the verified trials of the front get a note"
            continue
        record = records[str(served["number"])]
        searched, test = record["searched"], record["metrics"]
        assert note.startswith(f"### {NOTE_TITLE}")
        assert f"| accuracy | {searched['accuracy']:.4g} | {test['accuracy']:.4g} |" in note
        assert f"| fp32_accuracy | {searched['fp32_accuracy']:.4g} | {test['fp32_accuracy']:.4g} |" in note
        assert f"| latency_ms | {searched['latency_ms']:.4g} | {record['fidelity']['latency_ms']} |" in note
        assert f"| dsp_fraction | {searched['dsp_fraction']:.4g} |" in note  # the constrained metric
        assert f"`{candidate['arch_id']}`" in note


def _storage_target(kind: str, tmp_path: Path) -> str:
    if kind == "journal":
        return str(tmp_path / "notes.journal")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'notes.db'}"
    return postgres_url()


def _wsgi_get(storage: optuna.storages.BaseStorage, path: str) -> Any:
    """A GET on optuna-dashboard's WSGI app, in this process."""
    from optuna_dashboard import wsgi

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    status: list[str] = []
    body = b"".join(wsgi(storage)(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status == ["200 OK"], (status, body[:300])
    return json.loads(body)


@pytest.mark.parametrize("kind", ["journal", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_finished_trial_takes_a_note_on_every_storage(kind: str, tmp_path: Path) -> None:
    storage = open_storage(_storage_target(kind, tmp_path))
    study = optuna.create_study(study_name=f"notes-{uuid.uuid4().hex[:8]}", storage=storage, directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=3)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    save_trial_note(study, 1, "first")
    save_trial_note(study, 1, "### second\n\n" + "x" * 5000)  # longer than one system attribute holds
    trials = _wsgi_get(storage, f"/api/studies/{study._study_id}")["trials"]
    notes = {t["number"]: t["note"] for t in trials}
    assert notes[1] == {"version": 2, "body": "### second\n\n" + "x" * 5000}
    assert notes[0]["body"] == notes[2]["body"] == ""


def test_a_note_that_fails_keeps_the_record_and_says_so_in_one_line(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna_dashboard._note

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the storage refused the note\nsecond line of the error")

    monkeypatch.setattr(optuna_dashboard._note, "save_note_with_version", refuse)
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(run.folder, name="dgfail", trials=4))  # the module run's cache: no training
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    study = optuna.load_study(study_name="dgfail", storage=open_existing_storage(tmp_path / "out"))
    records = verified_records(study)
    assert records, "the front was verified"
    said = [line for line in err if "optuna-dashboard note was not written" in line]
    assert len(said) == len(records), err
    for number in records:
        line = next(line for line in said if line.startswith(f"codesign: warning: trial {number}:"))
        assert f"codesign.verified.{number}" in line and "RuntimeError: the storage refused the note)" in line
    assert not any("second line" in line or "Traceback" in line for line in err)
    assert not any("note" in k for k in study._storage.get_study_system_attrs(study._study_id))

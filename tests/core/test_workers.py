"""Workers that die, interruptions and the exact budget, with real worker processes on real storages: the
PostgreSQL server that .ci/run starts (``CODESIGN_TEST_POSTGRES_URL``) and journal files.

Each evaluation trains a small network on scikit-learn's digits, so a trial lasts long enough to be
killed or interrupted in the middle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from codesign.core.errors import CodesignError
from codesign.results.front import load_front
from codesign.search.storage import ATTR_ERROR, ATTR_RETRY_OF, ATTR_WORKER, open_existing_storage
from codesign.search.workers import lost_reasons
from tests.helpers import digits_yaml

REPO = Path(__file__).resolve().parents[2]


def _codesign(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "codesign", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _wait_for(check: Callable[[], FrozenTrial | None], timeout_s: float, what: str) -> FrozenTrial:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _running_trial_of(study: Callable[[], optuna.Study], pid: int, after_completed: int) -> Callable[[], FrozenTrial | None]:
    """A check: a trial that process ``pid`` is evaluating, once the study holds ``after_completed`` trials."""

    def check() -> FrozenTrial | None:
        try:
            trials = study().get_trials(deepcopy=False)
        except (KeyError, CodesignError):  # the study, or its journal, is not made yet
            return None
        if sum(t.state == TrialState.COMPLETE for t in trials) < after_completed:
            return None
        for t in trials:
            if t.state == TrialState.RUNNING and str(t.user_attrs.get(ATTR_WORKER, "")).split(":")[1:2] == [str(pid)]:
                return t
        return None

    return check


def _finish(procs: list[subprocess.Popen[str]], timeout_s: float = 600) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout_s)
        out.append((p.returncode, stdout, stderr))
    return out


def _check_retried_once(study: optuna.Study, victim: FrozenTrial, reason: str) -> None:
    trials = study.get_trials(deepcopy=False)
    lost = next(t for t in trials if t.number == victim.number)
    assert lost.state == TrialState.FAIL
    assert reason in (lost.user_attrs.get(ATTR_ERROR) or lost_reasons(study).get(lost.number, ""))
    retries = [t for t in trials if (t.user_attrs.get(ATTR_RETRY_OF) or {}).get("trial") == victim.number]
    assert len(retries) == 1, "the lost candidate is retried exactly once"
    # the retry repeats every decision the lost trial had made (it may have died before making them all)
    assert retries[0].state == TrialState.COMPLETE and lost.params.items() <= retries[0].params.items()


def _check_trials(study: optuna.Study, budget: int) -> None:
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == budget, "the budget is met exactly"
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert all("codesign.metrics" in t.user_attrs for t in done)


def _front_pairs(front_json: Path) -> list[tuple[int, str, dict[str, float]]]:
    data = json.loads(front_json.read_text())
    return [(p["trial"], p["key"], p["metrics"]) for p in data["pairs"]]


@pytest.mark.postgres
def test_three_workers_survive_one_killed_in_the_middle_of_a_trial(tmp_path: Path, pg_url: str) -> None:
    name = f"killed-{uuid.uuid4().hex[:8]}"
    exp = tmp_path / "exp.yaml"
    budget = 9
    exp.write_text(digits_yaml(tmp_path, name=name, trials=budget))
    workers = [
        _codesign("worker", str(exp), "--storage", pg_url, "--out", str(tmp_path / f"out{i}"), "--cache", str(tmp_path / f"cache{i}"),
                  "--heartbeat", "1", "--worker", str(i), "--quiet", cwd=tmp_path)
        for i in range(3)
    ]
    victim_proc = workers[1]
    study = lambda: optuna.load_study(study_name=name, storage=pg_url)  # noqa: E731
    victim = _wait_for(_running_trial_of(study, victim_proc.pid, after_completed=2), 300, "worker 1 in the middle of a trial")
    victim_proc.send_signal(signal.SIGKILL)
    victim_proc.wait()
    results = _finish([workers[0], workers[2]])
    for code, _, err in results:
        assert code == 0, err
    final = study()
    _check_trials(final, budget)
    _check_retried_once(final, victim, "worker lost: no heartbeat for 2 s")
    rebuilt = load_front(pg_url, study=name)
    written = [_front_pairs(tmp_path / f"out{i}" / "front.json") for i in (0, 2)]
    assert written[0] == written[1] == [(p.trial, p.candidate.key, p.metrics) for p in rebuilt.pairs()]


def test_two_workers_on_one_journal_meet_the_budget_exactly(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(tmp_path, name="pair", trials=5))
    out = tmp_path / "out"
    results = _finish([_codesign("run", str(exp), "--out", str(out), "--worker", str(i), "--quiet", cwd=tmp_path) for i in range(2)])
    for code, _, err in results:
        assert code == 0, err
    study = optuna.load_study(study_name="pair", storage=open_existing_storage(out))
    _check_trials(study, 5)
    assert len({t.user_attrs[ATTR_WORKER] for t in study.get_trials(states=(TrialState.COMPLETE,))}) == 2
    # each worker printed the whole front, the last trial included
    front = [(p.trial, p.candidate.key, p.metrics) for p in load_front(out).pairs()]
    assert _front_pairs(out / "front.json") == front


def test_a_killed_journal_worker_is_noticed_by_its_process_and_retried_once(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(tmp_path, name="lost", trials=5))
    out = tmp_path / "out"
    victim_proc = _codesign("run", str(exp), "--out", str(out), "--worker", "1", "--quiet", cwd=tmp_path)
    study = lambda: optuna.load_study(study_name="lost", storage=open_existing_storage(out))  # noqa: E731
    victim = _wait_for(_running_trial_of(study, victim_proc.pid, after_completed=1), 300, "the worker in the middle of a trial")
    victim_proc.send_signal(signal.SIGKILL)
    victim_proc.wait()
    [(code, _, err)] = _finish([_codesign("run", str(exp), "--out", str(out), "--quiet", cwd=tmp_path)])
    assert code == 0, err
    final = study()
    _check_trials(final, 5)
    _check_retried_once(final, victim, f"worker lost: process {victim_proc.pid}")


def test_sigint_in_a_trial_then_resume_ends_with_the_uninterrupted_front(tmp_path: Path) -> None:
    """The default strategy on real training: the interrupted candidate is evaluated again in its place
    and the resumed run ends with the same pairs, each trained from scratch in its own cache folder."""
    text = digits_yaml(tmp_path, name="sig", trials=5, strategy="hao")
    whole, split = tmp_path / "whole", tmp_path / "split"
    (tmp_path / "whole.yaml").write_text(text.replace(str(tmp_path / "cache"), str(tmp_path / "cache-whole")))
    (tmp_path / "split.yaml").write_text(text.replace(str(tmp_path / "cache"), str(tmp_path / "cache-split")))
    reference = _codesign("run", str(tmp_path / "whole.yaml"), "--out", str(whole), "--quiet", cwd=tmp_path)

    first = _codesign("run", str(tmp_path / "split.yaml"), "--out", str(split), "--quiet", cwd=tmp_path)
    study = lambda: optuna.load_study(study_name="sig", storage=open_existing_storage(split))  # noqa: E731
    stopped = _wait_for(_running_trial_of(study, first.pid, after_completed=2), 300, "a trial in the middle of its evaluation")
    first.send_signal(signal.SIGINT)
    [(code, _, err)] = _finish([first])
    assert code == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    trial = next(t for t in study().get_trials() if t.number == stopped.number)
    assert trial.state == TrialState.FAIL and trial.user_attrs[ATTR_ERROR] == "interrupted by SIGINT"

    [(code, _, err)] = _finish([_codesign("run", str(tmp_path / "split.yaml"), "--out", str(split), "--quiet", cwd=tmp_path)])
    assert code == 0, err
    [(code, _, err)] = _finish([reference])
    assert code == 0, err
    _check_retried_once(study(), stopped, "interrupted by SIGINT")
    pairs = lambda folder: [(p.candidate.key, p.metrics) for p in load_front(folder).pairs()]  # noqa: E731
    assert pairs(split) == pairs(whole) and pairs(whole)

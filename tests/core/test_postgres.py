"""Distributed mode against a real PostgreSQL server (``CODESIGN_TEST_POSTGRES_URL``; .ci/run starts one):
several worker processes share one study and one trial budget."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from codesign.results.front import load_front
from codesign.search.storage import ATTR_WORKER
from tests.helpers import nb201_yaml

pytestmark = pytest.mark.postgres


def test_workers_share_one_study_and_one_budget(tmp_path: Path, nb201_table: Path, pg_url: str) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    exp = tmp_path / "exp.yaml"
    exp.write_text(nb201_yaml(nb201_table, name=name, trials=16))
    cmd = [sys.executable, "-m", "codesign", "run", str(exp), "--storage", pg_url, "--out", str(tmp_path / "out"), "--quiet"]
    workers = [subprocess.Popen([*cmd, "--worker", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [w.communicate(timeout=300) for w in workers]
    for w, (_, err) in zip(workers, results, strict=True):
        assert w.returncode == 0, err
    study = optuna.load_study(study_name=name, storage=pg_url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    # a worker creates a trial only under the study's lock and while completed + running < budget
    assert len(done) == 16
    assert len({t.number for t in done}) == len(done)
    assert len({t.user_attrs[ATTR_WORKER] for t in done}) >= 2
    params = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(params)) >= len(params) // 2  # workers are seeded apart: their streams differ
    front = load_front(pg_url, study=name)
    assert len(front) >= 1
    assert set(front.table["trial"]) <= {t.number for t in done}


def test_a_second_run_against_the_database_resumes(tmp_path: Path, nb201_table: Path, pg_url: str) -> None:
    from codesign.config.experiment import load_config
    from codesign.experiment.run import run_experiment

    name = f"resume-{uuid.uuid4().hex[:8]}"
    exp = tmp_path / "exp.yaml"
    exp.write_text(nb201_yaml(nb201_table, name=name, trials=6))
    config = load_config(exp)
    first = run_experiment(config, storage=pg_url, out_dir=tmp_path / "out")
    again = run_experiment(config, storage=pg_url, out_dir=tmp_path / "out", trials=10)
    assert (first.outcome.completed, again.outcome.completed) == (6, 10)


def test_the_postgres_alias_reaches_the_same_server(pg_url: str) -> None:
    from codesign.search.storage import open_storage

    name = f"alias-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=pg_url)
    alias = "postgres" + pg_url[len("postgresql"):] if pg_url.startswith("postgresql") else pg_url
    assert name in [s.study_name for s in optuna.get_all_study_summaries(open_storage(alias))]

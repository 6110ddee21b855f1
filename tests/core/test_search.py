"""The search loop on the real NAS-Bench-201 table: resume, crashes, infeasibility, storage round-trips."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from codesign.config.experiment import config_from_mapping, load_config
from codesign.core.errors import CodesignError
from codesign.experiment.run import run_experiment, sampler_factory
from codesign.results.front import load_front
from codesign.search.build import build_problem, build_strategy
from codesign.search.loop import prepare_study, run_trials
from codesign.search.storage import ATTR_ERROR, open_existing_storage
from tests.helpers import nb201_yaml


def config_at(tmp_path: Path, text: str, name: str = "exp.yaml"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def _prepared(config, out: Path):  # type: ignore[no-untyped-def]
    """The experiment's problem and its study opened in ``out`` with the experiment's strategy."""
    problem = build_problem(config)
    return problem, prepare_study(config, storage=None, out_dir=out, make_sampler=sampler_factory(build_strategy(config), problem))


def interrupting_run(config, out: Path, stop_at: int) -> int:  # type: ignore[no-untyped-def]
    """Run until the ``stop_at``-th evaluation, which is interrupted as by Ctrl-C."""
    problem, prepared = _prepared(config, out)
    calls = []

    def evaluate(trial: optuna.Trial):  # type: ignore[no-untyped-def]
        calls.append(trial.number)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return problem.evaluate(problem.suggest(trial)[1])

    outcome = run_trials(config, prepared.study, evaluate, lock=prepared.lock, target=config.budget.trials)
    assert outcome.interrupted
    return outcome.completed


def completed(out: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=open_existing_storage(out))
    return study.get_trials(states=(TrialState.COMPLETE,))


@pytest.mark.parametrize("strategy", ["tpe", "random", "hao"])
def test_resume_after_interrupt_loses_and_repeats_nothing(tmp_path: Path, nb201_table: Path, strategy: str) -> None:
    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=14, strategy=strategy))
    out = tmp_path / "run"
    assert interrupting_run(config, out, stop_at=7) == 6
    before = {t.number: (t.params, t.values) for t in completed(out, "nb")}
    result = run_experiment(config, out_dir=out)
    after = completed(out, "nb")
    assert result.outcome.completed == 14 and len(after) == 14
    assert {t.number: (t.params, t.values) for t in after if t.number in before} == before
    numbers = [t.number for t in after]
    assert len(set(numbers)) == len(numbers)
    # the resumed sampler does not replay the first run's draws
    params = [tuple(sorted(t.params.items())) for t in after]
    assert len(set(params[6:]) - set(params[:6])) >= 6


@pytest.mark.parametrize("strategy", ["tpe", "random", "nsga2", "hao"])
def test_a_resumed_run_proposes_what_an_uninterrupted_run_proposes(tmp_path: Path, nb201_table: Path, strategy: str) -> None:
    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=14, strategy=strategy))
    whole = run_experiment(config, out_dir=tmp_path / "whole")
    assert interrupting_run(config, tmp_path / "split", stop_at=5) == 4
    resumed = run_experiment(config, out_dir=tmp_path / "split")
    interrupted = [t for t in optuna.load_study(study_name="nb", storage=open_existing_storage(tmp_path / "split")).get_trials()
                   if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and interrupted[0].user_attrs[ATTR_ERROR] == "interrupted"
    # the interrupted candidate is evaluated again in its place, and every later proposal is the same
    assert [t.params for t in completed(tmp_path / "split", "nb")] == [t.params for t in completed(tmp_path / "whole", "nb")]
    assert [(p.candidate.key, p.metrics) for p in resumed.front.pairs()] == [(p.candidate.key, p.metrics) for p in whole.front.pairs()]


def test_the_study_names_its_objectives(tmp_path: Path, nb201_table: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "exp.yaml").write_text(nb201_yaml(nb201_table, name="nb", trials=3))
    cmd = [sys.executable, "-m", "codesign", "run", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "run"), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr  # Optuna's experimental-API note stays inside
    study = optuna.load_study(study_name="nb", storage=open_existing_storage(tmp_path / "run"))
    assert study.metric_names == ["accuracy", "lat_ms_fpga"]
    assert {"values_accuracy", "values_lat_ms_fpga"} <= set(study.trials_dataframe().columns)


def test_crashed_evaluation_fails_one_trial_and_keeps_its_error(tmp_path: Path, nb201_table: Path) -> None:
    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=6))
    problem, prepared = _prepared(config, tmp_path / "run")
    calls = []

    def evaluate(trial: optuna.Trial):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("simulated board timeout\nsecond line")
        return problem.evaluate(problem.suggest(trial)[1])

    outcome = run_trials(config, prepared.study, evaluate, lock=prepared.lock, target=6)
    assert (outcome.completed, outcome.failed) == (6, 1)
    failed = prepared.study.get_trials(states=(TrialState.FAIL,))
    assert failed[0].user_attrs[ATTR_ERROR] == "ValueError: simulated board timeout"


def test_repeated_failures_stop_with_one_clear_error(tmp_path: Path, nb201_table: Path) -> None:
    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=30))
    problem, prepared = _prepared(config, tmp_path / "run")

    calls = []

    def evaluate(trial: optuna.Trial):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) <= 2:  # two good trials first: they are kept
            return problem.evaluate(problem.suggest(trial)[1])
        raise RuntimeError("board unplugged" if len(calls) % 3 else "board on fire")

    with pytest.raises(CodesignError, match=r"10 evaluations in a row failed, stopping \(completed trials are kept\): "
                       r"6x RuntimeError: board unplugged; 4x RuntimeError: board on fire$"):
        run_trials(config, prepared.study, evaluate, lock=prepared.lock, target=30)
    assert len(prepared.study.get_trials(states=(TrialState.COMPLETE,))) == 2


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("nan", "objective accuracy is NaN"),
        ("oom", "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        ("memory", "MemoryError"),
        ("missing", "the evaluation reports no 'lat_ms_fpga' (an objective)"),
    ],
)
def test_a_faulty_evaluation_fails_its_trial_with_the_reason_and_the_search_goes_on(
    tmp_path: Path, nb201_table: Path, fault: str, reason: str
) -> None:
    import dataclasses
    import math

    import torch

    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=5))
    problem, prepared = _prepared(config, tmp_path / "run")
    calls = []

    def evaluate(trial: optuna.Trial):  # type: ignore[no-untyped-def]
        calls.append(1)
        evaluation = problem.evaluate(problem.suggest(trial)[1])
        if len(calls) != 3:
            return evaluation
        if fault == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        if fault == "memory":
            raise MemoryError
        metrics = dict(evaluation.metrics)
        if fault == "nan":
            metrics["accuracy"] = math.nan
        else:
            del metrics["lat_ms_fpga"]
        return dataclasses.replace(evaluation, metrics=metrics)

    outcome = run_trials(config, prepared.study, evaluate, lock=prepared.lock, target=5)
    assert (outcome.completed, outcome.failed) == (5, 1)
    [failed] = prepared.study.get_trials(states=(TrialState.FAIL,))
    assert failed.number == 2 and failed.user_attrs[ATTR_ERROR] == reason
    assert load_front(tmp_path / "run").table["trial"].tolist()  # the front is built over the others


def test_infeasible_constraints_end_with_an_empty_front(tmp_path: Path, nb201_table: Path) -> None:
    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=8, extra='constraints: {lat_ms_fpga: "<= 0.01"}\n'))
    result = run_experiment(config, out_dir=tmp_path / "run")
    assert result.outcome.completed == 8
    assert len(result.front) == 0
    assert (tmp_path / "run" / "front.json").is_file()
    assert len(load_front(tmp_path / "run")) == 0
    assert len(load_front(tmp_path / "run", ignore_constraints=True)) > 0


def test_front_is_rebuilt_from_storage_alone(tmp_path: Path, nb201_table: Path) -> None:
    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=20, extra='constraints: {lat_ms_fpga: "<= 5"}\n'))
    result = run_experiment(config, out_dir=tmp_path / "run")
    rebuilt = load_front(tmp_path / "run")
    assert len(rebuilt) >= 2
    cols = ["trial", "key", "accuracy", "lat_ms_fpga"]
    assert rebuilt.table[cols].equals(result.front.table[cols])
    assert [p.candidate for p in rebuilt.pairs()] == [p.candidate for p in result.front.pairs()]
    assert all(p.metrics["lat_ms_fpga"] <= 5 for p in rebuilt.pairs())
    assert all(p.fidelity["accuracy"] == "table" for p in rebuilt.pairs())


def test_same_seed_gives_the_same_search(tmp_path: Path, nb201_table: Path) -> None:
    config = config_at(tmp_path, nb201_yaml(nb201_table, trials=15))
    a = run_experiment(config, out_dir=tmp_path / "a").front.table
    b = run_experiment(config, out_dir=tmp_path / "b").front.table
    assert a[["trial", "key"]].equals(b[["trial", "key"]])


def test_a_study_refuses_a_different_experiment(tmp_path: Path, nb201_table: Path) -> None:
    out = tmp_path / "run"
    run_experiment(config_at(tmp_path, nb201_yaml(nb201_table, trials=3)), out_dir=out)
    other = config_at(tmp_path, nb201_yaml(nb201_table, trials=3, strategy="random"), name="other.yaml")
    other = config_from_mapping({**other.to_dict(), "name": "nb"}, source=other.source)
    with pytest.raises(CodesignError, match=r"already holds a different experiment \(changed: strategy\)"):
        run_experiment(other, out_dir=out)

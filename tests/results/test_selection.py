"""The selection rule: a front is chosen on the numbers the search saw, over every completed feasible
trial; test-split numbers are shown beside the chosen pairs and never select."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from codesign.config import load_config
from codesign.experiment import run_experiment
from codesign.results.front import load_front
from codesign.search.storage import open_existing_storage, save_verified, verified_records
from tests.helpers import digits_yaml


def _dominated(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether loss vector ``a`` is dominated by ``b``."""
    return bool(np.all(b <= a) and np.any(b < a))


def _brute_front(study: optuna.Study, objectives: list[tuple[str, str]]) -> set[int]:
    done = [t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    feasible = [t for t in done if all(v <= 0 for v in t.constraints.values())]
    losses = {
        t.number: np.array(
            [(-1 if d == "maximize" else 1) * t.user_attrs["codesign.metrics"][m] for m, d in objectives], dtype=float
        )
        for t in feasible
    }
    return {n for n, a in losses.items() if not any(_dominated(a, b) for m, b in losses.items() if m != n)}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, optuna.Study]:
    tmp = tmp_path_factory.mktemp("selection")
    (tmp / "exp.yaml").write_text(digits_yaml(tmp, trials=8))
    result = run_experiment(load_config(tmp / "exp.yaml"), out_dir=tmp / "out")
    assert result.verification is not None
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(tmp / "out"))
    return tmp / "out", study


def test_the_front_is_the_searched_front(run: tuple[Path, optuna.Study]) -> None:
    out, study = run
    front = load_front(out)
    objectives = [("accuracy", "maximize"), ("latency_ms", "minimize")]
    assert {p.trial for p in front.pairs()} == _brute_front(study, objectives)
    verified = verified_records(study)
    for pair in front.pairs():
        assert str(pair.trial) in verified, "every chosen pair is measured on the test split"
        assert pair.metrics["accuracy"] == pair.metrics["accuracy_search"]
        assert pair.metrics["accuracy_test"] == verified[str(pair.trial)]["metrics"]["accuracy"]


def test_test_numbers_never_select(run: tuple[Path, optuna.Study]) -> None:
    """A dominated pair whose test accuracy is perfect still stays off the front."""
    out, study = run
    front_trials = {p.trial for p in load_front(out).pairs()}
    dominated = [t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)) if t.number not in front_trials]
    assert dominated, "the run should leave some trial off the front"
    victim = dominated[0]
    save_verified(study, victim.number, {
        "metrics": {**victim.user_attrs["codesign.metrics"], "accuracy": 1.0},
        "fidelity": {},
        "split": "test",
        "searched": {},
    })
    again = load_front(out)
    assert {p.trial for p in again.pairs()} == front_trials
    assert victim.number not in {p.trial for p in load_front(out, verified=True).pairs()}


@pytest.mark.parametrize("objectives", [[("accuracy", "maximize"), ("lut", "minimize")], [("energy_mj", "minimize"), ("accuracy", "maximize")]])
def test_a_re_ranked_query_is_brute_force_over_all_trials(run: tuple[Path, optuna.Study], objectives: list[tuple[str, str]]) -> None:
    out, study = run
    front = load_front(out, objectives=objectives)
    assert {p.trial for p in front.pairs()} == _brute_front(study, objectives)


@pytest.mark.parametrize(("x", "y"), [("energy_mj", "accuracy"), ("lut", "accuracy"), ("latency_ms", "energy_mj")])
def test_the_plot_draws_the_front_of_its_axes(run: tuple[Path, optuna.Study], x: str, y: str, tmp_path: Path) -> None:
    out, study = run
    front = load_front(out)
    shown = front.axes_front(x, y)
    assert {p.trial for p in shown.pairs()} == _brute_front(study, [(y, front.direction_of(y)), (x, front.direction_of(x))])
    path = front.plot(tmp_path / "front.png", x=x, y=y)
    assert path.stat().st_size > 1000


def test_plot_errors_are_one_line(run: tuple[Path, optuna.Study], tmp_path: Path) -> None:
    from codesign.core.errors import CodesignError

    front = load_front(out := run[0])
    assert out.is_dir()
    with pytest.raises(CodesignError, match="does not exist"):
        front.plot(tmp_path / "missing" / "front.png")
    with pytest.raises(CodesignError, match="cannot write"):
        front.plot(tmp_path / "front.xyz")


def test_the_cli_says_which_pool_it_ranked_and_plots_several_studies(
    run: tuple[Path, optuna.Study], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codesign.cli import main

    out, study = run
    done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    assert main(["pareto", str(out), "--objectives", "accuracy:max,lut:min"]) == 0
    text = capsys.readouterr().out
    assert f"chosen among all {done} completed trials on the searched numbers" in text
    assert "accuracy_test" in text.splitlines()[1]
    assert main(["pareto", str(out), "--verified"]) == 0
    assert "pairs measured on the test split" in capsys.readouterr().out
    plot = tmp_path / "both.png"
    assert main(["pareto", str(out), str(out), "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 1000
    assert main(["pareto", str(out), "--plot", str(tmp_path / "nowhere" / "x.png")]) == 0  # its folder is made
    assert (tmp_path / "nowhere" / "x.png").stat().st_size > 1000
    assert main(["pareto", str(out), "--plot", str(tmp_path / "x.xyz")]) == 2
    err = capsys.readouterr().err
    assert "x.xyz" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_comparisons_print_their_reference_and_refuse_mixed_hardware(
    run: tuple[Path, optuna.Study], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codesign.cli import main
    from codesign.core.errors import CodesignError
    from codesign.results.front import compare_fronts

    out, _ = run
    other = tmp_path / "zcu102.yaml"
    other.write_text(digits_yaml(tmp_path, name="dg9", trials=3).replace("device: xczu3eg", "device: xczu9eg"))
    run_experiment(load_config(other), out_dir=tmp_path / "out9", verify=False)
    fronts = [load_front(out), load_front(tmp_path / "out9")]
    with pytest.raises(CodesignError, match="different hardware.*xczu9eg"):
        compare_fronts(fronts)
    mixed = compare_fronts(fronts, mixed_hardware=True)
    assert set(mixed.attrs["reference"]) == {"accuracy", "latency_ms"}
    assert mixed.attrs["mixed_hardware"]["dg9"]["device"] == "xczu9eg"
    assert main(["pareto", str(out), str(tmp_path / "out9")]) == 2
    assert "--mixed-hardware" in capsys.readouterr().err
    assert main(["pareto", str(out), str(tmp_path / "out9"), "--mixed-hardware"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("warning: these studies ran on different hardware")
    assert "hypervolume reference (loss space" in text
    same = compare_fronts([load_front(out), load_front(out)])
    assert same["hypervolume"].iloc[0] == same["hypervolume"].iloc[1] > 0

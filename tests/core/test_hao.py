"""The hao strategy on a real co-design problem: exact inner program, measured accuracy, verification."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from codesign.config.experiment import load_config
from codesign.core.errors import ConfigError
from codesign.experiment.run import run_experiment
from codesign.search.build import build_problem
from codesign.search.hao import ATTR_HAO, HAOOptions
from codesign.search.storage import open_existing_storage
from search_spaces.bitwidth import tie_groups
from tests.helpers import digits_yaml


def test_hao_runs_the_exact_inner_program_and_verifies(tmp_path: Path) -> None:
    text = digits_yaml(tmp_path, trials=4, strategy="hao").replace("act_bits: [8]", "act_bits: [4, 8]")
    (tmp_path / "exp.yaml").write_text(text)
    config = load_config(tmp_path / "exp.yaml")
    result = run_experiment(config, out_dir=tmp_path / "out")
    assert result.outcome.completed == 4
    assert result.verification is not None and result.verification.pairs == len(result.front) >= 1
    problem = build_problem(config)
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(tmp_path / "out"))
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        info = trial.user_attrs[ATTR_HAO]
        assert info["program"] == "hao" and info["alpha"] == trial.params["hao.alpha"]
    for pair in result.front.pairs():
        network = problem.space.network(problem.space.from_id(pair.candidate.arch_id), pair.candidate.weight_bits, pair.candidate.act_bits)
        for group in tie_groups(network):
            assert len({pair.candidate.weight_bits[i] for i in group}) == 1
        assert pair.fidelity["accuracy"] == "measured"
        assert 0.0 <= pair.metrics["accuracy_test"] <= 1.0
        assert pair.candidate.accelerator is not None


def test_hao_options_are_validated() -> None:
    assert HAOOptions.parse({"alphas": [1, 0.5]}).alphas == (0.5, 1.0)
    with pytest.raises(ConfigError, match=r"^strategy\.options\.alpha: unknown option"):
        HAOOptions.parse({"alpha": [0.5]})
    with pytest.raises(ConfigError, match=r"^strategy\.options\.alphas: need fractions"):
        HAOOptions.parse({"alphas": [2.0]})


def test_a_fallback_of_the_joint_program_is_recorded_and_shown(tmp_path: Path) -> None:
    """On a device that no overlay design fits, the joint program is infeasible: the trial says it fell
    back to bit allocation alone, in its record, in the trials table and through noted_trials."""
    import simulators
    from codesign.results.front import load_front, noted_trials
    from codesign.search.storage import ATTR_NOTES

    builtin = (Path(simulators.__file__).parent / "devices" / "xczu3eg.yaml").read_text()
    tiny = builtin.replace("name: xczu3eg", "name: tiny").replace(
        "resources: {lut: 70560, ff: 141120, bram18: 432, uram: 0, dsp: 360}",
        "resources: {lut: 2000, ff: 4000, bram18: 2, uram: 0, dsp: 2}",
    )
    assert "name: tiny" in tiny and "dsp: 2}" in tiny
    (tmp_path / "tiny.yaml").write_text(tiny)
    text = digits_yaml(tmp_path, trials=2, strategy="hao").replace(
        "device: xczu3eg", "device: tiny, device_files: [tiny.yaml]"
    ).replace('constraints: {dsp_fraction: "<= 0.8"}\n', "")
    (tmp_path / "exp.yaml").write_text(text)
    run_experiment(load_config(tmp_path / "exp.yaml"), out_dir=tmp_path / "out")
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(tmp_path / "out"))
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert any("fell back to HAWQ-V3" in note for note in trial.user_attrs[ATTR_NOTES])
        assert trial.user_attrs[ATTR_HAO]["program"] == "hawq"
    noted = noted_trials(load_front(tmp_path / "out"))
    assert len(noted) == 2 and "joint HAO program infeasible" in noted[0]["notes"]

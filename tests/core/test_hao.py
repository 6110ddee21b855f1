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

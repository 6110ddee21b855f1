"""Each pair of a study is measured on the test split once: a re-run of a finished study, or a second
worker finishing after the first, reports the stored numbers and never overwrites them."""

from __future__ import annotations

from pathlib import Path

import optuna

from codesign.cli import main
from codesign.config.experiment import load_config
from codesign.experiment.run import run_experiment
from codesign.search.storage import open_existing_storage, verified_records
from tests.helpers import digits_yaml


def test_a_finished_study_is_verified_once(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    exp = tmp_path / "exp.yaml"
    exp.write_text(digits_yaml(tmp_path, trials=4))
    out = tmp_path / "out"
    first = run_experiment(load_config(exp), out_dir=out)
    assert first.verification is not None and first.verification.measured == first.verification.pairs == len(first.front)
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(out))
    records = verified_records(study)
    assert set(records) == {str(p.trial) for p in first.front.pairs()}
    for pair in first.front.pairs():  # the searched numbers are kept as the search saw them
        assert records[str(pair.trial)]["searched"]["accuracy"] == pair.metrics["accuracy_search"]

    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(first.front)} of them measured by an earlier run or another worker" in printed
    again = optuna.load_study(study_name="dg", storage=open_existing_storage(out))
    assert verified_records(again) == records
    second = run_experiment(load_config(exp), out_dir=out)
    assert second.verification is not None and second.verification.measured == 0
    assert second.verification.to_dict() | {"measured_now": 0} == first.verification.to_dict() | {"measured_now": 0}
    assert [(p.trial, p.metrics) for p in second.front.pairs()] == [(p.trial, p.metrics) for p in first.front.pairs()]

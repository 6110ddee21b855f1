"""``codesign show DIR --pair TRIAL``: each stored pair keeps its per-layer breakdown (latency, cycles,
bound, resources, bits), and the table sums to the pair's latency with the bottleneck marked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest

from codesign.cli import main
from codesign.config import load_config
from codesign.experiment import run_experiment
from codesign.results.pair import load_pair
from codesign.search.storage import ATTR_SUMMARY, open_existing_storage
from tests.helpers import digits_yaml


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("show")
    (tmp / "exp.yaml").write_text(digits_yaml(tmp, trials=3))
    run_experiment(load_config(tmp / "exp.yaml"), out_dir=tmp / "out")
    return tmp / "out"


def _show(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["show", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_pair_keeps_its_layers_and_they_sum_to_its_latency(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(run))
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        _, pair = load_pair(run, trial.number)
        network_bits = [(layer.weight_bits, layer.act_bits) for layer in pair.layers if layer.weight_bits]
        assert network_bits == list(zip(pair.candidate.weight_bits, pair.candidate.act_bits, strict=True))
        assert math.isclose(sum(layer.latency_ms for layer in pair.layers), pair.searched["latency_ms"], rel_tol=1e-9)
        assert {layer.bound for layer in pair.layers} <= {"compute", "memory"}
        assert trial.user_attrs[ATTR_SUMMARY].startswith(f"mbconv_digits {pair.candidate.arch_id} | ")

        code, out, _ = _show(capsys, str(run), "--pair", str(trial.number), "--format", "json")
        assert code == 0
        doc = json.loads(out)
        assert [row["name"] for row in doc["layers"]] == [layer.name for layer in pair.layers]


def test_the_table_marks_the_slowest_layer(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, pair = load_pair(run, 0)
    code, out, _ = _show(capsys, str(run), "--pair", "0")
    assert code == 0
    worst = max(pair.layers, key=lambda layer: layer.latency_ms)
    marked = [line for line in out.splitlines() if line.rstrip().endswith("<<")]
    assert len(marked) == 1 and marked[0].split()[0] == worst.name
    assert f"the bottleneck is {worst.name}" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("layer "))
    rows = lines[lines.index(header) + 2 :]
    assert len(rows) == len(pair.layers)


def test_an_unknown_pair_is_one_line(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _show(capsys, str(run), "--pair", "99")
    assert code == 2 and out == ""
    assert err.strip() == "codesign: error: study 'dg' has no evaluated trial 99; evaluated: 0..2"

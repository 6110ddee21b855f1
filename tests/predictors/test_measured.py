import argparse
import json

import numpy as np
import pandas as pd
import pytest

from codesign.cli import hardware_import
from codesign.core.errors import CodesignError
from codesign.predictors.measured import MeasuredModel, load_measured
from codesign.predictors.measurements import as_table, parse_measurements
from simulators.overlay import OverlayModel


def run_import(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    hardware_import.register(parser.add_subparsers())
    args = parser.parse_args(["import", *argv])
    return int(args.handler(args))


@pytest.fixture(scope="module")
def board(make_pairs):
    """A board 1.3x slower than the overlay simulator plus a 0.05 ms launch overhead, with 3 % noise."""
    networks, accels, _ = make_pairs(6, seed=3)
    sim = OverlayModel()
    rng = np.random.default_rng(0)
    latency = [1.3 * sim.evaluate(n, a).latency_ms * rng.lognormal(0, 0.03) + 0.05 for n, a in zip(networks, accels, strict=True)]
    return networks, accels, latency


@pytest.fixture()
def table_path(board, tmp_path):
    networks, accels, latency = board
    path = tmp_path / "measurements.csv"
    frame = as_table(networks, latency, accels)
    frame["energy_mj"] = [2.0 * lat for lat in latency]
    frame.to_csv(path, index=False)
    return path


def test_import_with_prior_learns_the_correction(board, table_path, tmp_path, capsys):
    networks, accels, latency = board
    assert run_import([str(table_path), "--name", "board", "--prior", "overlay", "--out", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "cross-validated MAPE" in out and "measured:board" in out
    model = load_measured("board", tmp_path / "models")
    assert model.confidence.cv_mape < 0.05
    assert model.confidence.interval_low < 1 < model.confidence.interval_high
    predicted = np.array([model.evaluate(n, a).latency_ms for n, a in zip(networks, accels, strict=True)])
    assert np.mean(np.abs(predicted - latency) / latency) < 0.05
    report = model.evaluate(networks[0], accels[0])
    assert report.energy_mj == pytest.approx(2.0 * report.latency_ms, rel=0.1)
    assert report.resources.dsp > 0  # from the prior's report
    low, mid, high = model.predict_interval(networks[0], accels[0])
    assert low < mid < high


def test_prior_beats_no_prior(board, tmp_path):
    networks, accels, latency = board
    with_prior = MeasuredModel.fit(name="a", networks=networks, accels=accels, latency_ms=latency, prior=OverlayModel(), prior_name="overlay")
    without = MeasuredModel.fit(name="b", networks=networks, accels=accels, latency_ms=latency)
    assert with_prior.confidence.cv_mape < without.confidence.cv_mape / 3


def test_saved_model_predicts_identically(board, tmp_path):
    networks, accels, latency = board
    model = MeasuredModel.fit(name="m", networks=networks, accels=accels, latency_ms=latency, prior=OverlayModel(), prior_name="overlay")
    model.save(tmp_path / "m")
    loaded = MeasuredModel.load(tmp_path / "m")
    for n, a in zip(networks[:5], accels[:5], strict=True):
        assert loaded.evaluate(n, a).latency_ms == model.evaluate(n, a).latency_ms
    assert loaded.confidence == model.confidence


@pytest.mark.parametrize(
    ("target", "damage"),
    [
        ("measured.json", lambda p: p.write_text(p.read_text()[:40])),
        ("measured.json", lambda p: p.write_text('{"format_version": 2}')),
        ("measured.json", lambda p: p.write_bytes(b"\xff\xfe garbage")),
        ("latency/residual.json", lambda p: p.write_text("not a booster")),
        ("latency", lambda p: [f.write_text("{") for f in p.glob("*.json")]),
    ],
)
def test_a_corrupt_measured_model_is_reported(board, tmp_path, target, damage):
    networks, accels, latency = board
    model = MeasuredModel.fit(name="m", networks=networks, accels=accels, latency_ms=latency)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / target
    if not path.exists():
        pytest.skip(f"this fit saved no {target}")
    damage(path)
    with pytest.raises(CodesignError, match=f"{tmp_path / 'm'}") as caught:
        MeasuredModel.load(tmp_path / "m")
    assert "\n" not in str(caught.value)


def test_existing_name_needs_force(board, tmp_path):
    networks, accels, latency = board
    table_path = tmp_path / "small.csv"
    as_table(networks[:8], latency[:8], accels[:8]).to_csv(table_path, index=False)
    argv = [str(table_path), "--name", "b", "--out", str(tmp_path)]
    assert run_import(argv) == 0
    with pytest.raises(CodesignError, match="already exists"):
        run_import(argv)
    assert run_import([*argv, "--force"]) == 0
    with pytest.raises(CodesignError, match="--name '../x'"):
        run_import([str(table_path), "--name", "../x", "--out", str(tmp_path)])


def test_unknown_model_name_lists_known(tmp_path):
    with pytest.raises(CodesignError, match="unknown measured hardware model 'nope'"):
        load_measured("nope", tmp_path)


def _break(frame: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[row - 1, column] = value
    return frame


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "latency_ms", "fast", r"row 3, column 'latency_ms': expected a positive number"),
        (2, "latency_ms", "-1", r"row 2, column 'latency_ms'"),
        (4, "layers", "[{", r"row 4, column 'layers': not valid JSON"),
        (5, "layers", '[{"name": "x", "kind": "lstm", "in_channels": 1, "out_channels": 1}]', r"row 5, column 'layers': .*unknown kind"),
        (1, "accelerator", '{"template": "overlay"}', r"row 1, column 'accelerator'"),
        (2, "accelerator", "", r"row 2, column 'accelerator': missing while other rows"),
        (6, "energy_mj", "nan", r"row 6, column 'energy_mj'"),
    ],
)
def test_broken_tables_name_row_and_column(board, row, column, value, message):
    networks, accels, latency = board
    frame = as_table(networks, latency, accels).astype(str)
    frame["energy_mj"] = "1.0"
    with pytest.raises(CodesignError, match=message):
        parse_measurements(_break(frame, row, column, value))


def test_broken_files(tmp_path, board):
    networks, accels, latency = board
    path = tmp_path / "t.csv"
    as_table(networks, latency, accels).drop(columns="latency_ms").to_csv(path, index=False)
    with pytest.raises(CodesignError, match="missing column 'latency_ms'"):
        run_import([str(path), "--name", "x", "--out", str(tmp_path)])
    frame = as_table(networks, latency, accels)
    frame["watts"] = 1
    frame.to_csv(path, index=False)
    with pytest.raises(CodesignError, match="unknown column"):
        run_import([str(path), "--name", "x", "--out", str(tmp_path)])
    with pytest.raises(CodesignError, match="not found"):
        run_import([str(tmp_path / "missing.csv"), "--name", "x", "--out", str(tmp_path)])
    frame = as_table(networks[:3], latency[:3], accels[:3])
    frame.to_csv(path, index=False)
    with pytest.raises(CodesignError, match="at least 5 measurements"):
        run_import([str(path), "--name", "x", "--out", str(tmp_path)])


def test_arch_ids_resolve_through_a_space(tmp_path):
    from search_spaces.registry import make_space

    space = make_space("resnet_digits")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(6)]
    frame = pd.DataFrame({"arch": [space.arch_id(a) for a in archs], "latency_ms": [1.0 + i for i in range(6)]})
    table = parse_measurements(frame.astype(str), resolve_space=make_space, default_space="resnet_digits")
    assert table.networks[0] == space.network(archs[0])
    with pytest.raises(CodesignError, match="row 1, column 'space'"):
        parse_measurements(frame.astype(str), resolve_space=make_space)
    bad = frame.astype(str)
    bad.loc[1, "arch"] = "not-an-arch"
    with pytest.raises(CodesignError, match="row 2, column 'arch'"):
        parse_measurements(bad, resolve_space=make_space, default_space="resnet_digits")
    with_bits = frame.astype(str)
    k = len(space.network(archs[0]).weighted_layers)
    with_bits["weight_bits"] = json.dumps([4] * k)
    with_bits["act_bits"] = "-".join(["8"] * k)
    table = parse_measurements(with_bits.iloc[:1], resolve_space=make_space, default_space="resnet_digits")
    assert {layer.weight_bits for layer in table.networks[0].weighted_layers} == {4}


def test_rows_without_accelerator_use_the_priors_best_design(board, tmp_path):
    networks, _, _ = board
    sim = OverlayModel()
    best = [sim.best_accelerator(n, "xczu3eg")[1].latency_ms for n in networks[:10]]
    latency = [2.0 * b for b in best]
    path = tmp_path / "fixed.csv"
    as_table(networks[:10], latency).to_csv(path, index=False)
    with pytest.raises(CodesignError, match="--device"):
        run_import([str(path), "--name", "fixed", "--prior", "overlay", "--out", str(tmp_path)])
    assert run_import([str(path), "--name", "fixed", "--prior", "overlay", "--device", "xczu3eg", "--out", str(tmp_path)]) == 0
    model = load_measured("fixed", tmp_path)
    assert not model.uses_accel
    # the measured device is one fixed design: a configuration passed in is ignored
    some_accel = board[1][0]
    assert model.evaluate(networks[0], some_accel).latency_ms == pytest.approx(latency[0], rel=1e-6)
    assert model.evaluate(networks[0]).latency_ms == pytest.approx(latency[0], rel=1e-6)

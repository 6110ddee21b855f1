"""``codesign hardware import --define/--model``: measured latencies keyed by the ids of the user's own
define-by-run space or model, costed through the same trace as ``codesign run``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from codesign.cli import main
from codesign.nn.own_model import define_by_run_space
from codesign.nn.user_data import load_factory
from codesign.predictors.measured import load_measured
from simulators.overlay import OverlayModel

DEFINE = f"{Path(__file__).resolve().parents[1] / 'nn' / 'define_space.py'}:build"


def _board_ms(network) -> float:  # type: ignore[no-untyped-def]
    """The 'board' of this test: slower than the overlay simulator by a fixed factor plus a fixed start-up."""
    _, report = OverlayModel().best_accelerator(network, "xczu3eg")
    return 1.7 * report.latency_ms + 0.002


def test_define_by_run_ids_import_and_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = define_by_run_space(load_factory(DEFINE), (1, 8, 8), name="build", spec=DEFINE)
    rng = np.random.default_rng(0)
    archs = {space.arch_id(a): a for a in (space.sample(rng) for _ in range(40))}
    ids = sorted(archs)
    assert len(ids) >= 6  # the space has 2 widths x (2 or 4 kernel choices)
    train, held = ids[:-2], ids[-2:]
    with (tmp_path / "board.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "latency_ms"])
        for arch_id in train:
            writer.writerow([arch_id, _board_ms(space.network(archs[arch_id]))])
    argv = ["hardware", "import", str(tmp_path / "board.csv"), "--name", "mine", "--define", DEFINE,
            "--input-shape", "1,8,8", "--prior", "overlay", "--device", "xczu3eg", "--out", str(tmp_path / "models")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    model = load_measured("mine", tmp_path / "models")
    for arch_id in held:  # architectures the import never saw
        network = space.network(archs[arch_id])
        _, report = model.best_accelerator(network, "xczu3eg")
        assert report.latency_ms == pytest.approx(_board_ms(network), rel=0.05)


def test_own_space_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.csv").write_text("arch,latency_ms\nmodel,0.1\n")
    base = ["hardware", "import", str(tmp_path / "t.csv"), "--name", "x", "--out", str(tmp_path)]
    cases = [
        ([*base, "--define", DEFINE], "--define needs --input-shape C,H,W"),
        ([*base, "--define", DEFINE, "--input-shape", "1,x,8"], "--input-shape '1,x,8': expected integers"),
        ([*base, "--input-shape", "1,8,8"], "--input-shape is for --model or --define"),
        ([*base, "--define", DEFINE, "--input-shape", "1,8,8", "--space", "nb201"], "--space and --space-option name a registered space"),
        ([*base, "--define", "nowhere.py:build", "--input-shape", "1,8,8"], "nowhere.py"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err

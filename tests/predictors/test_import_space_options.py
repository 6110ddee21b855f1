"""``codesign hardware import --space-option``: NAS-Bench-201's measured latencies include the dead
operations of a cell, so the cells must be built with them (``prune=false``) for the import to learn them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from codesign.cli import main
from codesign.predictors.measured import load_measured
from search_spaces.nb201 import NB201Space


def _import_spearman(table: pd.DataFrame, tmp_path: Path, options: list[str], name: str) -> float:
    order = np.random.default_rng(0).permutation(len(table))
    train, test = order[:10], order[10:1010]
    pd.DataFrame(
        {"arch": table["arch_str"].to_numpy()[train], "latency_ms": table["lat_ms_fpga"].to_numpy()[train]}
    ).to_csv(tmp_path / f"{name}.csv", index=False)
    args = ["hardware", "import", str(tmp_path / f"{name}.csv"), "--name", name, "--space", "nb201", "--out", str(tmp_path)]
    assert main([*args, *options]) == 0
    model = load_measured(name, tmp_path)
    space = NB201Space(prune="--space-option" not in options)
    predicted = [model.evaluate(space.network(space.from_id(a))).latency_ms for a in table["arch_str"].to_numpy()[test]]
    return float(spearmanr(predicted, table["lat_ms_fpga"].to_numpy()[test]).statistic)


def test_dead_operations_kept_make_ten_cells_enough(nb201_table: pd.DataFrame, tmp_path: Path) -> None:
    """The table fixture of this package is the frame (accuracies as fractions, latencies in ms)."""
    kept = _import_spearman(nb201_table, tmp_path, ["--space-option", "prune=false"], "kept")
    pruned = _import_spearman(nb201_table, tmp_path, [], "pruned")
    assert kept >= 0.99
    assert kept > pruned + 0.05


def test_bad_space_options_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.csv").write_text("arch,latency_ms\nx,1\n")
    assert main(["hardware", "import", str(tmp_path / "m.csv"), "--name", "m", "--space-option", "prune"]) == 2
    err = capsys.readouterr().err
    assert "expected KEY=VALUE" in err and len(err.strip().splitlines()) == 1

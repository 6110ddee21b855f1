"""Bad numbers on the command line and in measurement tables: one-line errors, and repeated rows counted once."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from codesign.cli import main
from codesign.core.values import Layer, Network
from codesign.predictors.measurements import parse_measurements


def _layers(width: int) -> str:
    return json.dumps(Network(f"n{width}", (Layer("fc", "linear", width, 10),)).to_dict())


def _table(tmp_path: Path, latencies: list[float], widths: list[int] | None = None) -> Path:
    widths = widths or [8 * (i + 1) for i in range(len(latencies))]
    path = tmp_path / "m.csv"
    pd.DataFrame({"layers": [_layers(w) for w in widths], "latency_ms": latencies}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hardware", "import", "m.csv", "--name", "m", "--seed", "-1"], "argument --seed: expected a non-negative integer, got -1"),
        (["run", "experiments/quickstart.yaml", "--worker", "-1"], "argument --worker: expected a non-negative integer, got -1"),
        (["run", "experiments/quickstart.yaml", "--worker", "x"], "argument --worker: expected a non-negative integer, got 'x'"),
    ],
)
def test_negative_seeds_and_workers_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_absurd_latency_names_the_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _table(tmp_path, [1.0, 2.0, 1e300, 4.0, 5.0])
    assert main(["hardware", "import", str(path), "--name", "m", "--out", str(tmp_path / "models")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 3, column 'latency_ms'" in err[0] and "check the unit" in err[0]
    assert not (tmp_path / "models" / "m").exists()


def test_repeated_rows_count_once_at_their_mean() -> None:
    frame = pd.DataFrame(
        {"layers": [_layers(8), _layers(16), _layers(8), _layers(8)], "latency_ms": ["1.0", "2.0", "2.0", "3.0"]}
    )
    table = parse_measurements(frame)
    assert len(table) == 2 and table.merged == 2
    assert table.latency_ms == (2.0, 2.0)


def test_the_import_says_how_many_rows_it_merged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    widths = [8, 16, 24, 32, 40, 48, 8, 8]
    path = _table(tmp_path, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.1, 0.9], widths)
    assert main(["hardware", "import", str(path), "--name", "m", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "imported 6 measurements" in out and "note: 2 row(s) repeated" in out

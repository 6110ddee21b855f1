"""``codesign allocate-bits`` on good and broken layer tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from codesign.cli import main
from codesign.core.errors import CodesignError
from codesign.core.values import Layer, Network
from codesign.quantization.allocation import BitAllocationProblem, Budget, allocate_bits, network_costs
from codesign.quantization.sensitivity import TraceSettings, sensitivity_table

GOOD = """layer,bits,omega,size_mb,latency_ms,note
conv1,2,0.9,0.01,1.0,a
conv1,4,0.2,0.02,1.5,b
conv1,8,0.01,0.04,2.5,c
conv2,2,0.5,0.1,0.8,x
conv2,4,0.1,0.2,1.2,y
conv2,8,0.0,0.4,2.0,z
fc,2,0.3,0.05,0.2,q
fc,4,0.05,0.1,0.3,r
fc,8,0.001,0.2,0.5,s
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "layers.csv"
    path.write_text(text)
    return str(path)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["allocate-bits", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_allocation_with_two_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "config.json"
    result = run_json(
        capsys,
        write(tmp_path, GOOD),
        "--budget",
        "latency_ms<=3.5",
        "--budget",
        "size_mb<=alpha:0.5",
        "--out",
        str(out),
    )
    # size range 0.16 .. 0.64, alpha 0.5 -> 0.4; the best of the 27 assignments within both budgets is 4/4/4
    assert result["bits"] == {"conv1": 4, "conv2": 4, "fc": 4}
    assert result["objective"] == pytest.approx(0.35)
    assert result["budgets"]["latency_ms<=3.5"] == {
        "column": "latency_ms",
        "limit": 3.5,
        "value": pytest.approx(3.0),
    }
    assert result["budgets"]["size_mb<=alpha:0.5"]["limit"] == pytest.approx(0.4)
    assert result["budgets"]["size_mb<=alpha:0.5"]["value"] == pytest.approx(0.32)
    assert json.loads(out.read_text()) == result


def test_table_output_lists_layers_and_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["allocate-bits", write(tmp_path, GOOD), "--budget", "latency_ms<=2.5"]) == 0
    text = capsys.readouterr().out
    assert "objective (summed omega)" in text and "budget latency_ms<=2.5:" in text
    assert all(name in text for name in ("conv1", "conv2", "fc"))


def test_ties_fix_and_allow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    tied = run_json(capsys, path, "--budget", "latency_ms<=3.5", "--tie", "conv1,fc")
    assert tied["bits"]["conv1"] == tied["bits"]["fc"]
    fixed = run_json(capsys, path, "--fix", "conv2=2")
    assert fixed["bits"] == {"conv1": 8, "conv2": 2, "fc": 8}
    allowed = run_json(capsys, path, "--allow", "conv1=2,4")
    assert allowed["bits"]["conv1"] == 4


def test_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    front = run_json(capsys, write(tmp_path, GOOD), "--front", "size_mb")
    costs = [p["values"]["size_mb"] for p in front["points"]]
    omegas = [p["objective"] for p in front["points"]]
    assert costs == sorted(costs) and omegas == sorted(omegas, reverse=True)
    assert front["points"][0]["bits"] == {"conv1": 2, "conv2": 2, "fc": 2}
    assert front["points"][-1]["bits"] == {"conv1": 8, "conv2": 8, "fc": 8}


def test_table_needs_only_budget_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "layer,bits,omega\na,4,0.5\na,8,0.1\nb,4,0.2\nb,8,0.0\n"
    assert run_json(capsys, write(tmp_path, text))["bits"] == {"a": 8, "b": 8}


BROKEN = [
    (GOOD.replace("omega", "omegas", 1), [], "missing column(s) omega"),
    (
        GOOD.replace("conv2,4,0.1,0.2,1.2", "conv2,4,abc,0.2,1.2"),
        [],
        "row 6, column 'omega': 'abc' is not a number",
    ),
    (
        GOOD.replace("fc,4,0.05,0.1,0.3", "fc,4,0.05,0.1,"),
        ["--budget", "latency_ms<=3"],
        "row 9, column 'latency_ms'",
    ),
    (GOOD.replace("conv1,8,0.01,0.04,2.5,c\n", ""), [], "layer 'conv1' has no row for bits 8"),
    (GOOD, ["--budget", "dsp<=3"], "missing column(s) dsp"),
    (GOOD + "fc,8,0.5,0.1,0.1,t\n", [], "row 11: second row for layer 'fc' at 8 bits"),
    (GOOD.replace("fc,2,", "fc,2.5,"), [], "row 8, column 'bits': '2.5' is not a positive integer"),
    (GOOD, ["--budget", "latency_ms<=1.5"], "smallest feasible latency_ms is 2"),
    (GOOD, ["--budget", "latency_ms=1.5"], "expected COLUMN<=VALUE"),
    (GOOD, ["--tie", "conv1,nope"], "no layer named nope"),
    (GOOD, ["--tie", "conv1"], "at least two layers"),
    (GOOD, ["--fix", "conv1"], "expected LAYER=VALUE"),
    ("layer,bits,omega\n", [], "no rows"),
]


@pytest.mark.parametrize(("text", "extra", "message"), BROKEN)
def test_broken_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, extra: list[str], message: str
) -> None:
    assert main(["allocate-bits", write(tmp_path, text), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["allocate-bits", str(tmp_path / "none.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_table_written_from_a_model_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 6), nn.ReLU(), nn.Linear(6, 4)
    )
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 6, 6, generator=gen), torch.randint(0, 4, (32,), generator=gen)
    table = sensitivity_table(
        model, nn.functional.cross_entropy, [(x, y)], settings=TraceSettings(max_iter=10)
    )
    net = Network(
        "tiny",
        (
            Layer("0", "conv", 1, 3, in_h=6, in_w=6, kernel=3, bias=True),
            Layer("3", "linear", 48, 6, bias=True),
            Layer("5", "linear", 6, 4, bias=True),
        ),
        input_shape=(1, 6, 6),
    )
    costs = network_costs(net, table.bits)
    path = tmp_path / "layers.csv"
    table.write_csv(path, costs)
    result = run_json(capsys, str(path), "--budget", "size_mb<=alpha:0.5", "--budget", "bops<=alpha:0.6")
    expected = allocate_bits(
        BitAllocationProblem.from_tables(
            omega=table.omega_map(),
            costs=costs,
            budgets=[Budget("size_mb", alpha=0.5), Budget("bops", alpha=0.6)],
        )
    )
    assert result["bits"] == expected.bits_dict()
    assert result["objective"] == pytest.approx(expected.objective, rel=1e-12)
    assert set(result["values"]) == {"size_mb", "bops"}
    with pytest.raises(CodesignError, match="no value for"):
        table.write_csv(path, {"size_mb": {"0": {2: 1.0}}})

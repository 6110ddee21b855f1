"""A negative Hutchinson trace estimate (a loss not convex in a layer's weights) counts by its magnitude,
as in HAWQ-V3 and NNCF, so it never rewards fewer bits; the raw estimate is kept and shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
import torch
from torch import nn

from codesign.cli import main
from codesign.core.values import Layer, Network
from codesign.quantization import sensitivity
from codesign.quantization.allocation import network_costs
from codesign.quantization.sensitivity import (
    PerturbationTable,
    TraceSettings,
    hessian_traces,
    perturbation_table,
    quantize_weight,
    sensitivity_table,
    weight_perturbation,
)


def concave_case() -> tuple[nn.Sequential, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The loss ``-||out||^2`` is concave in each layer's weights (the output is linear in either);
    the inputs are the identity, so in the second layer's weights it is ``-||W_1 W_0||^2`` with ``W_0 = I``:
    Hessian ``-2 I``, trace exactly ``-2 n``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        cast(nn.Linear, model[0]).weight.copy_(torch.eye(3))
    return model, [(torch.eye(3), torch.zeros(3))]


def concave_loss(out: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return -(out**2).sum()


def test_negative_trace_is_kept_flagged_and_its_magnitude_weights_omega() -> None:
    model, batches = concave_case()
    traces = hessian_traces(model, concave_loss, batches, settings=TraceSettings(max_iter=5))
    second = traces[1]
    # v^T (-2 I) v = -2 n for every Rademacher v: the raw estimate is exact and negative
    assert second.trace == pytest.approx(-2.0 * 6, rel=1e-12)
    assert second.negative and second.magnitude == pytest.approx(12.0)
    assert second.trace_per_param == pytest.approx(-2.0)
    assert second.sensitivity_per_param == pytest.approx(2.0)
    assert all(t.negative for t in traces)  # the loss is concave in the first layer's weights too

    table = perturbation_table(model, traces, (2, 4, 8))
    assert table.traces == tuple(t.trace for t in traces)  # raw and signed
    assert table.negative_traces == {t.name: t.trace for t in traces}
    assert table.notes()[1] == "trace of layer 1 was negative (-12); its magnitude is used"
    weight = cast(nn.Linear, model[1]).weight.detach()
    for k, bits in enumerate((2, 4, 8)):
        error = float(((quantize_weight(weight, bits) - weight) ** 2).sum())
        assert table.omega[1][k] >= 0
        assert table.omega[1][k] == pytest.approx(abs(second.trace) / weight.numel() * error, rel=1e-12)
    assert table.omega[1][0] > table.omega[1][2]  # fewer bits cost more, never less
    assert PerturbationTable.from_json(table.to_json()).negative_traces == table.negative_traces

    # HAWQ's summed perturbation weighs a negative trace by its magnitude too
    signed = [t.trace_per_param for t in traces]
    assert weight_perturbation(model, (2, 4), signed) == pytest.approx(
        weight_perturbation(model, (2, 4), [abs(t) for t in signed]), rel=1e-12
    )
    assert weight_perturbation(model, (2, 4), signed) == pytest.approx(
        table.omega[0][0] + table.omega[1][1], rel=1e-12
    )


def test_positive_traces_have_no_notes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=gen), torch.randint(0, 2, (16,), generator=gen)
    table = sensitivity_table(
        model, nn.functional.cross_entropy, [(x, y)], settings=TraceSettings(max_iter=5)
    )
    assert all(t > 0 for t in table.traces)
    assert table.negative_traces == {} and table.notes() == []


def test_cache_entries_of_the_signed_format_are_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, batches = concave_case()
    settings = TraceSettings(max_iter=3)
    sensitivity_table(model, concave_loss, batches, settings=settings, cache_dir=tmp_path)
    monkeypatch.setattr(sensitivity, "_CACHE_FORMAT", 1)  # an older format: another key
    sensitivity_table(model, concave_loss, batches, settings=settings, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("omega-*.json"))) == 2


def test_cli_notes_a_negative_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, batches = concave_case()
    table = sensitivity_table(model, concave_loss, batches, settings=TraceSettings(max_iter=3))
    net = Network(
        "concave",
        (Layer("0", "linear", 3, 3), Layer("1", "linear", 3, 2)),
        input_shape=(3, 1, 1),
    )
    path = tmp_path / "layers.csv"
    table.write_csv(path, network_costs(net, table.bits))
    assert main(["allocate-bits", str(path), "--budget", "size_mb<=alpha:0.5"]) == 0
    out = capsys.readouterr().out
    assert "note: trace of layer 1 was negative (-12); its magnitude is used" in out
    assert len(table.notes()) == 2 and all(f"note: {line}" in out for line in table.notes())
    assert main(["allocate-bits", str(path), "--front", "size_mb", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["notes"] == table.notes()


def test_cli_without_negative_traces_prints_no_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "layers.csv"
    path.write_text("layer,bits,omega,trace,params\na,2,1.0,0.5,10\na,8,0.1,0.5,10\n")
    assert main(["allocate-bits", str(path), "--format", "json"]) == 0
    assert "notes" not in json.loads(capsys.readouterr().out)
    path.write_text("layer,bits,omega,trace,params\na,2,1.0,-0.5,10\na,8,0.1,-0.5,10\n")
    assert main(["allocate-bits", str(path)]) == 0
    assert "note: trace of layer a was negative (-0.5); its magnitude is used" in capsys.readouterr().out

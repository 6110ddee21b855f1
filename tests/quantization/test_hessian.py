"""Hutchinson traces against the exact Hessian, the perturbation table, its cache and ZeroQ distillation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
import torch
from torch import nn
from torch.func import functional_call

from codesign.core.errors import CodesignError, CodesignWarning
from codesign.quantization.sensitivity import (
    DistillSettings,
    PerturbationTable,
    TraceSettings,
    data_free_sensitivity_table,
    distill_inputs,
    hessian_traces,
    perturbation_table,
    quantize_weight,
    sensitivity_table,
    single_layer_drops,
    weight_perturbation,
    weighted_layers,
)


def tiny_model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.ReLU(), nn.Linear(6, 4)
    )


def tiny_data(seed: int, n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=gen), torch.randint(0, 4, (n,), generator=gen)


def exact_traces(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    params = {k: v.detach() for k, v in model.named_parameters()}
    out = {}
    for name, _ in weighted_layers(model):
        key = f"{name}.weight"

        def loss(w: torch.Tensor, key: str = key) -> torch.Tensor:
            return nn.functional.cross_entropy(functional_call(model, {**params, key: w}, (x,)), y)

        hessian = torch.autograd.functional.hessian(loss, params[key], vectorize=True)
        n = params[key].numel()
        out[name] = float(hessian.reshape(n, n).diagonal().sum())
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_hutchinson_matches_exact_hessian_trace(seed: int) -> None:
    model = tiny_model(seed)
    x, y = tiny_data(seed)
    exact = exact_traces(model, x, y)
    # two half batches: the estimator must weight them into the mean loss over all samples
    batches = [(x[:64], y[:64]), (x[64:], y[64:])]
    traces = hessian_traces(
        model, nn.functional.cross_entropy, batches, settings=TraceSettings(max_iter=1000, tol=0.0, seed=seed)
    )
    assert [t.name for t in traces] == ["0", "3", "5"]
    for t in traces:
        assert t.iterations == 1000
        assert t.trace == pytest.approx(exact[t.name], rel=0.05)
        assert t.params == dict(model.named_parameters())[f"{t.name}.weight"].numel()


def test_default_settings_stop_on_tolerance_and_are_seeded() -> None:
    model = tiny_model(2)
    x, y = tiny_data(2)
    first = hessian_traces(model, nn.functional.cross_entropy, [(x, y)])
    again = hessian_traces(model, nn.functional.cross_entropy, [(x, y)])
    other = hessian_traces(model, nn.functional.cross_entropy, [(x, y)], settings=TraceSettings(seed=5))
    assert first == again
    assert first != other
    assert all(1 < t.iterations < 100 for t in first)  # the running mean settled before the cap
    exact = exact_traces(model, x, y)
    assert all(t.trace == pytest.approx(exact[t.name], rel=0.25) for t in first)
    assert model.training  # the caller's mode is restored


def test_layer_selection_and_errors() -> None:
    model = tiny_model(0)
    x, y = tiny_data(0, 16)
    only = hessian_traces(
        model, nn.functional.cross_entropy, [(x, y)], layers=["5"], settings=TraceSettings(max_iter=3)
    )
    assert [t.name for t in only] == ["5"]
    with pytest.raises(CodesignError, match="no convolution or linear layer named nope"):
        hessian_traces(model, nn.functional.cross_entropy, [(x, y)], layers=["nope"])
    with pytest.raises(CodesignError, match="no data batches"):
        hessian_traces(model, nn.functional.cross_entropy, [])
    with pytest.raises(CodesignError, match="max_iter"):
        TraceSettings(max_iter=0)


def test_quantizer_grid() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 3, 3, 3, generator=gen)
    for bits in (2, 3, 4, 8):
        q = quantize_weight(w, bits)
        qmax = 2 ** (bits - 1) - 1
        for c in range(6):
            scale = w[c].abs().max() / qmax
            levels = torch.round(q[c] / scale)
            assert torch.allclose(levels * scale, q[c], atol=1e-6)
            assert levels.abs().max() == qmax  # the channel's largest weight sits on the top level
            assert (q[c] - w[c]).abs().max() <= scale / 2 + 1e-6
    errors = [float(((quantize_weight(w, b) - w) ** 2).sum()) for b in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2] > 0
    with pytest.raises(CodesignError, match="weight bits"):
        quantize_weight(w, 1)


def test_perturbation_table_formula() -> None:
    model = tiny_model(3)
    x, y = tiny_data(3, 64)
    traces = hessian_traces(model, nn.functional.cross_entropy, [(x, y)], settings=TraceSettings(max_iter=20))
    table = perturbation_table(model, traces, (2, 4, 8))
    weight = dict(model.named_parameters())["3.weight"].detach()
    i = table.layers.index("3")
    for k, bits in enumerate((2, 4, 8)):
        expected = (
            traces[i].trace / weight.numel() * float(((quantize_weight(weight, bits) - weight) ** 2).sum())
        )
        assert table.omega[i][k] == pytest.approx(expected, rel=1e-12)
    assert all(row[0] > row[1] > row[2] for row in table.omega)
    assert table.omega_map()["3"][4] == table.omega[i][1]
    rows = table.rows()
    assert len(rows) == 9 and rows[0] == {
        "layer": "0",
        "bits": 2,
        "omega": table.omega[0][0],
        "trace": table.traces[0],
        "params": 27,
    }
    assert PerturbationTable.from_json(table.to_json()) == table
    assert table.renamed(["a", "b", "c"]).layers == ("a", "b", "c")
    with pytest.raises(CodesignError, match="distinct names"):
        table.renamed(["a", "a", "c"])


def test_table_cache_is_keyed_by_content(tmp_path: Path) -> None:
    model = tiny_model(4)
    x, y = tiny_data(4, 32)
    settings = TraceSettings(max_iter=5)
    first = sensitivity_table(
        model, nn.functional.cross_entropy, [(x, y)], settings=settings, cache_dir=tmp_path
    )
    files = list(tmp_path.glob("omega-*.json"))
    assert len(files) == 1
    stored = files[0].read_bytes()
    cached = sensitivity_table(
        model, nn.functional.cross_entropy, [(x, y)], settings=settings, cache_dir=tmp_path
    )
    assert cached == first and files[0].read_bytes() == stored
    # an edited entry (valid JSON, wrong content) fails its checksum: it is reported and recomputed, never used
    header, _, body = stored.partition(b"\n")
    data = json.loads(body)
    data["traces"][0] = 123.0
    files[0].write_bytes(header + b"\n" + json.dumps(data).encode())
    with pytest.warns(CodesignWarning, match="does not match its checksum"):
        again = sensitivity_table(
            model, nn.functional.cross_entropy, [(x, y)], settings=settings, cache_dir=tmp_path
        )
    assert again == first and files[0].read_bytes() == stored
    files[0].write_bytes(stored[: len(stored) // 2])  # truncated
    with pytest.warns(CodesignWarning, match="does not match its checksum"):
        assert sensitivity_table(model, nn.functional.cross_entropy, [(x, y)], settings=settings, cache_dir=tmp_path) == first
    # other data, other settings, other bits or other weights are other entries
    sensitivity_table(model, nn.functional.cross_entropy, [(x + 1, y)], settings=settings, cache_dir=tmp_path)
    sensitivity_table(
        model, nn.functional.cross_entropy, [(x, y)], settings=TraceSettings(max_iter=6), cache_dir=tmp_path
    )
    sensitivity_table(
        model, nn.functional.cross_entropy, [(x, y)], bits=(4, 8), settings=settings, cache_dir=tmp_path
    )
    with torch.no_grad():
        cast(nn.Conv2d, model[0]).weight.add_(0.01)
    changed = sensitivity_table(
        model, nn.functional.cross_entropy, [(x, y)], settings=settings, cache_dir=tmp_path
    )
    assert len(list(tmp_path.glob("omega-*.json"))) == 5
    assert changed.traces[0] != 123.0


def bn_model() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 5),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():  # give the BatchNorm layers non-trivial running statistics
        for _ in range(20):
            model(torch.rand(32, 1, 8, 8, generator=gen) * 3 + 1)
    return model


def bn_mismatch(model: nn.Module, x: torch.Tensor) -> float:
    total = 0.0
    captured: list[torch.Tensor] = []
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    handles = [m.register_forward_pre_hook(lambda m, inp: captured.append(inp[0])) for m in norms]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    for m, act in zip(norms, captured, strict=True):
        mean, var = cast(torch.Tensor, m.running_mean), cast(torch.Tensor, m.running_var)
        total += float((act.mean(dim=(0, 2, 3)) - mean).norm())
        total += float((act.std(dim=(0, 2, 3), unbiased=False) - var.sqrt()).norm())
    return total


def test_zeroq_distillation_matches_batchnorm_statistics() -> None:
    model = bn_model()
    settings = DistillSettings(batch_size=32, steps=60, seed=0)
    x = distill_inputs(model, (1, 8, 8), settings=settings)
    assert x.shape == (32, 1, 8, 8)
    noise = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert bn_mismatch(model, x) < 0.1 * bn_mismatch(model, noise)
    assert torch.equal(x, distill_inputs(model, (1, 8, 8), settings=settings))
    assert all(p.requires_grad for p in model.parameters())
    table = data_free_sensitivity_table(
        model, (1, 8, 8), settings=TraceSettings(max_iter=10), distill=settings
    )
    assert table.layers == ("0", "3", "7") and all(t > 0 for t in table.traces)
    with pytest.raises(CodesignError, match="BatchNorm"):
        distill_inputs(tiny_model(0), (1, 6, 6))


def test_single_layer_drops_restore_weights() -> None:
    model = tiny_model(5)
    x, y = tiny_data(5, 256)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def loss(m: nn.Module) -> float:
        with torch.no_grad():
            return -float(nn.functional.cross_entropy(m(x), y))

    drops = single_layer_drops(model, ["0", "5"], 2, loss)
    assert set(drops) == {"0", "5"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for index, name in ((0, "0"), (5, "5")):
        copy = tiny_model(5)
        with torch.no_grad():
            weight = cast(nn.Conv2d | nn.Linear, copy[index]).weight
            weight.copy_(quantize_weight(weight, 2))
        assert drops[name] == pytest.approx(loss(model) - loss(copy), rel=1e-6)
        assert drops[name] != 0.0


def test_summed_weight_perturbation_is_the_table_entries_of_the_chosen_bits() -> None:
    model = tiny_model(4)
    x, y = tiny_data(4, 64)
    traces = hessian_traces(model, nn.functional.cross_entropy, [(x, y)], settings=TraceSettings(max_iter=20))
    table = perturbation_table(model, traces, (2, 4, 8))
    choice = (8, 2, 4)
    expected = sum(row[table.bits.index(b)] for row, b in zip(table.omega, choice, strict=True))
    per_param = [t.trace_per_param for t in traces]
    assert weight_perturbation(model, choice, per_param) == pytest.approx(expected, rel=1e-12)
    # without traces every layer's trace is 1: the mean squared quantization error per layer, summed
    unit = sum(
        float(((quantize_weight(m.weight, b) - m.weight.detach()) ** 2).mean())  # type: ignore[arg-type,operator]
        for (_, m), b in zip(weighted_layers(model), choice, strict=True)
    )
    assert weight_perturbation(model, choice) == pytest.approx(unit, rel=1e-6)
    assert weight_perturbation(model, (2, 2, 2)) > weight_perturbation(model, (8, 8, 8)) > 0
    with pytest.raises(CodesignError, match="3 weighted layers; got 2 bit-widths"):
        weight_perturbation(model, (8, 8))
    with pytest.raises(CodesignError, match="got 3 bit-widths and 1 traces"):
        weight_perturbation(model, choice, [1.0])

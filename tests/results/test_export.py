"""``codesign export``: a front pair as QONNX checked by execution with ``qonnx``, as a torch program that
loads with torch alone, with its integer weights and labelled numbers; and a user's own quantized model
through the same deploy graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from codesign.cli import main
from codesign.core.errors import CodesignError
from codesign.core.values import Layer, Network
from codesign.nn.data import load_dataset
from codesign.quantization.fake import QuantConv2d, QuantLinear, calibrate, set_bits
from codesign.results.deploy import DeployedModule, deploy_graph
from codesign.results.export import FILES, INTEGERS, PAIR_JSON, QONNX, TORCH, exported_graph, load_exported
from codesign.results.qonnx_export import check_by_execution, run_qonnx, to_qonnx

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A short quickstart run (the README's experiment, three trials) and its first front pair."""
    tmp = tmp_path_factory.mktemp("quickstart")
    code = main(["run", str(QUICKSTART), "--trials", "3", "--out", str(tmp / "out"), "--cache", str(tmp / "cache"), "--quiet"])
    assert code == 0
    pair = json.loads((tmp / "out" / "front.json").read_text())["pairs"][0]
    return tmp, pair


def _raw_test_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The quickstart's test split: preprocessed inputs, the raw load_digits pixels they came from, labels."""
    data = load_dataset("digits", seed=0)
    x, y = data.split("test")
    raw = data.preprocess.invert(x)
    pixels = torch.round(raw)
    assert torch.allclose(raw, pixels, atol=1e-4) and pixels.min() >= 0 and pixels.max() <= 16  # raw sklearn pixels
    return x, pixels, y


def test_a_quickstart_pair_runs_in_qonnx_as_in_pytorch(quickstart: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, pair = quickstart
    code, out, err = _cli(capsys, "export", str(tmp / "out"), "--pair", str(pair["trial"]), "--to", str(tmp / "pair"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp / "pair").iterdir()) == sorted(FILES)
    doc = json.loads((tmp / "pair" / PAIR_JSON).read_text())
    check = doc["export_check"]["qonnx"]
    assert check["samples"] == check["same_predictions"] == 359
    assert f"agree on 359 of 359 predictions (max |logit difference| {check['max_abs_logit_diff']:.3g})" in out

    # executed again here, on the raw load_digits pixels, by qonnx from the file alone
    _, pixels, y = _raw_test_split()
    logits = run_qonnx(tmp / "pair" / QONNX, pixels.numpy())
    accuracy = float((logits.argmax(1) == y.numpy()).mean())
    assert accuracy == pytest.approx(pair["metrics"]["accuracy_test"], abs=1e-12)

    # the searched and the verified numbers, each labelled
    metrics = doc["metrics"]
    assert metrics["searched"]["accuracy"] == pair["metrics"]["accuracy"]
    assert metrics["searched_source"]["accuracy"] == "measured"
    assert metrics["verified"]["accuracy"] == pair["metrics"]["accuracy_test"]
    assert "validation" in metrics["searched_note"] and "test split" in metrics["verified_note"]
    weighted = [layer for layer in doc["layers"] if layer["kind"] in ("conv", "linear")]
    assert [layer["weight_bits"] for layer in weighted] == pair["candidate"]["weight_bits"]
    assert sum(layer["cost"]["latency_ms"] for layer in doc["layers"]) == pytest.approx(pair["metrics"]["latency_ms"], rel=1e-9)
    assert doc["input"]["raw"].startswith("scikit-learn load_digits()") and doc["input"]["shape"] == [1, 8, 8]


def test_the_torch_program_loads_with_torch_alone(quickstart: tuple[Path, dict]) -> None:
    tmp, pair = quickstart
    if not (tmp / "pair" / TORCH).exists():
        assert main(["export", str(tmp / "out"), "--pair", str(pair["trial"]), "--to", str(tmp / "pair"), "--force"]) == 0
    _, pixels, y = _raw_test_split()
    np.save(tmp / "pixels.npy", pixels.numpy())
    script = (
        "import sys, runpy, numpy, torch\n"
        "sys.modules['codesign'] = None  # importing codesign now fails: the loader must not need it\n"
        f"loader = runpy.run_path({str(tmp / 'pair' / 'load_model.py')!r})\n"
        f"x = torch.from_numpy(numpy.load({str(tmp / 'pixels.npy')!r}))\n"
        "print(','.join(map(str, loader['load']()(x).argmax(1).tolist())))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    predictions = np.array([int(v) for v in done.stdout.strip().split(",")])
    assert float((predictions == y.numpy()).mean()) == pytest.approx(pair["metrics"]["accuracy_test"], abs=1e-12)
    shown = subprocess.run([sys.executable, str(tmp / "pair" / "load_model.py")], capture_output=True, text=True, check=False, timeout=300)
    assert shown.returncode == 0 and f"trial {pair['trial']}" in shown.stdout


def test_the_graph_comes_back_from_the_folder(quickstart: tuple[Path, dict]) -> None:
    tmp, pair = quickstart
    if not (tmp / "pair" / TORCH).exists():
        assert main(["export", str(tmp / "out"), "--pair", str(pair["trial"]), "--to", str(tmp / "pair"), "--force"]) == 0
    graph = exported_graph(tmp / "pair")
    _, pixels, _ = _raw_test_split()
    with torch.no_grad():
        assert torch.equal(DeployedModule(graph)(pixels), load_exported(tmp / "pair")(pixels))
    (tmp / "broken").mkdir(exist_ok=True)
    with pytest.raises(CodesignError, match="holds no pair.json"):
        exported_graph(tmp / "broken")


def test_integer_weights_fit_their_bits(quickstart: tuple[Path, dict]) -> None:
    tmp, pair = quickstart
    if not (tmp / "pair" / INTEGERS).exists():
        assert main(["export", str(tmp / "out"), "--pair", str(pair["trial"]), "--to", str(tmp / "pair"), "--force"]) == 0
    arrays = np.load(tmp / "pair" / INTEGERS)
    doc = json.loads((tmp / "pair" / PAIR_JSON).read_text())
    weighted = [layer for layer in doc["layers"] if layer["kind"] in ("conv", "linear")]
    for layer in weighted:
        q = arrays[f"{layer['name']}.weight_int"]
        bits = int(arrays[f"{layer['name']}.weight_bits"])
        assert bits == layer["weight_bits"]
        assert np.issubdtype(q.dtype, np.integer) and np.abs(q).max() <= 2 ** (bits - 1) - 1
        assert np.abs(q).max() == 2 ** (bits - 1) - 1  # each layer's largest weight sits on the grid's end
        assert (arrays[f"{layer['name']}.weight_scale"] > 0).all()
        assert 0 <= int(arrays[f"{layer['name']}.input_zero_point"]) <= 2 ** int(arrays[f"{layer['name']}.input_bits"]) - 1


def test_an_export_is_not_overwritten_and_an_empty_cache_is_said(quickstart: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, pair = quickstart
    target = tmp / "again"
    assert main(["export", str(tmp / "out"), "--pair", str(pair["trial"]), "--to", str(target)]) == 0
    capsys.readouterr()
    code, _, err = _cli(capsys, "export", str(tmp / "out"), "--pair", str(pair["trial"]), "--to", str(target))
    assert code == 2 and "already holds an exported pair" in err and "--force" in err
    before = json.loads((target / PAIR_JSON).read_text())["export_check"]

    code, _, err = _cli(
        capsys, "export", str(tmp / "out"), "--pair", str(pair["trial"]), "--to", str(target), "--force", "--cache", str(tmp / "empty")
    )
    assert code == 0, err
    assert f"is not in the cache {tmp / 'empty'}; training it again" in err
    after = json.loads((target / PAIR_JSON).read_text())["export_check"]
    assert after["trained_at_export"] is True and before["trained_at_export"] is False
    assert after["qonnx"]["accuracy_qonnx"] == before["qonnx"]["accuracy_qonnx"]  # the seed gives the same model


class OwnNet(nn.Module):
    """A user's network, not one of the built-in spaces: pooling by module, a conv without BatchNorm but
    with a bias, ReLU modules, nn.Flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = QuantConv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = QuantConv2d(8, 16, 3, 1, 1, bias=True)
        self.act2 = nn.ReLU()
        self.flat = nn.Flatten()
        self.fc = QuantLinear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.act2(self.conv2(self.pool(self.act1(self.bn1(self.conv1(x))))))))


OWN_NETWORK = Network(
    name="own",
    input_shape=(1, 8, 8),
    layers=(
        Layer("conv1", "conv", 1, 8, 8, 8, kernel=3, padding=1, weight_bits=4, act_bits=8),
        Layer("pool", "pool", 8, 8, 8, 8, kernel=2, stride=2, act_bits=8, mode="max"),
        Layer("conv2", "conv", 8, 16, 4, 4, kernel=3, padding=1, weight_bits=6, act_bits=4, bias=True),
        Layer("fc", "linear", 256, 10, weight_bits=8, act_bits=6, bias=True),
    ),
)


def test_an_own_model_round_trips_through_qonnx() -> None:
    torch.manual_seed(0)
    data = load_dataset("digits", seed=0)
    x, y = data.split("train")
    model = OwnNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        for i in range(0, len(y), 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            optimizer.step()
    set_bits(model, (4, 6, 8), (8, 4, 6))
    calibrate(model, [x[i : i + 256] for i in range(0, len(y), 256)])
    graph = deploy_graph(model, OWN_NETWORK, data.input_shape, data.preprocess)
    assert [n.op for n in graph.nodes] == ["conv", "relu", "max_pool", "conv", "relu", "flatten", "linear"]
    assert [n.name for n in graph.weighted()] == ["conv1", "conv2", "fc"]
    xt, yt = data.split("test")
    check = check_by_execution(to_qonnx(graph, num_classes=10), model, xt, data.preprocess.invert(xt), yt)
    assert check.all_same, check
    assert check.accuracy_qonnx is not None and check.accuracy_qonnx > 0.8  # a trained network, not noise
    with torch.no_grad():
        deployed = DeployedModule(graph)(data.preprocess.invert(xt))
        assert torch.equal(deployed.argmax(1), model(xt).argmax(1))


def test_an_operator_without_a_deploy_form_is_named() -> None:
    class Odd(OwnNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.flat(torch.sigmoid(self.conv2(self.pool(self.act1(self.bn1(self.conv1(x))))))))

    model = Odd()
    calibrate(model, [torch.randn(4, 1, 8, 8)])
    with pytest.raises(CodesignError, match=r"cannot export node 'sigmoid' \(call_function <built-in method sigmoid"):
        deploy_graph(model, OWN_NETWORK, (1, 8, 8), load_dataset("digits", seed=0).preprocess)

"""The user's own model (``space.model``), a define-by-run space (``space.define``) and
``codesign.optimize_model``: end to end through ``codesign run`` on the real digits data, with the
built-in set, a data-set factory and a folder of PNG images, and the export of a front pair."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

import codesign
from codesign.cli import main
from codesign.config.experiment import config_from_mapping, load_config
from codesign.core.errors import CodesignError, ConfigError
from codesign.nn.data import DataSplits
from codesign.nn.own_model import MODEL_ARCH_ID, Recorder, define_by_run_space, model_space, quantizable
from codesign.nn.training import ScratchEvaluator, TrainSchedule
from codesign.quantization.fake import QuantConv2d, QuantLinear, quant_layers, set_quant_mode
from codesign.results.front import load_front
from codesign.search.build import build_problem

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "experiments" / "models.py"
DEFINE = Path(__file__).resolve().parent / "define_space.py"


def _module(path: Path) -> Any:
    """The Python file at ``path``, loaded on its own."""
    spec = importlib.util.spec_from_file_location(f"{path.stem}_for_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _models() -> Any:
    return _module(MODELS)


def digits_cnn() -> nn.Module:
    return _models().digits_cnn()


def _yaml(tmp: Path, *, space: str, dataset: str = "digits", data_dir: str = "", trials: int = 4, strategy: str = "hao") -> Path:
    extra = f", data_dir: {data_dir}" if data_dir else ""
    options = ", options: {hessian_samples: 64}" if strategy == "hao" else ""
    text = (
        "name: own\n"
        f"space: {space}\n"
        "hardware: {model: overlay, device: xczu3eg, clock_mhz: 200}\n"
        f"accuracy: {{method: scratch, dataset: '{dataset}', epochs: 2, qat_steps: 5, cache_dir: {tmp / 'cache'}{extra}}}\n"
        "objectives: {accuracy: maximize, latency_ms: minimize}\n"
        f"strategy: {{name: {strategy}{options}}}\n"
        f"budget: {{trials: {trials}, seed: 0}}\n"
    )
    path = tmp / "exp.yaml"
    path.write_text(text)
    return path


MODEL_SPACE = f"{{model: '{MODELS}:digits_cnn', input_shape: [1, 8, 8], weight_bits: [2, 4, 8], act_bits: [4, 8]}}"
DEFINE_SPACE = f"{{define: '{DEFINE}:build', input_shape: [1, 8, 8], weight_bits: [4, 8], act_bits: [8]}}"


def _run(capsys: pytest.CaptureFixture[str], exp: Path, *args: str) -> tuple[int, str, str]:
    code = main(["run", str(exp), "--out", str(exp.parent / "out"), "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _completed(out: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name="own", storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))


# -- quantizable copies and the space contract ---------------------------------------------------------


def test_quantizable_swaps_layers_in_order_and_computes_the_same() -> None:
    torch.manual_seed(0)
    model = digits_cnn().eval()
    q = quantizable(model).eval()
    plain = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert [n for n, m in q.named_modules() if isinstance(m, QuantConv2d | QuantLinear)] == plain
    assert all(isinstance(m, QuantConv2d | QuantLinear) for m in q.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    x = torch.randn(5, 1, 8, 8)
    set_quant_mode(q, "float")
    assert torch.equal(q(x), model(x))
    assert not any(isinstance(m, QuantConv2d | QuantLinear) for m in model.modules())  # the original is kept
    with pytest.raises(CodesignError, match="subclass of nn.Conv2d"):
        quantizable(nn.Sequential(type("MyConv", (nn.Conv2d,), {})(1, 2, 3)))


def test_the_model_space_has_one_architecture_whose_network_is_the_model() -> None:
    space = model_space(digits_cnn, (1, 8, 8), name="digits_cnn", spec="models.py:digits_cnn")
    assert space.choices() == {} and space.num_classes == 10
    arch = space.sample(np.random.default_rng(0))
    assert arch == space.from_choices({}) == space.from_id(space.arch_id(arch)) == MODEL_ARCH_ID
    network = space.network(arch, (2, 4, 8, 4), (8, 8, 4, 4))
    assert [layer.name for layer in network.weighted_layers] == ["0", "3", "7", "12"]  # nn.Sequential's names
    assert [layer.weight_bits for layer in network.weighted_layers] == [2, 4, 8, 4]
    assert len(quant_layers(space.build_model(arch))) == 4
    with pytest.raises(CodesignError, match="one architecture"):
        space.from_id("other")


# -- codesign run on the user's model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("own")
    code = main(["run", str(_yaml(tmp, space=MODEL_SPACE)), "--out", str(tmp / "out"), "--quiet"])
    assert code == 0
    return tmp


def test_the_own_model_runs_through_codesign_run_with_the_hao_program(digits_run: Path) -> None:
    trials = _completed(digits_run / "out")
    assert len(trials) == 4
    assert all(t.user_attrs["codesign.search.hao"]["program"] == "hao" for t in trials)
    points = {(t.params["hao.alpha"], t.params["hao.act_bits"]) for t in trials}
    assert len(points) == 4  # no trade-off point measured twice while others are unseen
    front = load_front(digits_run / "out")
    assert len(front.pairs()) >= 1
    config = load_config(digits_run / "exp.yaml")
    network = build_problem(config).space.network(MODEL_ARCH_ID)
    modules = [n for n, m in digits_cnn().named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert [layer.name for layer in network.weighted_layers] == modules


def test_a_front_pair_of_the_own_model_exports_and_qonnx_agrees(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = json.loads((digits_run / "out" / "front.json").read_text())["pairs"][0]
    target = digits_run / "pair"
    code = main(["export", str(digits_run / "out"), "--pair", str(pair["trial"]), "--to", str(target)])
    _, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads((target / "pair.json").read_text())
    check = doc["export_check"]["qonnx"]
    assert check["samples"] == check["same_predictions"] > 300
    assert doc["space"]["name"] == "digits_cnn"
    weighted = [layer for layer in doc["layers"] if layer["kind"] in ("conv", "linear")]
    assert [layer["weight_bits"] for layer in weighted] == pair["candidate"]["weight_bits"]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


@pytest.mark.parametrize("space", [MODEL_SPACE, DEFINE_SPACE], ids=["model", "define"])
def test_the_own_model_runs_on_a_data_set_factory(tmp_path: Path, capsys: pytest.CaptureFixture[str], space: str) -> None:
    (tmp_path / "data.py").write_text(
        "from sklearn.datasets import load_digits\n\n"
        "def load():\n"
        "    d = load_digits()\n"
        "    return d.images.astype('float32')[:900], d.target[:900]\n"
    )
    code, _, err = _run(capsys, _yaml(tmp_path, space=space, dataset="data.py:load", trials=2))
    assert code == 0, err
    assert len(_completed(tmp_path / "out")) == 2 and load_front(tmp_path / "out").pairs()


@pytest.mark.parametrize("space", [MODEL_SPACE, DEFINE_SPACE], ids=["model", "define"])
def test_the_own_model_runs_on_an_image_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str], space: str) -> None:
    x, y = _digits_arrays()
    for i, (image, label) in enumerate(zip(x[:600], y[:600], strict=True)):
        folder = tmp_path / "imgs" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 15).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
    code, _, err = _run(capsys, _yaml(tmp_path, space=space, dataset="folder", data_dir="imgs", trials=2))
    assert code == 0, err
    assert len(_completed(tmp_path / "out")) == 2 and load_front(tmp_path / "out").pairs()


def test_given_weights_are_loaded_and_not_trained(tmp_path: Path, digits: DataSplits) -> None:
    torch.manual_seed(1)
    trained = digits_cnn()
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    space = model_space(digits_cnn, (1, 8, 8), name="digits_cnn", weights=tmp_path / "w.pt")
    assert space.pretrained
    built = space.build_model(MODEL_ARCH_ID)
    assert torch.equal(built.state_dict()["0.weight"], trained.state_dict()["0.weight"])
    evaluator = ScratchEvaluator(space, digits, schedule=TrainSchedule(epochs=1), cache=None, seed=0)
    model, _ = evaluator.float_model(MODEL_ARCH_ID)
    assert all(torch.equal(model.state_dict()[k].cpu(), v) for k, v in trained.state_dict().items())
    other = model_space(digits_cnn, (1, 8, 8), name="digits_cnn", weights=digits_cnn().state_dict())
    assert other.cache_identity() != space.cache_identity()  # other weights, other cache entries


UNTRACEABLE = (
    "import torch\nfrom torch import nn\n\n"
    "class Spectral(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(64, 10)\n"
    "    def forward(self, x):\n"
    "        return self.fc(torch.fft.fft2(x).real.flatten(1))\n\n"
    "def make():\n    return Spectral()\n\n"
    "def not_a_model():\n    return 3\n"
)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("{model: 'no colon', input_shape: [1, 8, 8]}", "space.model: expected 'package.module:function'"),
        ("{model: 'missing.py:make', input_shape: [1, 8, 8]}", "space.model: model factory 'missing.py:make': file not found"),
        ("{model: 'bad.py:nothing', input_shape: [1, 8, 8]}", "has no attribute 'nothing'"),
        ("{model: 'bad.py:make', input_shape: [1, 8, 8]}", "space.model: cannot cost node 'fft_fft2'"),
        ("{model: 'bad.py:not_a_model', input_shape: [1, 8, 8]}", "must return a torch.nn.Module"),
        ("{model: 'bad.py:make'}", "space.input_shape: required with space.model"),
        ("{model: 'bad.py:make', architecture: mbconv_digits, input_shape: [1, 8, 8]}", "space: needs exactly one of"),
        (f"{{model: '{MODELS}:digits_cnn', input_shape: [1, 8, 8], weights: nowhere.pt}}", "space.weights: weights file not found"),
        ("{define: 'bad.py:make', input_shape: [1, 8, 8], weights: w.pt}", "space.weights: only for space.model"),
    ],
)
def test_a_bad_model_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], space: str, message: str) -> None:
    (tmp_path / "bad.py").write_text(UNTRACEABLE)
    code, _, err = _run(capsys, _yaml(tmp_path, space=space))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_an_own_model_needs_the_scratch_method() -> None:
    config = config_from_mapping({
        "name": "own", "space": {"model": f"{MODELS}:digits_cnn", "input_shape": [1, 8, 8]},
        "hardware": {"device": "xczu3eg"}, "accuracy": {"method": "supernet"}, "objectives": {"accuracy": "maximize"},
    })
    with pytest.raises(ConfigError, match="accuracy.method: space.model trains each model itself"):
        build_problem(config)


# -- optimize_model ---------------------------------------------------------------------------------------


def test_optimize_model_returns_the_front_of_a_model_object(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = digits_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    front = codesign.optimize_model(
        model, _digits_arrays(), weight_bits=(2, 8), act_bits=(8,), trials=3, epochs=2, qat_steps=0,
        cache_dir=tmp_path / "cache", out_dir=tmp_path / "out",
    )
    assert isinstance(front, codesign.ParetoFront) and len(front.pairs()) >= 1
    pair = front.pairs()[0]
    assert pair.candidate.arch_id == MODEL_ARCH_ID and len(pair.candidate.weight_bits) == 4
    assert "accuracy_test" in front.table.columns
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    with pytest.raises(CodesignError, match="must return logits"):
        codesign.optimize_model(nn.Sequential(nn.Conv2d(1, 2, 3)), "digits", trials=1, cache_dir=tmp_path / "cache")


# -- define-by-run ----------------------------------------------------------------------------------------


def test_the_recorder_finds_conditional_choices_and_grids() -> None:
    space = define_by_run_space(_define().build, (1, 8, 8), name="build")
    assert space.choices() == {"depth": [1, 2], "kernel_0": [1, 3], "kernel_1": [1, 3], "width": [8, 16]}
    arch = space.from_choices({"depth": 1, "kernel_0": 3, "kernel_1": 1, "width": 16})
    assert space.arch_id(arch) == '{"depth":1,"kernel_0":3,"width":16}'  # kernel_1 is not asked at depth 1
    assert space.from_id(space.arch_id(arch)) == arch
    network = space.network(arch)
    assert [layer.kind for layer in network.weighted_layers] == ["conv", "linear"]
    assert network.weighted_layers[0].kernel == 3 and network.weighted_layers[0].out_channels == 16
    assert len(space.encode(arch)) == len(space.encode(space.sample(np.random.default_rng(1)))) == 4
    grid = define_by_run_space(_define().fixed, (1, 8, 8), name="fixed").choices()
    assert grid["dropout"] == [0.0, 0.25, 0.5] and len(grid["lr_hint"]) == 8
    with pytest.raises(CodesignError, match="not a value of choice"):
        space.from_choices({"width": 12})
    recorder = Recorder(lambda _n, values: values[0])
    assert recorder.suggest_int("n", 2, 64, log=True) == 2 and recorder.offered["n"][-1] == 64


def _define() -> Any:
    return _module(DEFINE)


@pytest.mark.parametrize("strategy", ["hao", "tpe"])
def test_a_define_by_run_space_runs_through_codesign_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str) -> None:
    code, _, err = _run(capsys, _yaml(tmp_path, space=DEFINE_SPACE, trials=3, strategy=strategy))
    assert code == 0, err
    trials = _completed(tmp_path / "out")
    assert len(trials) == 3
    assert all(any(k.startswith("arch.") for k in t.params) for t in trials)
    pairs = load_front(tmp_path / "out").pairs()
    assert pairs and json.loads(pairs[0].candidate.arch_id)["width"] in (8, 16)

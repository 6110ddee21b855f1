"""The user's own data end to end through ``codesign run``: a factory named in the experiment (by module and
by file), a folder of PNG images and an ``.npz`` file, on the real digits images; the seeded splits; the
test split kept from the search; bad input as one line with exit code 2; cache keys that follow the data.

The factories live in this module (``tests.nn.test_user_data:digits_train``) so the experiments can name them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from codesign.cli import main
from codesign.config import load_config
from codesign.nn.data import DataSplits, load_dataset
from codesign.nn.evaluators import CachedEvaluator, ScratchEvaluator
from codesign.nn.image_folder import FolderDataset
from codesign.nn.testing import DatasetConformance
from codesign.nn.user_data import FactoryDataset, NpzDataset, load_any
from codesign.results.front import load_front
from codesign.search.build import build_problem
from codesign.search.storage import ATTR_CANDIDATE, ATTR_METRICS, open_existing_storage

HERE = Path(__file__).resolve()
MODULE = "tests.nn.test_user_data"
N_TEST = 300
"""Images at the end of digits that :func:`digits_train_and_test` gives as the test split."""


def _digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)  # pixels 0..16, (N, 8, 8)


# -- factories the experiments name ---------------------------------------------------------------------


def digits_train() -> tuple[torch.Tensor, torch.Tensor]:
    """Only training data, as float tensors (N, 1, 8, 8): validation and test are carved out of it."""
    x, y = _digits()
    return torch.from_numpy(x)[:, None], torch.from_numpy(y)


def digits_train_and_test() -> dict[str, Any]:
    """Training and test data (no validation split: it is carved out of the training data)."""
    x, y = _digits()
    return {"train": (x[:-N_TEST], y[:-N_TEST]), "test": (x[-N_TEST:], y[-N_TEST:])}


def raises() -> None:
    raise ValueError("the data server is down")


def flat_images() -> tuple[np.ndarray, np.ndarray]:
    x, y = _digits()
    return x.reshape(len(x), -1), y


def labels_from_one() -> tuple[np.ndarray, np.ndarray]:
    x, y = _digits()
    return x, y + 1


def one_label_short() -> tuple[np.ndarray, np.ndarray]:
    x, y = _digits()
    return x, y[:-1]


def three_classes(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Digits 0, 1 and 2 as uint8 pixels; called with ``accuracy.data_dir``, which must exist."""
    assert Path(root).is_dir()
    x, y = _digits()
    keep = y < 3
    return (x[keep] * 15).astype(np.uint8), y[keep]


# -- the experiments -------------------------------------------------------------------------------------


def experiment(
    tmp: Path, dataset: str, data_dir: Path | str | None = None, *, strategy: str = "random", options: str = ""
) -> Path:
    path = tmp / "ud.yaml"
    data = f"  data_dir: {json.dumps(str(data_dir))}\n" if data_dir is not None else ""
    path.write_text(
        "name: ud\n"
        f"space: {{architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [8], options: {{depths: [1], expansions: [1, 3]{options}}}}}\n"
        "hardware: {model: overlay, device: xczu3eg, clock_mhz: 200}\n"
        "accuracy:\n"
        "  method: scratch\n"
        f"  dataset: {json.dumps(dataset)}\n" + data + "  epochs: 1\n"
        f"  cache_dir: {json.dumps(str(tmp / 'cache'))}\n"
        "objectives: {accuracy: maximize, latency_ms: minimize}\n"
        f"strategy: {{name: {strategy}}}\n"
        "budget: {trials: 2, seed: 0}\n"
    )
    return path


def run(exp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["run", str(exp), "--out", str(exp.parent / "out"), "--quiet"])
    return code, capsys.readouterr().err


def completed(out: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="ud", storage=open_existing_storage(out))
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def assert_study_done(exp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(exp, capsys)
    assert code == 0, err
    out = exp.parent / "out"
    assert len(completed(out)) == 2
    assert (out / "front.json").is_file() and len(load_front(out).pairs()) >= 1


def write_pngs(root: Path, x: np.ndarray, y: np.ndarray, *, split: str = "") -> None:
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 15).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")


@pytest.fixture(scope="module")
def png_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("png") / "digits"
    write_pngs(root, *_digits())
    return root


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = _digits()
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    pixels = (x * 15).astype(np.uint8)
    np.savez(path, x_train=pixels[:1400], y_train=y[:1400], x_val=pixels[1400:], y_val=y[1400:])
    return path


# -- each source end to end ----------------------------------------------------------------------------


def test_a_factory_module_with_only_training_data_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = experiment(tmp_path, f"{MODULE}:digits_train")
    assert_study_done(exp, capsys)
    data = build_problem(load_config(exp)).accuracy.data  # type: ignore[attr-defined]
    # the splits are carved out of the factory's images, seeded and stratified: every image once, all classes
    x, y = digits_train()
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (1078, 360, 359)
    raw = torch.cat([data.preprocess.invert(s) for s in (data.train_x, data.val_x, data.test_x)])
    assert torch.allclose(raw.sum(), x.sum(), rtol=1e-5)
    assert sorted(torch.cat([data.train_y, data.val_y, data.test_y]).tolist()) == sorted(y.tolist())
    assert {int(c) for c in data.test_y.unique()} == set(range(10)) and data.num_classes == 10
    assert data.preprocess.scale == 1.0 and abs(float(data.train_x.mean())) < 1e-4
    again = load_any(f"{MODULE}:digits_train", seed=0)
    assert torch.equal(again.val_x, data.val_x) and not torch.equal(load_any(f"{MODULE}:digits_train", seed=1).val_y, data.val_y)


def test_a_factory_file_keeps_its_test_split_from_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[str] = []
    original = CachedEvaluator._accuracy

    def spy(self: CachedEvaluator, model: torch.nn.Module, split: str) -> float:
        scored.append(split)
        return original(self, model, split)

    monkeypatch.setattr(CachedEvaluator, "_accuracy", spy)
    relative = os.path.relpath(HERE, tmp_path)  # the file form, relative to the experiment file
    exp = experiment(tmp_path, f"{relative}:digits_train_and_test")
    assert_study_done(exp, capsys)
    out = tmp_path / "out"
    front = load_front(out).pairs()
    # the search scores the validation split only; the test split is scored after it, for the front alone
    first_test = scored.index("test")
    assert set(scored[:first_test]) == {"val"} and set(scored[first_test:]) == {"test"}
    assert len(front) <= len(scored) - first_test <= 2 * len(front)  # full precision and quantized, per pair

    evaluator = build_problem(load_config(exp)).accuracy  # type: ignore[attr-defined]
    data: DataSplits = evaluator.data
    given = digits_train_and_test()["test"]
    assert torch.equal(data.test_y, torch.from_numpy(given[1]))  # the factory's test split, in its order
    assert torch.allclose(data.preprocess.invert(data.test_x)[:, 0], torch.from_numpy(given[0]), atol=1e-4)
    space = build_problem(load_config(exp)).space  # type: ignore[attr-defined]
    for trial in completed(out):
        candidate = trial.user_attrs[ATTR_CANDIDATE]
        arch = space.from_id(candidate["arch_id"])
        val = evaluator.measure(arch, candidate["weight_bits"], candidate["act_bits"], split="val")
        assert val.cached and trial.user_attrs[ATTR_METRICS]["accuracy"] == val.quant_acc  # the search's number is validation
    for pair in front:
        test = evaluator.measure(space.from_id(pair.candidate.arch_id), pair.candidate.weight_bits, pair.candidate.act_bits, split="test")
        assert pair.metrics["accuracy_test"] == test.quant_acc


def test_an_image_folder_runs(png_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = experiment(tmp_path, "folder", png_root)
    assert_study_done(exp, capsys)
    data = load_any("folder", root=png_root, seed=0)
    assert data.class_names == tuple(str(c) for c in range(10)) and data.input_shape == (1, 8, 8)
    assert data.preprocess.scale == pytest.approx(1 / 255) and len(data.train_y) + len(data.val_y) + len(data.test_y) == 1797


def test_an_image_folder_with_split_folders(tmp_path: Path) -> None:
    x, y = _digits()
    write_pngs(tmp_path, x[:200], y[:200], split="train")
    write_pngs(tmp_path, x[200:260], y[200:260], split="test")
    data = FolderDataset().load(seed=0, root=tmp_path)
    assert len(data.test_y) == 60 and len(data.train_y) + len(data.val_y) == 200
    assert torch.equal(data.test_y.sort().values, torch.from_numpy(y[200:260]).sort().values)


def test_an_npz_file_runs_with_hessian_traces(npz_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = experiment(tmp_path, "npz", npz_file, strategy="hao")  # HAO's bits come from Hessian traces
    assert_study_done(exp, capsys)
    data = load_any("npz", root=npz_file, seed=0)
    assert len(data.val_y) == 1797 - 1400  # given, not carved
    assert (len(data.train_y), len(data.test_y)) == (1120, 280)  # the test split is 20 % of the training data


def test_the_number_of_classes_comes_from_the_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("raw", "ten", "three"):
        (tmp_path / sub).mkdir()
    spec = f"{MODULE}:three_classes"
    code, err = run(experiment(tmp_path / "ten", spec, tmp_path / "raw"), capsys)
    assert code == 2 and "has 3 classes but space 'mbconv_digits' has 10 outputs" in err and "num_classes: 3" in err
    assert_study_done(experiment(tmp_path / "three", spec, tmp_path / "raw", options=", num_classes: 3"), capsys)
    data = load_any(spec, root=tmp_path / "raw", seed=0)
    assert data.num_classes == 3 and data.preprocess.scale == pytest.approx(1 / 255)


class TestNpzConformance(DatasetConformance):
    @pytest.fixture
    def dataset(self) -> NpzDataset:
        return NpzDataset()

    @pytest.fixture
    def root(self, npz_file: Path) -> Path:
        return npz_file


class TestFolderConformance(DatasetConformance):
    @pytest.fixture
    def dataset(self) -> FolderDataset:
        return FolderDataset()

    @pytest.fixture
    def root(self, png_root: Path) -> Path:
        return png_root


class TestFactoryConformance(DatasetConformance):
    @pytest.fixture
    def dataset(self) -> FactoryDataset:
        return FactoryDataset(spec=f"{MODULE}:digits_train")


# -- bad input -------------------------------------------------------------------------------------------


def _npz(tmp: Path, **arrays: np.ndarray) -> Path:
    path = tmp / "bad.npz"
    np.savez(path, **arrays)
    return path


def _two_sizes(tmp: Path) -> Path:
    x, y = _digits()
    write_pngs(tmp / "imgs", x[:20], y[:20])
    Image.new("L", (9, 8)).save(tmp / "imgs" / "3" / "odd.png")
    return tmp / "imgs"


def _gray_and_rgb(tmp: Path) -> Path:
    x, y = _digits()
    write_pngs(tmp / "imgs", x[:20], y[:20])
    Image.new("RGB", (8, 8)).save(tmp / "imgs" / "3" / "colour.png")
    return tmp / "imgs"


X, Y = _digits()
BAD = [
    # (dataset, a function of the temporary folder giving data_dir or None, words of the one-line message)
    ("nowhere_module_xyz:load", None, "accuracy.dataset: factory 'nowhere_module_xyz:load': cannot import"),
    (f"{MODULE}:nope", None, "has no attribute 'nope'"),
    ("missing.py:load", None, "file not found"),
    ("my data:load", None, "accuracy.dataset: expected 'package.module:function'"),
    (f"{MODULE}:raises", None, "raised ValueError: the data server is down"),
    (f"{MODULE}:flat_images", None, "train images must be (N, C, H, W) or (N, H, W), got shape (1797, 64)"),
    (f"{MODULE}:labels_from_one", None, "class 0 of 0..10 has none"),
    (f"{MODULE}:one_label_short", None, "train has 1797 images but 1796 labels"),
    ("npz", lambda t: t / "absent.npz", "accuracy.data_dir: npz file not found"),
    ("npz", lambda t: _npz(t, x_train=X, y_train=Y.astype(np.float32)), "train labels are float32"),
    ("npz", lambda t: _npz(t, x_train=X, y_train=Y, x_val=X[:0], y_val=Y[:0]), "the val split is empty"),
    ("npz", lambda t: _npz(t, x_train=X, y_train=Y, images=X), "unknown arrays images"),
    ("npz", lambda t: _npz(t, x_train=X.astype(np.int32), y_train=Y), "train images are int32; expected float or uint8"),
    ("folder", lambda t: t / "nowhere", "accuracy.data_dir: image folder not found"),
    ("folder", _two_sizes, "odd.png is 9x8 pixels but"),
    ("folder", _gray_and_rgb, "colour.png is RGB but"),
    ("folder", None, "the folder data set needs accuracy.data_dir"),
]


@pytest.mark.parametrize(("dataset", "make", "words"), BAD, ids=[f"{d}-{w[:24]}" for d, _, w in BAD])
def test_bad_data_is_one_line_with_exit_code_2(
    dataset: str, make: Any, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(experiment(tmp_path, dataset, make(tmp_path) if make else None), capsys)
    assert code == 2
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_factory_that_fails_is_called_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.nn.test_user_data as me

    calls: list[int] = []

    def counted() -> None:
        calls.append(1)
        raise ValueError("down")

    monkeypatch.setattr(me, "raises", counted)
    code, err = run(experiment(tmp_path, f"{MODULE}:raises"), capsys)
    assert code == 2 and "down" in err and len(calls) == 1  # each failed trial says why, without calling it again


# -- cache keys ------------------------------------------------------------------------------------------


def test_the_cache_key_follows_the_data(tmp_path: Path) -> None:
    x, y = (X * 15).astype(np.uint8), Y
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y)
    x[7, 3, 4] ^= 1  # one pixel
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y)
    a, a2, b = (load_any("npz", root=tmp_path / f, seed=0) for f in ("a.npz", "a.npz", "b.npz"))
    assert a.describe() == a2.describe() and a.describe() != b.describe()
    space = build_problem(load_config(experiment(tmp_path, "npz", tmp_path / "a.npz"))).space  # type: ignore[attr-defined]
    arch = space.smallest()
    keys = [ScratchEvaluator(space, d)._key(arch, None) for d in (a, a2, b)]
    assert keys[0] == keys[1] != keys[2]
    assert "content" not in load_dataset("digits", seed=0).describe()  # the built-ins' keys are as they were

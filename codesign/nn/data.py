"""Data sets for measuring accuracy: MNIST from its standard IDX files and scikit-learn's 8x8 digits.

Splits are seeded and disjoint: for MNIST the official 10,000-image test set is the test split and the
validation split is carved out of the 60,000 training images; digits (1,797 images) is split
stratified into train / validation / test. Images are float32 tensors ``(N, 1, H, W)`` normalised with
the training split's mean and standard deviation; labels are int64. A search only ever sees the
validation split; the test split is for the final report. The user's own data (a factory, a folder of
images, ``.npz`` arrays) come through :mod:`codesign.nn.user_data`.
"""

from __future__ import annotations

import gzip
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from codesign.core.errors import CodesignError
from codesign.core.plugins import DATASETS, load_plugin, plugin_names

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DIGITS_MAX = 16.0
"""scikit-learn's digits are 8x8 images of integer pixels in 0..16 (its ``load_digits`` documentation)."""
_IDX_MAGIC = {2051: 3, 2049: 1}  # magic number -> number of dimensions (images, labels)


@dataclass(frozen=True)
class Preprocess:
    """What turns a raw input into the model's input: ``(raw * scale - mean) / std``, with ``mean`` and
    ``std`` those of the training split. ``raw`` says what the raw input is (e.g. scikit-learn's
    ``load_digits`` pixels, 0..16). An export carries it, so the exported model takes raw inputs."""

    scale: float = 1.0
    mean: float = 0.0
    std: float = 1.0
    raw: str = "the data set's inputs as given to the model (no preprocessing recorded)"

    @property
    def mul(self) -> float:
        return self.scale / self.std

    @property
    def add(self) -> float:
        return -self.mean / self.std

    def apply(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw * self.scale - self.mean) / self.std

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """The raw input that preprocesses into ``x``."""
        return (x * self.std + self.mean) / self.scale

    def to_dict(self) -> dict[str, object]:
        return {"raw": self.raw, "scale": self.scale, "mean": self.mean, "std": self.std,
                "formula": "(raw * scale - mean) / std"}


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train / validation / test tensors of one data set under one seed."""

    name: str
    seed: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int = 10
    preprocess: Preprocess = Preprocess()
    """How the raw inputs became ``*_x`` (identity where a data set records none)."""
    content_hash: str = ""
    """A hash of the tensors of all three splits, for data that a name and a seed do not identify (the
    user's own: edited data must not meet the cache entries of the old); empty for the built-ins."""
    class_names: tuple[str, ...] = ()
    """The name of each class index, where the data name them (an image folder's class subfolders)."""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if which not in ("train", "val", "test"):
            raise CodesignError(f"unknown split {which!r}; expected train, val or test")
        return getattr(self, f"{which}_x"), getattr(self, f"{which}_y")

    def describe(self) -> dict[str, object]:
        """What identifies these splits (for cache keys): the name, the seed and the sizes, and for the
        user's own data the :attr:`content_hash` too."""
        described: dict[str, object] = {
            "name": self.name,
            "seed": self.seed,
            "sizes": [len(self.train_y), len(self.val_y), len(self.test_y)],
        }
        if self.content_hash:
            described["content"] = self.content_hash
        return described


def read_idx(path: Path) -> np.ndarray:
    """One gzip-compressed IDX file (images ``(N, rows, cols)`` or labels ``(N,)``) as uint8, after checking
    its magic number and that its size matches its header."""
    if not path.is_file():
        raise CodesignError(f"MNIST file missing: {path}")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise CodesignError(f"MNIST file {path} is not a readable gzip file: {exc}") from None
    if len(raw) < 8:
        raise CodesignError(f"MNIST file {path} is truncated ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _IDX_MAGIC:
        raise CodesignError(
            f"MNIST file {path}: bad magic number {magic}; expected 2051 (images) or 2049 (labels)"
        )
    ndim = _IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise CodesignError(
            f"MNIST file {path}: header says {dims} ({expected} bytes), file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _check_idx_header(path: Path, magic: int) -> None:
    """Raise :class:`CodesignError` unless ``path`` is a gzip file whose IDX header has ``magic``."""
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(4)
    except (OSError, EOFError) as exc:
        raise CodesignError(f"MNIST file {path} is not a readable gzip file: {exc}") from None
    found = int.from_bytes(head, "big") if len(head) == 4 else None
    if found != magic:
        kind = "images" if magic == 2051 else "labels"
        raise CodesignError(f"MNIST file {path}: expected IDX {kind} (magic number {magic}), found {found}")


def load_mnist_arrays(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, test_images, test_labels)`` from the four IDX files in ``root``."""
    root = Path(root)
    arrays = {key: read_idx(root / filename) for key, filename in MNIST_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels):
            raise CodesignError(f"MNIST in {root}: {len(images)} {part} images but {len(labels)} labels")
        if labels.max(initial=0) > 9:
            raise CodesignError(f"MNIST in {root}: {part} labels outside 0..9")
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


def default_mnist_root() -> Path:
    """``../shared/data/mnist`` beside the checkout (where this repository's experiments keep MNIST)."""
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def _stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator
) -> list[np.ndarray]:
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        for i, chunk in enumerate(np.split(idx, bounds[:-1])):
            parts[i].append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def _tensors(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32))
    return ((x - mean) / std).unsqueeze(1).contiguous()


class DatasetSource(ABC):
    """The data-set contract: seeded, disjoint train / validation / test splits as tensors.

    Registered in the ``codesign.datasets`` entry-point group (the built-ins too) and checked by
    subclassing :class:`codesign.nn.testing.DatasetConformance`. Built with no arguments; everything a
    load depends on is an argument of :meth:`load`.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def load(
        self,
        *,
        seed: int,
        root: Path | None = None,
        train_subset: int | None = None,
        val_size: int | None = None,
    ) -> DataSplits:
        """The splits under ``seed``: images ``(N, C, H, W)`` float32 normalised with the training split's
        statistics, int64 labels in ``0..num_classes-1``; the same seed gives the same splits, and no
        example is in two splits. ``root`` is where the files are (``accuracy.data_dir``), ``train_subset``
        keeps that many seeded training examples, ``val_size`` sets the validation split's size."""

    def check(self, root: Path | None = None) -> None:
        """Raise :class:`CodesignError` naming what is missing when :meth:`load` cannot work (files absent),
        cheaply and without loading. Called when an experiment is built, before the first trial. The default
        checks nothing."""
        return None


def splits_from_arrays(
    name: str,
    seed: int,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    train_subset: int | None = None,
    rng: np.random.Generator,
    raw_scale: float = 1.0,
    raw: str = Preprocess.raw,
) -> DataSplits:
    """:class:`DataSplits` from ``(images (N, H, W), labels)`` arrays: the seeded training subset, then
    normalisation with the training split's mean and standard deviation. The arrays are the raw images
    times ``raw_scale``; ``raw`` says what the raw images are (both go into :attr:`DataSplits.preprocess`)."""
    if train_subset is not None:
        if not 0 < train_subset <= len(train[1]):
            raise CodesignError(f"{name}: train_subset must be in (0, {len(train[1])}], got {train_subset}")
        keep = rng.permutation(len(train[1]))[:train_subset]
        train = (train[0][keep], train[1][keep])
    mean, std = float(train[0].mean()), float(train[0].std())
    return DataSplits(
        name=name,
        seed=seed,
        train_x=_tensors(train[0], mean, std),
        train_y=torch.from_numpy(train[1]),
        val_x=_tensors(val[0], mean, std),
        val_y=torch.from_numpy(val[1]),
        test_x=_tensors(test[0], mean, std),
        test_y=torch.from_numpy(test[1]),
        preprocess=Preprocess(scale=raw_scale, mean=mean, std=std, raw=raw),
    )


class DigitsDataset(DatasetSource):
    """scikit-learn's bundled 8x8 digits (1,797 images), split 60/20/20 stratified by class."""

    name = "digits"

    def load(
        self, *, seed: int, root: Path | None = None, train_subset: int | None = None, val_size: int | None = None
    ) -> DataSplits:
        from sklearn.datasets import load_digits

        rng = np.random.default_rng(seed)
        bunch = load_digits()
        images, labels = (bunch.images / DIGITS_MAX).astype(np.float32), bunch.target.astype(np.int64)
        train_idx, val_idx, test_idx = _stratified_split(labels, (0.6, 0.2, 0.2), rng)
        if val_size is not None:
            val_idx = val_idx[:val_size]
        train = (images[train_idx], labels[train_idx])
        val = (images[val_idx], labels[val_idx])
        test = (images[test_idx], labels[test_idx])
        return splits_from_arrays(
            self.name, seed, train, val, test, train_subset=train_subset, rng=rng, raw_scale=1 / DIGITS_MAX,
            raw="scikit-learn load_digits() images, pixel values 0..16, shape (N, 1, 8, 8)",
        )


class MnistDataset(DatasetSource):
    """MNIST from its four IDX files in ``root`` (default :func:`default_mnist_root`): the official 10,000
    test images are the test split, the validation split (5,000 by default) comes out of the training set."""

    name = "mnist"

    def check(self, root: Path | None = None) -> None:
        """The folder exists and holds the four IDX files, each a gzip file whose header says images or
        labels as its name does (only the first bytes are read)."""
        folder = Path(root) if root is not None else default_mnist_root()
        try:
            exists, is_dir = folder.exists(), folder.is_dir()
        except (OSError, ValueError) as exc:  # a name longer than the file system allows, a NUL in it
            raise CodesignError(f"MNIST folder {str(folder)[:80]!r}: cannot use the path: {getattr(exc, 'strerror', None) or exc}") from None
        if not exists:
            raise CodesignError(f"MNIST folder not found: {folder}; expected a folder with {', '.join(MNIST_FILES.values())}")
        if not is_dir:
            raise CodesignError(f"MNIST data must be a folder holding the four IDX files, but {folder} is a file")
        missing = [f for f in MNIST_FILES.values() if not (folder / f).is_file()]
        if missing:
            raise CodesignError(f"MNIST files missing in {folder}: {', '.join(missing)}")
        for key, filename in MNIST_FILES.items():
            _check_idx_header(folder / filename, 2051 if key.endswith("images") else 2049)

    def load(
        self, *, seed: int, root: Path | None = None, train_subset: int | None = None, val_size: int | None = None
    ) -> DataSplits:
        rng = np.random.default_rng(seed)
        tr_x, tr_y, te_x, te_y = load_mnist_arrays(Path(root) if root is not None else default_mnist_root())
        n_val = 5000 if val_size is None else int(val_size)
        if not 0 < n_val < len(tr_y):
            raise CodesignError(f"mnist: val_size must be in (0, {len(tr_y)}), got {n_val}")
        order = rng.permutation(len(tr_y))
        val_idx, train_idx = order[:n_val], order[n_val:]
        train = (tr_x[train_idx] / 255.0, tr_y[train_idx].astype(np.int64))
        val = (tr_x[val_idx] / 255.0, tr_y[val_idx].astype(np.int64))
        test = (te_x / 255.0, te_y.astype(np.int64))
        return splits_from_arrays(
            self.name, seed, train, val, test, train_subset=train_subset, rng=rng, raw_scale=1 / 255.0,
            raw="MNIST IDX pixels, values 0..255, shape (N, 1, 28, 28)",
        )


def dataset_names() -> tuple[str, ...]:
    """Every registered data-set name."""
    return plugin_names(DATASETS)


def make_dataset(name: str) -> DatasetSource:
    """The data set registered as ``name``; an unknown name is an error listing the known ones."""
    cls = load_plugin(DATASETS, name)
    if not (inspect.isclass(cls) and issubclass(cls, DatasetSource)) or inspect.isabstract(cls):
        raise CodesignError(f"data set {name!r}: {cls!r} is not a concrete codesign.nn.data.DatasetSource")
    return cls()


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    seed: int = 0,
    train_subset: int | None = None,
    val_size: int | None = None,
) -> DataSplits:
    """Seeded splits of the data set registered as ``name`` (built-in: ``"digits"``, ``"mnist"``).

    ``train_subset`` keeps that many (seeded, random) training images; ``val_size`` is the number of
    validation images (MNIST default 5,000; digits uses a 60/20/20 stratified split).
    """
    source = make_dataset(name)
    return source.load(
        seed=seed, root=Path(root) if root is not None else None, train_subset=train_subset, val_size=val_size
    )

"""The user's own data: a factory named in the experiment, a folder of images, or ``.npz`` arrays.

``accuracy.dataset`` takes, besides a registered name:

- ``package.module:function`` or ``path/to/file.py:function`` (a file relative to the experiment file,
  loaded on its own: its folder is not put on ``sys.path``): a factory called with no arguments, or with
  the path ``accuracy.data_dir`` names when one is given. It returns the training data, or the training,
  validation and test data: a pair ``(x, y)``, a torch ``Dataset`` of ``(image, label)`` items, a triple
  ``(train, val, test)`` of those (``None`` for a missing one), or a mapping with keys ``train``, ``val``,
  ``test`` (the same values) or ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``, ``y_test``;
- ``folder`` (:class:`codesign.nn.image_folder.FolderDataset`): ``accuracy.data_dir`` holds one subfolder
  of PNG or JPEG images per class, or ``train/``, ``val/`` and ``test/`` folders (``train/`` required)
  that each hold them;
- ``npz`` (:class:`NpzDataset`): ``accuracy.data_dir`` is an ``.npz`` file with the arrays ``x_train``,
  ``y_train`` and optionally ``x_val``, ``y_val``, ``x_test``, ``y_test``.

Images are arrays ``(N, C, H, W)`` (or ``(N, H, W)`` for one channel) of float pixels, taken as they are
(scale 1), or of uint8 pixels, scaled by 1/255; labels are integers ``0..K-1``, every class with at least
one training image (``K`` is the number of classes). A split not given is carved out of the training
data, stratified by class and seeded by the experiment's seed: 20 % of it for a missing validation split,
20 % for a missing test split (60/20/20 when both are missing). ``train_subset`` then keeps a seeded
subset of the training split and ``val_size`` the first images of the validation split. Then, as for the
built-ins, every split is normalised with the training
split's mean and standard deviation (one number each, over all pixels and channels), recorded in
:attr:`DataSplits.preprocess`. The splits carry a hash of their tensors
(:attr:`DataSplits.content_hash`), so cached measurements never outlive a change of the data.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from codesign.config.experiment import check_factory_spec, is_factory_spec
from codesign.core.errors import CodesignError
from codesign.nn.data import DatasetSource, DataSplits, Preprocess, _stratified_split, make_dataset

Arrays = tuple[np.ndarray, np.ndarray]
SPLITS = ("train", "val", "test")
CARVED_FRACTION = 0.2
"""Share of the given training data that becomes a split the data do not give (validation, test)."""
NPZ_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def dataset_source(name: str, *, base_dir: Path | None = None) -> DatasetSource:
    """The data set ``name`` names: a factory ``module:function`` / ``file.py:function`` (a file relative to
    ``base_dir``, the experiment's folder) or a registered name (an unknown one is an error listing the
    known ones)."""
    if is_factory_spec(name):
        return FactoryDataset(spec=name, base_dir=base_dir)
    return make_dataset(name)


def load_any(
    name: str,
    *,
    root: Path | None = None,
    base_dir: Path | None = None,
    seed: int = 0,
    train_subset: int | None = None,
    val_size: int | None = None,
) -> DataSplits:
    """:func:`codesign.nn.data.load_dataset` for any ``accuracy.dataset``, factories included."""
    source = dataset_source(name, base_dir=base_dir)
    return source.load(seed=seed, root=root, train_subset=train_subset, val_size=val_size)


# -- checking and splitting arrays ------------------------------------------------------------------


def _array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    raise CodesignError(f"{what} must be a numpy array or a torch tensor, got {type(value).__name__}")


def _checked(x: Any, y: Any, split: str, what: str) -> Arrays:
    """``(x (N, C, H, W), y (N,) int64)`` after the checks every split gets."""
    x, y = _array(x, f"{what}: {split} images"), _array(y, f"{what}: {split} labels")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise CodesignError(f"{what}: {split} images must be (N, C, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise CodesignError(f"{what}: {split} images are {x.dtype}; expected float or uint8 pixels")
    if y.ndim != 1:
        raise CodesignError(f"{what}: {split} labels must be one per image, shape (N,), got shape {tuple(y.shape)}")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise CodesignError(f"{what}: {split} labels are {y.dtype}; expected integer class indices 0..K-1")
    if len(x) != len(y):
        raise CodesignError(f"{what}: {split} has {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise CodesignError(f"{what}: the {split} split is empty")
    if x.dtype != np.uint8 and not np.isfinite(x).all():
        raise CodesignError(f"{what}: {split} images hold NaN or infinite pixels")
    return x, y.astype(np.int64)


def _check_together(parts: Mapping[str, Arrays], what: str) -> int:
    """Raise unless the splits share one image shape and pixel type and their labels are ``0..K-1`` with
    every class in the training split; returns ``K``."""
    train_x, train_y = parts["train"]
    for split, (x, _) in parts.items():
        if x.shape[1:] != train_x.shape[1:]:
            raise CodesignError(f"{what}: {split} images are {tuple(x.shape[1:])} but train images are {tuple(train_x.shape[1:])}")
        if (x.dtype == np.uint8) != (train_x.dtype == np.uint8):
            raise CodesignError(f"{what}: train images are {train_x.dtype} but {split} images are {x.dtype}; give every split one pixel type")
    for split, (_, y) in parts.items():
        if int(y.min()) < 0:
            raise CodesignError(f"{what}: {split} has label {int(y.min())}; labels must be the class indices 0..K-1")
    classes = int(train_y.max()) + 1
    missing = sorted(set(range(classes)) - set(np.unique(train_y).tolist()))
    if missing:
        raise CodesignError(
            f"{what}: labels must be the class indices 0..K-1, each with training images; class {missing[0]} "
            f"of 0..{classes - 1} has none"
        )
    for split, (_, y) in parts.items():
        if int(y.max()) >= classes:
            raise CodesignError(f"{what}: {split} has label {int(y.max())}, which no training image has (classes 0..{classes - 1})")
    return classes


def _carve(parts: dict[str, Arrays], rng: np.random.Generator, what: str) -> dict[str, Arrays]:
    """The missing validation and test splits, stratified out of the training split."""
    missing = [s for s in ("val", "test") if s not in parts]
    if not missing:
        return parts
    x, y = parts["train"]
    fractions = (1 - CARVED_FRACTION * len(missing), *(CARVED_FRACTION,) * len(missing))
    chunks = _stratified_split(y, fractions, rng)
    out = dict(parts)
    for split, idx in zip(("train", *missing), chunks, strict=True):
        if len(idx) == 0:
            raise CodesignError(f"{what}: the {split} split carved from {len(y)} training images is empty; give more images or the split itself")
        out[split] = (x[idx], y[idx])
    return out


def _digest(arrays: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.data.cast("B"))
    return digest.hexdigest()[:32]


def user_splits(
    name: str,
    seed: int,
    given: Mapping[str, Arrays],
    *,
    what: str,
    raw: str,
    train_subset: int | None = None,
    val_size: int | None = None,
    class_names: tuple[str, ...] = (),
) -> DataSplits:
    """:class:`DataSplits` from the user's arrays (``given``: ``"train"`` and optionally ``"val"``,
    ``"test"``): checked, the missing splits carved out of the training data (seeded, stratified), the
    training subset and the validation size applied, then normalised with the training statistics.
    ``what`` names the data in error messages, ``raw`` says what the raw inputs are."""
    if "train" not in given:
        raise CodesignError(f"{what}: no training data given")
    parts = {split: _checked(*given[split], split, what) for split in SPLITS if split in given}
    num_classes = _check_together(parts, what)
    rng = np.random.default_rng(seed)
    parts = _carve(parts, rng, what)
    if val_size is not None:
        if not 0 < val_size <= len(parts["val"][1]):
            raise CodesignError(f"{what}: val_size must be in (0, {len(parts['val'][1])}], got {val_size}")
        parts["val"] = (parts["val"][0][:val_size], parts["val"][1][:val_size])
    if train_subset is not None:
        n = len(parts["train"][1])
        if not 0 < train_subset <= n:
            raise CodesignError(f"{what}: train_subset must be in (0, {n}], got {train_subset}")
        keep = rng.permutation(n)[:train_subset]
        parts["train"] = (parts["train"][0][keep], parts["train"][1][keep])
    scale = 1 / 255.0 if parts["train"][0].dtype == np.uint8 else 1.0
    pixels = {split: x.astype(np.float32) * np.float32(scale) for split, (x, _) in parts.items()}
    mean, std = float(pixels["train"].mean()), float(pixels["train"].std())
    if not std > 0:
        raise CodesignError(f"{what}: every training pixel has the value {mean:g}; nothing to learn from")
    tensors = {
        split: torch.from_numpy((pixels[split] - np.float32(mean)) / np.float32(std)).contiguous() for split in SPLITS
    }
    labels = {split: torch.from_numpy(np.ascontiguousarray(parts[split][1])) for split in SPLITS}
    content = _digest([a for split in SPLITS for a in (tensors[split].numpy(), labels[split].numpy())])
    return DataSplits(
        name=name,
        seed=seed,
        train_x=tensors["train"],
        train_y=labels["train"],
        val_x=tensors["val"],
        val_y=labels["val"],
        test_x=tensors["test"],
        test_y=labels["test"],
        num_classes=num_classes,
        preprocess=Preprocess(scale=scale, mean=mean, std=std, raw=raw),
        content_hash=content,
        class_names=class_names,
    )


# -- a factory ----------------------------------------------------------------------------------------


def _from_dataset(dataset: Any, split: str, what: str) -> Arrays:
    """``(x, y)`` stacked from a map-style torch ``Dataset`` of ``(image, label)`` items."""
    try:
        n = len(dataset)
    except TypeError:
        raise CodesignError(f"{what}: the {split} Dataset has no length; give a map-style Dataset (with __len__)") from None
    images: list[np.ndarray] = []
    labels: list[int] = []
    for i in range(n):
        item = dataset[i]
        if not (isinstance(item, Sequence) and len(item) == 2):
            raise CodesignError(f"{what}: item {i} of the {split} Dataset is not an (image, label) pair")
        image = _array(item[0], f"{what}: image {i} of the {split} Dataset")
        label = item[1]
        if _is_array(label) and _array(label, "").size == 1:
            label = _array(label, "").reshape(()).item()
        if images and image.shape != images[0].shape:
            raise CodesignError(f"{what}: image {i} of the {split} Dataset is {tuple(image.shape)}, image 0 is {tuple(images[0].shape)}")
        if not isinstance(label, int | np.integer) or isinstance(label, bool):
            raise CodesignError(f"{what}: label {i} of the {split} Dataset is {label!r}; expected an integer class index")
        images.append(image)
        labels.append(int(label))
    if not images:
        raise CodesignError(f"{what}: the {split} split is empty")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _is_array(value: Any) -> bool:
    return isinstance(value, torch.Tensor | np.ndarray)


def _split_value(value: Any, split: str, what: str) -> Arrays | None:
    if value is None:
        return None
    if isinstance(value, tuple | list) and len(value) == 2 and all(_is_array(v) for v in value):
        return value[0], value[1]
    if isinstance(value, Dataset):
        return _from_dataset(value, split, what)
    raise CodesignError(
        f"{what}: the {split} data must be an (images, labels) pair of arrays or a torch Dataset, got {type(value).__name__}"
    )


def parts_of(result: Any, what: str) -> dict[str, Arrays]:
    """The splits a factory returned (see the module's documentation for the forms it may take)."""
    if isinstance(result, Mapping):
        keys = {str(k) for k in result}
        if keys <= set(SPLITS):
            found = {s: _split_value(result[s], s, what) for s in SPLITS if s in result}
        elif keys <= set(NPZ_KEYS):
            found = _flat(result, what)
        else:
            raise CodesignError(
                f"{what}: unknown keys {', '.join(sorted(keys - set(SPLITS) - set(NPZ_KEYS)))}; expected "
                f"{', '.join(SPLITS)} or {', '.join(NPZ_KEYS)}"
            )
    elif isinstance(result, tuple | list) and len(result) == 2 and all(_is_array(v) for v in result):
        found = {"train": (result[0], result[1])}
    elif isinstance(result, tuple | list) and len(result) == 3:
        found = {s: _split_value(v, s, what) for s, v in zip(SPLITS, result, strict=True)}
    elif isinstance(result, Dataset):
        found = {"train": _from_dataset(result, "train", what)}
    else:
        raise CodesignError(
            f"{what}: returned {type(result).__name__}; expected (x, y), a torch Dataset, (train, val, test) "
            "or a mapping with keys train, val, test"
        )
    return {s: v for s, v in found.items() if v is not None}


def _flat(arrays: Mapping[str, Any], what: str) -> dict[str, Arrays | None]:
    out: dict[str, Arrays | None] = {}
    for split in SPLITS:
        x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if (x is None) != (y is None):
            have, lack = (f"x_{split}", f"y_{split}") if y is None else (f"y_{split}", f"x_{split}")
            raise CodesignError(f"{what}: {have} is given without {lack}")
        out[split] = None if x is None or y is None else (x, y)
    if out["train"] is None:
        raise CodesignError(f"{what}: x_train and y_train are required")
    return out


def load_factory(spec: str, *, base_dir: Path | None = None, what: str = "factory") -> Callable[..., Any]:
    """The callable ``spec`` names (``package.module:function`` or ``path/to/file.py:function``, a file
    relative to ``base_dir``, else to the working folder), imported but not called. A file is loaded on
    its own under a private module name (its folder is not put on ``sys.path``). Any failure is a
    one-line :class:`CodesignError` starting with ``what`` and the spec."""
    try:
        check_factory_spec(spec)
    except ValueError as exc:
        raise CodesignError(str(exc)) from None
    target, _, attribute = spec.rpartition(":")
    if target.endswith(".py"):
        module = _load_file(spec, base_dir, what)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise CodesignError(
                f"{what} {spec!r}: cannot import {target!r} ({exc}); a module must be installed or on "
                "PYTHONPATH, or name a file: path/to/file.py:function"
            ) from None
        except Exception as exc:
            raise CodesignError(f"{what} {spec!r}: importing {target!r} raised {first_line(exc)}") from None
    function = getattr(module, attribute, None)
    if function is None:
        raise CodesignError(f"{what} {spec!r}: {target!r} has no attribute {attribute!r}")
    if not callable(function):
        raise CodesignError(f"{what} {spec!r}: {attribute!r} is a {type(function).__name__}, not a function")
    return function


def factory_file(spec: str, base_dir: Path | None) -> Path | None:
    """The file a ``file.py:function`` spec names, made absolute (None for a module spec)."""
    target = spec.rpartition(":")[0]
    if not target.endswith(".py"):
        return None
    path = Path(target).expanduser()
    return path if path.is_absolute() else (base_dir or Path.cwd()) / path


def _load_file(spec_text: str, base_dir: Path | None, what: str) -> Any:
    path = factory_file(spec_text, base_dir)
    if path is None or not path.is_file():
        raise CodesignError(f"{what} {spec_text!r}: file not found: {path}")
    # a name of its own, never placed in sys.modules: two experiments' data.py files do not collide
    name = f"codesign_user_data_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CodesignError(f"{what} {spec_text!r}: {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise CodesignError(f"{what} {spec_text!r}: importing {path} raised {first_line(exc)}") from None
    return module


class FactoryDataset(DatasetSource):
    """Data from the user's function ``spec`` (``package.module:function`` or ``path/to/file.py:function``,
    a file relative to ``base_dir``); see the module's documentation for what it returns."""

    name = "factory"

    def __init__(self, *, spec: str, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.base_dir = base_dir

    def _function(self) -> Callable[..., Any]:
        return load_factory(self.spec, base_dir=self.base_dir)

    def check(self, root: Path | None = None) -> None:
        """The module or file imports and has the function (it is not called)."""
        self._function()

    def load(
        self, *, seed: int, root: Path | None = None, train_subset: int | None = None, val_size: int | None = None
    ) -> DataSplits:
        function = self._function()
        try:
            result = function() if root is None else function(root)
        except Exception as exc:
            raise CodesignError(f"factory {self.spec!r} raised {first_line(exc)}") from None
        what = f"factory {self.spec!r}"
        return user_splits(
            self.spec, seed, parts_of(result, what), what=what, train_subset=train_subset, val_size=val_size,
            raw=f"the images {self.spec} returns (uint8 pixels are scaled by 1/255, float pixels taken as they are)",
        )


def first_line(exc: BaseException) -> str:
    """``Type: the first line of the message`` (at most 300 characters of it)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


# -- .npz arrays ----------------------------------------------------------------------------------------


def _npz_path(root: Path | None) -> Path:
    if root is None:
        raise CodesignError("the npz data set needs accuracy.data_dir: the path of an .npz file with x_train and y_train")
    path = Path(root)
    if not path.exists():
        raise CodesignError(f"npz file not found: {path}")
    if not path.is_file():
        raise CodesignError(f"the npz data set needs an .npz file, but {path} is a folder")
    return path


def read_npz(root: Path | None) -> dict[str, Arrays]:
    """The splits in the ``.npz`` file ``root`` (keys :data:`NPZ_KEYS`; ``x_train``, ``y_train`` required)."""
    path = _npz_path(root)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            unknown = sorted(keys - set(NPZ_KEYS))
            if unknown:
                raise CodesignError(f"npz file {path}: unknown arrays {', '.join(unknown)}; expected {', '.join(NPZ_KEYS)}")
            arrays = {key: npz[key] for key in keys}
    except CodesignError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # not a zip file, an object array, a truncated member
        raise CodesignError(f"npz file {path} cannot be read: {first_line(exc)}") from None
    found = _flat(arrays, f"npz file {path}")
    return {s: v for s, v in found.items() if v is not None}


class NpzDataset(DatasetSource):
    """Arrays in an ``.npz`` file (``accuracy.data_dir``): ``x_train``, ``y_train`` and optionally ``x_val``,
    ``y_val``, ``x_test``, ``y_test`` (see the module's documentation for shapes and types)."""

    name = "npz"

    def check(self, root: Path | None = None) -> None:
        """The file exists, reads, holds only the known arrays, and they pass every check but the split."""
        what = f"npz file {root}"
        parts = {s: _checked(*v, s, what) for s, v in read_npz(root).items()}
        _check_together(parts, what)

    def load(
        self, *, seed: int, root: Path | None = None, train_subset: int | None = None, val_size: int | None = None
    ) -> DataSplits:
        path = _npz_path(root)
        return user_splits(
            self.name, seed, read_npz(path), what=f"npz file {path}", train_subset=train_subset, val_size=val_size,
            raw=f"the arrays in {path.name} (uint8 pixels are scaled by 1/255, float pixels taken as they are)",
        )


class MemoryDataset(DatasetSource):
    """Data handed over as objects (for :func:`codesign.optimize_model`): anything a factory may return
    (see the module's documentation), split and normalised the same way."""

    name = "memory"

    def __init__(self, *, value: Any, label: str = "data") -> None:
        self.value = value
        self.label = label

    def check(self, root: Path | None = None) -> None:
        what = self.label
        parts = {s: _checked(*v, s, what) for s, v in parts_of(self.value, what).items()}
        _check_together(parts, what)

    def load(
        self, *, seed: int, root: Path | None = None, train_subset: int | None = None, val_size: int | None = None
    ) -> DataSplits:
        what = self.label
        return user_splits(
            self.label, seed, parts_of(self.value, what), what=what, train_subset=train_subset, val_size=val_size,
            raw="the images given (uint8 pixels are scaled by 1/255, float pixels taken as they are)",
        )

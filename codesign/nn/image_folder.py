"""A folder of images as a data set (``accuracy.dataset: folder``, ``accuracy.data_dir: path/to/root``).

The root holds one subfolder of PNG or JPEG images per class, or ``train/``, ``val/`` and ``test/`` folders
(``train/`` required) that each hold the class subfolders; a class's index is the position of its folder's
name in sorted order (``DataSplits.class_names``). Every image has one size and is grayscale throughout or
RGB throughout; nothing is resized (an image of another size is an error naming it). Pillow reads them.
The pixels (uint8) are scaled by 1/255, split and normalised as :mod:`codesign.nn.user_data` says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.nn.data import DatasetSource, DataSplits
from codesign.nn.user_data import SPLITS, Arrays, first_line, user_splits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MODES = {"L": 1, "1": 1, "RGB": 3}  # the Pillow image modes taken, and their channels


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise CodesignError("the folder data set reads images with Pillow: pip install pillow") from None
    return Image


def _folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_folder(root: Path | None) -> tuple[tuple[str, ...], dict[str, list[tuple[Path, int]]]]:
    """The class names and, per split found, the image files with their class index."""
    if root is None:
        raise CodesignError(
            "the folder data set needs accuracy.data_dir: a folder with one subfolder of images per class"
        )
    root = Path(root)
    if not root.exists():
        raise CodesignError(f"image folder not found: {root}")
    if not root.is_dir():
        raise CodesignError(f"{root} is a file; expected a folder with one subfolder of images per class")
    top = _folders(root)
    named = [p for p in top if p.name in SPLITS]
    if named:
        others = [p.name for p in top if p.name not in SPLITS]
        splits = ", ".join(f"{p.name}/" for p in named)
        if others:
            raise CodesignError(
                f"image folder {root} holds {splits} beside {', '.join(others)}/; put every class folder under "
                "train/, val/ and test/"
            )
        if not (root / "train").is_dir():
            raise CodesignError(f"image folder {root} has {splits} but no train/ folder")
        layout = {p.name: p for p in named}
    else:
        layout = {"train": root}
    classes = tuple(p.name for p in _folders(layout["train"]))
    if not classes:
        raise CodesignError(f"image folder {layout['train']} holds no class subfolders")
    files: dict[str, list[tuple[Path, int]]] = {}
    for split, folder in layout.items():
        found: list[tuple[Path, int]] = []
        for sub in _folders(folder):
            if sub.name not in classes:
                raise CodesignError(f"class folder {sub} has no training folder {layout['train'] / sub.name}")
            images = _class_images(sub)
            if not images and split == "train":
                raise CodesignError(f"class folder {sub} holds no images")
            found += [(image, classes.index(sub.name)) for image in images]
        stray = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if stray:
            raise CodesignError(f"{stray[0]} lies beside the class folders; images go into one subfolder per class")
        if not found:
            raise CodesignError(f"image folder {folder} holds no images: the {split} split would be empty")
        files[split] = found
    return classes, files


def _class_images(folder: Path) -> list[Path]:
    images = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            raise CodesignError(f"class folder {folder} holds a folder {path.name}; a class folder holds images only")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise CodesignError(f"{path} is not a PNG or JPEG image ({', '.join(IMAGE_SUFFIXES)})")
        images.append(path)
    return images


_First = list[tuple[Path, str, tuple[int, int]]]
"""The first image seen (path, grayscale or RGB, size), for the rule that every image is like it."""


def _read_images(files: list[tuple[Path, int]], first: _First, *, pixels: bool) -> np.ndarray | None:
    """The images of ``files`` as uint8 ``(N, C, H, W)`` when ``pixels`` (else None: only their headers
    are read and checked)."""
    image_type = _pillow()
    out = []
    for path, _ in files:
        try:
            with image_type.open(path) as image:
                mode, size = image.mode, image.size
                if mode not in _MODES:
                    raise CodesignError(f"{path} is a {mode} image; images must be grayscale (L) or RGB")
                kind = "grayscale" if _MODES[mode] == 1 else "RGB"
                if not first:
                    first.append((path, kind, size))
                ref_path, ref_kind, ref_size = first[0]
                if size != ref_size:
                    raise CodesignError(
                        f"{path} is {size[0]}x{size[1]} pixels but {ref_path} is {ref_size[0]}x{ref_size[1]}; "
                        "every image must have one size (resize them first)"
                    )
                if kind != ref_kind:
                    raise CodesignError(
                        f"{path} is {kind} but {ref_path} is {ref_kind}; every image must be grayscale, or every one RGB"
                    )
                if pixels:
                    array = np.asarray(image.convert("L") if mode == "1" else image, dtype=np.uint8)
                    out.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        except CodesignError:
            raise
        except Exception as exc:  # Pillow raises several types for a file that is not an image
            raise CodesignError(f"{path} cannot be read as an image: {first_line(exc)}") from None
    return np.stack(out) if pixels and out else None


class FolderDataset(DatasetSource):
    """PNG or JPEG images in ``accuracy.data_dir``: one subfolder per class (class index = position of its
    name in sorted order), or ``train/``, ``val/``, ``test/`` folders that each hold the class subfolders.
    Every image has one size and is grayscale (``L``) or RGB throughout; Pillow reads them (no resizing)."""

    name = "folder"

    def check(self, root: Path | None = None) -> None:
        """The layout, the file types and every image's header (size and mode; the pixels are not read)."""
        _, files = scan_folder(root)
        first: _First = []
        for split_files in files.values():
            _read_images(split_files, first, pixels=False)

    def load(
        self, *, seed: int, root: Path | None = None, train_subset: int | None = None, val_size: int | None = None
    ) -> DataSplits:
        classes, files = scan_folder(root)
        first: _First = []
        given: dict[str, Arrays] = {}
        for split, split_files in files.items():
            images = _read_images(split_files, first, pixels=True)
            if images is None:  # scan_folder refuses an empty split; this only keeps the types honest
                raise CodesignError(f"image folder {root}: the {split} split is empty")
            given[split] = (images, np.asarray([label for _, label in split_files], dtype=np.int64))
        return user_splits(
            self.name, seed, given, what=f"image folder {root}", train_subset=train_subset, val_size=val_size,
            raw=f"the images of {Path(str(root)).name}/, uint8 pixels 0..255 as (N, C, H, W), scaled by 1/255",
            class_names=classes,
        )

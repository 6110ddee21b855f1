"""Fixtures shared by the test packages: the data sets in ../shared/data beside the checkout (the
NAS-Bench-201 table and the MNIST files). Without them a test skips, except under ``CI``, where it fails:
CI must run every test that reads real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NB201_TABLE = SHARED_DATA / "nasbench201" / "nb201_accuracy_latency.csv.gz"
MNIST_ROOT = SHARED_DATA / "mnist"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def require_shared(what: str, path: Path, files: tuple[str, ...] = ()) -> Path:
    """``path`` when it is a file, or a folder holding every one of ``files``; otherwise the test fails
    under ``CI`` (any non-empty value) and skips elsewhere."""
    absent = [name for name in files if not (path / name).is_file()] if files else []
    if (files and absent) or (not files and not path.is_file()):
        detail = f" ({', '.join(absent)} missing)" if absent else ""
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {what} at {path}{detail}")
        pytest.skip(f"no {what} at {path}{detail}")
    return path


@pytest.fixture(scope="session")
def nb201_table() -> Path:
    """The NAS-Bench-201 table file (accuracies in percent in the file; NB201Table.load gives fractions)."""
    return require_shared("NAS-Bench-201 table", NB201_TABLE)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder with the four MNIST idx files."""
    return require_shared("MNIST", MNIST_ROOT, MNIST_FILES)

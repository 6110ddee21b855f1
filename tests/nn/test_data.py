"""Data loaders: the real MNIST files, sklearn digits, seeded disjoint splits, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from codesign.core.errors import CodesignError
from codesign.nn.data import load_dataset, read_idx


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


def test_digits_splits_are_seeded_disjoint_and_normalised():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.val_y, c.val_y)
    assert len(a.train_y) + len(a.val_y) + len(a.test_y) == 1797
    assert a.input_shape == (1, 8, 8)
    assert (
        not (_rows(a.val_x) & _rows(a.test_x)) or len(_rows(a.val_x) & _rows(a.test_x)) < 5
    )  # digits has few duplicates
    assert abs(float(a.train_x.mean())) < 1e-4 and abs(float(a.train_x.std()) - 1) < 1e-2
    assert set(a.val_y.tolist()) == set(range(10))
    sub = load_dataset("digits", seed=0, train_subset=300)
    assert len(sub.train_y) == 300 and torch.equal(sub.val_y, a.val_y)


def test_mnist_real_files(mnist_root: Path):
    images = read_idx(mnist_root / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_root / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).min() > 800
    data = load_dataset("mnist", root=mnist_root, seed=0, train_subset=2000, val_size=1000)
    assert data.input_shape == (1, 28, 28)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (2000, 1000, 10000)
    # test is the official test set, in order
    assert torch.equal(data.test_y, torch.from_numpy(labels.astype(np.int64)))
    assert not (_rows(data.train_x) & _rows(data.val_x))


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(CodesignError, match="MNIST file missing: .*train-images"):
        load_dataset("mnist", root=tmp_path)
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write((1234).to_bytes(4, "big") + b"\0" * 12)
    with pytest.raises(CodesignError, match="bad.gz: bad magic number 1234"):
        read_idx(bad)
    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as fh:
        fh.write((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + b"\0" * 3)
    with pytest.raises(CodesignError, match="short.gz: header says"):
        read_idx(short)
    notgz = tmp_path / "plain.gz"
    notgz.write_bytes(b"not a gzip file at all")
    with pytest.raises(CodesignError, match="plain.gz is not a readable gzip"):
        read_idx(notgz)
    with pytest.raises(CodesignError, match="unknown data set 'cifar'"):
        load_dataset("cifar")

"""The shipped data-set conformance suite, run on every registered built-in data set, and shown to reject
broken ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from codesign.core.plugins import DATASETS, plugin_names
from codesign.nn.data import DatasetSource, DataSplits, DigitsDataset, make_dataset
from codesign.nn.testing import DatasetConformance


def test_every_builtin_is_registered_through_the_entry_point_group() -> None:
    assert {"digits", "mnist"} <= set(plugin_names(DATASETS))


class TestDigits(DatasetConformance):
    @pytest.fixture
    def dataset(self) -> DatasetSource:
        return make_dataset("digits")


class TestMnist(DatasetConformance):
    @pytest.fixture
    def dataset(self) -> DatasetSource:
        return make_dataset("mnist")

    @pytest.fixture
    def root(self, mnist_root: Path) -> Path:
        return mnist_root  # fails under CI without the files, skips otherwise (tests/conftest.py)


class _TestIsTrain(DigitsDataset):
    """Breaks disjointness: the test split is a copy of the start of the training split."""

    def load(self, **kwargs):  # type: ignore[no-untyped-def,override]
        data = super().load(**kwargs)
        n = len(data.test_y)
        return dataclasses.replace(data, test_x=data.train_x[:n].clone(), test_y=data.train_y[:n].clone())


class _SeedIgnored(DigitsDataset):
    """Breaks seeding: every seed gives the splits of seed 0."""

    def load(self, **kwargs):  # type: ignore[no-untyped-def,override]
        return super().load(**{**kwargs, "seed": 0})


class _Unnormalised(DigitsDataset):
    def load(self, **kwargs):  # type: ignore[no-untyped-def,override]
        data = super().load(**kwargs)
        return dataclasses.replace(data, train_x=data.train_x * 3 + 1)


class _FloatLabels(DigitsDataset):
    def load(self, **kwargs) -> DataSplits:  # type: ignore[no-untyped-def,override]
        data = super().load(**kwargs)
        return dataclasses.replace(data, val_y=data.val_y.to(torch.float32))


def test_suite_rejects_broken_datasets() -> None:
    suite = DatasetConformance()
    with pytest.raises(AssertionError, match="test examples are in train"):
        suite.test_splits_are_disjoint(_TestIsTrain(), None)
    with pytest.raises(AssertionError, match="another seed"):
        suite.test_same_seed_same_splits(_SeedIgnored(), None)
    with pytest.raises(AssertionError):
        suite.test_normalised_with_training_statistics(_Unnormalised(), None)
    with pytest.raises(AssertionError, match="int64"):
        suite.test_shapes_dtypes_and_labels(_FloatLabels(), None)
    with pytest.raises(AssertionError, match="DatasetSource"):
        suite.test_is_a_dataset(object(), None)  # type: ignore[arg-type]
    suite.test_splits_are_disjoint(DigitsDataset(), None)

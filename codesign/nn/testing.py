"""The conformance suite every data set runs.

A new data set gets the whole suite by subclassing one class in a test module and overriding the
``dataset`` fixture (and ``root`` when its files live somewhere)::

    from codesign.nn.testing import DatasetConformance

    class TestMyData(DatasetConformance):
        @pytest.fixture
        def dataset(self):
            return MyDataset()

Checks what training and measurement rely on: the :class:`~codesign.nn.data.DatasetSource` contract,
seeded splits (same seed, same splits; another seed, other splits), shapes and dtypes, labels in range with
every class in the training split, normalisation with the training split's statistics, disjoint splits
(no example of the validation or test split also in the training split), and the ``train_subset`` and
``val_size`` options.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codesign.core.errors import CodesignError
from codesign.nn.data import DatasetSource, DataSplits

SPLITS = ("train", "val", "test")


def _row_hashes(x: torch.Tensor) -> list[int]:
    flat = x.reshape(len(x), -1).contiguous().numpy()
    return [hash(row.tobytes()) for row in flat]


class DatasetConformance:
    """Subclass in a test module; override the ``dataset`` fixture (and ``root``)."""

    max_overlap = 0.01
    """The largest share of validation or test examples allowed to equal a training example byte for byte
    (real data sets hold a few duplicated images)."""
    subset = 200
    """The ``train_subset`` the suite loads with (small, for speed)."""

    @pytest.fixture
    def dataset(self) -> DatasetSource:
        raise NotImplementedError("override the dataset fixture")

    @pytest.fixture
    def root(self) -> Path | None:
        return None

    def _load(self, dataset: DatasetSource, root: Path | None, seed: int = 0, **kwargs: int) -> DataSplits:
        return dataset.load(seed=seed, root=root, **kwargs)

    def test_is_a_dataset(self, dataset: DatasetSource, root: Path | None) -> None:
        assert isinstance(dataset, DatasetSource), "subclass codesign.nn.data.DatasetSource"
        assert isinstance(dataset.name, str) and dataset.name
        assert isinstance(self._load(dataset, root), DataSplits)

    def test_check_passes_when_it_loads(self, dataset: DatasetSource, root: Path | None) -> None:
        dataset.check(root)  # the build-time check may not refuse data that loads

    def test_same_seed_same_splits(self, dataset: DatasetSource, root: Path | None) -> None:
        a, b = self._load(dataset, root, 0), self._load(dataset, root, 0)
        for split in SPLITS:
            for one, two in zip(a.split(split), b.split(split), strict=True):
                assert torch.equal(one, two), f"{split} differs between two loads with one seed"
        other = self._load(dataset, root, 1)
        assert not torch.equal(a.train_y, other.train_y) or not torch.equal(a.train_x, other.train_x), (
            "another seed gave the same training split"
        )

    def test_shapes_dtypes_and_labels(self, dataset: DatasetSource, root: Path | None) -> None:
        data = self._load(dataset, root)
        for split in SPLITS:
            x, y = data.split(split)
            assert x.dtype == torch.float32 and x.dim() == 4, f"{split}: images must be float32 (N, C, H, W)"
            assert y.dtype == torch.int64 and y.dim() == 1, f"{split}: labels must be int64 (N,)"
            assert len(x) == len(y) > 0, f"{split}: {len(x)} images, {len(y)} labels"
            assert torch.isfinite(x).all(), f"{split}: non-finite pixels"
            assert int(y.min()) >= 0 and int(y.max()) < data.num_classes, f"{split}: label out of range"
            assert tuple(x.shape[1:]) == data.input_shape
        assert len(torch.unique(data.train_y)) == data.num_classes, "a class is missing from the training split"

    def test_normalised_with_training_statistics(self, dataset: DatasetSource, root: Path | None) -> None:
        data = self._load(dataset, root)
        assert abs(float(data.train_x.mean())) < 1e-3
        assert abs(float(data.train_x.std()) - 1.0) < 1e-2

    def test_splits_are_disjoint(self, dataset: DatasetSource, root: Path | None) -> None:
        data = self._load(dataset, root)
        train = set(_row_hashes(data.train_x))
        for split in ("val", "test"):
            x, _ = data.split(split)
            shared = sum(1 for h in _row_hashes(x) if h in train)
            assert shared <= self.max_overlap * len(x), f"{shared} of {len(x)} {split} examples are in train"

    def test_train_subset_and_val_size(self, dataset: DatasetSource, root: Path | None) -> None:
        data = self._load(dataset, root, train_subset=self.subset, val_size=100)
        assert len(data.train_y) == self.subset
        assert len(data.val_y) == 100
        with pytest.raises(CodesignError):
            self._load(dataset, root, train_subset=10**9)

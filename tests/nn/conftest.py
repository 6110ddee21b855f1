"""Shared fixtures: a 600-image digits training split and the digits MBConv space (fast to train)."""

from __future__ import annotations

import pytest

from codesign.nn.data import DataSplits, load_dataset
from search_spaces.mbconv import MBConvSpace
from search_spaces.registry import make_space


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    return load_dataset("digits", seed=0, train_subset=600)


@pytest.fixture(scope="session")
def space() -> MBConvSpace:
    return make_space("mbconv_digits")  # type: ignore[no-any-return]

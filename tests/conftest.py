"""Fixtures shared by the test packages: the NAS-Bench-201 table in ../shared/data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NB201_TABLE = SHARED_DATA / "nasbench201" / "nb201_accuracy_latency.csv.gz"


@pytest.fixture(scope="session")
def nb201_table() -> Path:
    if not NB201_TABLE.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the NAS-Bench-201 table at {NB201_TABLE}")
        pytest.skip(f"no NAS-Bench-201 table at {NB201_TABLE}")
    return NB201_TABLE

"""Fixtures of the core tests: the PostgreSQL server that .ci/run starts."""

from __future__ import annotations

import pytest

from tests.helpers import postgres_url


@pytest.fixture(scope="module")
def pg_url() -> str:
    return postgres_url()

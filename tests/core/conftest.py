"""Fixtures of the core tests: the PostgreSQL server that .ci/run starts."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def pg_url() -> str:
    url = os.environ.get("CODESIGN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide CODESIGN_TEST_POSTGRES_URL (.ci/run starts a server)")
        pytest.skip("no CODESIGN_TEST_POSTGRES_URL")
    return url

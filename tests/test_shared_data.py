"""The shared-data fixtures of tests/conftest.py: a missing data set fails the test under CI and skips it
elsewhere, so CI never passes by skipping the tests that read real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MNIST_FILES, require_shared


def test_missing_data_fails_under_ci_and_skips_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI must have NAS-Bench-201 table at .*absent\.csv\.gz"):
        require_shared("NAS-Bench-201 table", tmp_path / "absent.csv.gz")
    (tmp_path / MNIST_FILES[0]).write_bytes(b"")
    with pytest.raises(pytest.fail.Exception, match=r"CI must have MNIST at .*\(train-labels-idx1-ubyte\.gz, "):
        require_shared("MNIST", tmp_path, MNIST_FILES)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no NAS-Bench-201 table at"):
        require_shared("NAS-Bench-201 table", tmp_path / "absent.csv.gz")
    with pytest.raises(pytest.skip.Exception, match="no MNIST at"):
        require_shared("MNIST", tmp_path, MNIST_FILES)


def test_present_data_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    for name in MNIST_FILES:
        (tmp_path / name).write_bytes(b"")
    assert require_shared("MNIST", tmp_path, MNIST_FILES) == tmp_path
    table = tmp_path / "t.csv.gz"
    table.write_bytes(b"")
    assert require_shared("table", table) == table

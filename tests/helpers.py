"""Small experiment files for tests, on the real NAS-Bench-201 table and the real digits data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def nb201_yaml(table: Path, *, name: str = "nb", trials: int = 12, strategy: str = "tpe", extra: str = "") -> str:
    return (
        f"name: {name}\n"
        "space: {architecture: nb201}\n"
        f"accuracy: {{method: table, metric: cifar10_test_acc, data_dir: {table}}}\n"
        "objectives: {accuracy: maximize, lat_ms_fpga: minimize}\n"
        f"strategy: {{name: {strategy}}}\n"
        f"budget: {{trials: {trials}, seed: 3}}\n" + extra
    )


def digits_yaml(tmp: Path, *, name: str = "dg", trials: int = 3, strategy: str = "random", extra: str = "") -> str:
    return (
        f"name: {name}\n"
        "space: {architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [8], options: {depths: [1], expansions: [1, 3]}}\n"
        "hardware: {model: overlay, device: xczu3eg, clock_mhz: 200}\n"
        f"accuracy: {{method: scratch, dataset: digits, epochs: 2, cache_dir: {tmp / 'cache'}}}\n"
        "objectives: {accuracy: maximize, latency_ms: minimize}\n"
        'constraints: {dsp_fraction: "<= 0.8"}\n'
        f"strategy: {{name: {strategy}}}\n"
        f"budget: {{trials: {trials}, seed: 0}}\n" + extra
    )


def postgres_url() -> str:
    """The test database (``CODESIGN_TEST_POSTGRES_URL``; ``.ci/run`` starts one): without it the test
    skips, except under ``CI``, where it fails."""
    url = os.environ.get("CODESIGN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide CODESIGN_TEST_POSTGRES_URL (.ci/run starts a server)")
        pytest.skip("no CODESIGN_TEST_POSTGRES_URL")
    return url


USER_DEVICE = """\
name: mydev
board: Custom
resources: {lut: 1000, ff: 2000, bram18: 10, uram: 0, dsp: 20}
usable_fractions: {lut: 0.5, ff: 0.5, bram18: 0.5, uram: 0.5, dsp: 0.5}
max_clock_mhz: 300
default_clock_mhz: 100
offchip_gb_per_s: 2.0
static_power_w: 0.1
dsp_kind: dsp48e2
ddr_overhead: {lut: 0, ff: 0, bram18: 0, uram: 0, dsp: 0}
"""
"""A user's device file with every required key and no sources (the device tests vary it)."""

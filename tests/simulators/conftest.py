"""Small networks shared by the simulator tests."""

from __future__ import annotations

import pytest

from codesign.core.values import Layer, Network
from simulators.testing import conv_stack


def tiny_residual() -> Network:
    """conv, depthwise conv, pointwise conv, residual add, max pool, linear: every layer kind."""
    layers = (
        Layer("stem", "conv", 3, 8, 16, 16, 3, 1, 1),
        Layer("dw", "conv", 8, 8, 16, 16, 3, 1, 1, groups=8),
        Layer("pw", "conv", 8, 8, 16, 16, 1, weight_bits=4, act_bits=4),
        Layer("add", "add", 8, 8, 16, 16),
        Layer("pool", "pool", 8, 8, 16, 16, 2, 2, 0, mode="max"),
        Layer("fc", "linear", 8 * 8 * 8, 10),
    )
    return Network("tiny_residual", layers, (3, 16, 16), residuals=(("stem", "add"),))


@pytest.fixture
def stack20() -> Network:
    return conv_stack(20)


@pytest.fixture
def tiny() -> Network:
    return tiny_residual()

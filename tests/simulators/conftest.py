"""Small networks shared by the simulator tests."""

from __future__ import annotations

import pytest

from codesign.values import Layer, Network


def conv_stack(n_layers: int = 20, *, bits: int = 8) -> Network:
    """A CIFAR-like plain network: ``n_layers - 2`` 3x3 convolutions (16/32/64 channels, two stride-2
    stages), global average pooling and a linear classifier."""
    layers = []
    channels, size = 3, 32
    convs = n_layers - 2
    for i in range(convs):
        out = 16 * 2 ** min(2, 3 * i // convs)
        stride = 2 if i > 0 and out != channels and channels != 3 else 1
        layer = Layer(
            f"conv{i}", "conv", channels, out, size, size, 3, stride, 1, weight_bits=bits, act_bits=bits
        )
        layers.append(layer)
        channels, size = out, layer.out_h
    layers.append(Layer("gap", "pool", channels, channels, size, size, size, 1, 0, act_bits=bits, mode="avg"))
    layers.append(Layer("fc", "linear", channels, 10, weight_bits=bits, act_bits=bits))
    return Network(f"stack{n_layers}", tuple(layers), (3, 32, 32))


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

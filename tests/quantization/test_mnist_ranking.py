"""Perturbation ordering against the measured accuracy drop of single layers at 2 bits on MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from codesign.nn.data import load_dataset
from codesign.nn.training import accuracy, fit, seeded_model
from codesign.quantization.sensitivity import (
    TraceSettings,
    sensitivity_table,
    single_layer_drops,
    weighted_layers,
)
from search_spaces.registry import make_space


@pytest.mark.slow
def test_perturbation_ranks_single_layer_accuracy_drops(mnist_root: Path) -> None:
    data = load_dataset("mnist", root=mnist_root, seed=0, train_subset=6000, val_size=1000)
    space = make_space("resnet_mnist")
    arch = space.from_choices(
        {"s0_depth": 1, "s0_width": 16, "s1_depth": 1, "s1_width": 24, "s2_depth": 1, "s2_width": 48}
    )
    model = seeded_model(space, arch, 0)
    gen = torch.Generator().manual_seed(0)
    fit(
        model,
        data.train_x,
        data.train_y,
        steps=2 * 47,
        batch_size=128,
        lr=3e-3,
        weight_decay=0.0,
        generator=gen,
    )
    model.eval()
    test_x, test_y = data.test_x[:3000], data.test_y[:3000]

    def test_accuracy(m: nn.Module) -> float:
        return accuracy(m, test_x, test_y)

    assert test_accuracy(model) > 0.9
    names = [name for name, _ in weighted_layers(model)]
    assert len(names) >= 8
    table = sensitivity_table(
        model,
        nn.functional.cross_entropy,
        [(data.val_x[:200], data.val_y[:200])],
        bits=(2,),
        settings=TraceSettings(seed=0),
    )
    drops = single_layer_drops(model, names, 2, test_accuracy)
    rho = spearmanr([row[0] for row in table.omega], [drops[n] for n in table.layers]).statistic
    assert rho >= 0.6, (rho, dict(zip(table.layers, table.omega, strict=True)), drops)

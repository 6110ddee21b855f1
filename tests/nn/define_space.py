"""A define-by-run search space for the tests, written as an Optuna user writes one: ``build(trial)``
asks for its choices and returns a plain ``nn.Module`` (8x8 one-channel digits, 10 classes)."""

from __future__ import annotations

from typing import Any

from torch import nn


def build(trial: Any) -> nn.Module:
    width = trial.suggest_categorical("width", [8, 16])
    depth = trial.suggest_int("depth", 1, 2)
    layers: list[nn.Module] = []
    channels = 1
    for i in range(depth):
        kernel = trial.suggest_categorical(f"kernel_{i}", [1, 3])  # asked only when the block exists
        layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(channels * 4 * 4, 10)]
    return nn.Sequential(*layers)


def fixed(trial: Any) -> nn.Module:
    """A build with one continuous choice (offered on a grid)."""
    trial.suggest_float("dropout", 0.0, 0.5, step=0.25)
    trial.suggest_float("lr_hint", 1e-4, 1e-1, log=True)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

"""Models of the user's own, for the own-model experiments (``space.model: models.py:digits_cnn``).

Plain PyTorch: nothing here knows codesign. The tool swaps the conv and linear layers for quantized ones
with the same weights, traces the model for the hardware models and trains it on the experiment's data.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def digits_cnn() -> nn.Module:
    """A small CNN for 8x8 one-channel digits (10 classes): two 3x3 conv blocks, a 2x2 max-pool, a
    linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10),
    )


def mnist_space(trial: Any) -> nn.Module:
    """A define-by-run search space for 28x28 MNIST, written as an Optuna objective's model is: the
    widths of two conv stages, their kernel size and whether a third 1x1 conv follows are asked of
    ``trial``; each stage halves the resolution with a 2x2 max-pool."""
    width1 = trial.suggest_categorical("width1", [8, 16, 32])
    width2 = trial.suggest_int("width2", 16, 64, step=16)
    kernel = trial.suggest_categorical("kernel", [3, 5])
    layers: list[nn.Module] = [
        nn.Conv2d(1, width1, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width1, width2, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width2), nn.ReLU(), nn.MaxPool2d(2),
    ]
    channels = width2
    if trial.suggest_categorical("mix", [False, True]):
        channels = trial.suggest_categorical("mix_width", [32, 64])  # asked only when the 1x1 conv is there
        layers += [nn.Conv2d(width2, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
    layers += [nn.MaxPool2d(7), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers)

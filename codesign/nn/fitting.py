"""Training one candidate from scratch and quantizing it: the schedule, seeded mini-batches, Adam with a
cosine decay, post-training calibration and the optional quantization-aware fine-tune, and top-1 accuracy.

These functions run on the current torch thread count; they never change it (the caller that owns the
process chooses it, e.g. ``torch.set_num_threads(1)``, which is fastest for small CPU models). They run on
the device given as ``device`` (default: the device the model is on): the model moves there, and each
mini-batch moves there after it is drawn, so the data stay on the CPU and the batch order, drawn by a CPU
generator, is the same on every device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codesign.core.errors import CodesignError
from codesign.nn import models
from codesign.nn.data import DataSplits
from codesign.nn.device import module_device
from codesign.quantization.fake import calibrate, set_bits, set_quant_mode


@dataclass(frozen=True, kw_only=True)
class TrainSchedule:
    """How a candidate is trained from scratch and quantized. ``lr`` follows a cosine decay to zero."""

    epochs: int = 12
    batch_size: int = 128
    lr: float = 5e-3
    weight_decay: float = 1e-4
    calib_batches: int = 4
    """Training batches used for post-training calibration of activation ranges."""
    qat_steps: int = 0
    """Quantization-aware fine-tuning steps after calibration (0: post-training quantization only)."""
    qat_lr: float = 5e-4

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "calib_batches"):
            if getattr(self, name) < 1:
                raise CodesignError(f"schedule: {name} must be >= 1, got {getattr(self, name)}")
        if self.qat_steps < 0 or self.lr <= 0 or self.qat_lr <= 0:
            raise CodesignError("schedule: qat_steps must be >= 0 and learning rates > 0")

    def train_part(self) -> dict[str, Any]:
        """The fields that change the full-precision weights (cache key of the trained model)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
        }

    def quant_part(self) -> dict[str, Any]:
        return {
            "calib_batches": self.calib_batches,
            "qat_steps": self.qat_steps,
            "qat_lr": self.qat_lr,
            "batch_size": self.batch_size,
        }


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches in a seeded random order (``generator``) or in order (``None``), moved to ``device``
    (default: where ``x`` is)."""
    order = torch.randperm(len(y), generator=generator) if generator is not None else torch.arange(len(y))
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        xb, yb = x[idx], y[idx]
        if device is not None:
            xb, yb = xb.to(device), yb.to(device)
        # channels-last makes CPU depthwise convolutions (forward and backward) about twice as fast
        yield (xb.contiguous(memory_format=torch.channels_last) if xb.dim() == 4 else xb), yb


def seeded_model(space: Any, arch: Any, seed: int) -> nn.Module:
    """:func:`codesign.nn.models.build_model` with weights initialised from ``seed`` (the global torch RNG
    is left as it was), in the channels-last layout training uses: a model whose weights are loaded from
    the cache then computes bit for bit what the freshly trained one computes (a layout changes the order
    of floating-point sums, and so calibrated ranges and accuracies)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.build_model(space, arch)
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def build_model(space: Any, arch: Any) -> nn.Module:
    """A fresh quantizable model of ``arch``; its quantized layers follow ``space.network(arch)``'s
    weighted layers (see :func:`codesign.quantization.fake.set_bits`)."""
    return seeded_model(space, arch, 0)


def _placed(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device`` (default: the model's), with the model moved there."""
    target = module_device(model) if device is None else torch.device(device)
    model.to(target)
    return target


@torch.no_grad()
def accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1000,
    *,
    device: torch.device | str | None = None,
) -> float:
    """Top-1 accuracy in eval mode, on ``device`` (default: the model's)."""
    target = _placed(model, device)
    model.eval()
    correct = 0
    for xb, yb in batches(x, y, batch_size, None, target):
        correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(len(y), 1)


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> None:
    """``steps`` Adam steps with cosine learning-rate decay over seeded shuffled mini-batches, on
    ``device`` (default: the model's; the model moves there)."""
    target = _placed(model, device)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + np.cos(np.pi * min(i, steps) / steps))
    )
    model.train()
    done = 0
    while done < steps:
        for xb, yb in batches(x, y, batch_size, generator, target):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            sched.step()
            done += 1
            if done == steps:
                break


def train_from_scratch(
    model: nn.Module,
    data: DataSplits,
    schedule: TrainSchedule,
    *,
    seed: int,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Train ``model`` in full precision for ``schedule.epochs`` epochs on ``device`` (default: the
    model's); returns it, on that device."""
    set_quant_mode(model, "float")
    steps = schedule.epochs * -(-len(data.train_y) // schedule.batch_size)
    gen = torch.Generator().manual_seed(seed)
    fit(
        model,
        data.train_x,
        data.train_y,
        steps=steps,
        batch_size=schedule.batch_size,
        lr=schedule.lr,
        weight_decay=schedule.weight_decay,
        generator=gen,
        device=device,
    )
    return model


def quantize(
    model: nn.Module,
    weight_bits: Sequence[int],
    act_bits: Sequence[int],
    data: DataSplits,
    schedule: TrainSchedule,
    *,
    seed: int,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Set the bits, calibrate activation ranges on training batches, and fine-tune for
    ``schedule.qat_steps`` steps when asked, on ``device`` (default: the model's). Leaves ``model`` in
    quant and eval mode."""
    target = _placed(model, device)
    set_bits(model, weight_bits, act_bits)
    gen = torch.Generator().manual_seed(seed + 1)
    calib = [
        xb
        for _, (xb, _) in zip(
            range(schedule.calib_batches),
            batches(data.train_x, data.train_y, schedule.batch_size, gen, target),
            strict=False,
        )
    ]
    calibrate(model, calib)
    if schedule.qat_steps:
        fit(
            model,
            data.train_x,
            data.train_y,
            steps=schedule.qat_steps,
            batch_size=schedule.batch_size,
            lr=schedule.qat_lr,
            weight_decay=0.0,
            generator=gen,
            device=target,
        )
    model.eval()
    return model

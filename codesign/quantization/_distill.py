"""ZeroQ's distilled data: inputs optimised so that every BatchNorm layer sees its running statistics,
the data of the data-free sensitivity table.

Private: import these names from :mod:`codesign.quantization.sensitivity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from codesign.core.errors import CodesignError

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class DistillSettings:
    """ZeroQ input distillation: ``steps`` Adam steps at ``lr`` on ``batch_size`` inputs drawn from a
    standard normal with ``seed``."""

    batch_size: int = 32
    steps: int = 200
    lr: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.steps < 0 or not self.lr > 0:
            raise CodesignError(f"distill settings: need batch_size >= 2, steps >= 0, lr > 0; got {self}")


def distill_inputs(
    model: nn.Module, input_shape: Sequence[int], *, settings: DistillSettings = DistillSettings()
) -> Tensor:
    """ZeroQ's distilled data: inputs of shape ``(batch_size, *input_shape)`` optimised so that the batch
    mean and standard deviation entering every BatchNorm layer match its running statistics."""
    norms = [m for m in model.modules() if isinstance(m, _BATCHNORMS) and m.running_mean is not None]
    if not norms:
        raise CodesignError(
            f"{type(model).__name__}: data-free sensitivity needs BatchNorm layers with running statistics"
        )
    gen = torch.Generator().manual_seed(settings.seed)
    device = cast(Tensor, norms[0].running_mean).device  # drawn on the CPU, then moved: one sequence everywhere
    x = torch.randn((settings.batch_size, *input_shape), generator=gen).to(device).requires_grad_(True)
    captured: list[Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        captured.append(inputs[0])

    handles = [m.register_forward_pre_hook(hook) for m in norms]
    was_training = model.training
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        optimizer = torch.optim.Adam([x], lr=settings.lr)
        for _ in range(settings.steps):
            captured.clear()
            optimizer.zero_grad()
            model(x)
            loss = x.new_zeros(())
            for m, act in zip(norms, captured, strict=True):
                dims = [d for d in range(act.dim()) if d != 1]
                mean = act.mean(dim=dims)
                std = torch.sqrt(act.var(dim=dims, unbiased=False) + m.eps)
                running_mean = cast(Tensor, m.running_mean)
                running_var = cast(Tensor, m.running_var)
                loss = (
                    loss + torch.norm(mean - running_mean) + torch.norm(std - torch.sqrt(running_var + m.eps))
                )
            loss.backward()
            optimizer.step()
    finally:
        for h in handles:
            h.remove()
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    return x.detach()

"""Hutchinson estimates of each layer's Hessian trace (HAWQ-V2, PyHessian's stopping rule): the settings,
the per-layer result, the weighted layers of a model, and the estimator itself (``Tr(H_i) ~ mean v^T H_i
v`` over Rademacher vectors, ``H_i v`` by double back-propagation).

Private: import these names from :mod:`codesign.quantization.sensitivity`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from codesign.core.errors import CodesignError

LossFn = Callable[[Tensor, Tensor], Tensor]


_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class TraceSettings:
    """Hutchinson estimation: stop when ``|mean_k - mean_{k-1}| / (|mean_{k-1}| + 1e-6) < tol`` or after
    ``max_iter`` Rademacher vectors per layer; ``seed`` seeds the ``torch.Generator`` drawing them."""

    max_iter: int = 100
    tol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise CodesignError(f"trace settings: max_iter must be >= 1, got {self.max_iter}")
        if not self.tol >= 0:
            raise CodesignError(f"trace settings: tol must be >= 0, got {self.tol}")


@dataclass(frozen=True)
class LayerTrace:
    """Estimated Hessian trace of one layer's weight block and the number of vectors it took.

    ``trace`` is the raw, signed Hutchinson estimate: it can come out negative (a loss that is not convex
    in the layer's weights, few vectors), which :attr:`negative` flags. A sensitivity weight uses its
    magnitude (:attr:`magnitude`, :attr:`sensitivity_per_param`), as HAWQ-V3 and NNCF do, so a negative
    estimate never rewards fewer bits.
    """

    name: str
    trace: float
    params: int
    iterations: int

    @property
    def negative(self) -> bool:
        """Whether the raw estimate came out below zero (its magnitude is what sensitivities use)."""
        return self.trace < 0

    @property
    def magnitude(self) -> float:
        """``|trace|``, the trace a sensitivity weight uses."""
        return abs(self.trace)

    @property
    def trace_per_param(self) -> float:
        """The raw signed trace per weight."""
        return self.trace / self.params

    @property
    def sensitivity_per_param(self) -> float:
        """``|trace| / params``: the per-weight factor of ``Omega = |Tr(H)| / n * ||Q(W) - W||^2``."""
        return self.magnitude / self.params


def weighted_layers(model: nn.Module, names: Sequence[str] | None = None) -> list[tuple[str, nn.Module]]:
    """The convolution and linear modules of ``model`` (all, or the named ones in the given order)."""
    found: list[tuple[str, nn.Module]] = [
        (name, m) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)
    ]
    if names is None:
        if not found:
            raise CodesignError(f"{type(model).__name__}: no convolution or linear layers to analyse")
        return found
    by_name = dict(found)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise CodesignError(
            f"no convolution or linear layer named {', '.join(unknown)}; known: {', '.join(by_name)}"
        )
    return [(n, by_name[n]) for n in names]


def _weight(module: nn.Module) -> Tensor:
    return cast(Tensor, module.weight)


def hessian_traces(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[tuple[Tensor, Tensor]],
    *,
    layers: Sequence[str] | None = None,
    settings: TraceSettings = TraceSettings(),
) -> tuple[LayerTrace, ...]:
    """Hutchinson trace of each layer's Hessian block of the mean loss over ``batches``.

    The model is evaluated in eval mode (BatchNorm uses running statistics) and restored to its mode
    afterwards. It runs where the model's weights are: the batches move there, and the Rademacher vectors
    are drawn on the CPU (one seeded sequence on every device) and moved there. The graph of every batch's
    gradient is kept for the duration, so memory grows with the number of batches; pass a few batches of a
    few hundred samples.
    """
    if not batches:
        raise CodesignError("hessian traces: no data batches given")
    selected = weighted_layers(model, layers)
    weights = [_weight(m) for _, m in selected]
    total = sum(len(x) for x, _ in batches)
    was_training = model.training
    model.eval()
    try:
        grads = []
        device = weights[0].device if weights else torch.device("cpu")
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y) * (len(x) / total)
            grads.append(torch.autograd.grad(loss, weights, create_graph=True))
        gen = torch.Generator().manual_seed(settings.seed)
        out = []
        for i, (name, _) in enumerate(selected):
            trace, steps = _layer_trace(weights[i], [g[i] for g in grads], gen, settings)
            out.append(LayerTrace(name, trace, weights[i].numel(), steps))
    finally:
        model.train(was_training)
    return tuple(out)


def _layer_trace(
    weight: Tensor, grads: list[Tensor], gen: torch.Generator, settings: TraceSettings
) -> tuple[float, int]:
    estimates: list[float] = []
    mean = 0.0
    for step in range(1, settings.max_iter + 1):
        v = (torch.randint(0, 2, weight.shape, generator=gen, dtype=weight.dtype) * 2 - 1).to(weight.device)
        (hv,) = torch.autograd.grad(
            grads, weight, grad_outputs=[v] * len(grads), retain_graph=True, allow_unused=True
        )
        estimates.append(0.0 if hv is None else float((hv * v).sum()))
        new = sum(estimates) / len(estimates)
        if step > 1 and abs(new - mean) / (abs(mean) + 1e-6) < settings.tol:
            return new, step
        mean = new
    return mean, settings.max_iter

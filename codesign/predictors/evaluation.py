"""Latency samples from any hardware model, train/test splits (random and by architecture family), and
the side-by-side evaluation of a learned predictor and the bit-ops baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Network
from codesign.predictors.latency import BitOpsBaseline, LatencyPredictor
from codesign.predictors.metrics import RegressionMetrics, regression_metrics
from simulators.base import HardwareModel


@dataclass(frozen=True)
class LatencySamples:
    """Latencies (ms) of (network, accelerator) pairs, with the architecture family of each and, when the
    source reports them, per-layer latencies (ms, in layer order)."""

    networks: tuple[Network, ...]
    accels: tuple[AcceleratorConfig | None, ...]
    latency_ms: tuple[float, ...]
    families: tuple[str, ...]
    per_layer_ms: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.networks)
        if not (len(self.accels) == len(self.latency_ms) == len(self.families) == n):
            raise CodesignError("latency samples: networks, accels, latency_ms and families must have equal lengths")
        if self.per_layer_ms is not None and len(self.per_layer_ms) != n:
            raise CodesignError("latency samples: per_layer_ms needs one entry per network")

    def __len__(self) -> int:
        return len(self.networks)

    def subset(self, index: Sequence[int] | np.ndarray) -> LatencySamples:
        idx = [int(i) for i in index]
        return LatencySamples(
            tuple(self.networks[i] for i in idx), tuple(self.accels[i] for i in idx),
            tuple(self.latency_ms[i] for i in idx), tuple(self.families[i] for i in idx),
            None if self.per_layer_ms is None else tuple(self.per_layer_ms[i] for i in idx),
        )  # fmt: skip


def sample_hardware(
    model: HardwareModel,
    networks: Sequence[Network],
    accels: Sequence[AcceleratorConfig],
    families: Sequence[str] | None = None,
) -> LatencySamples:
    """Evaluate every pair on ``model`` and keep the latencies (infeasible designs included: their latency
    is still defined). Per-layer latencies are kept when every report lists one cost per layer. Families
    default to each network's name up to its first ``:``."""
    if len(networks) != len(accels):
        raise CodesignError(f"sample_hardware: {len(networks)} networks but {len(accels)} accelerator configs")
    reports = [model.evaluate(net, acc) for net, acc in zip(networks, accels, strict=True)]
    per_layer = tuple(tuple(cost.latency_ms for cost in r.per_layer) for r in reports)
    complete = all(len(p) == len(net) for p, net in zip(per_layer, networks, strict=True))
    fam = tuple(families) if families is not None else tuple(net.name.split(":")[0] for net in networks)
    latency = tuple(r.latency_ms for r in reports)
    return LatencySamples(tuple(networks), tuple(accels), latency, fam, per_layer if complete else None)


@dataclass(frozen=True)
class LatencyReport:
    """The learned predictor's metrics beside the bit-ops baseline's, on the same test set."""

    model: RegressionMetrics
    baseline: RegressionMetrics

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {"model": self.model.to_dict(), "baseline": self.baseline.to_dict()}


def random_split(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices of a random split."""
    if not 0 < test_fraction < 1:
        raise CodesignError(f"random_split: test_fraction must be in (0, 1), got {test_fraction}")
    order = rng.permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def family_split(families: Sequence[str], held_out: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Train on every family except ``held_out``, test on ``held_out``."""
    unknown = sorted(set(held_out) - set(families))
    if unknown:
        raise CodesignError(f"family_split: unknown famil(ies) {', '.join(unknown)}; known: {', '.join(sorted(set(families)))}")
    test = np.array([f in set(held_out) for f in families])
    return np.flatnonzero(~test), np.flatnonzero(test)


def evaluate_latency(
    samples: LatencySamples, train: Sequence[int] | np.ndarray, test: Sequence[int] | np.ndarray, predictor: LatencyPredictor
) -> LatencyReport:
    """Fit ``predictor`` (per layer when the samples have per-layer latencies) and the bit-ops baseline on
    ``train`` and score both on ``test``."""
    tr, te = samples.subset(train), samples.subset(test)
    predictor.fit(tr.networks, tr.accels, tr.latency_ms, per_layer_ms=tr.per_layer_ms)
    baseline = BitOpsBaseline().fit(tr.networks, tr.latency_ms)
    return LatencyReport(
        model=regression_metrics(te.latency_ms, predictor.predict(te.networks, te.accels)),
        baseline=regression_metrics(te.latency_ms, baseline.predict(te.networks)),
    )


def random_pairs(
    spaces: Sequence[Any],
    accel_spaces: Sequence[Any],
    n_per_space: int,
    rng: np.random.Generator,
    *,
    weight_bits: Sequence[int] = (4, 8),
    act_bits: Sequence[int] = (4, 8),
) -> tuple[list[Network], list[AcceleratorConfig], list[str]]:
    """``n_per_space`` random architectures of each space, each layer at random bits, each on a random
    configuration of a randomly chosen accelerator space; returns networks, configurations and the
    space name of each (its family)."""
    networks: list[Network] = []
    accels: list[AcceleratorConfig] = []
    families: list[str] = []
    for space in spaces:
        for _ in range(n_per_space):
            arch = space.sample(rng)
            k = len(space.network(arch).weighted_layers)
            net = space.network(arch, rng.choice(list(weight_bits), k).tolist(), rng.choice(list(act_bits), k).tolist())
            networks.append(net)
            accels.append(accel_spaces[int(rng.integers(len(accel_spaces)))].sample(net, rng))
            families.append(str(space.name))
    return networks, accels, families

"""Accelerator search spaces per FPGA template and the exact latency-optimal choice (HAO's inner problem).

- :class:`OverlaySpace`: the grid of ``tm x tn x tr x tc x clock`` values of the overlay template; the
  optimum is found by evaluating the whole grid at once (vectorized) and taking the fastest feasible point.
- :class:`DataflowSpace`: per-layer ``pe``/``simd`` folding choices of the dataflow template (divisors of
  each layer's matrix height/width); the optimum is a multiple-choice integer program (see
  :func:`best_dataflow`), since the product of per-layer choices is far too large to enumerate.
- :func:`refold`: another network on the engines of a one-engine-per-layer design (each layer within the
  lanes of the engine in its slot).

Ties in latency go to the first configuration in the space's enumeration order, so results are
deterministic.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codesign.errors import CodesignError, InfeasibleError
from codesign.values import RESOURCE_NAMES, AcceleratorConfig, HardwareReport, Network
from simulators.common import LayerArrays
from simulators.devices import Device

if TYPE_CHECKING:
    from simulators.dataflow import FoldedModel
    from simulators.overlay import OverlayModel

TM_CHOICES = (4, 8, 16, 24, 32, 48, 64, 96, 128)
TN_CHOICES = (2, 4, 8, 16, 32, 64)
TILE_CHOICES = (4, 7, 8, 14, 16, 28, 32)


@dataclass(frozen=True)
class OverlaySpace:
    """Every overlay configuration on one device: the product of the choice tuples (clock outermost)."""

    device: str
    clocks_mhz: tuple[float, ...]
    tm: tuple[int, ...] = TM_CHOICES
    tn: tuple[int, ...] = TN_CHOICES
    tr: tuple[int, ...] = TILE_CHOICES
    tc: tuple[int, ...] = TILE_CHOICES

    def __post_init__(self) -> None:
        for name in ("tm", "tn", "tr", "tc"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise CodesignError(
                    f"overlay space: {name} must be a non-empty tuple of positive integers, got {values!r}"
                )
        if not self.clocks_mhz or any(c <= 0 for c in self.clocks_mhz):
            raise CodesignError(f"overlay space: clocks_mhz must be positive, got {self.clocks_mhz!r}")

    @classmethod
    def for_device(cls, device: Device, clock_mhz: float | None = None) -> OverlaySpace:
        """The default grid on ``device`` at ``clock_mhz`` (the device's default clock when None)."""
        return cls(device=device.name, clocks_mhz=(float(clock_mhz or device.default_clock_mhz),))

    def __len__(self) -> int:
        return len(self.clocks_mhz) * len(self.tm) * len(self.tn) * len(self.tr) * len(self.tc)

    def grid(self) -> dict[str, np.ndarray]:
        """The configurations as parallel arrays (``clock_mhz``, ``tm``, ``tn``, ``tr``, ``tc``) in order."""
        mesh = np.meshgrid(
            np.asarray(self.clocks_mhz, dtype=np.float64),
            *(np.asarray(getattr(self, n), dtype=np.int64) for n in ("tm", "tn", "tr", "tc")),
            indexing="ij",
        )
        names = ("clock_mhz", "tm", "tn", "tr", "tc")
        return {name: m.ravel() for name, m in zip(names, mesh, strict=True)}

    def config_at(self, index: int) -> AcceleratorConfig:
        if not 0 <= index < len(self):
            raise CodesignError(f"overlay space: index {index} outside 0..{len(self) - 1}")
        clock, tm, tn, tr, tc = next(
            itertools.islice(
                itertools.product(self.clocks_mhz, self.tm, self.tn, self.tr, self.tc), index, None
            )
        )
        return AcceleratorConfig.make("overlay", self.device, clock, tm=tm, tn=tn, tr=tr, tc=tc)

    def configs(self, network: Network) -> tuple[AcceleratorConfig, ...]:
        """Every configuration (the network does not restrict the overlay grid)."""
        return tuple(
            AcceleratorConfig.make("overlay", self.device, clock, tm=tm, tn=tn, tr=tr, tc=tc)
            for clock, tm, tn, tr, tc in itertools.product(
                self.clocks_mhz, self.tm, self.tn, self.tr, self.tc
            )
        )

    def sample(self, network: Network, rng: np.random.Generator) -> AcceleratorConfig:
        return self.config_at(int(rng.integers(len(self))))


def tightest_resource(totals: Mapping[str, np.ndarray], device: Device) -> str:
    """Why nothing fits: the budget that even its most frugal configuration exceeds by the most."""
    usable = device.usable
    worst_name, worst_ratio, worst_need = "", 0.0, 0.0
    for name in RESOURCE_NAMES:
        need = float(np.min(totals[name]))
        budget = getattr(usable, name)
        ratio = np.inf if budget == 0 and need > 0 else (need / budget if budget else 0.0)
        if ratio > 1.0 and ratio > worst_ratio:
            worst_name, worst_ratio, worst_need = name, ratio, need
    if not worst_name:
        return "no single resource is over budget in every configuration, but none fits all budgets at once"
    return f"{worst_name} needs at least {worst_need:g} but {getattr(usable, worst_name)} are usable"


def best_overlay(
    model: OverlayModel, network: Network, space: OverlaySpace
) -> tuple[AcceleratorConfig, HardwareReport]:
    """The fastest feasible configuration of ``space`` for ``network`` and its report (exact: every grid
    point is evaluated; ties go to the first in grid order). Raises InfeasibleError when none fits."""
    from simulators.overlay import overlay_arrays

    device = model.catalog.get(space.device)
    grid = space.grid()
    layers = LayerArrays.of(network)
    result = overlay_arrays(
        layers, grid["tm"], grid["tn"], grid["tr"], grid["tc"], grid["clock_mhz"], device, model.energy
    )
    totals = result.totals(device)
    latency = np.where(totals["feasible"], totals["latency_ms"], np.inf)
    if not totals["feasible"].any():
        if all(c > device.max_clock_mhz for c in space.clocks_mhz):
            raise InfeasibleError(
                f"no overlay configuration fits {device.name}: clock_mhz {min(space.clocks_mhz):g} exceeds "
                f"the device limit {device.max_clock_mhz:g}"
            )
        raise InfeasibleError(
            f"no overlay configuration fits {device.name}: {tightest_resource(totals, device)}"
        )
    config = space.config_at(int(np.argmin(latency)))
    return config, model.evaluate(network, config)


def _divisors(n: int, limit: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, min(n, limit) + 1) if n % d == 0)


@dataclass(frozen=True)
class DataflowSpace:
    """Per-layer folding choices of a template with one engine per layer (``dataflow``, ``pipeline``) on one
    device: for each layer every ``(pe, simd)`` with ``pe`` dividing MH (at most ``max_pe``) and ``simd``
    dividing MW (at most ``max_simd``); a configuration picks one pair per layer."""

    device: str
    clocks_mhz: tuple[float, ...]
    template: str = "dataflow"
    """The template the configurations are for (both read the same ``pe``/``simd`` parameters)."""
    max_pe: int = 64
    max_simd: int = 64
    max_configs: int = 200_000
    """:meth:`configs` refuses to list more than this many configurations."""
    ilp_gap_rel: float = 0.0
    """Relative optimality gap at which the integer program may stop when several budgets bind (0 = proven
    optimum, the default); with at most one binding budget the optimum is always exact (simulators.mckp)."""
    ilp_time_limit_s: float = 60.0
    """CBC's time limit (s); the best solution found by then is returned."""

    def __post_init__(self) -> None:
        if self.max_pe < 1 or self.max_simd < 1:
            raise CodesignError(
                f"dataflow space: max_pe and max_simd must be >= 1, got {self.max_pe}, {self.max_simd}"
            )
        if not self.clocks_mhz or any(c <= 0 for c in self.clocks_mhz):
            raise CodesignError(f"dataflow space: clocks_mhz must be positive, got {self.clocks_mhz!r}")

    @classmethod
    def for_device(
        cls, device: Device, clock_mhz: float | None = None, template: str = "dataflow"
    ) -> DataflowSpace:
        return cls(
            device=device.name, clocks_mhz=(float(clock_mhz or device.default_clock_mhz),), template=template
        )

    def layer_choices(self, network: Network) -> tuple[tuple[tuple[int, int], ...], ...]:
        """For each layer, its allowed ``(pe, simd)`` pairs (pe-major order)."""
        from simulators.dataflow import Folding

        fold = Folding.of(LayerArrays.of(network))
        return tuple(
            tuple(itertools.product(_divisors(int(mh), self.max_pe), _divisors(int(mw), self.max_simd)))
            for mh, mw in zip(fold.mh[:, 0], fold.mw[:, 0], strict=True)
        )

    def size(self, network: Network) -> int:
        return len(self.clocks_mhz) * int(
            np.prod([len(c) for c in self.layer_choices(network)], dtype=object)
        )

    def configs(self, network: Network) -> tuple[AcceleratorConfig, ...]:
        """Every configuration, when there are at most ``max_configs`` (use :meth:`sample` otherwise)."""
        total = self.size(network)
        if total > self.max_configs:
            raise CodesignError(
                f"dataflow space: {total} configurations for {network.name!r} exceed max_configs={self.max_configs}"
            )
        return tuple(
            _folding_config(self.template, self.device, clock, combo)
            for clock in self.clocks_mhz
            for combo in itertools.product(*self.layer_choices(network))
        )

    def sample(self, network: Network, rng: np.random.Generator) -> AcceleratorConfig:
        clock = self.clocks_mhz[int(rng.integers(len(self.clocks_mhz)))]
        combo = [choices[int(rng.integers(len(choices)))] for choices in self.layer_choices(network)]
        return _folding_config(self.template, self.device, clock, combo)


def _folding_config(
    template: str, device: str, clock: float, combo: Sequence[tuple[int, int]]
) -> AcceleratorConfig:
    return AcceleratorConfig.make(
        template, device, clock, pe=tuple(p for p, _ in combo), simd=tuple(s for _, s in combo)
    )


def best_folding(
    model: FoldedModel, network: Network, space: DataflowSpace
) -> tuple[AcceleratorConfig, HardwareReport]:
    """The fastest feasible folding for ``network`` on a template with one engine per layer: a
    multiple-choice knapsack over per-layer choices (minimise total cycles subject to every resource
    budget), solved exactly by :func:`simulators.mckp.solve_mckp`. Exact for the model because latency and
    resources are sums over layers; ties between clocks go to the first."""
    from simulators.mckp import solve_mckp

    if space.template != model.name:
        raise CodesignError(f"a {space.template!r} space cannot configure the {model.name!r} template")

    device = model.catalog.get(space.device)
    layers = LayerArrays.of(network)
    choices = space.layer_choices(network)
    width = max(len(c) for c in choices)
    padded = [list(c) + [c[0]] * (width - len(c)) for c in choices]
    pe = np.asarray([[p for p, _ in row] for row in padded], dtype=np.int64)
    simd = np.asarray([[s for _, s in row] for row in padded], dtype=np.int64)
    budget = {n: getattr(device.usable, n) - getattr(device.ddr_overhead, n) for n in RESOURCE_NAMES}
    best: tuple[float, AcceleratorConfig] | None = None
    reasons: list[str] = []
    for clock in space.clocks_mhz:
        if clock > device.max_clock_mhz:
            reasons.append(f"clock_mhz {clock:g} exceeds the device limit {device.max_clock_mhz:g}")
            continue
        result = model.folding_arrays(layers, pe, simd, np.full(width, clock), device)
        costs = np.stack([result.layer_resources[n] for n in RESOURCE_NAMES], axis=-1)
        need = {n: int(result.layer_resources[n].min(axis=1).sum()) for n in RESOURCE_NAMES}
        over = [n for n in RESOURCE_NAMES if need[n] > budget[n]]
        if over:
            name = max(over, key=lambda n: need[n] / max(budget[n], 1e-9))
            reasons.append(
                f"{name} needs at least {need[name] + getattr(device.ddr_overhead, name)} but "
                f"{getattr(device.usable, name)} are usable"
            )
            continue
        picked = solve_mckp(
            [result.cycles[i, : len(row)] for i, row in enumerate(choices)],
            [costs[i, : len(row)] for i, row in enumerate(choices)],
            np.asarray([budget[n] for n in RESOURCE_NAMES]),
            gap_rel=space.ilp_gap_rel,
            time_limit_s=space.ilp_time_limit_s,
        )
        if picked is None:
            reasons.append("no combination of folding choices fits every budget at once")
            continue
        combo = [choices[i][j] for i, j in enumerate(picked)]
        latency = float(sum(int(result.cycles[i, j]) for i, j in enumerate(picked))) / (clock * 1e3)
        config = _folding_config(space.template, device.name, clock, combo)
        if best is None or latency < best[0]:
            best = (latency, config)
    if best is None:
        raise InfeasibleError(f"no {model.name} configuration fits {device.name}: {'; '.join(reasons)}")
    return best[1], model.evaluate(network, best[1])


best_dataflow = best_folding
"""The latency-optimal dataflow folding (the same routine serves every template with one engine per layer)."""


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def refold(
    design: AcceleratorConfig,
    source: Network,
    target: Network,
    slot: Callable[[str], str] | None = None,
) -> AcceleratorConfig:
    """``target`` on the engines of ``design``, a folding (``pe``/``simd`` per layer, template ``dataflow``
    or ``pipeline``) made for ``source``: how a network runs on the per-engine parallelism chosen for another.

    Every layer of ``target`` runs on the engine of the ``source`` layer in the same slot (``slot(name)``,
    by default the layer name itself), folded onto at most that engine's lanes: ``pe`` is the largest divisor
    of the layer's matrix height MH not above the engine's ``pe``, ``simd`` the largest divisor of its width MW
    not above the engine's ``simd`` (MH and MW as in :mod:`simulators.dataflow`). So a network that differs
    from ``source`` only in which operation fills a slot keeps ``source``'s split of the lanes among the
    engines; whether the result fits the device is for the model's report to say. Raises CodesignError
    naming a ``target`` layer whose slot has no engine, or a slot that two ``source`` layers share.
    """
    from simulators.dataflow import Folding, folding_param

    key = slot if slot is not None else (lambda name: name)
    pe = folding_param(design, "pe", len(source.layers))
    simd = folding_param(design, "simd", len(source.layers))
    engines: dict[str, tuple[int, int]] = {}
    for layer, p, s in zip(source.layers, pe, simd, strict=True):
        name = key(layer.name)
        if name in engines:
            raise CodesignError(f"refold: slot {name!r} holds more than one layer of {source.name!r}")
        engines[name] = (p, s)
    fold = Folding.of(LayerArrays.of(target))
    combo = []
    for layer, mh, mw in zip(target.layers, fold.mh[:, 0].tolist(), fold.mw[:, 0].tolist(), strict=True):
        engine = engines.get(key(layer.name))
        if engine is None:
            raise CodesignError(
                f"refold: layer {layer.name!r} of {target.name!r} has no engine in the design for "
                f"{source.name!r} (slot {key(layer.name)!r})"
            )
        combo.append((_largest_divisor(mh, engine[0]), _largest_divisor(mw, engine[1])))
    return _folding_config(design.template, design.device, design.clock_mhz, combo)

"""One engine per layer (the ``dataflow`` and ``pipeline`` templates): the matrix view of each layer, the
per-layer folding choices of a device, the exact latency-optimal folding and refolding of a design.

- :class:`Folding`: every layer as a matrix of height MH and width MW run over its output pixels;
- :class:`DataflowSpace`: per-layer ``pe``/``simd`` folding choices (divisors of each layer's MH/MW); the
  optimum is a multiple-choice integer program (:func:`best_folding`), since the product of per-layer
  choices is far too large to enumerate;
- :func:`refold`: another network on the engines of a one-engine-per-layer design (each layer within the
  lanes of the engine in its slot).

Ties in latency go to the first configuration in the space's enumeration order, so results are
deterministic.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import RESOURCE_NAMES, AcceleratorConfig, HardwareReport, Network
from simulators.common import LayerArrays
from simulators.devices import Device
from simulators.mckp import solve_mckp

if TYPE_CHECKING:
    from simulators.dataflow import FoldedModel


@dataclass(frozen=True, eq=False)
class Folding:
    """The matrix view of every layer: height ``mh``, width ``mw`` and output ``pixels``, each (L, 1)."""

    mh: np.ndarray
    mw: np.ndarray
    pixels: np.ndarray

    @classmethod
    def of(cls, layers: LayerArrays) -> Folding:
        k2 = layers.kernel * layers.kernel
        mw = np.where(layers.weighted, k2 * (layers.cin // layers.groups), np.where(layers.windowed, k2, 1))
        return cls(mh=layers.cout, mw=mw, pixels=layers.out_h * layers.out_w)


def folding_param(config: AcceleratorConfig, name: str, n_layers: int) -> tuple[int, ...]:
    value = config.get(name)
    if not isinstance(value, tuple) or len(value) != n_layers:
        raise CodesignError(
            f"{config.template}: {name} must be a tuple with one entry per layer ({n_layers}), got {value!r}"
        )
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise CodesignError(f"{config.template}: {name} entries must be positive integers, got {value!r}")
    return value


SOURCES = MappingProxyType(
    {
        "DataflowSpace.max_pe": "design choice: the largest PE count the folding search considers per layer "
        "(bounds the per-layer choice lists); not a physical constant",
        "DataflowSpace.max_simd": "design choice: the largest SIMD width the folding search considers per layer; "
        "not a physical constant",
        "DataflowSpace.max_configs": "design choice: a guard against listing an enumeration too large to hold "
        "in memory; not hardware",
        "DataflowSpace.ilp_gap_rel": "design choice: 0 asks CBC for the proven optimum",
        "DataflowSpace.ilp_time_limit_s": "design choice: a bound on CBC's run time; not hardware",
    }
)
"""Where each numeric constant of this module comes from (read by tests/simulators/test_sources.py)."""


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
    """CBC's time limit (s); the best solution found by then is returned, and its report carries a note
    that it is not proven optimal."""

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
    if space.template != model.name:
        raise CodesignError(f"a {space.template!r} space cannot configure the {model.name!r} template")

    device = model.catalog.get(space.device)
    layers = LayerArrays.of(network)
    choices = space.layer_choices(network)
    width = max(len(c) for c in choices)
    padded = [list(c) + [c[0]] * (width - len(c)) for c in choices]
    pe = np.asarray([[p for p, _ in row] for row in padded], dtype=np.int64)
    simd = np.asarray([[s for _, s in row] for row in padded], dtype=np.int64)
    # the LUTRAM budget (SLICEM LUTs) is one more summed resource, so the program stays exact
    shell_need = {n: getattr(device.ddr_overhead, n) for n in RESOURCE_NAMES} | {"lutram": 0}
    budget = {n: getattr(device.usable, n) - shell_need[n] for n in RESOURCE_NAMES}
    budget["lutram"] = device.lutram_luts
    best: tuple[float, AcceleratorConfig, bool] | None = None
    reasons: list[str] = []
    for clock in space.clocks_mhz:
        if clock > device.max_clock_mhz:
            reasons.append(f"clock_mhz {clock:g} exceeds the device limit {device.max_clock_mhz:g}")
            continue
        result = model.folding_arrays(layers, pe, simd, np.full(width, clock), device)
        per_layer = {**result.layer_resources, "lutram": result.layer_lutram}
        costs = np.stack([per_layer[n] for n in budget], axis=-1)
        need = {n: int(per_layer[n].min(axis=1).sum()) for n in budget}
        over = [n for n in budget if need[n] > budget[n]]
        if over:
            name = max(over, key=lambda n: need[n] / max(budget[n], 1e-9))
            usable = getattr(device.usable, name) if name in RESOURCE_NAMES else device.lutram_luts
            reasons.append(f"{name} needs at least {need[name] + shell_need[name]} but {usable} are usable")
            continue
        solution = solve_mckp(
            [result.cycles[i, : len(row)] for i, row in enumerate(choices)],
            [costs[i, : len(row)] for i, row in enumerate(choices)],
            np.asarray([budget[n] for n in budget]),
            gap_rel=space.ilp_gap_rel,
            time_limit_s=space.ilp_time_limit_s,
        )
        if solution is None:
            reasons.append("no combination of folding choices fits every budget at once")
            continue
        picked = solution.choice
        combo = [choices[i][j] for i, j in enumerate(picked)]
        latency = float(sum(int(result.cycles[i, j]) for i, j in enumerate(picked))) / (clock * 1e3)
        config = _folding_config(space.template, device.name, clock, combo)
        if best is None or latency < best[0]:
            best = (latency, config, solution.proven)
    if best is None:
        raise InfeasibleError(f"no {model.name} configuration fits {device.name}: {'; '.join(reasons)}")
    report = model.evaluate(network, best[1])
    if not best[2]:
        note = (
            f"{model.name} folding not proven latency-optimal: the integer program stopped at gap_rel="
            f"{space.ilp_gap_rel:g} or its {space.ilp_time_limit_s:g} s time limit"
        )
        report = dataclasses.replace(report, notes=(*report.notes, note))
    return best[1], report


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

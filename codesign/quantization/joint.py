"""HAO's program: per-layer bit-widths and the overlay accelerator configuration chosen together, exactly.

On the overlay template (:mod:`simulators.overlay`) the PE array is built for the widest weighted layer, so
a layer's latency depends on its own bit-width and on the network's widest bit-width ``B`` (the
*context*), and the design's resources depend on the configuration and ``B`` only. For every context ``B``
the layer latencies of every configuration of the space are computed at once (vectorised), and for a
configuration ``c`` the remaining problem is a multiple-choice integer program over the layers' bits
(all ``<= B``, at least one ``= B``), solved by :func:`codesign.quantization.allocation.solve_program`:

- ``minimise="latency"``: minimum latency subject to ``sum Omega <= omega_budget`` (and the bit
  problem's own budgets). Configurations dominated in every per-layer latency by another of the same
  context are skipped; the rest are visited in order of a lower bound (every layer at its fastest
  allowed bit-width) and the search stops when the bound reaches the best latency.
- ``minimise="omega"``: minimum summed Omega subject to ``latency <= latency_budget_ms``. Contexts are
  visited in order of their Omega lower bound; within one, configurations dominated in every per-layer
  latency by another are skipped.

Both are exact for the model the simulator defines; the winner is re-evaluated with the model's own
``evaluate`` and a mismatch (a model that does not decompose this way) is an error, never a silent answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from codesign.core.errors import CodesignError, InfeasibleError
from codesign.core.values import AcceleratorConfig, HardwareReport, Network
from codesign.quantization.allocation import BitAllocation, BitAllocationProblem, Budget, solve_program
from simulators.base import HardwareModel
from simulators.common import BatchResult, LayerArrays, tightest_resource
from simulators.overlay import OverlayModel, OverlaySpace, overlay_arrays

_REL = 1e-9


@dataclass(frozen=True)
class HaoResult:
    """The optimal pair: ``accelerator``, the weighted layers' ``allocation`` (its ``objective`` is the
    summed Omega, its values include ``latency_ms`` of the weighted layers), the whole network's
    ``latency_ms`` and the model's ``report``; ``programs_solved`` integer programs were needed out of
    ``candidates`` feasible (configuration, context) pairs."""

    accelerator: AcceleratorConfig
    allocation: BitAllocation
    latency_ms: float
    omega: float
    report: HardwareReport
    programs_solved: int
    candidates: int


@dataclass(frozen=True, eq=False)
class _Context:
    """Layer latencies (ms) of every configuration when the widest weighted layer has ``bits`` bits."""

    bits: int
    problem: BitAllocationProblem
    latency: dict[tuple[str, int], np.ndarray]
    constant: np.ndarray
    feasible: np.ndarray

    def fastest(self) -> np.ndarray:
        """Per configuration: the latency with every layer at its fastest allowed bit-width."""
        total = self.constant.copy()
        for name, bits in zip(self.problem.layers, self.problem.choices, strict=True):
            total += np.min([self.latency[name, b] for b in bits], axis=0)
        return total

    def program(self, config: int, extra: list[Budget]) -> BitAllocationProblem:
        table = tuple(
            tuple(float(self.latency[name, b][config]) for b in bits)
            for name, bits in zip(self.problem.layers, self.problem.choices, strict=True)
        )
        p = self.problem
        costs = (*p.costs, ("latency_ms", table), ("omega", p.omega))
        return BitAllocationProblem(
            p.layers, p.choices, p.omega, costs, p.ties, p.fixed, (*p.budgets, *extra)
        )

    def assignment_latency(self, bits: dict[str, int]) -> np.ndarray:
        return self.constant + sum(
            (self.latency[name, b] for name, b in bits.items()), np.zeros_like(self.constant)
        )


def layer_cost_table(
    model: HardwareModel,
    network: Network,
    accel: AcceleratorConfig,
    bit_choices: Sequence[int],
    *,
    act_follows_weights: bool = False,
) -> dict[str, dict[str, dict[int, float]]]:
    """``latency_ms`` and ``energy_mj`` cost columns (``[column][layer][bits]``) of the weighted layers on
    one accelerator, for budgets of :func:`codesign.quantization.allocation.allocate_bits` or ``codesign allocate-bits``.

    Layer ``i`` at ``b`` bits is read from the model's report of the network with every weighted layer
    at ``b``; non-weighted layers' costs are left out (constant). Exact for models whose layer costs
    depend only on the layer's own bits (dataflow engines, measured tables); on the overlay the array's
    width follows the widest layer, which :func:`hao_program` models exactly.
    """
    out: dict[str, dict[str, dict[int, float]]] = {"latency_ms": {}, "energy_mj": {}}
    weighted = [layer.name for layer in network.weighted_layers]
    for b in bit_choices:
        bits = dict.fromkeys(weighted, int(b))
        report = model.evaluate(_with_bits(network, bits, act_follows_weights), accel)
        costs = {cost.name: cost for cost in report.per_layer}
        missing = [n for n in weighted if n not in costs]
        if missing:
            raise CodesignError(f"{model.name}: the report has no per-layer cost for {', '.join(missing)}")
        for name in weighted:
            out["latency_ms"].setdefault(name, {})[int(b)] = costs[name].latency_ms
            out["energy_mj"].setdefault(name, {})[int(b)] = costs[name].energy_mj
    return out


def _with_bits(network: Network, bits: dict[str, int], act_follows: bool) -> Network:
    return network.with_bits(bits, bits if act_follows else None)


def _evaluate_grid(network: Network, space: OverlaySpace, model: OverlayModel) -> BatchResult:
    """Every layer on every configuration of ``space`` at once."""
    grid = space.grid()
    return overlay_arrays(
        LayerArrays.of(network),
        grid["tm"],
        grid["tn"],
        grid["tr"],
        grid["tc"],
        grid["clock_mhz"],
        model.catalog.get(space.device),
        model.energy,
    )


def _contexts(
    network: Network,
    problem: BitAllocationProblem,
    space: OverlaySpace,
    model: OverlayModel,
    act_follows: bool,
) -> list[_Context]:
    device = model.catalog.get(space.device)
    weighted = [layer.name for layer in network.weighted_layers]
    index = {layer.name: i for i, layer in enumerate(network.layers)}
    out = []
    for top in sorted({b for bits in problem.choices for b in bits}):
        narrowed = problem.narrowed(top)
        if narrowed is None:
            continue

        def run(bits: dict[str, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            result = _evaluate_grid(_with_bits(network, bits, act_follows), space, model)
            return result.layer_latency_ms(), result.totals(device)

        latency: dict[tuple[str, int], np.ndarray] = {}
        full, totals = run(dict.fromkeys(weighted, top))
        for name in weighted:
            latency[name, top] = full[index[name]]
        for b in sorted({b for bits in narrowed.choices for b in bits if b < top}):
            # the widest layer fixes the array; read each layer at b from a network whose other layer is at top
            for anchor, readers in ((weighted[0], weighted[1:]), (weighted[-1], weighted[:1])):
                if readers and anchor not in readers:
                    lat, _ = run({**dict.fromkeys(weighted, b), anchor: top})
                    for name in readers:
                        latency[name, b] = lat[index[name]]
        others = [i for i, layer in enumerate(network.layers) if not layer.has_weights]
        constant = full[others].sum(axis=0) if others else np.zeros(full.shape[1])
        out.append(_Context(top, narrowed, latency, constant, totals["feasible"]))
    return out


def _minimal_configs(ctx: _Context, candidates: np.ndarray) -> list[int]:
    """Configurations not dominated in every per-layer latency by another candidate (cheapest first)."""
    rows = [ctx.constant[candidates]]
    for name, bits in zip(ctx.problem.layers, ctx.problem.choices, strict=True):
        rows.extend(ctx.latency[name, b][candidates] for b in bits)
    features = np.stack(rows, axis=1)
    order = np.argsort(features.sum(axis=1), kind="stable")
    kept: list[int] = []
    for j in order:
        if kept and np.any(np.all(features[kept] <= features[j], axis=1)):
            continue
        kept.append(int(j))
    return [int(candidates[j]) for j in kept]


def hao_program(
    network: Network,
    bits: BitAllocationProblem,
    *,
    space: OverlaySpace,
    model: OverlayModel | None = None,
    minimise: Literal["latency", "omega"] = "latency",
    omega_budget: float | None = None,
    latency_budget_ms: float | None = None,
    act_follows_weights: bool = False,
) -> HaoResult:
    """The optimal (bits, overlay configuration) pair of ``network`` on ``space``'s device.

    ``bits`` is the bit problem over the network's weighted layers (Omega table, allowed bit-widths, ties,
    fixed layers and any budgets of its own, e.g. model size). With ``act_follows_weights`` a layer's
    activation bit-width equals its weight bit-width; otherwise the network's activation bits are kept.
    Raises :class:`InfeasibleError` when no configuration fits the device or no pair meets the budgets.
    """
    model = model or OverlayModel()
    weighted = [layer.name for layer in network.weighted_layers]
    if sorted(weighted) != sorted(bits.layers):
        raise CodesignError(
            f"hao program: the bit problem's layers {sorted(bits.layers)} must be the network's weighted layers {sorted(weighted)}"
        )
    if minimise not in ("latency", "omega"):
        raise CodesignError(f"hao program: minimise must be 'latency' or 'omega', got {minimise!r}")
    if minimise == "omega" and latency_budget_ms is None:
        raise CodesignError("hao program: minimise='omega' needs latency_budget_ms")
    contexts = _contexts(network, bits, space, model, act_follows_weights)
    if not any(ctx.feasible.any() for ctx in contexts):
        device = model.catalog.get(space.device)
        raise InfeasibleError(
            f"no overlay configuration of the space fits {device.name}: {_why(network, bits, space, model, act_follows_weights)}"
        )
    if minimise == "latency":
        found = _min_latency(contexts, omega_budget)
    else:
        found = _min_omega(contexts, float(latency_budget_ms or 0.0))
    if found is None:
        raise InfeasibleError(_budget_message(contexts, minimise, omega_budget, latency_budget_ms))
    allocation, config, ctx, solved = found
    accel = space.config_at(config)
    report = model.evaluate(_with_bits(network, allocation.bits_dict(), act_follows_weights), accel)
    predicted = float(ctx.constant[config]) + allocation.values_dict()["latency_ms"]
    if not report.feasible or abs(report.latency_ms - predicted) > _REL * max(1.0, predicted) + 1e-12:
        raise CodesignError(
            f"hao program: {model.name} does not decompose per layer as the overlay template should "
            f"(predicted {predicted:.9g} ms, model says {report.latency_ms:.9g} ms, violations {report.violations})"
        )
    return HaoResult(
        accelerator=accel,
        allocation=allocation,
        latency_ms=report.latency_ms,
        omega=allocation.objective,
        report=report,
        programs_solved=solved,
        candidates=int(sum(int(ctx.feasible.sum()) for ctx in contexts)),
    )


def _why(
    network: Network, bits: BitAllocationProblem, space: OverlaySpace, model: OverlayModel, act_follows: bool
) -> str:
    device = model.catalog.get(space.device)
    lowest = {name: min(choice) for name, choice in zip(bits.layers, bits.choices, strict=True)}
    result = _evaluate_grid(_with_bits(network, lowest, act_follows), space, model)
    return tightest_resource(result.totals(device), device)


def _min_latency(
    contexts: list[_Context], omega_budget: float | None
) -> tuple[BitAllocation, int, _Context, int] | None:
    extra = [] if omega_budget is None else [Budget("omega", limit=float(omega_budget))]
    queue: list[tuple[float, int, int]] = []
    for k, ctx in enumerate(contexts):
        fastest = ctx.fastest()
        if ctx.feasible.any():
            # a configuration slower in every layer than another of the same context cannot win
            queue.extend(
                (float(fastest[c]), k, c) for c in _minimal_configs(ctx, np.flatnonzero(ctx.feasible))
            )
    queue.sort()
    best: tuple[BitAllocation, int, _Context] | None = None
    best_latency = float("inf")
    solved = 0
    for lower, k, config in queue:
        if lower >= best_latency * (1 - _REL):
            break
        ctx = contexts[k]
        solved += 1
        result = solve_program(ctx.program(config, extra), minimise="latency_ms", require_bits=ctx.bits)
        if result is None:
            continue
        total = float(ctx.constant[config]) + result.values_dict()["latency_ms"]
        if total < best_latency * (1 - _REL):
            best_latency = total
            best = (result, config, ctx)
    return None if best is None else (best[0], best[1], best[2], solved)


def _min_omega(contexts: list[_Context], budget_ms: float) -> tuple[BitAllocation, int, _Context, int] | None:
    solved = 0
    bounds = []
    for ctx in contexts:
        solved += 1
        free = solve_program(ctx.problem, require_bits=ctx.bits)
        if free is not None:
            bounds.append((free.objective, ctx.bits, ctx, free))
    bounds.sort(key=lambda t: (t[0], t[1]))
    best: tuple[BitAllocation, int, _Context] | None = None
    best_omega = np.inf
    slack = _REL * max(1.0, abs(budget_ms))
    for bound, _, ctx, free in bounds:
        if not _improves(bound, best_omega):
            break
        fits = ctx.feasible & (ctx.fastest() <= budget_ms + slack)
        if not fits.any():
            continue
        lat = np.where(fits, ctx.assignment_latency(free.bits_dict()), np.inf)
        if lat.min() <= budget_ms + slack:  # the context's unconstrained optimum already meets the budget
            c = int(np.argmin(lat))
            best_omega, best = bound, (_rescored(ctx, c, free.bits_dict()), c, ctx)
            continue
        for c in _minimal_configs(ctx, np.flatnonzero(fits)):
            solved += 1
            limit = budget_ms - float(ctx.constant[c])
            result = solve_program(ctx.program(c, [Budget("latency_ms", limit=limit)]), require_bits=ctx.bits)
            if result is not None and _improves(result.objective, best_omega):
                best_omega, best = result.objective, (result, c, ctx)
                if not _improves(bound, best_omega):
                    break
    return None if best is None else (best[0], best[1], best[2], solved)


def _improves(value: float, best: float) -> bool:
    """``value`` is better than ``best`` by more than float noise (any value beats infinity)."""
    return not math.isfinite(best) or value < best - 1e-12 * max(1.0, abs(best))


def _rescored(ctx: _Context, config: int, bits: dict[str, int]) -> BitAllocation:
    """The allocation record of ``bits`` under configuration ``config`` (values of every cost column)."""
    problem = ctx.program(config, [])
    index = {name: i for i, name in enumerate(problem.layers)}
    values = []
    for column, table in problem.costs:
        values.append(
            (column, float(sum(table[index[n]][problem.choices[index[n]].index(b)] for n, b in bits.items())))
        )
    omega = float(sum(problem.omega[index[n]][problem.choices[index[n]].index(b)] for n, b in bits.items()))
    return BitAllocation(tuple((n, bits[n]) for n in problem.layers), omega, tuple(values), ())


def _budget_message(
    contexts: list[_Context], minimise: str, omega_budget: float | None, latency_budget_ms: float | None
) -> str:
    if minimise == "omega":
        fastest = _min_latency(contexts, None)
        if fastest is None:
            return "the bit problem's own budgets admit no assignment on any configuration that fits"
        allocation, config, ctx, _ = fastest
        smallest = float(ctx.constant[config]) + allocation.values_dict()["latency_ms"]
        return f"latency budget {latency_budget_ms:g} ms is infeasible: the smallest feasible latency is {smallest:.6g} ms"
    least = [solve_program(ctx.problem, require_bits=ctx.bits) for ctx in contexts if ctx.feasible.any()]
    found = [r.objective for r in least if r is not None]
    if not found:
        return "the bit problem's own budgets admit no assignment on any configuration that fits"
    return (
        f"omega budget {omega_budget:g} is infeasible: the smallest feasible summed omega is {min(found):.6g}"
    )

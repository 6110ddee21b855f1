"""The ``hao`` strategy: an outer sampler proposes architectures (and a trade-off point), an exact inner
program picks the per-layer bits and the accelerator, and real measurements give the objectives.

Inner program for one architecture (HAWQ-V3 + HAO):

1. the architecture's full-precision model is trained (cached by content hash) and its per-layer
   Hessian traces give the perturbation table ``Omega_i(b)`` (cached too);
2. the bit allocation minimising summed Omega under a bit-operations budget
   ``B_low + alpha * (B_high - B_low)`` is solved exactly (integer program, ties respected);
3. the latency-optimal feasible accelerator for the network at those bits is found exactly by the
   hardware model (HAO's inner problem).

``alpha`` is itself a decision of the outer sampler (``hao.alpha``), so one architecture is explored at
several points of its accuracy-latency trade-off. On tabular problems (no bits, no accelerator) the
strategy is the outer predictor-guided loop alone, every look-up a counted trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna
from torch import nn

from codesign.config.options import OptionRule, check_options
from codesign.core.errors import ConfigError, InfeasibleError
from codesign.core.values import Candidate, Evaluation, Network
from codesign.quantization.allocation import BitAllocationProblem, Budget, allocate_bits, network_costs
from codesign.quantization.joint import hao_program
from codesign.quantization.sensitivity import TraceSettings, sensitivity_table
from codesign.search.guided import check_sampler_options, guided_sampler_for
from codesign.search.loop import Evaluator
from codesign.search.problem import CodesignProblem, Problem, suggest_arch
from codesign.search.strategies import Strategy
from search_spaces.bitwidth import tie_groups
from search_spaces.options import shown
from simulators.overlay import OverlayModel, OverlaySpace

ATTR_HAO = "codesign.search.hao"


_FRACTION = OptionRule("number", 0.0, 1.0)
_RULES = {
    "hessian_samples": OptionRule("int", 1),
    "hessian_max_iter": OptionRule("int", 1, 100_000),
    "hessian_tol": OptionRule("number", 1e-12),
}


def _alphas(value: Any) -> tuple[float, ...]:
    """``alphas``: a non-empty list of fractions in [0, 1], sorted and without repeats."""
    if not isinstance(value, list | tuple) or not value or any(not _FRACTION.accepts(a) for a in value):
        raise ConfigError("strategy.options.alphas", f"need fractions in [0, 1] (a non-empty list), got {shown(value)}")
    return tuple(sorted({float(a) for a in value}))


@dataclass(frozen=True, kw_only=True)
class HAOOptions:
    """``strategy.options`` of the ``hao`` strategy."""

    alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    """Trade-off points offered to the outer sampler: 0 = fewest bit-operations, 1 = most."""
    hessian_samples: int = 128
    """Training images the Hessian traces are estimated on."""
    hessian_max_iter: int = 10
    hessian_tol: float = 2e-2
    sampler: Mapping[str, Any] | None = None
    """Options passed on to the outer sampler."""

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> HAOOptions:
        """``strategy.options`` checked: an unknown option or a bad value is a :class:`ConfigError` at
        ``strategy.options.NAME`` (``strategy.options.sampler.NAME`` for the sampler's)."""
        if not isinstance(options, Mapping):
            raise ConfigError("strategy.options", f"must be a mapping of option names to values, got {shown(options)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(options) - known)
        if unknown:
            raise ConfigError(f"strategy.options.{unknown[0]}", f"unknown option of strategy 'hao'; known: {', '.join(sorted(known))}")
        values = dict(options)
        scalars = {name: values[name] for name in _RULES if name in values}
        values.update(check_options(_RULES, scalars, path="strategy.options", owner="strategy 'hao'"))
        if "hessian_tol" in values:
            values["hessian_tol"] = float(values["hessian_tol"])
        if "alphas" in values:
            values["alphas"] = _alphas(values["alphas"])
        if values.get("sampler") is not None:
            values["sampler"] = check_sampler_options(values["sampler"])
        return cls(**values)


def _module_names(model: nn.Module) -> list[str]:
    from codesign.quantization.fake import quant_layers

    ids = {id(m): name for name, m in model.named_modules()}
    return [ids[id(m)] for m in quant_layers(model)]


@dataclass(frozen=True)
class InnerProgram:
    """Per-layer bits and accelerator for one architecture, exactly, at a trade-off point ``alpha``."""

    problem: CodesignProblem
    options: HAOOptions
    cache_dir: str | None

    def omega(self, arch: Any, network: Network) -> dict[str, dict[int, float]]:
        """Perturbation ``Omega[layer][weight_bits]`` of the trained full-precision model (cached)."""
        evaluator = self.problem.accuracy.evaluator  # type: ignore[attr-defined]
        model, _ = evaluator.float_model(arch)
        x = evaluator.data.train_x[: self.options.hessian_samples]
        y = evaluator.data.train_y[: self.options.hessian_samples]
        names = _module_names(model)
        settings = TraceSettings(max_iter=self.options.hessian_max_iter, tol=self.options.hessian_tol, seed=evaluator.seed)
        table = sensitivity_table(
            model,
            nn.functional.cross_entropy,
            [(x, y)],
            bits=self.problem.bits.weight_bits,
            layers=names,
            settings=settings,
            cache_dir=self.cache_dir,
        )
        layer_names = [layer.name for layer in network.weighted_layers]
        return table.renamed(layer_names).omega_map()

    def solve(self, arch: Any, alpha: float, act_bits: int) -> tuple[Candidate, dict[str, float | str]]:
        """Bits and accelerator for ``arch`` at trade-off ``alpha`` (0: fewest bits, 1: most).

        On the overlay template this is HAO's joint program: the minimum-latency (bits, accelerator)
        pair whose summed Omega is at most ``Omega(all lowest) + alpha * (Omega(all highest) -
        Omega(all lowest))``. Other hardware models get the HAWQ-V3 allocation under the same fraction of
        the bit-operations range, then their own best accelerator."""
        space = self.problem.space
        fallback = ""
        n = len(space.network(arch).weighted_layers)
        network = space.network(arch, (max(self.problem.bits.weight_bits),) * n, (act_bits,) * n)
        omega = self.omega(arch, network)
        weighted = network.weighted_layers
        ties = [[weighted[i].name for i in group] for group in tie_groups(network) if len(group) > 1]
        act = (act_bits,) * n
        hardware = self.problem.hardware
        if isinstance(hardware, OverlayModel):
            # the Omega of the all-lowest and all-highest networks (ties respected) bound alpha's range
            most_omega, least_omega = BitAllocationProblem.from_tables(
                omega=omega, costs={"sensitivity": omega}, ties=ties
            ).cost_range("sensitivity")
            program = BitAllocationProblem.from_tables(omega=omega, ties=ties)
            budget = most_omega + alpha * (least_omega - most_omega)
            overlay = OverlaySpace.for_device(hardware.catalog.get(self.problem.device), clock_mhz=self.problem.clock_mhz)
            try:
                result = hao_program(network, program, space=overlay, model=hardware, omega_budget=budget * (1 + 1e-9))
            except InfeasibleError as exc:
                result, fallback = None, f"joint HAO program infeasible ({exc}); fell back to HAWQ-V3 bit allocation"
            if result is not None:
                bits = result.allocation.bits_dict()
                weight_bits = tuple(bits[layer.name] for layer in weighted)
                candidate = Candidate(space.name, space.arch_id(arch), weight_bits, act, result.accelerator)
                return candidate, {"alpha": alpha, "omega": result.omega, "program": "hao"}
        costs = network_costs(network, self.problem.bits.weight_bits)
        program = BitAllocationProblem.from_tables(
            omega=omega, costs={"bops": costs["bops"]}, ties=ties, budgets=[Budget("bops", alpha=alpha)]
        )
        allocation = allocate_bits(program)
        bits = allocation.bits_dict()
        weight_bits = tuple(bits[layer.name] for layer in weighted)
        accel, _, _ = self.problem.choose_accelerator(space.network(arch, weight_bits, act))
        candidate = Candidate(space.name, space.arch_id(arch), weight_bits, act, accel)
        info: dict[str, float | str] = {"alpha": alpha, "omega": allocation.objective, "program": "hawq"}
        if fallback:
            info["fallback"] = fallback
        return candidate, info


class HAOStrategy(Strategy):
    """The ``hao`` strategy: the predictor-guided outer sampler (:mod:`codesign.search.guided`) proposes
    architectures and trade-off points, the exact inner program picks bits and accelerator."""

    name = "hao"

    def __init__(self, **options: Any) -> None:
        self.options = HAOOptions.parse(options)

    def sampler(self, problem: Problem, seed: int) -> optuna.samplers.BaseSampler:
        extra: dict[str, list[Any]] = {}
        if isinstance(problem, CodesignProblem) and not problem.space.choices():
            # a fixed architecture (the user's own model): the trade-off points and activation bits are the
            # whole search, so they form the pool, and no point is measured twice while others are unseen
            extra["hao.alpha"] = list(self.options.alphas)
            if len(problem.bits.act_bits) > 1:
                extra["hao.act_bits"] = list(problem.bits.act_bits)
        return guided_sampler_for(problem, seed=seed, options=dict(self.options.sampler or {}), extra_choices=extra)

    def evaluator(self, problem: Problem, *, cache_dir: Path | None = None) -> Evaluator:
        return hao_evaluator(problem, self.options, cache_dir=cache_dir)


def hao_evaluator(problem: Problem, options: HAOOptions, *, cache_dir: Path | None = None) -> Evaluator:
    """The per-trial work of the ``hao`` strategy for ``problem``."""
    if not isinstance(problem, CodesignProblem):

        def evaluate_table(trial: optuna.Trial) -> Evaluation:
            _, candidate = problem.suggest(trial)
            return problem.evaluate(candidate)

        return evaluate_table
    cache = cache_dir
    if cache is None:
        from codesign.nn.accuracy import default_cache_dir

        cache = default_cache_dir()
    inner = InnerProgram(problem, options, str(cache / "sensitivity"))
    act_choices: Sequence[int] = problem.bits.act_bits

    def evaluate(trial: optuna.Trial) -> Evaluation:
        arch = suggest_arch(problem.space, trial)
        alpha = float(trial.suggest_categorical("hao.alpha", list(options.alphas)))
        act = int(trial.suggest_categorical("hao.act_bits", list(act_choices))) if len(act_choices) > 1 else act_choices[0]
        candidate, info = inner.solve(arch, alpha, act)
        trial.set_user_attr(ATTR_HAO, info)
        evaluation = problem.evaluate(candidate)
        if "fallback" in info:  # visible in the record, the run's summary and the front table
            evaluation = dataclasses.replace(evaluation, notes=(*evaluation.notes, str(info["fallback"])))
        return evaluation

    return evaluate

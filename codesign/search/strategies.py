"""The search-strategy contract and Optuna's samplers as strategies.

A strategy decides how a trial's decisions are proposed (an Optuna sampler, seeded from the experiment)
and how a trial becomes an evaluation. Strategies are registered in the ``codesign.strategies``
entry-point group (the built-ins too, in this project's ``setup.cfg``) and checked by subclassing
:class:`codesign.search.testing.StrategyConformance`.

``random``, ``tpe``, ``nsga2`` and ``gp`` are Optuna's samplers on the same decisions, objectives,
constraints and storage, so their fronts compare fairly. ``hao`` (the default) adds the exact inner
program and predictor-guided active learning (:mod:`codesign.search.hao`).
"""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import optuna

from codesign.config.options import OptionRule, check_options
from codesign.core.errors import CodesignError, ConfigError
from codesign.core.plugins import STRATEGIES, load_plugin, plugin_names
from codesign.core.values import Evaluation
from codesign.search.loop import Evaluator
from codesign.search.problem import Problem


class Strategy(ABC):
    """One search strategy, built once per run from ``strategy.options`` (keyword-only).

    The constructor validates the options and raises :class:`CodesignError` naming a bad one, so a
    wrong option is found when the experiment is loaded, not at the first trial.
    """

    name: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        """A strategy without options; subclasses with options validate their own."""
        if options:
            raise CodesignError(f"unknown option {sorted(options)[0]!r} of strategy {self.name!r}; it takes none")

    @abstractmethod
    def sampler(self, problem: Problem, seed: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler proposing ``problem``'s decisions; every random choice flows from ``seed``.

        The loop calls it again for every trial with a seed from the experiment seed and the trial's
        position (:class:`codesign.search.loop.PositionSeeded`), so a resumed run, a retried trial and any
        worker propose what an uninterrupted run would. A sampler that derives each trial's draws from
        :func:`codesign.search.workers.trial_position` itself sets ``seeds_each_trial = True`` and is built
        once per run instead."""

    def evaluator(self, problem: Problem, *, cache_dir: Path | None = None) -> Evaluator:
        """How one trial becomes an evaluation; called once per run, the result once per trial.

        Default: the sampler decides every decision of ``problem`` (architecture and bits) and the problem
        completes the candidate (its latency-optimal accelerator) and measures it. ``cache_dir`` is where a
        strategy may keep expensive intermediate results (content-addressed)."""

        def evaluate(trial: optuna.Trial) -> Evaluation:
            _, candidate = problem.suggest(trial)
            return problem.evaluate(candidate)

        return evaluate


class OptunaStrategy(Strategy):
    """One of Optuna's samplers, with this project's defaults under the user's options.

    ``option_rules`` says what each option of the sampler accepts (:class:`OptionRule`); a subclass that
    leaves it ``None`` accepts the sampler's keyword names unchecked. Either way the sampler is built
    once with the options when the strategy is, so a value the sampler refuses is found then."""

    sampler_class: ClassVar[Callable[..., optuna.samplers.BaseSampler]]
    defaults: ClassVar[Mapping[str, Any]] = {}
    option_rules: ClassVar[Mapping[str, OptionRule] | None] = None

    def __init__(self, **options: Any) -> None:
        rules = self.option_rules
        if rules is None:
            accepted = set(inspect.signature(self.sampler_class).parameters) - {"seed"}
            rules = {name: OptionRule("object") for name in accepted}
        check_options(rules, options, path="strategy.options", owner=f"strategy {self.name!r}")
        self.options = {**self.defaults, **options}
        with warnings.catch_warnings():  # a trial build: its notices come again from the real one
            warnings.simplefilter("ignore")
            self._make(seed=0)

    def sampler(self, problem: Problem, seed: int) -> optuna.samplers.BaseSampler:
        return self._make(seed=seed)

    def _make(self, *, seed: int) -> optuna.samplers.BaseSampler:
        try:
            return self.sampler_class(seed=seed, **self.options)
        except (TypeError, ValueError) as exc:
            raise ConfigError("strategy.options", f"strategy {self.name!r}: options not accepted ({exc})") from None


_CALLABLE = OptionRule("callable", nullable=True)
_FLAG = OptionRule("bool", nullable=True)
_FRACTION = OptionRule("number", 0.0, 1.0)


class RandomStrategy(OptunaStrategy):
    name = "random"
    sampler_class = optuna.samplers.RandomSampler
    option_rules: ClassVar[Mapping[str, OptionRule]] = {}


class TPEStrategy(OptunaStrategy):
    name = "tpe"
    sampler_class = optuna.samplers.TPESampler
    defaults = {"multivariate": True, "n_startup_trials": 10}
    option_rules: ClassVar[Mapping[str, OptionRule]] = {
        "consider_prior": _FLAG,
        "prior_weight": OptionRule("number", 0.0, nullable=True),
        "consider_magic_clip": _FLAG,
        "consider_endpoints": _FLAG,
        "n_startup_trials": OptionRule("int", 0),
        "n_ei_candidates": OptionRule("int", 1, 1_000_000),
        "gamma": _CALLABLE,
        "weights": _CALLABLE,
        "multivariate": _FLAG,
        "group": OptionRule("bool"),
        "warn_independent_sampling": _FLAG,
        "constant_liar": OptionRule("bool"),
        "constraints_func": _CALLABLE,
    }


class NSGA2Strategy(OptunaStrategy):
    name = "nsga2"
    sampler_class = optuna.samplers.NSGAIISampler
    defaults = {"population_size": 20}
    option_rules: ClassVar[Mapping[str, OptionRule]] = {
        "population_size": OptionRule("int", 2),
        "mutation": OptionRule("object", nullable=True, cls=optuna.samplers.nsgaii.BaseMutation),
        "mutation_prob": OptionRule("number", 0.0, 1.0, nullable=True),
        "crossover": OptionRule("object", nullable=True, cls=optuna.samplers.nsgaii.BaseCrossover),
        "crossover_prob": _FRACTION,
        "swapping_prob": _FRACTION,
        "constraints_func": _CALLABLE,
        "elite_population_selection_strategy": _CALLABLE,
        "child_generation_strategy": _CALLABLE,
        "after_trial_strategy": _CALLABLE,
    }


class GPStrategy(OptunaStrategy):
    name = "gp"
    sampler_class = optuna.samplers.GPSampler
    option_rules: ClassVar[Mapping[str, OptionRule]] = {
        "independent_sampler": OptionRule("object", nullable=True, cls=optuna.samplers.BaseSampler),
        "n_startup_trials": OptionRule("int", 0),
        "deterministic_objective": OptionRule("bool"),
        "constraints_func": _CALLABLE,
        "warn_independent_sampling": OptionRule("bool"),
    }


def strategy_names() -> tuple[str, ...]:
    return plugin_names(STRATEGIES)


def make_strategy(name: str, options: Mapping[str, Any]) -> Strategy:
    """The strategy registered as ``name`` built with ``options``; a bad name or option is a
    :class:`ConfigError` at ``strategy.name`` / ``strategy.options``."""
    try:
        cls = load_plugin(STRATEGIES, name)
    except CodesignError as exc:
        raise ConfigError("strategy.name", str(exc)) from None
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)) or inspect.isabstract(cls):
        raise ConfigError("strategy.name", f"strategy {name!r}: {cls!r} is not a concrete codesign.search.strategies.Strategy")
    try:
        return cls(**dict(options))
    except ConfigError:
        raise
    except (CodesignError, TypeError, ValueError) as exc:  # a third-party strategy's own complaint
        raise ConfigError("strategy.options", str(exc)) from None

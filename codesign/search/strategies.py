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
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import optuna

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
        Called once per worker and again on every resume (with the same seed for the same worker)."""

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
    """One of Optuna's samplers, with this project's defaults under the user's options."""

    sampler_class: ClassVar[Callable[..., optuna.samplers.BaseSampler]]
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        accepted = set(inspect.signature(self.sampler_class).parameters) - {"seed"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise CodesignError(
                f"unknown option {unknown[0]!r} of strategy {self.name!r}; known: {', '.join(sorted(accepted))}"
            )
        self.options = {**self.defaults, **options}

    def sampler(self, problem: Problem, seed: int) -> optuna.samplers.BaseSampler:
        try:
            return self.sampler_class(seed=seed, **self.options)
        except (TypeError, ValueError) as exc:
            raise CodesignError(f"strategy {self.name!r}: options not accepted ({exc})") from None


class RandomStrategy(OptunaStrategy):
    name = "random"
    sampler_class = optuna.samplers.RandomSampler


class TPEStrategy(OptunaStrategy):
    name = "tpe"
    sampler_class = optuna.samplers.TPESampler
    defaults = {"multivariate": True, "n_startup_trials": 10}


class NSGA2Strategy(OptunaStrategy):
    name = "nsga2"
    sampler_class = optuna.samplers.NSGAIISampler
    defaults = {"population_size": 20}


class GPStrategy(OptunaStrategy):
    name = "gp"
    sampler_class = optuna.samplers.GPSampler


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
    except (CodesignError, TypeError) as exc:
        raise ConfigError("strategy.options", str(exc)) from None

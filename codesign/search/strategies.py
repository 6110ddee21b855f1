"""Search strategies by name: the outer samplers, all seeded from the experiment.

``random``, ``tpe``, ``nsga2`` and ``gp`` are Optuna's samplers on the same decisions, objectives,
constraints and storage, so their fronts compare fairly. ``hao`` (the default) adds the exact inner
program and predictor-guided active learning (:mod:`codesign.search.hao`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from codesign.core.errors import ConfigError

SamplerFactory = Callable[[int, Mapping[str, Any]], optuna.samplers.BaseSampler]


def _random(seed: int, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed, **options)


def _tpe(seed: int, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    kwargs = {"multivariate": True, "n_startup_trials": 10, **options}
    return optuna.samplers.TPESampler(seed=seed, **kwargs)


def _nsga2(seed: int, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    kwargs = {"population_size": 20, **options}
    return optuna.samplers.NSGAIISampler(seed=seed, **kwargs)


def _gp(seed: int, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, **options)


SAMPLERS: Mapping[str, SamplerFactory] = {"random": _random, "tpe": _tpe, "nsga2": _nsga2, "gp": _gp}
STRATEGIES = ("hao", *SAMPLERS)


def check_strategy(name: str) -> None:
    if name not in STRATEGIES:
        raise ConfigError("strategy.name", f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def make_sampler(name: str, seed: int, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of a strategy; bad options are a ConfigError naming them."""
    check_strategy(name)
    factory = SAMPLERS.get(name, _tpe)
    try:
        return factory(seed, options)
    except TypeError as exc:
        raise ConfigError("strategy.options", f"not accepted by strategy {name!r}: {exc}") from None

"""codesign: hardware-software co-design of neural networks and FPGA accelerators.

The Python API mirrors the CLI: load and validate an experiment (:func:`load_config`), run it
(:func:`run_experiment`), optimise a model of one's own (:func:`optimize_model`), and query a stored front (:func:`load_front`) as a pandas DataFrame
(``front.table``) or as typed pairs (``front.pairs()``).

The package is laid out by stage of the data flow, each a subpackage that imports only the ones below it
(checked by import-linter, see ``setup.cfg``)::

    cli          the command line
    experiment   one call from an experiment file to its verified front
    results      Pareto fronts: query, verify on the test split, export, plot
    search       the search problem, the loop over an Optuna study, strategies, storage
    predictors   learned latency and accuracy predictors, measured-board hardware models
    nn           PyTorch side: data sets, model builders, training, supernets, accuracy sources
    quantization fake quantization, Hessian sensitivity, bit-allocation and joint HAO programs
    config       experiment files: schema, loading, validation
    core         values (layers, networks, accelerators, reports, candidates), errors, Pareto math,
                 the plugin registry

beside the hardware models (``simulators``) and search spaces (``search_spaces``), which sit just above
``core``. Names resolve on first use, so ``import codesign`` loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ExperimentConfig": "codesign.config",
    "load_config": "codesign.config",
    "CodesignError": "codesign.core.errors",
    "ConfigError": "codesign.core.errors",
    "InfeasibleError": "codesign.core.errors",
    "AcceleratorConfig": "codesign.core.values",
    "Candidate": "codesign.core.values",
    "Evaluation": "codesign.core.values",
    "Fidelity": "codesign.core.values",
    "HardwareReport": "codesign.core.values",
    "Layer": "codesign.core.values",
    "LayerCost": "codesign.core.values",
    "Network": "codesign.core.values",
    "Resources": "codesign.core.values",
    "FrontPair": "codesign.results.front",
    "ParetoFront": "codesign.results.front",
    "compare_fronts": "codesign.results.front",
    "load_front": "codesign.results.front",
    "run_experiment": "codesign.experiment",
    "optimize_model": "codesign.experiment",
}

if TYPE_CHECKING:
    from codesign.config import ExperimentConfig, load_config
    from codesign.core.errors import CodesignError, ConfigError, InfeasibleError
    from codesign.core.values import (
        AcceleratorConfig,
        Candidate,
        Evaluation,
        Fidelity,
        HardwareReport,
        Layer,
        LayerCost,
        Network,
        Resources,
    )
    from codesign.experiment import optimize_model, run_experiment
    from codesign.results.front import FrontPair, ParetoFront, compare_fronts, load_front


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codesign' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted((*globals(), *_EXPORTS))


__all__ = [
    "AcceleratorConfig",
    "Candidate",
    "CodesignError",
    "ConfigError",
    "Evaluation",
    "ExperimentConfig",
    "Fidelity",
    "FrontPair",
    "HardwareReport",
    "InfeasibleError",
    "Layer",
    "LayerCost",
    "Network",
    "ParetoFront",
    "Resources",
    "compare_fronts",
    "load_config",
    "load_front",
    "optimize_model",
    "run_experiment",
]

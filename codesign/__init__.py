"""codesign: hardware-software co-design of neural networks and FPGA accelerators.

The Python API mirrors the CLI: load and validate an experiment (:func:`load_config`), run it
(:func:`run_experiment`), and query a stored front (:func:`load_front`) as a pandas DataFrame
(``front.table``) or as typed pairs (``front.pairs()``).
"""

from codesign.config import ExperimentConfig, load_config
from codesign.errors import CodesignError, ConfigError, InfeasibleError
from codesign.front import FrontPair, ParetoFront, compare_fronts, load_front
from codesign.values import (
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

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # run_experiment pulls in torch and the search spaces: load it on first use so that front queries stay fast
    if name == "run_experiment":
        from codesign.runner import run_experiment

        return run_experiment
    raise AttributeError(f"module 'codesign' has no attribute {name!r}")


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
    "run_experiment",
]

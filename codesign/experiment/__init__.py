"""One call from an experiment to its verified, stored front; and :func:`optimize_model` for a user's own model."""

from codesign.experiment.own_model import optimize_model
from codesign.experiment.run import RunResult, run_experiment

__all__ = ["RunResult", "optimize_model", "run_experiment"]

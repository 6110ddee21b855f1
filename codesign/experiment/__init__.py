"""One call from an experiment to its verified, stored front."""

from codesign.experiment.run import RunResult, run_experiment

__all__ = ["RunResult", "run_experiment"]

"""Experiment files: the validated schema (:class:`ExperimentConfig`) and loading from YAML."""

from codesign.config.experiment import (
    AccuracyConfig,
    Constraint,
    ExperimentConfig,
    HardwareConfig,
    config_from_mapping,
    config_from_record,
    config_record,
    load_config,
    parse_constraint,
)

__all__ = [
    "AccuracyConfig",
    "Constraint",
    "ExperimentConfig",
    "HardwareConfig",
    "config_from_mapping",
    "config_from_record",
    "config_record",
    "load_config",
    "parse_constraint",
]

"""Learned predictors: latency (per layer or per network, with the bit-ops baseline beside it), accuracy
with uncertainty, their features and schemas, metrics, and persistence."""

from codesign.predictors.accuracy import AccuracyFeaturizer, AccuracyPredictor
from codesign.predictors.evaluation import (
    LatencyReport,
    LatencySamples,
    evaluate_latency,
    family_split,
    random_split,
    sample_hardware,
)
from codesign.predictors.features import FeatureSchema, LatencyFeaturizer
from codesign.predictors.latency import BitOpsBaseline, LatencyPredictor
from codesign.predictors.metrics import RegressionMetrics, regression_metrics

__all__ = [
    "AccuracyFeaturizer",
    "AccuracyPredictor",
    "BitOpsBaseline",
    "FeatureSchema",
    "LatencyFeaturizer",
    "LatencyPredictor",
    "LatencyReport",
    "LatencySamples",
    "RegressionMetrics",
    "evaluate_latency",
    "family_split",
    "random_split",
    "regression_metrics",
    "sample_hardware",
]

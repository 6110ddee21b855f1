"""Learned predictors: latency (per layer or per network, with the bit-ops baseline beside it), accuracy
with uncertainty (directly, or for quantized candidates as full-precision accuracy minus the drop), their
features and schemas, metrics, and persistence."""

from codesign.predictors.accuracy import AccuracyFeaturizer, AccuracyPredictor
from codesign.predictors.evaluation import (
    LatencyReport,
    LatencySamples,
    evaluate_latency,
    family_split,
    random_pairs,
    random_split,
    sample_hardware,
)
from codesign.predictors.features import FeatureSchema, LatencyFeaturizer
from codesign.predictors.latency import AdditiveLatencyModel, BitOpsBaseline, LatencyPredictor
from codesign.predictors.measurements import MeasurementTable, parse_measurements, read_measurements
from codesign.predictors.metrics import RegressionMetrics, regression_metrics
from codesign.predictors.quantized import QuantizedAccuracyPredictor

__all__ = [
    "AccuracyFeaturizer",
    "AccuracyPredictor",
    "AdditiveLatencyModel",
    "BitOpsBaseline",
    "FeatureSchema",
    "LatencyFeaturizer",
    "LatencyPredictor",
    "LatencyReport",
    "LatencySamples",
    "MeasurementTable",
    "QuantizedAccuracyPredictor",
    "RegressionMetrics",
    "evaluate_latency",
    "family_split",
    "parse_measurements",
    "random_pairs",
    "random_split",
    "read_measurements",
    "regression_metrics",
    "sample_hardware",
]

"""Verification of a searched front: every pair is measured again on data the search never saw (the test
split) and simulated again, the front is recomputed from the verified numbers, and the gap between the
searched and the verified numbers is reported.

Finished Optuna trials cannot be changed, so verified numbers are kept on the study (user attribute
:data:`codesign.search.storage.ATTR_VERIFIED`, keyed by trial number); :func:`codesign.results.front.trials_frame` merges
them back, so the verified front can be rebuilt from the storage alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import optuna

from codesign.results.front import ParetoFront
from codesign.search.problem import CodesignProblem, Problem
from codesign.search.storage import ATTR_VERIFIED, json_float


@dataclass(frozen=True)
class VerificationReport:
    """How far the searched numbers of the front were from the verified ones (accuracy as fractions)."""

    pairs: int
    accuracy_mae: float
    accuracy_max_error: float
    accuracy_bias: float
    """Mean of searched minus verified accuracy (positive: the search was optimistic)."""
    hardware_max_rel_error: float

    def to_dict(self) -> dict[str, float]:
        return {
            "pairs": self.pairs,
            "accuracy_mae": self.accuracy_mae,
            "accuracy_max_error": self.accuracy_max_error,
            "accuracy_bias": self.accuracy_bias,
            "hardware_max_rel_error": self.hardware_max_rel_error,
        }


def verify_front(problem: Problem, study: optuna.Study, front: ParetoFront) -> VerificationReport | None:
    """Measure every pair of ``front`` (the searched front, or more pairs) on the test split and simulate
    it again; store the verified numbers on the study. Tabular problems are exact already and are not
    re-verified (returns None). Runs on the current torch thread count (see :mod:`codesign.nn.training`)."""
    if not isinstance(problem, CodesignProblem) or len(front) == 0:
        return None
    stored = dict(study.user_attrs.get(ATTR_VERIFIED) or {})
    errors, hw_errors = [], []
    for pair in front.pairs():
        evaluation = problem.evaluate(pair.candidate, split="test")
        stored[str(pair.trial)] = {
            "metrics": {k: json_float(v) for k, v in evaluation.metrics.items()},
            "fidelity": {k: v.value for k, v in evaluation.fidelity.items()},
            "split": "test",
            "searched": {k: json_float(v) for k, v in pair.metrics.items()},
        }
        errors.append(pair.metrics["accuracy"] - evaluation.metrics["accuracy"])
        searched_lat, verified_lat = pair.metrics.get("latency_ms", math.nan), evaluation.metrics["latency_ms"]
        if math.isfinite(searched_lat) and math.isfinite(verified_lat) and verified_lat > 0:
            hw_errors.append(abs(searched_lat - verified_lat) / verified_lat)
    study.set_user_attr(ATTR_VERIFIED, stored)
    err = np.asarray(errors)
    return VerificationReport(
        pairs=len(errors),
        accuracy_mae=float(np.abs(err).mean()),
        accuracy_max_error=float(np.abs(err).max()),
        accuracy_bias=float(err.mean()),
        hardware_max_rel_error=float(max(hw_errors, default=0.0)),
    )

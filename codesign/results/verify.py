"""Verification of a searched front: every chosen pair is measured again on data the search never saw
(the test split), and the gap between the searched and the test numbers is reported. Nothing is
re-selected on the test numbers: the front stays the one chosen on the searched numbers.

Hardware numbers from a simulator are exact functions of the design and are not "verified" by running the
same function again; numbers that a learned model predicted (fidelity ``predicted``) have no independent
check without a measurement on the board, and the report lists them as unverified.

Finished Optuna trials cannot be changed, so verified numbers are kept on the study (user attribute
:data:`codesign.search.storage.ATTR_VERIFIED`, keyed by trial number); :func:`codesign.results.front.trials_frame` merges
them back, so the verified front can be rebuilt from the storage alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from codesign.core.values import Fidelity
from codesign.results.front import TEST_METRICS, ParetoFront
from codesign.search.problem import CodesignProblem, Problem
from codesign.search.storage import ATTR_VERIFIED, json_float


@dataclass(frozen=True)
class VerificationReport:
    """How far the searched numbers of the front were from the verified ones (accuracy as fractions)."""

    pairs: int
    accuracy_mae: float
    accuracy_max_error: float
    accuracy_bias: float
    """Mean of searched minus test accuracy (positive: the search was optimistic)."""
    unverified: tuple[str, ...] = ()
    """Metrics of the front that a learned model predicted and nothing measured (e.g. latency from a
    hardware model fitted to a few board measurements)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "accuracy_mae": self.accuracy_mae,
            "accuracy_max_error": self.accuracy_max_error,
            "accuracy_bias": self.accuracy_bias,
            "unverified": list(self.unverified),
        }


def verify_front(problem: Problem, study: optuna.Study, front: ParetoFront) -> VerificationReport | None:
    """Measure every pair of ``front`` on the test split and store the numbers on the study (beside the
    searched ones; the front is not changed). Tabular problems are exact already and are not
    re-verified (returns None). Runs on the current torch thread count (see :mod:`codesign.nn.training`)."""
    if not isinstance(problem, CodesignProblem) or len(front) == 0:
        return None
    stored = dict(study.user_attrs.get(ATTR_VERIFIED) or {})
    errors: list[float] = []
    unverified: set[str] = set()
    for pair in front.pairs():
        evaluation = problem.evaluate(pair.candidate, split="test")
        stored[str(pair.trial)] = {
            "metrics": {k: json_float(v) for k, v in evaluation.metrics.items()},
            "fidelity": {k: v.value for k, v in evaluation.fidelity.items()},
            "split": "test",
            "searched": {k: json_float(v) for k, v in pair.metrics.items()},
        }
        errors.append(pair.metrics["accuracy"] - evaluation.metrics["accuracy"])
        unverified.update(
            k for k, v in evaluation.fidelity.items() if v == Fidelity.PREDICTED and k not in TEST_METRICS
        )
    study.set_user_attr(ATTR_VERIFIED, stored)
    err = np.asarray(errors)
    return VerificationReport(
        pairs=len(errors),
        accuracy_mae=float(np.abs(err).mean()),
        accuracy_max_error=float(np.abs(err).max()),
        accuracy_bias=float(err.mean()),
        unverified=tuple(sorted(unverified)),
    )

"""Verification of a searched front: every chosen pair is measured again on data the search never saw
(the test split), and the gap between the searched and the test numbers is reported. Nothing is
re-selected on the test numbers: the front stays the one chosen on the searched numbers.

Hardware numbers from a simulator are exact functions of the design and are not "verified" by running the
same function again; numbers that a learned model predicted (fidelity ``predicted``) have no independent
check without a measurement on the board, and the report lists them as unverified.

Each pair is measured once per study: a pair already verified (by an earlier run, or by another worker
that finished first) is not measured again and its record is never overwritten, so the searched numbers
kept beside the test ones stay the searched ones. Finished Optuna trials cannot be changed, so the records
are kept on the study, one attribute per pair (:func:`codesign.search.storage.save_verified`), and
:func:`codesign.results.front.trials_frame` merges them back: the verified front can be rebuilt from the
storage alone. Each record is also written as an optuna-dashboard note on its trial
(:mod:`codesign.results.dashboard`); a note that cannot be written is a warning, never a lost record.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from codesign.core.errors import CodesignWarning
from codesign.core.values import Fidelity
from codesign.results import dashboard
from codesign.results.front import TEST_METRICS, FrontPair, ParetoFront
from codesign.search.problem import CodesignProblem, Problem
from codesign.search.storage import ATTR_VERIFIED, json_float, save_verified, verified_records


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
    measured: int = 0
    """Pairs this call measured (the others were verified before)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "measured_now": self.measured,
            "accuracy_mae": self.accuracy_mae,
            "accuracy_max_error": self.accuracy_max_error,
            "accuracy_bias": self.accuracy_bias,
            "unverified": list(self.unverified),
        }


def verify_front(problem: Problem, study: optuna.Study, front: ParetoFront) -> VerificationReport | None:
    """Measure every pair of ``front`` not verified yet on the test split and store the numbers on the
    study (beside the searched ones; the front is not changed); report over all of the front's pairs.
    Tabular problems are exact already and are not re-verified (returns None). Runs on the current torch
    thread count (see :mod:`codesign.nn.training`)."""
    if not isinstance(problem, CodesignProblem) or len(front) == 0:
        return None
    measured = 0
    searched_on = (*front.names, *(c.metric for c in front.constraints))
    for pair in front.pairs():
        if str(pair.trial) in verified_records(study):  # re-read: another worker may have measured it
            continue
        evaluation = problem.evaluate(pair.candidate, split="test")
        record = {  # an unverified pair holds the searched numbers only
            "metrics": {k: json_float(v) for k, v in evaluation.metrics.items()},
            "fidelity": {k: v.value for k, v in evaluation.fidelity.items()},
            "split": "test",
            "searched": {k: json_float(v) for k, v in pair.metrics.items()},
        }
        save_verified(study, pair.trial, record)
        _note_on_trial(study, pair, record, searched_on)
        measured += 1
    records = verified_records(study)
    return _report([records[str(pair.trial)] for pair in front.pairs()], measured)


def _note_on_trial(study: optuna.Study, pair: FrontPair, record: Mapping[str, Any], searched_on: Sequence[str]) -> None:
    """The record as the trial's optuna-dashboard note; the record is saved already, so a failure here
    (an optuna-dashboard that changed, a storage that refuses the note) costs the note only, and says so."""
    try:
        note = dashboard.verified_note(record, candidate=pair.candidate, searched_on=searched_on)
        dashboard.save_trial_note(study, pair.trial, note)
    except Exception as exc:  # any failure of a third-party writer; verification itself must not fail
        reason = (str(exc).strip().splitlines() or [""])[0]
        warnings.warn(
            CodesignWarning(
                f"trial {pair.trial}: verified numbers saved in study attribute {ATTR_VERIFIED}.{pair.trial}, "
                f"but its optuna-dashboard note was not written ({type(exc).__name__}: {reason})"
            ),
            stacklevel=3,
        )


def _report(records: list[Mapping[str, Any]], measured: int) -> VerificationReport:
    errors = np.asarray([float(r["searched"]["accuracy"]) - float(r["metrics"]["accuracy"]) for r in records])
    unverified = {
        k for r in records for k, v in r["fidelity"].items() if v == Fidelity.PREDICTED.value and k not in TEST_METRICS
    }
    return VerificationReport(
        pairs=len(records),
        accuracy_mae=float(np.abs(errors).mean()),
        accuracy_max_error=float(np.abs(errors).max()),
        accuracy_bias=float(errors.mean()),
        unverified=tuple(sorted(unverified)),
        measured=measured,
    )

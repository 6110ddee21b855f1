"""A study in optuna-dashboard: each verified pair's numbers as a Markdown note on its own trial.

The verification records stay in the study attributes (``codesign.verified.<trial>``, the source of truth;
the dashboard shows long attribute values cut short). The note repeats the numbers where a dashboard user
looks for them: on the trial page.

A finished Optuna trial takes no new attributes, but optuna-dashboard keeps notes in the study's system
attributes, keyed by the trial's id, so a finished trial can get one. Its public ``save_note`` wants a live
``optuna.Trial``; building one for a finished trial runs the sampler's ``before_trial`` hook for a trial that
is not starting (GridSampler writes to the trial there and fails), so :func:`save_trial_note` calls the
function the dashboard's own ``PUT /api/studies/<study>/<trial>/note`` handler uses instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from codesign.core.values import Candidate
from codesign.results.front import TEST_METRICS, accelerator_summary, bits_summary

NOTE_TITLE = "Verified on the test split"
HARDWARE_METRICS = ("latency_ms", "energy_mj")
"""Hardware numbers every note shows when the pair has them, besides the objectives and constraints."""


def verified_note(
    record: Mapping[str, Any], *, candidate: Candidate | None = None, searched_on: Sequence[str] = ()
) -> str:
    """The Markdown note of one verified pair.

    ``record`` is what :func:`codesign.search.storage.save_verified` stores (``metrics`` on the test split,
    ``searched`` as the search saw them, ``fidelity``). The accuracy table puts the searched numbers beside
    the test ones; the hardware table lists the hardware model's numbers for ``searched_on`` (the
    objectives and constrained metrics) and :data:`HARDWARE_METRICS`, which no second split changes."""
    test, searched = record.get("metrics") or {}, record.get("searched") or {}
    fidelity = record.get("fidelity") or {}
    lines = [f"### {NOTE_TITLE}", ""]
    if candidate is not None:
        accel = accelerator_summary(candidate)
        device = f" on {candidate.accelerator.device}" if candidate.accelerator is not None else ""
        parts = [f"`{candidate.arch_id}`", bits_summary(candidate), f"{accel}{device}" if accel else ""]
        lines += ["Candidate: " + " · ".join(p for p in parts if p), ""]
    lines += [
        "The front was chosen on the searched numbers (validation split); the test numbers never change it.",
        "",
        "| metric | searched | test split |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {_text(searched.get(m))} | {_text(test.get(m))} |" for m in TEST_METRICS if m in searched or m in test]
    shown = [m for m in dict.fromkeys([*searched_on, *HARDWARE_METRICS]) if m in searched and m not in TEST_METRICS]
    if shown:
        lines += [
            "",
            "Hardware model's numbers, as searched (the test split does not change them; `predicted` ones "
            "stay unverified until measured on the board):",
            "",
            "| metric | value | source |",
            "|---|---|---|",
        ]
        lines += [f"| {m} | {_text(searched[m])} | {fidelity.get(m, 'unknown')} |" for m in shown]
    return "\n".join(lines) + "\n"


def save_trial_note(study: optuna.Study, trial_number: int, body: str) -> None:
    """Write ``body`` as the optuna-dashboard note of trial ``trial_number`` of ``study`` (finished or not),
    replacing any note it had. Raises whatever optuna-dashboard or the storage raises."""
    from optuna_dashboard._note import note_ver_key, save_note_with_version

    storage, study_id = study._storage, study._study_id
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)
    version = int(storage.get_study_system_attrs(study_id).get(note_ver_key(trial_id), 0)) + 1
    save_note_with_version(storage, study_id, trial_id, version, body)


def _text(value: Any) -> str:
    """A number for a table cell: four significant digits, whole numbers from 1000 up (``lut 16560``)."""
    if value is None:
        return "n/a"
    if isinstance(value, str):  # json_float's "nan" / "inf"
        return value
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    return f"{number:.0f}" if abs(number) >= 1000 else f"{number:.4g}"

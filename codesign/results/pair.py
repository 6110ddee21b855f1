"""One stored pair in full: its candidate, its searched numbers, its test-split numbers when it was verified,
and the per-layer breakdown of its hardware numbers, read back from the study's storage alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from codesign.core.errors import CodesignError
from codesign.core.values import Candidate, LayerRecord
from codesign.search.storage import (
    ATTR_CANDIDATE,
    ATTR_FIDELITY,
    ATTR_METRICS,
    ATTR_NOTES,
    ATTR_VIOLATIONS,
    open_existing_storage,
    pick_study,
    stored_layers,
    verified_records,
)


@dataclass(frozen=True)
class StoredPair:
    """A trial's pair as the study holds it. ``searched`` are the numbers the search saw (validation
    accuracy, the hardware model's numbers); ``verified`` the test-split numbers measured after the search
    (empty when the pair was not verified)."""

    study: str
    trial: int
    candidate: Candidate
    searched: Mapping[str, float]
    fidelity: Mapping[str, str]
    verified: Mapping[str, float]
    layers: tuple[LayerRecord, ...]
    violations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def bottleneck(self) -> LayerRecord | None:
        """The layer that takes the longest (None without a per-layer breakdown)."""
        return max(self.layers, key=lambda layer: layer.latency_ms) if self.layers else None

    def layer_rows(self) -> list[dict[str, Any]]:
        """One row per layer: name, kind, shape, bits, cycles, latency (ms and share of the total), bound,
        resources; the bottleneck's ``bottleneck`` cell is ``"<<"``."""
        total = sum(layer.latency_ms for layer in self.layers)
        worst = self.bottleneck
        rows = []
        for layer in self.layers:
            rows.append({
                "layer": layer.name,
                "kind": layer.kind,
                "shape": layer.shape,
                "w_bits": layer.weight_bits or None,
                "a_bits": layer.act_bits,
                "macs": layer.macs,
                "cycles": layer.cycles,
                "latency_ms": layer.latency_ms,
                "share": layer.latency_ms / total if total > 0 else None,
                "bound": layer.bound,
                **{name: value for name, value in layer.resources.to_dict().items()},
                "bottleneck": "<<" if layer is worst else "",
            })
        return rows


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def stored_pair(study: optuna.Study, trial_number: int) -> StoredPair:
    """Trial ``trial_number`` of ``study`` as a :class:`StoredPair`; an error listing the evaluated trials
    when it has none."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    trial = trials.get(trial_number)
    if trial is None or ATTR_CANDIDATE not in trial.user_attrs:
        done = sorted(n for n, t in trials.items() if ATTR_CANDIDATE in t.user_attrs)
        raise CodesignError(f"study {study.study_name!r} has no evaluated trial {trial_number}; evaluated: {ranges(done)}")
    record = verified_records(study).get(str(trial_number)) or {}
    attrs = trial.user_attrs
    return StoredPair(
        study=study.study_name,
        trial=trial_number,
        candidate=Candidate.from_dict(attrs[ATTR_CANDIDATE]),
        searched={k: _number(v) for k, v in (attrs.get(ATTR_METRICS) or {}).items()},
        fidelity=dict(attrs.get(ATTR_FIDELITY) or {}),
        verified={k: _number(v) for k, v in (record.get("metrics") or {}).items()},
        layers=stored_layers(trial),
        violations=tuple(attrs.get(ATTR_VIOLATIONS) or ()),
        notes=tuple(attrs.get(ATTR_NOTES) or ()),
    )


def load_pair(storage: str | Path, trial_number: int, *, study: str | None = None) -> tuple[optuna.Study, StoredPair]:
    """Open ``storage`` (a run folder, journal file or URL), pick the study and read one pair."""
    backend = open_existing_storage(storage)
    name = pick_study(backend, study)
    loaded = optuna.load_study(study_name=name, storage=backend)
    return loaded, stored_pair(loaded, trial_number)


def ranges(numbers: list[int]) -> str:
    """``0..23`` for a run of numbers, else the numbers; ``none`` for none."""
    if not numbers:
        return "none"
    return f"{numbers[0]}..{numbers[-1]}" if numbers == list(range(numbers[0], numbers[-1] + 1)) else ", ".join(map(str, numbers))

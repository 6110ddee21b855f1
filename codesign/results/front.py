"""Querying Pareto fronts from a study's storage alone: as a pandas DataFrame and as typed pairs,
filtered by constraints, re-ranked on other objectives, exported, plotted and compared.

A front is chosen on the numbers the search saw (validation accuracy, the hardware model's numbers) and
on nothing else. After a run, the chosen pairs are measured once more on the test split, which the search
never saw; those numbers sit beside the searched ones (``accuracy_test`` next to ``accuracy_search``) and
are never used to select. The ``fidelity.<metric>`` column says where each number comes from.

The front is computed on plain rows (one dict per trial, every row with every column); pandas is imported
only when a DataFrame is asked for (:attr:`ParetoFront.table`, :attr:`ParetoFront.trials`,
:func:`trials_frame`, CSV export, :func:`compare_fronts`), so printing a front stays quick.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from codesign.config.experiment import Constraint, parse_constraint
from codesign.core import pareto
from codesign.core.errors import CodesignError
from codesign.core.values import Candidate
from codesign.search.storage import (
    ATTR_CANDIDATE,
    ATTR_ERROR,
    ATTR_FIDELITY,
    ATTR_METRICS,
    ATTR_NOTES,
    ATTR_VIOLATIONS,
    load_experiment,
    open_existing_storage,
    pick_study,
    verified_records,
)
from codesign.search.workers import lost_reasons

if TYPE_CHECKING:
    import pandas as pd

Row = dict[str, Any]
"""One trial as a row: column name -> value (missing numbers are NaN)."""

TEST_METRICS = ("accuracy", "fp32_accuracy")
"""The metrics measured again on the test split for the chosen pairs (``<metric>_test`` columns)."""
TEST_SUFFIX = "_test"
NOTES_SEPARATOR = " | "
"""Between the notes of one trial in the ``notes`` column (a note's own " | " reads " / " there)."""

MAXIMIZED_METRICS = ("accuracy", "throughput_fps")
"""Metrics that are better when larger (besides names ending in ``_acc`` or ``accuracy``)."""

_WHERE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\s*(<=|>=|==|!=|<|>)\s*([-+0-9.eE]+|inf)\s*$")
"""METRIC OP NUMBER: a metric name (dotted segments, none starting with an underscore), matched as a column
name and never evaluated."""


def default_direction(metric: str) -> str:
    metric = metric.removesuffix(TEST_SUFFIX).removesuffix("_search")
    if metric in MAXIMIZED_METRICS or metric.endswith("accuracy") or metric.endswith("_acc"):
        return "maximize"
    return "minimize"


def parse_objectives(text: str) -> tuple[tuple[str, str], ...]:
    """``"accuracy,latency_ms"`` or ``"accuracy:max,energy_mj:min"`` into (metric, direction) pairs."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, direction = part.partition(":")
        direction = {"": default_direction(name), "min": "minimize", "max": "maximize"}.get(direction, direction)
        if direction not in pareto.DIRECTIONS:
            raise CodesignError(f"objective {part!r}: direction must be min, max, minimize or maximize")
        out.append((name, direction))
    if not out:
        raise CodesignError(f"objectives {text!r}: name at least one metric")
    return tuple(out)


@dataclass(frozen=True)
class Filter:
    """One ``--where`` condition such as ``latency_ms<5``."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Filter:
        match = _WHERE.match(text)
        expected = f"filter {text!r}: expected METRIC OP NUMBER with OP one of <, <=, >, >=, ==, !="
        if not match:
            raise CodesignError(expected)
        try:
            value = float(match.group(3))
        except ValueError:
            raise CodesignError(f"{expected}; {match.group(3)!r} is not a number") from None
        return cls(match.group(1), match.group(2), value)

    def mask(self, column: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
        values = np.asarray(column, dtype=float)
        ops = {
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
            "==": np.equal,
            "!=": np.not_equal,
        }
        return np.asarray(ops[self.op](values, self.value))


def parse_filters(texts: Iterable[str]) -> tuple[Filter, ...]:
    return tuple(Filter.parse(part) for text in texts for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class FrontPair:
    """One Pareto-optimal model-accelerator pair."""

    trial: int
    candidate: Candidate
    metrics: Mapping[str, float]
    fidelity: Mapping[str, str]
    notes: tuple[str, ...] = ()
    """Fallbacks or unproven steps behind the pair's numbers (empty when there were none)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "key": self.candidate.key,
            "candidate": self.candidate.to_dict(),
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "fidelity": dict(self.fidelity),
            "notes": list(self.notes),
        }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def bits_summary(candidate: Candidate) -> str:
    """Layers per (weight, activation) bit pair, e.g. ``w4a4:10 w8a4:5``."""
    return candidate.bits_summary()


def accelerator_summary(candidate: Candidate) -> str:
    """``overlay tm=64 tn=8 tr=4 tc=4 @200MHz`` (per-layer tuples shown by their length)."""
    return candidate.accelerator_summary()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _normalised(rows: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, ...], list[Row]]:
    """The columns (in order of first appearance, as pandas orders them) and the rows with every column,
    NaN where a row had none."""
    rows = list(rows)
    columns = tuple(dict.fromkeys(k for r in rows for k in r))
    return columns, [{c: r.get(c, math.nan) for c in columns} for r in rows]


def trial_rows(study: optuna.Study) -> tuple[tuple[str, ...], list[Row]]:
    """The columns and rows of :func:`trials_frame`, without pandas."""
    rows = []
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    verified = verified_records(study)
    lost = lost_reasons(study)
    for t in study.get_trials(deepcopy=False, states=states):
        cand = t.user_attrs.get(ATTR_CANDIDATE)
        metrics = {k: _number(v) for k, v in (t.user_attrs.get(ATTR_METRICS) or {}).items()}
        fidelity = dict(t.user_attrs.get(ATTR_FIDELITY) or {})
        check = verified.get(str(t.number))
        if check:  # test-split numbers sit beside the searched ones; nothing is replaced by them
            for name in TEST_METRICS:
                if name in check["metrics"]:
                    metrics[f"{name}{TEST_SUFFIX}"] = _number(check["metrics"][name])
            if "accuracy" in metrics:
                metrics["accuracy_search"] = metrics["accuracy"]
        candidate = Candidate.from_dict(cand) if cand else None
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            "key": candidate.key if candidate else "",
            "arch": candidate.arch_id if candidate else "",
            "bits": bits_summary(candidate) if candidate else "",
            "accelerator": accelerator_summary(candidate) if candidate else "",
            "candidate": json.dumps(cand, sort_keys=True) if cand else "",
            "violations": "; ".join(t.user_attrs.get(ATTR_VIOLATIONS) or []),
            "error": t.user_attrs.get(ATTR_ERROR, "") or lost.get(t.number, ""),
            "notes": NOTES_SEPARATOR.join(n.replace(NOTES_SEPARATOR, " / ") for n in t.user_attrs.get(ATTR_NOTES) or []),
            "verified": bool(check),
        }
        row.update(metrics)
        row.update({f"fidelity.{k}": v for k, v in fidelity.items()})
        rows.append(row)
    return _normalised(rows)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per finished trial: candidate columns, every metric (verified where known), the fidelity of
    each metric (``fidelity.<metric>``), feasibility and any error."""
    import pandas as pd

    columns, rows = trial_rows(study)
    return pd.DataFrame(rows, columns=list(columns))


def _records(trials: pd.DataFrame | Sequence[Mapping[str, Any]]) -> tuple[tuple[str, ...], list[Row]]:
    if hasattr(trials, "to_dict") and hasattr(trials, "columns"):  # a pandas DataFrame
        return tuple(str(c) for c in trials.columns), [dict(r) for r in trials.to_dict("records")]
    return _normalised(trials)


def _sorted_rows(rows: Sequence[Row], column: str, *, ascending: bool) -> list[Row]:
    """Stable sort on ``column``, NaN last (as pandas ``sort_values(kind="stable")``)."""
    present = [r for r in rows if not _missing(r[column])]
    absent = [r for r in rows if _missing(r[column])]
    return sorted(present, key=lambda r: float(r[column]), reverse=not ascending) + absent


@dataclass(frozen=True)
class ParetoFront:
    """The front of one study for chosen objectives and constraints: ``rows`` (sorted by the first
    objective) and ``trial_rows`` (every finished trial) share ``columns``; :attr:`table` and
    :attr:`trials` give them as pandas DataFrames."""

    study: str
    objectives: tuple[tuple[str, str], ...]
    constraints: tuple[Constraint, ...]
    filters: tuple[Filter, ...]
    rows: tuple[Row, ...] = field(repr=False)
    trial_rows: tuple[Row, ...] = field(repr=False)
    columns: tuple[str, ...] = field(repr=False)
    hardware: tuple[tuple[str, str], ...] = ()
    """What the numbers were measured on (hardware model, device, clock), from the stored experiment."""

    @cached_property
    def table(self) -> pd.DataFrame:
        """The front, one row per pair (a DataFrame; built on first use)."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(self.columns))

    @cached_property
    def trials(self) -> pd.DataFrame:
        """Every finished trial (a DataFrame; built on first use)."""
        import pandas as pd

        return pd.DataFrame(list(self.trial_rows), columns=list(self.columns))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.objectives)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(d for _, d in self.objectives)

    def __len__(self) -> int:
        return len(self.rows)

    def pairs(self) -> tuple[FrontPair, ...]:
        out = []
        metric_cols = metric_columns(self.columns)
        fidelity_cols = [c for c in self.columns if c.startswith("fidelity.")]
        for row in self.rows:
            out.append(
                FrontPair(
                    trial=int(row["trial"]),
                    candidate=Candidate.from_dict(json.loads(row["candidate"])),
                    metrics={c: float(row[c]) for c in metric_cols if not _missing(row[c]) and not c.startswith("searched.")},
                    fidelity={c.removeprefix("fidelity."): str(row[c]) for c in fidelity_cols if isinstance(row[c], str)},
                    notes=tuple(str(row["notes"]).split(NOTES_SEPARATOR)) if isinstance(row.get("notes"), str) and row["notes"] else (),
                )
            )
        return tuple(out)

    def losses(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """The objectives of the front's rows (or of ``frame``'s) as losses, one row per pair."""
        if frame is not None:
            return pareto.to_losses(frame[list(self.names)].to_numpy(dtype=float), self.directions)
        values = np.asarray([[r[n] for n in self.names] for r in self.rows], dtype=float)
        return pareto.to_losses(values.reshape(len(self.rows), len(self.names)), self.directions)

    def hypervolume(self, reference: Sequence[float]) -> float:
        """Hypervolume in loss space (maximised objectives negated) against ``reference`` (same space)."""
        if not self.rows:
            return 0.0
        return pareto.hypervolume(self.losses(), reference)

    def summary_columns(self) -> list[str]:
        preferred = [*self.names, "accuracy_test", "latency_ms", "throughput_fps", "energy_mj", "dsp", "lut", "bram18", "model_size_mb"]
        has_bits = "bits" in self.columns and any(bool(r["bits"]) for r in self.rows)
        extra = ["arch", "bits", "accelerator"] if has_bits else ["arch"]
        if any(r.get("notes") for r in self.rows):  # a fallback behind a pair's numbers is shown with it
            extra.append("notes")
        return ["trial"] + [c for c in dict.fromkeys(preferred) if c in self.columns] + extra

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        self.table.to_csv(path, index=False)
        return path

    def to_json(self, path: str | Path | None = None, *, extra: Mapping[str, Any] | None = None) -> str:
        """The front as JSON (``extra`` adds top-level entries, e.g. a verification report)."""
        doc: dict[str, Any] = {
            "study": self.study,
            "objectives": dict(self.objectives),
            "constraints": [str(c) for c in self.constraints],
            "filters": [f"{f.metric}{f.op}{f.value:g}" for f in self.filters],
            "pairs": [p.to_dict() for p in self.pairs()],
            **(extra or {}),
        }
        text = json.dumps(doc, indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def direction_of(self, metric: str) -> str:
        """The direction of ``metric``: the study's own for its objectives, else the metric's default."""
        return dict(self.objectives).get(metric, default_direction(metric))

    def axes_front(self, x: str, y: str) -> ParetoFront:
        """The front of the two metrics ``x`` and ``y`` over the same trials, constraints and filters (on
        the searched numbers): what a plot on those axes shows."""
        objectives = ((y, self.direction_of(y)), (x, self.direction_of(x)))
        return compute_front(
            list(self.trial_rows), study=self.study, objectives=objectives, constraints=self.constraints, filters=self.filters
        )

    def plot(self, path: str | Path, x: str | None = None, y: str | None = None) -> Path:
        """Every feasible trial, with the front of the plotted axes as a staircase labelled by trial
        number, saved as PNG, PDF or SVG (see :func:`plot_fronts`)."""
        return plot_fronts([self], path, x=x, y=y)


_META_COLUMNS = (
    "trial", "state", "key", "arch", "bits", "accelerator", "candidate", "violations", "error", "notes", "verified",
    "feasible",
)  # fmt: skip


def metric_columns(frame: pd.DataFrame | Iterable[str]) -> list[str]:
    """The metric columns of a trials frame (or of a sequence of column names)."""
    columns = frame.columns if hasattr(frame, "columns") else frame
    return [c for c in columns if c not in _META_COLUMNS and not c.startswith("fidelity.")]


def compute_front(
    trials: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    study: str,
    objectives: Sequence[tuple[str, str]],
    constraints: Sequence[Constraint] = (),
    filters: Sequence[Filter] = (),
    verified_only: bool = False,
) -> ParetoFront:
    """The feasible non-dominated rows of ``trials`` for ``objectives`` (pure; see :func:`load_front`).
    The front is always chosen on the numbers the search saw; with ``verified_only`` it is taken over the
    pairs measured on the test split alone (their ``*_test`` numbers shown beside, never used to select);
    ``trials`` is a
    DataFrame (:func:`trials_frame`) or a sequence of row mappings (:func:`trial_rows`)."""
    columns, rows = _records(trials)
    known = metric_columns(columns)
    for name in [n for n, _ in objectives] + [c.metric for c in constraints] + [f.metric for f in filters]:
        if name not in known:
            raise CodesignError(f"unknown metric {name!r}; this study has: {', '.join(known) or 'no completed trial'}")
    done = [r for r in rows if r["state"] == "COMPLETE"]
    if verified_only:
        done = [r for r in done if r["verified"]]
    head = (study, tuple(objectives), tuple(constraints), tuple(filters))
    if not done:
        return ParetoFront(*head, (), tuple(rows), columns)
    keep = np.ones(len(done), dtype=bool)
    for f in filters:
        keep &= f.mask([r[f.metric] for r in done])
    done = [r for r, k in zip(done, keep, strict=True) if k]

    def column(name: str) -> np.ndarray:
        return np.asarray([r[name] for r in done], dtype=float)

    g = np.stack([[c.value(v) for v in column(c.metric)] for c in constraints], axis=1) if constraints and done else None
    names = [n for n, _ in objectives]
    values = np.asarray([[r[n] for n in names] for r in done], dtype=float).reshape(len(done), len(names))
    losses = pareto.to_losses(values, [d for _, d in objectives])
    mask = pareto.pareto_mask(losses, g) if done else np.zeros(0, dtype=bool)
    front, seen = [], set()
    for r, on in zip(done, mask, strict=True):
        if on and r["key"] not in seen:  # the first row of each candidate
            seen.add(r["key"])
            front.append(r)
    first, direction = objectives[0]
    front = _sorted_rows(front, first, ascending=direction == "minimize")
    return ParetoFront(*head, tuple(front), tuple(rows), columns)


def load_front(
    storage: str | Path,
    *,
    study: str | None = None,
    objectives: Sequence[tuple[str, str]] | None = None,
    filters: Sequence[Filter] = (),
    ignore_constraints: bool = False,
    verified: bool | None = None,
) -> ParetoFront:
    """Rebuild a study's front from its storage (a folder, a journal file or a database URL).

    The front is chosen on the numbers the search saw, over every completed feasible trial; pairs measured
    on the test split carry ``accuracy_test`` (and ``accuracy_search``, the searched value) beside.
    ``verified=True`` restricts the choice to those measured pairs; ``None`` is the same as False."""
    backend = open_existing_storage(storage)
    name = pick_study(backend, study)
    loaded = optuna.load_study(study_name=name, storage=backend)
    return study_front(loaded, objectives=objectives, filters=filters, ignore_constraints=ignore_constraints, verified=verified)


def study_front(
    study: optuna.Study,
    *,
    objectives: Sequence[tuple[str, str]] | None = None,
    filters: Sequence[Filter] = (),
    ignore_constraints: bool = False,
    verified: bool | None = None,
) -> ParetoFront:
    """:func:`load_front` of a study already open (its trials are read once)."""
    experiment = load_experiment(study)
    if objectives is None:
        objectives = tuple((str(k), str(v)) for k, v in experiment["objectives"].items())
    constraints = () if ignore_constraints else tuple(parse_constraint(m, t) for m, t in experiment.get("constraints", {}).items())
    _, rows = trial_rows(study)
    front = compute_front(
        rows, study=study.study_name, objectives=objectives, constraints=constraints, filters=filters, verified_only=bool(verified)
    )
    hardware = experiment.get("hardware") or {}
    setting = tuple((k, str(hardware.get(k))) for k in ("model", "device", "clock_mhz") if hardware.get(k) is not None)
    return dataclasses.replace(front, hardware=setting)


def compare_fronts(fronts: Sequence[ParetoFront], *, mixed_hardware: bool = False) -> pd.DataFrame:
    """Hypervolume of each front against one common reference (the nadir of all their feasible trials
    plus 1% of each range; in ``frame.attrs["reference"]``, loss space: maximised objectives negated), and
    the share of each front's pairs dominated by another front's pairs.

    Fronts measured on different hardware (model, device or clock) are not comparable and are refused
    unless ``mixed_hardware``; then ``frame.attrs["mixed_hardware"]`` lists the settings."""
    import pandas as pd

    if not fronts:
        raise CodesignError("compare: give at least one study")
    settings = {f.study: dict(f.hardware) for f in fronts if f.hardware}
    if len({tuple(sorted(v.items())) for v in settings.values()}) > 1 and not mixed_hardware:
        listed = "; ".join(f"{name}: {', '.join(f'{k}={v}' for k, v in s.items())}" for name, s in settings.items())
        raise CodesignError(f"compare: the studies ran on different hardware ({listed}); pass --mixed-hardware to compare anyway")
    objectives = fronts[0].objectives
    for f in fronts[1:]:
        if f.objectives != objectives:
            raise CodesignError(f"compare: study {f.study!r} has objectives {dict(f.objectives)}, expected {dict(objectives)}")
    everything = [f.losses() for f in fronts if f.rows]
    if not everything:
        raise CodesignError("compare: no study has a feasible pair")
    reference = pareto.reference_point(np.vstack(everything))
    rows = []
    for i, f in enumerate(fronts):
        own = f.losses() if f.rows else np.zeros((0, len(objectives)))
        others = [g.losses() for j, g in enumerate(fronts) if j != i and g.rows]
        dominated = 0.0
        if own.size and others:
            other = np.vstack(others)
            hit = [(np.all(other <= p, axis=1) & np.any(other < p, axis=1)).any() for p in own]
            dominated = float(np.mean(hit))
        rows.append(
            {
                "study": f.study,
                "pairs": len(f),
                "trials": sum(r["state"] == "COMPLETE" for r in f.trial_rows),
                "hypervolume": pareto.hypervolume(own, reference) if own.size else 0.0,
                "dominated_share": dominated,
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["reference"] = {name: float(v) for name, v in zip(fronts[0].names, reference, strict=True)}
    if len({tuple(sorted(v.items())) for v in settings.values()}) > 1:
        frame.attrs["mixed_hardware"] = settings
    return frame


def plot_fronts(fronts: Sequence[ParetoFront], path: str | Path, *, x: str | None = None, y: str | None = None) -> Path:
    """The fronts of one or more studies on the axes ``x`` and ``y`` (default: the first study's second
    and first objectives): each study's evaluated trials in grey, the front of those axes (not of the
    study's own objectives) as a staircase with trial numbers. Drawn with matplotlib's object API on a
    figure of its own: neither pyplot nor the process-wide backend is touched."""
    from matplotlib.figure import Figure

    if not fronts:
        raise CodesignError("plot: no front to draw")
    first = fronts[0]
    x = x or first.names[min(1, len(first.names) - 1)]
    y = y or first.names[0]
    for front in fronts:
        for metric in (x, y):
            if metric not in front.columns:
                known = ", ".join(metric_columns(front.columns))
                raise CodesignError(f"plot: study {front.study!r} has no metric {metric!r}; known: {known}")
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.subplots()
    colours = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")
    for index, front in enumerate(fronts):
        colour = colours[index % len(colours)]
        done = [r for r in front.trial_rows if r["state"] == "COMPLETE"]
        ax.scatter([r[x] for r in done], [r[y] for r in done], s=10, c="0.75", zorder=1)
        shown = _sorted_rows(list(front.axes_front(x, y).rows), x, ascending=True)
        xs, ys = [float(r[x]) for r in shown], [float(r[y]) for r in shown]
        # a staircase, the border of what the front attains: with x minimised, a point's y holds up to the
        # next point's x ("post"); with x maximised, from the previous point's x ("pre")
        ax.step(xs, ys, where="post" if front.direction_of(x) == "minimize" else "pre", c=colour, zorder=2, label=f"{front.study}: front of {y} vs {x}")
        ax.scatter(xs, ys, s=24, c=colour, zorder=3)
        for r, px, py in zip(shown, xs, ys, strict=True):
            ax.annotate(str(r["trial"]), (px, py), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    ax.set_xlabel(f"{x} ({first.direction_of(x)})")
    ax.set_ylabel(f"{y} ({first.direction_of(y)})")
    ax.set_title(", ".join(f.study for f in fronts))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    if not path.parent.is_dir():
        raise CodesignError(f"plot: folder {path.parent} does not exist")
    try:
        fig.savefig(path, dpi=120)
    except ValueError as exc:  # an unknown file type
        raise CodesignError(f"plot: cannot write {path.name!r} ({exc})") from None
    return path


def noted_trials(front: ParetoFront) -> list[Row]:
    """The completed trials whose numbers came with a note (a fallback or an unproven step)."""
    return [r for r in front.trial_rows if r["state"] == "COMPLETE" and isinstance(r.get("notes"), str) and r["notes"]]

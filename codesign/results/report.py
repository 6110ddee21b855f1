"""A self-contained HTML report of one or more stored studies, from their storage alone.

The page holds, for every study: the interactive front (every trial, the front pairs on the searched
numbers, and the same pairs on the test split; hovering shows the architecture, bits, accelerator and
every metric), the hypervolume after each completed trial on one reference point shared by all the
studies, searched against test-split numbers of the verified pairs, each front pair's resources as a share
of the device, and the per-layer latency, bound and bits of one chosen pair with its roofline.

plotly.js is inlined once (the page opens without a network); each figure can also be written as a PNG
for papers (:meth:`Report.write_pngs`, through kaleido and a Chrome or Chromium on this machine).

Each study is read once (its trials without copies, :func:`codesign.results.front.trial_rows`); the chosen
pair's per-layer records are read with :func:`codesign.results.pair.stored_pair`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from codesign.config.experiment import config_from_record
from codesign.core.errors import CodesignError
from codesign.core.files import write_text
from codesign.results import _report_figures as figures
from codesign.results.front import ParetoFront, compare_fronts, study_front
from codesign.results.pair import StoredPair, stored_pair
from codesign.search.storage import (
    is_url,
    journal_path,
    load_experiment,
    open_existing_storage,
    pick_study,
    verified_records,
)
from simulators.devices import Device, DeviceCatalog

if TYPE_CHECKING:
    import plotly.graph_objects as go

REPORT_NAME = "report.html"
"""The report's default file name (in a run folder, beside its ``study.journal``)."""
PER_STUDY = ("resources", "layers", "roofline")
"""Sections drawn once per study (their ids, and PNG names, carry the study's index when there are several)."""
SHARED = ("front", "hypervolume", "verified")
VERIFIED_METRICS = ("accuracy", "latency_ms")


@dataclass(frozen=True)
class Source:
    """One study to report: a storage, the study's name (None: the storage's only study) and the trial of
    the pair whose layers are shown (None: the front pair with the best first objective)."""

    target: str
    study: str | None = None
    pair: int | None = None


@dataclass(frozen=True)
class StudyView:
    """Everything a report shows of one study, read from its storage once."""

    source: Source
    label: str
    """The study's name in the page (with its index when two reports' studies share a name)."""
    front: ParetoFront
    strategy: str
    verified: Mapping[str, Mapping[str, Any]]
    """Trial number (as text) -> its test-split record (:func:`codesign.search.storage.verified_records`)."""
    pair: StoredPair | None
    pair_note: str
    """Which pair the per-layer view shows and why."""
    device: Device | None
    device_note: str
    """Why no device is known (empty when one is)."""

    @property
    def study(self) -> str:
        return self.front.study


@dataclass(frozen=True)
class Section:
    """One part of the page: a figure (None when the studies hold nothing to draw) and what it shows."""

    id: str
    title: str
    caption: str
    """Plain text (escaped when the page is written)."""
    figure: go.Figure | None = None


def sources(targets: Sequence[str | Path], studies: Sequence[str] | None = None, pairs: Sequence[int] | None = None) -> tuple[Source, ...]:
    """The studies a report shows: one per target, or with a single target one per named study; ``pairs``
    (the trials whose layers are shown) once per study, in order, or not at all."""
    if not targets:
        raise CodesignError("report: give at least one run folder, .journal file or storage URL")
    names: list[str | None] = list(studies or [])
    found: list[tuple[str, str | None]]
    if len(targets) == 1:
        found = [(str(targets[0]), s) for s in names] or [(str(targets[0]), None)]
    elif names and len(names) != len(targets):
        raise CodesignError(f"--study given {len(names)} times for {len(targets)} targets; give it once per target or not at all")
    else:
        found = list(zip([str(t) for t in targets], names or [None] * len(targets), strict=True))
    chosen = list(pairs or [])
    if chosen and len(chosen) != len(found):
        counted = f"{len(found)} stud{'y' if len(found) == 1 else 'ies'}"
        raise CodesignError(f"--pair given {len(chosen)} times for {counted}; give it once per study, in order, or not at all")
    return tuple(Source(t, s, chosen[i] if chosen else None) for i, (t, s) in enumerate(found))


def default_output(targets: Sequence[str | Path]) -> Path:
    """``DIR/report.html`` for one run folder (beside a ``.journal`` file); ``report.html`` in the current
    folder for a URL or several targets."""
    if len(targets) != 1 or is_url(str(targets[0])):
        return Path(REPORT_NAME)
    journal = journal_path(targets[0])
    assert journal is not None  # not a URL
    return journal.parent / REPORT_NAME


def png_names(count: int) -> tuple[str, ...]:
    """The PNG files a report of ``count`` studies may write (those whose section has a figure)."""
    return tuple(f"{s}.png" for s in SHARED) + tuple(f"{s}.png" if count == 1 else f"{s}-{i + 1}.png" for i in range(count) for s in PER_STUDY)


def _check_file(path: Path, flag: str) -> None:
    """A path that can receive a file: not a folder, and no file where one of its folders belongs."""
    if not path.name or str(path).endswith("/") or path.is_dir():
        raise CodesignError(f"{flag} {path}: is a folder; give a file name")
    _check_parents(path, flag)


def _check_parents(path: Path, flag: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CodesignError(f"{flag} {path}: {parent} is a file, not a folder")
            return


def check_paths(out: str | Path, png_dir: str | Path | None, count: int, *, force: bool = False) -> None:
    """Refuse, before any study is read, an output that cannot be written, or (without ``force``) one that
    would replace an existing file: the HTML file, or any PNG a report of ``count`` studies writes."""
    target = Path(out)
    _check_file(target, "--out")
    if target.exists() and not force:
        raise CodesignError(f"--out {out}: the file exists; pass --force to replace it")
    if png_dir is None:
        return
    folder = Path(png_dir)
    if folder.exists() and not folder.is_dir():
        raise CodesignError(f"--png {png_dir}: is a file; give a folder for the images")
    _check_parents(folder, "--png")
    present = [name for name in png_names(count) if (folder / name).exists()]
    if present and not force:
        raise CodesignError(f"--png {png_dir}: already holds {', '.join(present)}; pass --force to replace them")


def _device(experiment: Mapping[str, Any], front: ParetoFront) -> tuple[Device | None, str]:
    """The device the pairs were designed for (their accelerators name it; else the experiment does), from
    the built-in catalog plus the experiment's own device files."""
    named = [p.candidate.accelerator.device for p in front.pairs() if p.candidate.accelerator is not None]
    name = named[0] if named else (experiment.get("hardware") or {}).get("device")
    if not named and not any(r.get("accelerator") for r in front.trial_rows):
        return None, "its pairs have no accelerator (a tabular or measured problem)"
    if not name:
        return None, "the study names no device"
    try:
        config = config_from_record(experiment)
        extra = [p for p in (config.resolve(f) for f in config.hardware.device_files) if p is not None]
        return DeviceCatalog.load(extra).get(str(name)), ""
    except CodesignError as exc:
        return None, f"device {name!r} is not in the device catalog here ({exc})"


def _pair(study: optuna.Study, front: ParetoFront, trial: int | None) -> tuple[StoredPair | None, str]:
    if trial is not None:
        return stored_pair(study, trial), f"trial {trial}, chosen with --pair"
    if not front.rows:
        return None, "the study has no feasible pair"
    first, direction = front.objectives[0]
    best = int(front.rows[0]["trial"])
    word = "highest" if direction == "maximize" else "lowest"
    return stored_pair(study, best), f"trial {best}, the front pair with the {word} {first} (choose another with --pair)"


def read_study(source: Source) -> StudyView:
    """Open ``source``'s storage and read what the report shows of its study (an unknown study or pair is
    a one-line error)."""
    backend = open_existing_storage(source.target)
    name = pick_study(backend, source.study)
    study = optuna.load_study(study_name=name, storage=backend)
    experiment = load_experiment(study)
    front = study_front(study)
    pair, note = _pair(study, front, source.pair)
    device, device_note = _device(experiment, front)
    return StudyView(
        source=source,
        label=name,
        front=front,
        strategy=str((experiment.get("strategy") or {}).get("name", "?")),
        verified=verified_records(study),
        pair=pair,
        pair_note=note,
        device=device,
        device_note=device_note,
    )


def _labels(names: Sequence[str]) -> list[str]:
    return [f"{n} [{i + 1}]" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _check_comparable(views: Sequence[StudyView]) -> None:
    first = views[0].front
    for view in views[1:]:
        if view.front.objectives != first.objectives:
            raise CodesignError(
                f"report: study {view.label!r} has objectives {dict(view.front.objectives)}, but {views[0].label!r} has "
                f"{dict(first.objectives)}; a report compares studies on the same objectives"
            )


def _fidelity(views: Sequence[StudyView], metric: str) -> str:
    found = {str(r.get(f"fidelity.{metric}")) for v in views for r in v.front.rows if isinstance(r.get(f"fidelity.{metric}"), str)}
    return ", ".join(sorted(found)) or "unknown"


def _front_section(views: Sequence[StudyView]) -> Section:
    x, y = figures.front_axes(views[0].front)
    lost = sum(
        1 for v in views for r in v.front.trial_rows
        if r["state"] == "COMPLETE" and not (figures.finite(r.get(x)) and figures.finite(r.get(y)))
    )  # fmt: skip
    pairs = ", ".join(f"{v.label}: {len(v.front)}" for v in views)
    sources = ", ".join(f"{_fidelity(views, m)} {m}" for m in views[0].front.names)
    tested = sum(bool(r.get("verified")) for v in views for r in v.front.rows)
    caption = (
        f"Front pairs ({pairs}) chosen on the searched numbers ({sources}) over every completed trial within the "
        "constraints (see the table above); small points are the other feasible trials, crosses the infeasible ones. "
        + (
            f"Open diamonds: the {tested} front pairs measured on the test split, which the search never saw and which "
            "never selected anything. "
            if tested
            else "No front pair was measured on the test split. "
        )
        + "Hover a point for its architecture, bits, accelerator and every metric."
    )
    if len(views[0].front.names) > 2:
        caption += f" The front is taken on all {len(views[0].front.names)} objectives; this plot shows two of them."
    if lost:
        caption += f" {lost} completed trial(s) without finite {x} and {y} (designs that fit no accelerator) are not drawn."
    return Section("front", "Pareto front", caption, figures.front_figure(views))


def _hypervolume_section(views: Sequence[StudyView]) -> tuple[Section, Any]:
    try:
        compared = compare_fronts([v.front for v in views], mixed_hardware=True)
    except CodesignError as exc:  # no study has a feasible pair
        return Section("hypervolume", "Hypervolume over trials", f"Not drawn: {exc}."), None
    reference = compared.attrs["reference"]
    shown = ", ".join(f"{k}={v:.4g}" for k, v in reference.items())
    caption = (
        "Hypervolume of the feasible front after each completed trial, in loss space (maximised objectives "
        f"negated), against one reference shared by every study of this report ({shown}: the nadir of the fronts "
        "plus 1% of each range), so the curves compare. Each curve is named by its study's strategy."
    )
    if "mixed_hardware" in compared.attrs:
        caption += " Warning: these studies ran on different hardware; their hypervolumes are not comparable."
    figure = figures.hypervolume_figure(views, list(reference.values()))
    return Section("hypervolume", "Hypervolume over trials", caption, figure), compared


def _verified_section(views: Sequence[StudyView]) -> Section:
    metrics = [m for m in VERIFIED_METRICS if any(figures.verified_points(v, m)[0] for v in views)]
    title = "Searched against verified numbers"
    if not metrics:
        return Section("verified", title, "No pair of these studies was measured on the test split (a tabular problem is "
                       "exact already; an interrupted run verifies nothing).")  # fmt: skip
    caption = (
        "Each pair measured on the test split after the search: its searched number (validation accuracy) "
        "against its test-split number; points below the dashed line y = x did worse on unseen data."
    )
    if "latency_ms" in metrics:
        caption += (
            f" Latency is {_fidelity(views, 'latency_ms')} by the hardware model, not measured on a board: the test "
            "split changes the accuracy only, so latency points lie on the line."
        )
    return Section("verified", title, caption, figures.verified_figure(views, metrics))


def _suffix(index: int, count: int) -> str:
    return "" if count == 1 else f"-{index + 1}"


def _resource_section(view: StudyView, index: int, count: int) -> Section:
    title = f"Resources against the device: {view.label}" if count > 1 else "Resources against the device"
    figure = figures.resource_figure(view)
    if figure is None:
        why = view.device_note or "its front pairs report no resource numbers"
        return Section(f"resources{_suffix(index, count)}", title, f"Not drawn for {view.label}: {why}.")
    caption = "Used share of the whole device for each resource of each front pair (the hardware model's numbers)."
    if view.device is not None:
        usable = ", ".join(f"{n} {f:.0%}" for n, f in view.device.usable_fractions)
        caption += (
            f" Device {view.device.name} ({view.device.board}); a design may use at most these shares of it: {usable}. "
            "The solid line is the whole device; dashed lines are the experiment's resource constraints."
        )
    else:
        caption += f" Usable budgets are not shown: {view.device_note}."
    return Section(f"resources{_suffix(index, count)}", title, caption, figure)


def _layer_sections(view: StudyView, index: int, count: int) -> tuple[Section, Section]:
    suffix, of = _suffix(index, count), f": {view.label}" if count > 1 else ""
    pair = view.pair
    if pair is None:
        text = f"No per-layer view for {view.label}: {view.pair_note}."
        return Section(f"layers{suffix}", f"Per-layer latency{of}", text), Section(f"roofline{suffix}", f"Roofline{of}", text)
    head = f"Pair shown: {view.pair_note}; {pair.candidate.summary()}. "
    if not pair.layers:
        text = head + "This pair has no per-layer breakdown stored (its hardware model reports none)."
        return Section(f"layers{suffix}", f"Per-layer latency{of}", text), Section(f"roofline{suffix}", f"Roofline{of}", text)
    total = sum(layer.latency_ms for layer in pair.layers)
    latency = pair.searched.get("latency_ms")
    worst = pair.bottleneck
    assert worst is not None  # the pair has layers
    caption = (
        head + f"{len(pair.layers)} layers, {total:.4g} ms in all (the pair's latency_ms: "
        f"{figures.fmt(latency) if latency is not None else '-'}); the bottleneck is {worst.name}, "
        f"{worst.latency_ms / total:.0%} of the sum, {worst.bound}-bound. Bars are coloured by the side of the roofline "
        f"each layer sits on and labelled with its weight/activation bits; hardware numbers are {_fidelity([view], 'latency_ms')}."
    )
    layers = Section(f"layers{suffix}", f"Per-layer latency{of}", caption, figures.layer_figure(view))
    roof = figures.roofline_figure(view)
    placed = len(figures.roofline_layers(pair.layers))
    if roof is None:
        text = head + "No layer has both MACs and off-chip traffic, so none can be placed on a roofline."
        return layers, Section(f"roofline{suffix}", f"Roofline{of}", text)
    text = (
        head + f"{placed} of {len(pair.layers)} layers placed (those with MACs and off-chip traffic): arithmetic "
        "intensity (MACs per off-chip byte) against the achieved rate (MACs per second of the layer's latency)."
    )
    if view.device is not None:
        text += (
            f" The dashed line is the memory roof of {view.device.name} ({view.device.offchip_gb_per_s:g} GB/s); the "
            "compute roof depends on the accelerator's array and is not drawn."
        )
    return layers, Section(f"roofline{suffix}", f"Roofline{of}", text, roof)


@dataclass(frozen=True)
class Report:
    """The studies read and the sections built from them; :meth:`html` is the page."""

    views: tuple[StudyView, ...]
    sections: tuple[Section, ...]
    comparison: tuple[Mapping[str, Any], ...] = ()
    """Per study, in order: hypervolume on the common reference and the share of its pairs that another
    study's pairs dominate (empty when no study has a feasible pair)."""
    reference: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """The common hypervolume reference (loss space: maximised objectives negated), by objective."""

    def html(self) -> str:
        """The whole page: plotly.js inline once, then every section."""
        from codesign.results._report_page import page

        return page(self)

    def write_html(self, path: str | Path) -> Path:
        """Write the page (UTF-8) to ``path``, creating its missing folders."""
        target = Path(path)
        _check_file(target, "--out")
        return write_text(target, self.html(), f"--out {path}")

    def write_pngs(self, folder: str | Path, *, scale: float = 2.0) -> tuple[Path, ...]:
        """Every figure as ``folder/<section id>.png`` (``scale`` times its layout size), through kaleido
        with a Chrome or Chromium of this machine (``BROWSER_PATH`` names one outside ``PATH``); without
        one, a one-line error saying what to install."""
        return _write_pngs([s for s in self.sections if s.figure is not None], Path(folder), scale)


def build_report(report_sources: Sequence[Source]) -> Report:
    """Read every study (once) and build the report's sections."""
    if not report_sources:
        raise CodesignError("report: give at least one study")
    reads = [read_study(s) for s in report_sources]
    labels = _labels([v.study for v in reads])
    views = tuple(dataclasses.replace(v, label=label) for v, label in zip(reads, labels, strict=True))
    _check_comparable(views)
    hypervolume, compared = _hypervolume_section(views)
    sections = [_front_section(views), hypervolume, _verified_section(views)]
    count = len(views)
    for index, view in enumerate(views):
        sections.append(_resource_section(view, index, count))
        sections.extend(_layer_sections(view, index, count))
    if compared is None:
        return Report(views, tuple(sections))
    rows = tuple(dict(r) for r in compared.to_dict("records"))
    return Report(views, tuple(sections), rows, dict(compared.attrs["reference"]))


def write_report(
    targets: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    studies: Sequence[str] | None = None,
    pairs: Sequence[int] | None = None,
    png_dir: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Write the HTML report of ``targets`` (run folders, ``.journal`` files or storage URLs; see
    :func:`sources` for ``studies`` and ``pairs``) to ``out`` (default :func:`default_output`), then, with
    ``png_dir``, every figure as a PNG there. Paths are checked before any study is read; an existing file
    is replaced only with ``force``. The HTML is written before the images, so a failed image does not
    lose it."""
    chosen = sources(targets, studies, pairs)
    path = Path(out) if out is not None else default_output(targets)
    check_paths(path, png_dir, len(chosen), force=force)
    report = build_report(chosen)
    written = report.write_html(path)
    if png_dir is not None:
        try:
            report.write_pngs(png_dir)
        except CodesignError as exc:
            raise CodesignError(f"{exc} (the HTML report was written to {written})") from None
    return written


def _write_pngs(sections: Sequence[Section], folder: Path, scale: float) -> tuple[Path, ...]:
    try:
        import kaleido
        from choreographer.errors import ChromeNotFoundError
    except ImportError as exc:
        raise CodesignError(f"--png: kaleido is not installed ({exc}); install codesign's dependencies again") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CodesignError(f"--png {folder}: cannot create the folder ({exc.strerror or exc})") from None
    specs = []
    paths = []
    for section in sections:
        assert section.figure is not None
        path = folder / f"{section.id}.png"
        layout = section.figure.layout
        width = int(layout.width or 1100)
        height = int(layout.height or figures.HEIGHT_PX)
        specs.append({"fig": section.figure.to_dict(), "path": path, "opts": {"format": "png", "width": width, "height": height, "scale": scale}})
        paths.append(path)
    if not specs:
        return ()
    try:  # mathjax off: it is fetched from a CDN, and no figure has LaTeX
        kaleido.write_fig_from_object_sync(specs, kopts={"mathjax": False}, cancel_on_error=True)
    except ChromeNotFoundError:
        given = os.environ.get("BROWSER_PATH")
        where = f"BROWSER_PATH={given!r} names no browser" if given else "no Chrome or Chromium found"
        raise CodesignError(
            f"--png: cannot draw the images: {where}; install Chrome or Chromium (Debian: apt-get install chromium) "
            "or point BROWSER_PATH at its executable"
        ) from None
    except Exception as exc:  # kaleido and the browser fail in many ways (a crash, a timeout)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CodesignError(f"--png: the images could not be drawn ({type(exc).__name__}: {reason})") from None
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CodesignError(f"--png: kaleido wrote no {', '.join(missing)}")
    return tuple(paths)


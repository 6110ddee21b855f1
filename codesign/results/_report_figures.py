"""The figures of a report (:mod:`codesign.results.report`), each a pure function of what was read from
the stored studies: plotly figures, no I/O.

Every trace that a test or a reader looks up has a stable ``meta`` id (``front-searched-0`` is the first
study's front) and carries its trial numbers in ``customdata``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from codesign.core import pareto
from codesign.core.values import RESOURCE_NAMES, LayerRecord
from codesign.results.front import ParetoFront, Row, metric_columns

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from codesign.results.report import StudyView

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2")
TRIALS_COLOUR = "rgba(140, 140, 140, 0.45)"
BOUND_COLOURS = {"compute": "#1f77b4", "memory": "#ff7f0e"}
HEIGHT_PX = 480
FONT = {"family": "DejaVu Sans, Arial, sans-serif", "size": 13}


def fmt(value: Any) -> str:
    """A number with four significant digits (an integer as is); anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return html.escape(str(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}".replace(",", " ")
    return f"{float(value):.4g}"


def finite(value: Any) -> TypeGuard[float]:
    """A finite number (not a bool, not NaN, not infinite)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool) and math.isfinite(value)


def fraction_metric(resource: str) -> str:
    """The metric holding a resource's used share of the whole device (``bram18`` -> ``bram_fraction``)."""
    return f"{resource.removesuffix('18')}_fraction"


def feasible(row: Row, front: ParetoFront) -> bool:
    """Completed, within every constraint of the experiment and the device, with finite objectives: the
    rows a front is chosen from."""
    if row["state"] != "COMPLETE" or row.get("violations"):
        return False
    if not all(finite(row.get(n)) for n in front.names):
        return False
    return all(finite(row.get(c.metric)) and c.holds(float(row[c.metric])) for c in front.constraints)


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": html.escape(title), "x": 0.01, "xanchor": "left"},
        "height": HEIGHT_PX,
        "font": FONT,
        "template": "plotly_white",
        "hovermode": "closest",
        "legend": {"orientation": "v"},
        "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
        **extra,
    }


def _faded(colour: str, alpha: float) -> str:
    """``#rrggbb`` as an ``rgba()`` with ``alpha``."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _figure(traces: Sequence[Any], layout: Mapping[str, Any]) -> go.Figure:
    import plotly.graph_objects as go

    return go.Figure(data=list(traces), layout=dict(layout))


def _axis_title(front: ParetoFront, metric: str) -> str:
    return f"{metric} ({front.direction_of(metric)})"


def _hover(label: str, row: Row, metrics: Sequence[str], *, test: bool = False) -> str:
    """Trial, architecture, bits, accelerator and every metric with where it came from."""
    head = f"<b>{html.escape(label)} · trial {row['trial']}</b>" + (" · <i>test split</i>" if test else "")
    lines = [
        head,
        f"architecture: {html.escape(str(row.get('arch') or '-'))}",
        f"bits: {html.escape(str(row.get('bits') or '-'))}",
        f"accelerator: {html.escape(str(row.get('accelerator') or '-'))}",
    ]
    for name in metrics:
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        source = row.get(f"fidelity.{name}")
        where = "test split" if name.endswith("_test") else source if isinstance(source, str) else ""
        lines.append(f"{html.escape(name)}: {fmt(value)}" + (f" <i>({where})</i>" if where else ""))
    if row.get("violations"):
        lines.append(f"violations: {html.escape(str(row['violations']))}")
    if row.get("notes"):
        lines.append(f"notes: {html.escape(str(row['notes']))}")
    return "<br>".join(lines)


def _ordered_metrics(front: ParetoFront) -> list[str]:
    names = metric_columns(front.columns)
    return [*(n for n in front.names if n in names), *(n for n in names if n not in front.names)]


def front_axes(front: ParetoFront) -> tuple[str, str]:
    """(x, y) of the front plot: the second and the first objective, as :func:`plot_fronts` draws them."""
    names = front.names
    return names[min(1, len(names) - 1)], names[0]


def _test_value(row: Row, metric: str) -> float:
    """The test-split number of ``metric`` where one was measured, else the searched one (a simulated
    latency is the same on any split)."""
    value = row.get(f"{metric}_test")
    return float(value) if finite(value) else float(row[metric])


def front_figure(views: Sequence[StudyView]) -> go.Figure:
    """Every completed trial of each study (feasible and infeasible apart), its front pairs as one trace
    (``front-searched-<i>``, one point per pair, on the searched numbers) and the pairs measured on the
    test split as another (``front-test-<i>``, at their test numbers)."""
    import plotly.graph_objects as go

    x, y = front_axes(views[0].front)
    traces: list[Any] = []
    several = len(views) > 1
    for index, view in enumerate(views):
        front, label = view.front, view.label
        prefix = f"{label}: " if several else ""
        colour = COLOURS[index % len(COLOURS)]
        cloud = _faded(colour, 0.3) if several else TRIALS_COLOUR  # whose trials they are, when there are several
        metrics = _ordered_metrics(front)
        done = [r for r in front.trial_rows if r["state"] == "COMPLETE" and finite(r.get(x)) and finite(r.get(y))]
        on_front = {int(r["trial"]) for r in front.rows}
        for uid, name, rows, symbol in (
            (f"trials-{index}", "feasible trials", [r for r in done if feasible(r, front) and r["trial"] not in on_front], "circle"),
            (f"infeasible-{index}", "infeasible trials", [r for r in done if not feasible(r, front)], "x-thin-open"),
        ):
            traces.append(go.Scatter(
                x=[r[x] for r in rows], y=[r[y] for r in rows], mode="markers", name=prefix + name, meta=uid,
                legendgroup=f"study-{index}", customdata=[r["trial"] for r in rows],
                text=[_hover(label, r, metrics) for r in rows], hovertemplate="%{text}<extra></extra>",
                marker={"color": cloud if symbol == "circle" else "rgba(214, 39, 40, 0.5)", "size": 6, "symbol": symbol},
            ))  # fmt: skip
        rows = sorted(front.rows, key=lambda r: float(r[x]))
        line = len(front.names) == 2  # a staircase is the border of a 2-objective front only
        shape = "hv" if front.direction_of(x) == "minimize" else "vh"
        traces.append(go.Scatter(
            x=[r[x] for r in rows], y=[r[y] for r in rows], mode="lines+markers" if line else "markers",
            name=prefix + "front (searched)", meta=f"front-searched-{index}", legendgroup=f"study-{index}",
            customdata=[r["trial"] for r in rows], text=[_hover(label, r, metrics) for r in rows],
            hovertemplate="%{text}<extra></extra>", line={"shape": shape, "color": colour, "width": 1.5},
            marker={"color": colour, "size": 10, "line": {"color": "white", "width": 1}},
        ))  # fmt: skip
        tested = [r for r in rows if r.get("verified")]
        traces.append(go.Scatter(
            x=[_test_value(r, x) for r in tested], y=[_test_value(r, y) for r in tested], mode="markers",
            name=prefix + "front (test split)", meta=f"front-test-{index}", legendgroup=f"study-{index}",
            customdata=[r["trial"] for r in tested], text=[_hover(label, r, metrics, test=True) for r in tested],
            hovertemplate="%{text}<extra></extra>",
            marker={"color": colour, "size": 11, "symbol": "diamond-open", "line": {"width": 2}},
        ))  # fmt: skip
    first = views[0].front
    return _figure(traces, _layout(
        "Pareto front: every trial, the front on the searched numbers, and its pairs on the test split",
        xaxis={"title": {"text": _axis_title(first, x)}}, yaxis={"title": {"text": _axis_title(first, y)}},
    ))  # fmt: skip


def running_hypervolume(front: ParetoFront, reference: Sequence[float]) -> tuple[list[int], list[float]]:
    """(completed trials so far, hypervolume of the feasible front so far) after each completed trial, in
    trial-number order, in loss space against ``reference``; the last value is the front's hypervolume."""
    ref = np.asarray(reference, dtype=float)
    done = [r for r in front.trial_rows if r["state"] == "COMPLETE"]
    kept = np.zeros((0, len(front.names)))
    counts, values = [], []
    volume = 0.0
    for count, row in enumerate(done, start=1):
        if feasible(row, front):
            point = pareto.to_losses(np.asarray([[float(row[n]) for n in front.names]]), front.directions)[0]
            if not np.any(np.all(kept <= point, axis=1)):  # a point weakly dominated by the front adds nothing
                kept = np.vstack([kept[~np.all(point <= kept, axis=1)], point])
                volume = pareto.hypervolume(kept, ref)
        counts.append(count)
        values.append(volume)
    return counts, values


def hypervolume_figure(views: Sequence[StudyView], reference: Sequence[float]) -> go.Figure:
    """The running hypervolume of each study (named by its strategy) on one reference point."""
    import plotly.graph_objects as go

    traces = []
    for index, view in enumerate(views):
        counts, values = running_hypervolume(view.front, reference)
        traces.append(go.Scatter(
            x=counts, y=values, mode="lines", name=f"{view.label} ({view.strategy})", meta=f"hypervolume-{index}",
            line={"shape": "hv", "color": COLOURS[index % len(COLOURS)], "width": 2},
            hovertemplate="after %{x} completed trials: %{y:.4g}<extra>" + html.escape(view.label) + "</extra>",
        ))  # fmt: skip
    return _figure(traces, _layout(
        "Hypervolume of the feasible front after each completed trial",
        xaxis={"title": {"text": "completed trials (in trial-number order)"}, "rangemode": "tozero"},
        yaxis={"title": {"text": "hypervolume (loss space, one reference)"}, "rangemode": "tozero", "exponentformat": "e"},
    ))  # fmt: skip


def verified_points(view: StudyView, metric: str) -> tuple[list[int], list[float], list[float]]:
    """(trials, searched, test-split) values of ``metric`` for the pairs measured on the test split."""
    done = {int(r["trial"]) for r in view.front.trial_rows if r["state"] == "COMPLETE"}
    trials, searched, tested = [], [], []
    for key, record in sorted(view.verified.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else -1):
        if not key.isdigit() or int(key) not in done:
            continue
        before = (record.get("searched") or {}).get(metric)
        after = (record.get("metrics") or {}).get(metric)
        if finite(before) and finite(after):
            trials.append(int(key))
            searched.append(float(before))
            tested.append(float(after))
    return trials, searched, tested


def verified_figure(views: Sequence[StudyView], metrics: Sequence[str]) -> go.Figure:
    """Searched against test-split numbers of ``metrics`` (one panel each) with the line y = x."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[f"{m}: searched vs test split" for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        low, high = math.inf, -math.inf
        for index, view in enumerate(views):
            trials, searched, tested = verified_points(view, metric)
            if not trials:
                continue
            low, high = min(low, *searched, *tested), max(high, *searched, *tested)
            fig.add_trace(go.Scatter(
                x=searched, y=tested, mode="markers", name=view.label, meta=f"verified-{metric}-{index}",
                legendgroup=f"study-{index}", showlegend=col == 1, customdata=trials,
                marker={"color": COLOURS[index % len(COLOURS)], "size": 9},
                hovertemplate="trial %{customdata}<br>searched %{x:.4g}<br>test split %{y:.4g}<extra>" + html.escape(view.label) + "</extra>",
            ), row=1, col=col)  # fmt: skip
        if math.isfinite(low):
            pad = max(high - low, abs(high) * 1e-3, 1e-9) * 0.05
            fig.add_trace(go.Scatter(
                x=[low - pad, high + pad], y=[low - pad, high + pad], mode="lines", name="y = x", meta=f"identity-{metric}",
                showlegend=col == 1, line={"color": "grey", "dash": "dash", "width": 1}, hoverinfo="skip",
            ), row=1, col=col)  # fmt: skip
        fig.update_xaxes(title_text=f"{metric}, searched", row=1, col=col)
        fig.update_yaxes(title_text=f"{metric}, test split", row=1, col=col)
    fig.update_layout(**_layout("Searched against test-split numbers of the verified pairs"))
    return fig


def resource_figure(view: StudyView) -> go.Figure | None:
    """Each front pair's used share of the device per resource (grouped bars), the whole device at 1.0
    and each ``<resource>_fraction`` constraint of the experiment as a dashed line; None without
    resource numbers."""
    import plotly.graph_objects as go

    front, device = view.front, view.device
    rows = list(front.rows)
    shown = []
    for resource in RESOURCE_NAMES:
        values = [r.get(fraction_metric(resource)) for r in rows]
        total = getattr(device.resources, resource) if device is not None else None
        if not any(finite(v) for v in values) or (total == 0 and not any(finite(v) and v > 0 for v in values)):
            continue  # a resource the device lacks and no pair uses (uram on most Zynq-7000 / small UltraScale+)
        shown.append(resource)
    if not rows or not shown:
        return None
    labels = [f"trial {r['trial']}" for r in rows]
    traces = []
    for k, resource in enumerate(shown):
        total = getattr(device.resources, resource) if device is not None else None
        usable = getattr(device.usable, resource) if device is not None else None
        texts = []
        for r in rows:
            used = r.get(resource)
            share = r.get(fraction_metric(resource))
            text = f"trial {r['trial']}<br>{resource}: {fmt(used)}" + (f" of {fmt(total)}" if total is not None else "")
            text += f" ({float(share):.1%} of the device)" if finite(share) else ""
            text += f"<br>usable budget: {fmt(usable)}" if usable is not None else ""
            texts.append(text)
        traces.append(go.Bar(
            x=labels, y=[float(r[fraction_metric(resource)]) if finite(r.get(fraction_metric(resource))) else None for r in rows],
            name=resource, meta=f"resource-{resource}", customdata=[r["trial"] for r in rows], text=texts,
            textposition="none", hovertemplate="%{text}<extra></extra>", marker={"color": COLOURS[k % len(COLOURS)]},
        ))  # fmt: skip
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 1.0, "y1": 1.0, "line": {"color": "black", "width": 2}}]
    notes = [{"xref": "paper", "x": 1, "y": 1.0, "text": "whole device", "showarrow": False, "xanchor": "right", "yanchor": "bottom"}]
    for c in front.constraints:
        if c.metric.endswith("_fraction"):
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": c.bound, "y1": c.bound,
                           "line": {"color": "#d62728", "dash": "dash", "width": 1.5}})  # fmt: skip
            notes.append({"xref": "paper", "x": 0, "y": c.bound, "text": html.escape(str(c)) + " (constraint)",
                          "showarrow": False, "xanchor": "left", "yanchor": "bottom", "font": {"color": "#d62728"}})  # fmt: skip
    device_name = device.name if device is not None else "the device"
    return _figure(traces, _layout(
        f"{view.label}: resources of each front pair as a share of {device_name}",
        barmode="group", shapes=shapes, annotations=notes,
        xaxis={"title": {"text": "front pair"}}, yaxis={"title": {"text": "used / device total"}, "tickformat": ".0%", "rangemode": "tozero"},
    ))  # fmt: skip


def _bits(layer: LayerRecord) -> str:
    return f"w{layer.weight_bits}a{layer.act_bits}" if layer.weight_bits else f"a{layer.act_bits}"


def _bound_name(bound: str) -> str:
    return f"{bound}-bound"


def layer_figure(view: StudyView) -> go.Figure | None:
    """The chosen pair's per-layer latency as bars (one trace per bound, in layer order), each bar labelled
    with its bits; None when the pair has no per-layer breakdown."""
    import plotly.graph_objects as go

    pair = view.pair
    if pair is None or not pair.layers:
        return None
    total = sum(layer.latency_ms for layer in pair.layers)
    names = [layer.name for layer in pair.layers]
    traces = []
    for bound in dict.fromkeys(layer.bound for layer in pair.layers):
        layers = [layer for layer in pair.layers if layer.bound == bound]
        traces.append(go.Bar(
            x=[layer.name for layer in layers], y=[layer.latency_ms for layer in layers], name=_bound_name(bound),
            meta=f"layers-{bound}", marker={"color": BOUND_COLOURS.get(bound, "#7f7f7f")},
            text=[_bits(layer) for layer in layers], textposition="outside", cliponaxis=False,
            hovertext=[_layer_hover(layer, total) for layer in layers], hovertemplate="%{hovertext}<extra></extra>",
        ))  # fmt: skip
    return _figure(traces, _layout(
        f"{view.label}: per-layer latency of trial {pair.trial} (labels: weight/activation bits)",
        barmode="overlay", bargap=0.15,
        xaxis={"title": {"text": "layer"}, "categoryorder": "array", "categoryarray": names, "tickangle": -45},
        yaxis={"title": {"text": "latency (ms)"}, "rangemode": "tozero"},
    ))  # fmt: skip


def _layer_hover(layer: LayerRecord, total_ms: float) -> str:
    share = layer.latency_ms / total_ms if total_ms > 0 else math.nan
    return "<br>".join([
        f"<b>{html.escape(layer.name)}</b> ({html.escape(layer.kind)})",
        html.escape(layer.shape),
        f"bits: {_bits(layer)}",
        f"latency: {fmt(layer.latency_ms)} ms ({share:.1%} of the sum)",
        f"cycles: {fmt(layer.cycles)}",
        f"MACs: {fmt(layer.macs)}",
        f"off-chip: {fmt(layer.offchip_bytes)} bytes",
        f"{_bound_name(layer.bound)}",
    ])  # fmt: skip


def roofline_layers(layers: Sequence[LayerRecord]) -> list[LayerRecord]:
    """The layers a roofline can place: some MACs, some off-chip traffic and some time."""
    return [layer for layer in layers if layer.macs > 0 and layer.offchip_bytes > 0 and layer.latency_ms > 0]


def roofline_figure(view: StudyView) -> go.Figure | None:
    """The chosen pair's layers on a roofline: arithmetic intensity (MACs per off-chip byte) against the
    achieved rate (MACs per second), with the device's off-chip bandwidth as the memory roof; None when no
    layer has the numbers."""
    import plotly.graph_objects as go

    pair = view.pair
    placed = roofline_layers(pair.layers) if pair is not None else []
    if pair is None or not placed:
        return None
    total = sum(layer.latency_ms for layer in pair.layers)
    traces: list[Any] = []
    for bound in dict.fromkeys(layer.bound for layer in placed):
        layers = [layer for layer in placed if layer.bound == bound]
        traces.append(go.Scatter(
            x=[layer.macs / layer.offchip_bytes for layer in layers], y=[layer.macs / (layer.latency_ms / 1e3) for layer in layers],
            mode="markers+text", name=_bound_name(bound), meta=f"roofline-{bound}", text=[layer.name for layer in layers],
            textposition="top center", textfont={"size": 9}, marker={"color": BOUND_COLOURS.get(bound, "#7f7f7f"), "size": 9},
            hovertext=[_layer_hover(layer, total) for layer in layers], hovertemplate="%{hovertext}<extra></extra>",
        ))  # fmt: skip
    if view.device is not None:
        xs = [layer.macs / layer.offchip_bytes for layer in placed]
        lo, hi = min(xs) / 2, max(xs) * 2
        bandwidth = view.device.offchip_bytes_per_s
        traces.append(go.Scatter(
            x=[lo, hi], y=[lo * bandwidth, hi * bandwidth], mode="lines", meta="roofline-memory-roof",
            name=f"memory roof ({view.device.offchip_gb_per_s:g} GB/s)", line={"color": "black", "dash": "dash"},
            hoverinfo="skip",
        ))  # fmt: skip
    return _figure(traces, _layout(
        f"{view.label}: roofline of trial {pair.trial}",
        xaxis={"title": {"text": "arithmetic intensity (MACs per off-chip byte)"}, "type": "log"},
        yaxis={"title": {"text": "achieved MACs per second"}, "type": "log", "exponentformat": "SI"},
    ))  # fmt: skip

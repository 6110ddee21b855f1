"""The HTML page of a report (:class:`codesign.results.report.Report`): a summary table, then each section's
title, caption and figure; plotly.js is inlined once and each figure is drawn from its JSON, so the page
opens without a network. ``document.body.dataset.rendered`` holds the number of figures once all are drawn.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

from codesign.results import _report_figures as figures
from codesign.search.storage import is_url

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from codesign.results.report import Report


def shown_target(target: str) -> str:
    """A storage as the page shows it: a path as given, a URL without its user and password."""
    if not is_url(target):
        return target
    scheme, rest = target.split("://", 1)
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p.caption, p.meta { color: #444; max-width: 70em; line-height: 1.4; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figure { width: 100%; min-height: 480px; }
"""


def _summary(report: Report) -> str:
    head = ["study", "storage", "strategy", "hardware", "objectives", "constraints", "completed trials",
            "feasible", "front pairs", "verified pairs", "hypervolume", "dominated share"]  # fmt: skip
    lines = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for index, view in enumerate(report.views):
        front = view.front
        done = [r for r in front.trial_rows if r["state"] == "COMPLETE"]
        compared = report.comparison[index] if report.comparison else {}
        cells = [
            view.label, shown_target(view.source.target), view.strategy,
            ", ".join(f"{k} {v}" for k, v in front.hardware) or "-",
            ", ".join(f"{n} ({d})" for n, d in front.objectives), ", ".join(str(c) for c in front.constraints) or "-",
        ]  # fmt: skip
        numbers = [
            len(done), sum(figures.feasible(r, front) for r in done), len(front), sum(bool(r.get("verified")) for r in done),
            compared.get("hypervolume", "-"), compared.get("dominated_share", "-") if len(report.views) > 1 else "-",
        ]  # fmt: skip
        lines.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            + "".join(f'<td class="num">{figures.fmt(n)}</td>' for n in numbers) + "</tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _script_json(figure: go.Figure) -> str:
    """The figure as a JavaScript object literal, safe inside a <script> element."""
    return str(figure.to_json()).replace("</", "<\\/")


def page(report: Report) -> str:
    """The report as one self-contained HTML document."""
    from plotly.offline import get_plotlyjs

    from codesign import __version__

    names = ", ".join(v.label for v in report.views)
    drawn = [s for s in report.sections if s.figure is not None]
    body = []
    for section in report.sections:
        body.append(f'<section id="section-{section.id}"><h2>{html.escape(section.title)}</h2>')
        body.append(f'<p class="caption">{html.escape(section.caption)}</p>')
        if section.figure is not None:
            body.append(f'<div id="{section.id}" class="figure"></div>')
        body.append("</section>")
    data = ",\n".join(f'"{s.id}": {_script_json(s.figure)}' for s in drawn)
    config = json.dumps({"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png", "scale": 2}})
    render = (
        f"const codesignFigures = {{\n{data}\n}};\n"
        f"const codesignConfig = {config};\n"
        "Promise.all(Object.entries(codesignFigures).map(([id, f]) => Plotly.newPlot(id, f.data, f.layout, codesignConfig)))\n"
        "  .then(() => { document.body.dataset.rendered = String(Object.keys(codesignFigures).length); });\n"
    )
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>codesign report: {html.escape(names)}</title>",
        f"<style>{_STYLE}</style>",
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>',
        f'<script type="text/javascript" id="plotly-js">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>codesign report: {html.escape(names)}</h1>",
        f'<p class="meta">Written by codesign {html.escape(__version__)} from the stored studies alone '
        f"({html.escape('; '.join(shown_target(v.source.target) for v in report.views))}). Searched numbers are those "
        "the search saw (validation accuracy, the hardware model's numbers); test-split numbers were measured after "
        "the search and never selected anything.</p>",
        _summary(report),
        *body,
        f'<script type="text/javascript">\n{render}</script>',
        "</body></html>",
        "",
    ])  # fmt: skip

"""``codesign show DIR_OR_STORAGE --pair TRIAL``: one pair in full: its architecture, bits and accelerator,
its searched and test-split numbers, and the per-layer latency, cycles, bound (compute or memory),
resources and bits of its hardware numbers, the bottleneck layer marked."""

from __future__ import annotations

import argparse
from typing import Any

HEADLINE = ("accuracy", "fp32_accuracy", "latency_ms", "throughput_fps", "energy_mj", "dsp", "lut", "ff", "bram18", "uram")


def register(sub: Any) -> None:
    p = sub.add_parser("show", help="one pair in full, with its per-layer breakdown", description=__doc__)
    p.add_argument("target", metavar="DIR_OR_STORAGE", help="output folder, .journal file or storage URL")
    p.add_argument("--pair", type=int, required=True, metavar="TRIAL", help="the pair's trial number (the 'trial' column of a front)")
    p.add_argument("--study", help="study name, when the storage holds several")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from codesign.results.pair import load_pair

    _, pair = load_pair(args.target, args.pair, study=args.study)
    print(render(pair, args.format))
    return 0


def render(pair: Any, fmt: str) -> str:
    import csv
    import io
    import json

    from codesign.cli.format import table
    from codesign.results.front import TEST_METRICS

    rows = pair.layer_rows()
    if fmt == "json":
        doc = {
            "study": pair.study,
            "trial": pair.trial,
            "candidate": pair.candidate.to_dict(),
            "searched": dict(pair.searched),
            "fidelity": dict(pair.fidelity),
            "verified": dict(pair.verified),
            "layers": [layer.to_dict() for layer in pair.layers],
        }
        return json.dumps(doc, indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    lines = [
        f"study {pair.study}, trial {pair.trial}: {pair.candidate.space} {pair.candidate.arch_id}",
        f"bits: {pair.candidate.bits_summary() or '-'}",
        f"accelerator: {pair.candidate.accelerator_summary() or '-'}",
    ]
    numbers = [
        {
            "metric": name,
            "searched": pair.searched.get(name),
            "source": pair.fidelity.get(name, ""),
            "test_split": pair.verified.get(name) if name in TEST_METRICS else None,
        }
        for name in HEADLINE
        if name in pair.searched
    ]
    lines += ["", table(numbers)]
    if pair.violations:
        lines.append("violations: " + "; ".join(pair.violations))
    for note in pair.notes:
        lines.append(f"note: {note}")
    if not rows:
        lines += ["", "no per-layer breakdown is stored for this pair (its hardware model reports none)"]
        return "\n".join(lines)
    total = sum(layer.latency_ms for layer in pair.layers)
    worst = pair.bottleneck
    lines += [
        "",
        f"per layer ({len(rows)} layers, {total:.6g} ms in all; the bottleneck is {worst.name}, "
        f"{worst.latency_ms / total:.0%} of the latency, {worst.bound}-bound):",
        table(rows, [c for c in rows[0] if not all(r[c] in (0, None) for r in rows)]),
    ]
    return "\n".join(lines)

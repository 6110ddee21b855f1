"""``codesign report DIR_OR_STORAGE...``: one self-contained HTML file (it opens without a network) with the
interactive front, the hypervolume over trials, searched against test-split numbers, each front pair's
resources against the device, and the per-layer latency, bound and bits of one pair with its roofline.
Several studies make one report that compares them. ``--png DIR`` also writes every figure as a PNG."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from codesign.cli.format import non_negative_int

    p = sub.add_parser("report", help="a self-contained HTML report of one or more studies", description=__doc__)
    p.add_argument("targets", nargs="+", metavar="DIR_OR_STORAGE", help="output folder, .journal file or storage URL (several to compare)")
    p.add_argument("--study", action="append", help="study name (repeat to match several targets, or for several studies in one database)")
    p.add_argument(
        "--out", "-o",
        help="the HTML file to write (default: DIR/report.html for one run folder, else report.html here); "
        "missing folders are created",
    )  # fmt: skip
    p.add_argument("--png", metavar="DIR", help="also write every figure as a PNG into this folder (needs Chrome or Chromium)")
    p.add_argument(
        "--pair", action="append", type=non_negative_int, metavar="TRIAL",
        help="the trial whose per-layer view is shown (default: the front pair with the best first objective); "
        "once per study, in order",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing report file or PNGs")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesign.results.report import build_report, check_paths, default_output, sources

    chosen = sources(args.targets, args.study, args.pair)
    out = Path(args.out) if args.out else default_output(args.targets)
    check_paths(out, args.png, len(chosen), force=args.force)  # before any study is read
    report = build_report(chosen)
    written = report.write_html(out)
    pairs = ", ".join(f"{v.label}: {len(v.front)} front pairs" for v in report.views)
    print(f"report written to {written} ({pairs}); it opens in a browser without a network")
    if args.png:  # after the HTML: an image that cannot be drawn loses no report
        images = report.write_pngs(args.png)
        print(f"{len(images)} figures written to {args.png}: {', '.join(p.name for p in images)}")
    return 0

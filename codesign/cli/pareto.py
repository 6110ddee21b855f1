"""``codesign pareto DIR_OR_STORAGE``: query a stored front again, filtered and re-ranked; several
studies are compared on one hypervolume reference."""

from __future__ import annotations

import argparse
import sys
from typing import Any

PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp", "gif")
"""File types ``--plot`` writes (matplotlib's, less those that need tools beyond it, such as LaTeX for pgf)."""


def register(sub: Any) -> None:
    p = sub.add_parser("pareto", help="query, filter, export, plot and compare stored fronts", description=__doc__)
    p.add_argument("targets", nargs="+", metavar="DIR_OR_STORAGE", help="output folder, .journal file or storage URL (several to compare)")
    p.add_argument("--study", action="append", help="study name (repeat to match several targets, or for several studies in one database)")
    p.add_argument("--objectives", help="re-rank on these metrics, e.g. accuracy,energy_mj or accuracy:max,lut:min")
    p.add_argument("--where", action="append", default=[], help='filter, e.g. "latency_ms<5" (repeatable, or comma-separated)')
    p.add_argument("--ignore-constraints", action="store_true", help="do not apply the experiment's constraints")
    p.add_argument(
        "--verified",
        action="store_true",
        help="rank only the pairs measured on the test split (still on the searched numbers)",
    )
    p.add_argument(
        "--mixed-hardware",
        action="store_true",
        help="compare studies that ran on different hardware models, devices or clocks (refused otherwise)",
    )
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--output", "-o", help="write to this file instead of standard output (missing folders are created)")
    p.add_argument(
        "--plot",
        help=f"also save a scatter plot of the front; the file type follows the extension: {', '.join(PLOT_FORMATS)} "
        "(missing folders are created)",
    )
    p.set_defaults(handler=handle)


def _pairs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    from codesign.core.errors import CodesignError

    studies = args.study or []
    if len(args.targets) == 1:
        return [(args.targets[0], s) for s in studies] or [(args.targets[0], None)]
    if studies and len(studies) != len(args.targets):
        raise CodesignError(f"--study given {len(studies)} times for {len(args.targets)} targets; give it once per target or not at all")
    return list(zip(args.targets, studies or [None] * len(args.targets), strict=True))


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any study is read, an output or plot path that cannot be written."""
    from pathlib import Path

    from codesign.cli.format import check_output_file
    from codesign.core.errors import CodesignError

    if args.output:
        check_output_file(args.output, "--output")
    if args.plot:
        check_output_file(args.plot, "--plot")
        suffix = Path(args.plot).suffix.lower().removeprefix(".")
        if suffix not in PLOT_FORMATS:
            found = f"unsupported file type {'.' + suffix!r}" if suffix else "no file extension"
            raise CodesignError(f"--plot {args.plot}: {found}; use one of {', '.join('.' + f for f in PLOT_FORMATS)}")


def _plot(fronts: list[Any], path: str) -> None:
    from pathlib import Path

    from codesign.core.errors import CodesignError
    from codesign.results.front import plot_fronts

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        plot_fronts(fronts, path)
    except OSError as exc:
        raise CodesignError(f"--plot {path}: cannot write ({exc.strerror or exc})") from None


def handle(args: argparse.Namespace) -> int:
    from codesign.cli.format import table
    from codesign.results.front import compare_fronts, load_front, parse_filters, parse_objectives

    _check_outputs(args)
    objectives = parse_objectives(args.objectives) if args.objectives else None
    filters = parse_filters(args.where)
    fronts = [
        load_front(
            target, study=study, objectives=objectives, filters=filters,
            ignore_constraints=args.ignore_constraints, verified=args.verified,
        )
        for target, study in _pairs(args)
    ]
    if len(fronts) > 1:
        compared = compare_fronts(fronts, mixed_hardware=args.mixed_hardware)
        if args.format == "table":
            reference = ", ".join(f"{k}={v:.6g}" for k, v in compared.attrs["reference"].items())
            text = f"hypervolume reference (loss space, maximised objectives negated): {reference}\n" + table(compared)
            if "mixed_hardware" in compared.attrs:
                text = "warning: these studies ran on different hardware; their hypervolumes are not comparable\n" + text
        else:
            text = _export(compared, args.format)
        _emit(text, args.output)
        if args.plot:
            _plot(fronts, args.plot)
        return 0
    front = fronts[0]
    if args.format == "json":
        text = front.to_json()
    elif args.format == "csv":
        text = front.table.to_csv(index=False)
    else:
        head = (
            f"study {front.study}: {len(front)} Pareto-optimal pairs on "
            f"{', '.join(f'{n} ({d})' for n, d in front.objectives)}, {_pool(front, args.verified)}"
        )
        text = head + "\n" + table(front.rows, front.summary_columns())
    _emit(text, args.output)  # before the plot: a plot that fails loses no answer
    if args.plot:
        _plot(fronts, args.plot)
    return 0


def _pool(front: Any, verified: bool) -> str:
    done = [r for r in front.trial_rows if r["state"] == "COMPLETE"]
    if verified:
        return f"chosen among the {sum(bool(r['verified']) for r in done)} pairs measured on the test split"
    return f"chosen among all {len(done)} completed trials on the searched numbers (test numbers beside)"


def _export(frame: Any, fmt: str) -> str:
    return str(frame.to_csv(index=False)) if fmt == "csv" else str(frame.to_json(orient="records", indent=2))


def _emit(text: str, output: str | None) -> None:
    from codesign.cli.format import write_output_file

    if output:
        write_output_file(output, text.rstrip("\n") + "\n", "--output")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")

"""``codesign export DIR --pair TRIAL``: write a pair's PyTorch model (state dict and a loader), its
per-layer bit-widths and its accelerator configuration as JSON."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a deployable model-accelerator pair", description=__doc__)
    p.add_argument("target", metavar="DIR_OR_STORAGE", help="output folder, .journal file or storage URL")
    p.add_argument("--pair", type=int, required=True, metavar="TRIAL", help="the pair's trial number (the 'trial' column of a front)")
    p.add_argument("--study", help="study name, when the storage holds several")
    p.add_argument("--to", help="folder to write (default: DIR/pairs/TRIAL, or pairs/TRIAL for a URL)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesign.results.export import export_pair
    from codesign.search.storage import is_url

    default = Path("pairs" if is_url(args.target) else Path(args.target) / "pairs") / str(args.pair)
    out = export_pair(args.target, args.pair, args.to or default, study=args.study)
    print(f"pair {args.pair} exported to {out}: model.pt, pair.json, load_model.py")
    return 0

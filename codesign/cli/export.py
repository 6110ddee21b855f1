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
    p.add_argument(
        "--to",
        help="folder to write (default: DIR/pairs/TRIAL, beside a .journal file, or pairs/TRIAL for a URL); "
        "missing folders are created",
    )
    p.add_argument("--force", action="store_true", help="replace a file at --to, or a pair already exported there")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesign.results.export import export_pair
    from codesign.search.storage import is_url

    if is_url(args.target):
        default = Path("pairs") / str(args.pair)
    else:
        folder = Path(args.target)
        default = (folder.parent if folder.is_file() else folder) / "pairs" / str(args.pair)
    out = export_pair(args.target, args.pair, args.to or default, study=args.study, force=args.force)
    print(f"pair {args.pair} exported to {out}: model.pt, pair.json, load_model.py")
    return 0

"""Writes the README's report picture, ``docs/report.png``: the front figure of ``codesign report`` on a
real quickstart run (``codesign run experiments/quickstart.yaml`` first; about two minutes on 2 cores), so the
picture never drifts from what the command draws. Needs a Chrome or Chromium for the image (kaleido).

    python experiments/readme_report.py [RUN_FOLDER]        # default: runs/quickstart
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "report.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", type=Path, default=ROOT / "runs" / "quickstart", help="the quickstart's run folder")
    parser.add_argument("--out", type=Path, default=PICTURE, help=f"the picture to write (default {PICTURE.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    from codesign.core.errors import CodesignError
    from codesign.results.report import write_report

    if not (args.run / "study.journal").is_file():
        print(f"no run at {args.run}: run `codesign run experiments/quickstart.yaml --out {args.run}` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="readme-report-") as tmp:
        try:
            write_report([args.run], Path(tmp) / "report.html", png_dir=Path(tmp) / "png")
        except CodesignError as exc:
            print(f"readme_report: {exc}", file=sys.stderr)
            return 2
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "png" / "front.png", args.out)
    print(f"wrote {args.out} (the front figure of the report of {args.run})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Runs the README's quickstart for real and writes its output into README.md (between the markers
``<!-- quickstart-output -->`` and ``<!-- /quickstart-output -->``), so the sample never drifts from what
the command prints. ``--check`` compares instead of writing (exit 1 on a difference).

    python experiments/readme_output.py            # about two minutes on 2 cores
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- quickstart-output -->", "<!-- /quickstart-output -->"


def quickstart_output() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quickstart"
        done = subprocess.run(
            [sys.executable, "-m", "codesign", "run", str(ROOT / "experiments" / "quickstart.yaml"), "--out", str(out), "--quiet"],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"quickstart failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        return done.stdout.replace(str(out), "runs/quickstart").rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare with the README")
    args = parser.parse_args(argv)
    text = README.read_text()
    pattern = re.compile(re.escape(START) + r"\n```\n.*?\n```\n" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} block")
    block = f"{START}\n```\n$ codesign run experiments/quickstart.yaml\n{quickstart_output()}\n```\n{END}"
    new = pattern.sub(lambda _: block, text)
    if args.check:
        print("README quickstart output is current" if new == text else "README quickstart output differs")
        return 0 if new == text else 1
    README.write_text(new)
    print(f"wrote the quickstart output into {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

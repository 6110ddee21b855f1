"""Start-up cost of the ``codesign`` command: CPU seconds (user + system) of whole-process runs.

Figures (medians of ``--repeats`` runs, each a fresh ``python -m codesign ...`` child process; CPU time is
what ``os.wait4`` reports for that child, so other load on the machine changes it little):

- ``help_cpu_s``: ``codesign --help``;
- ``hardware_list_cpu_s``: ``codesign hardware list``;
- ``pareto_cpu_s``: ``codesign pareto DIR`` on a real stored run, made first (untimed) by ``codesign run``
  on a tiny digits experiment written to a temporary folder (3 random trials, one epoch each);
- ``python_baseline_cpu_s``: ``python -c pass``, the interpreter alone; ``*_ratio`` is each figure over it.

Usage: ``python experiments/benchmarks/cli_startup.py [--json] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = """\
name: startup
space: {{architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [8], options: {{depths: [1], expansions: [1, 3]}}}}
hardware: {{model: overlay, device: xczu3eg, clock_mhz: 200}}
accuracy: {{method: scratch, dataset: digits, epochs: 1, cache_dir: {cache}}}
objectives: {{accuracy: maximize, latency_ms: minimize}}
strategy: {{name: random}}
budget: {{trials: 3, seed: 0}}
"""


def child_cpu_seconds(argv: list[str]) -> float:
    """User + system CPU seconds of one run of ``argv`` (output discarded); fails if it fails."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a full pipe would block the child
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {err.read().decode().strip()}")
    return usage.ru_utime + usage.ru_stime


def median_cpu(argv: list[str], repeats: int) -> float:
    return statistics.median(child_cpu_seconds(argv) for _ in range(repeats))


def make_run(work: Path) -> Path:
    """A stored front to query: ``codesign run`` on the tiny experiment (not timed)."""
    exp = work / "startup.yaml"
    exp.write_text(EXPERIMENT.format(cache=work / "cache"), encoding="utf-8")
    out = work / "run"
    subprocess.run(
        [sys.executable, "-m", "codesign", "run", str(exp), "--out", str(out), "--quiet"],
        cwd=REPO, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return out


def measure(repeats: int) -> dict[str, float]:
    codesign = [sys.executable, "-m", "codesign"]
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        run_dir = make_run(Path(tmp))
        figures = {
            "help_cpu_s": median_cpu([*codesign, "--help"], repeats),
            "hardware_list_cpu_s": median_cpu([*codesign, "hardware", "list"], repeats),
            "pareto_cpu_s": median_cpu([*codesign, "pareto", str(run_dir)], repeats),
            "python_baseline_cpu_s": median_cpu([sys.executable, "-c", "pass"], repeats),
        }
    base = figures["python_baseline_cpu_s"]
    for name in ("help", "hardware_list", "pareto"):
        figures[f"{name}_ratio"] = figures[f"{name}_cpu_s"] / base if base > 0 else float("inf")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is reported)")
    args = parser.parse_args(argv)
    figures = measure(max(1, args.repeats))
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            unit = "x" if name.endswith("_ratio") else " CPU s"
            print(f"{name:24s} {value:8.3f}{unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost of ``codesign report`` on a 300-trial study: wall time and file size of the HTML report.

The study is a real co-design search, made first and not timed: MBConv architectures of ``mbconv_digits`` x
per-layer {4, 8}-bit weights and activations x the overlay accelerator on an Ultra96 (xczu3eg), random
sampling, accuracy measured on scikit-learn's digits with weights inherited from a weight-sharing supernet
trained once (300 steps; cached in the work folder), every trial simulated with its per-layer breakdown, and
the front verified on the test split afterwards, exactly as ``codesign run`` does. It takes a few minutes on
2 cores; ``--keep DIR`` keeps the run folder (and its cache), so a rerun goes straight to the timing.

Figures (``--json`` prints one JSON object):

- ``report_s``: median wall time of ``--repeats`` whole ``codesign report DIR --out FILE --force`` processes
  (a fresh ``python -m codesign`` each: imports, reading the study once, building the figures, writing);
- ``report_api_s``: median of :func:`codesign.results.report.write_report` in this process (warm imports);
- ``report_bytes``: size of the written report; ``plotly_js_bytes``: the inlined plotly.js, which is most of it;
- ``trials``, ``front_pairs``, ``verified_pairs``, ``figures``: what the report shows;
- ``search_s``: wall time of making the study (0 when ``--keep`` found it complete).

Usage: ``python experiments/benchmarks/report.py [--json] [--trials 300] [--repeats 3] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = """\
name: report_bench
space: {{architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [4, 8]}}
hardware: {{model: overlay, device: xczu3eg, clock_mhz: 200}}
accuracy: {{method: supernet, dataset: digits, supernet: {{steps: 300}}, cache_dir: {cache}}}
objectives: {{accuracy: maximize, latency_ms: minimize}}
constraints: {{dsp_fraction: "<= 0.8"}}
strategy: {{name: random}}
budget: {{trials: {trials}, seed: 0}}
"""


def make_study(work: Path, trials: int) -> tuple[Path, float]:
    """The run folder of a ``trials``-trial search (resumed to ``trials`` if it holds fewer), and the
    seconds it took."""
    exp = work / "report_bench.yaml"
    exp.write_text(EXPERIMENT.format(cache=work / "cache", trials=trials), encoding="utf-8")
    out = work / "run"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "codesign", "run", str(exp), "--out", str(out), "--quiet"],
        cwd=REPO, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return out, time.perf_counter() - start


def _completed(run: Path) -> int:
    from codesign.results.front import load_front

    return sum(r["state"] == "COMPLETE" for r in load_front(run).trial_rows)


def time_cli(run: Path, out: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "codesign", "report", str(run), "--out", str(out), "--force"],
            cwd=REPO, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_api(run: Path, out: Path, repeats: int) -> float:
    from codesign.results.report import write_report

    write_report([run], out, force=True)  # warm the imports: the figure is the work itself
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        write_report([run], out, force=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(work: Path, trials: int, repeats: int) -> dict[str, Any]:
    from plotly.offline import get_plotlyjs

    from codesign.results.report import build_report, sources

    run = work / "run"
    search_s = 0.0
    if not (run / "study.journal").is_file() or _completed(run) < trials:
        run, search_s = make_study(work, trials)
    out = work / "report.html"
    figures: dict[str, Any] = {"report_s": round(time_cli(run, out, repeats), 3)}
    figures["report_bytes"] = out.stat().st_size
    figures["report_api_s"] = round(time_api(run, work / "report_api.html", repeats), 3)
    figures["plotly_js_bytes"] = len(get_plotlyjs().encode())
    report = build_report(sources([run]))
    view = report.views[0]
    figures["trials"] = sum(r["state"] == "COMPLETE" for r in view.front.trial_rows)
    figures["front_pairs"] = len(view.front)
    figures["verified_pairs"] = sum(bool(r.get("verified")) for r in view.front.trial_rows)
    figures["figures"] = sum(s.figure is not None for s in report.sections)
    figures["search_s"] = round(search_s, 1)
    figures["repeats"] = repeats
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--trials", type=int, default=300, help="completed trials of the study (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed reports (the median is reported)")
    parser.add_argument("--keep", type=Path, help="work folder to keep (and reuse) instead of a temporary one")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        figures = measure(args.keep, args.trials, max(1, args.repeats))
    else:
        with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
            figures = measure(Path(tmp), args.trials, max(1, args.repeats))
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:18s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

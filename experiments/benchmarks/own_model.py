"""The own-model path (HAWQ-V3 + HAO on a fixed architecture) on the digits experiment, timed from a cold
cache: the user's CNN (``experiments/models.py``) is trained, its per-layer Hessian traces computed, the
exact bit allocation and the latency-optimal accelerator found per trade-off point, every point measured
after quantization and the front verified on the test split. Prints the figures; with ``--json`` one
JSON object:

- ``fp32_test_acc``: the trained full-precision model's test accuracy;
- ``front_size``: pairs on the accuracy-latency front;
- ``hessian_s``: seconds spent estimating the Hessian traces (inside ``total_s``);
- ``total_s``: wall seconds of the whole run, verification included;
- ``int4_vs_int8_latency_ratio``: latency of the all-4-bit network (weights and activations) over the
  all-8-bit one, each on its own latency-optimal accelerator.

    python experiments/benchmarks/own_model.py --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch

import codesign.search.hao as hao
from codesign.config.experiment import load_config
from codesign.experiment.run import run_experiment
from codesign.search.build import build_problem

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default=str(REPO / "experiments" / "own_model.yaml"))
    parser.add_argument("--cache", help="measurement cache (default: a fresh temporary folder, so nothing is reused)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = load_config(args.experiment)
    torch.set_num_threads(config.accuracy.threads)

    hessian = [0.0]
    traced = hao.sensitivity_table

    def timed(*a: Any, **k: Any) -> Any:  # the Hessian traces' share of the run
        start = time.perf_counter()
        try:
            return traced(*a, **k)
        finally:
            hessian[0] += time.perf_counter() - start

    hao.sensitivity_table = timed
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or str(Path(tmp) / "cache")
        start = time.perf_counter()
        result = run_experiment(config, out_dir=Path(tmp) / "out", cache_dir=cache)
        total = time.perf_counter() - start
        problem: Any = build_problem(config.with_cache_dir(cache))
        arch = problem.space.from_choices({})
        n = len(problem.space.network(arch).weighted_layers)
        fp32 = problem.accuracy.measure(arch, (8,) * n, (8,) * n, split="test").fp32_acc
        latency = {}
        for bits in (4, 8):
            _, report, why = problem.choose_accelerator(problem.space.network(arch, (bits,) * n, (bits,) * n))
            latency[bits] = report.latency_ms if report is not None else float("nan")
    figures = {
        "experiment": config.name,
        "trials": result.outcome.completed,
        "fp32_test_acc": round(float(fp32), 4),
        "front_size": len(result.front),
        "hessian_s": round(hessian[0], 2),
        "total_s": round(total, 1),
        "int4_vs_int8_latency_ratio": round(latency[4] / latency[8], 4),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28s} {value}")


if __name__ == "__main__":
    main()

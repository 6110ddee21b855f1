"""hao against random search on the MNIST experiment, given the same wall-clock time.

Both strategies run the same experiment (same space, device, accuracy pipeline and cache, so the supernet
is trained once beforehand and shared) for ``--seconds`` each; the verified fronts (test-split accuracy,
simulated hardware) are compared by hypervolume on one common reference point. Prints the figures; with
``--json`` one JSON object.

    python experiments/benchmarks/mnist_search.py --experiment experiments/mnist_ultra96.yaml --seconds 900 --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from codesign.config.experiment import config_from_mapping, config_record, load_config
from codesign.experiment.run import run_experiment
from codesign.results.front import compare_fronts
from codesign.search.build import build_problem

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default=str(REPO / "experiments" / "mnist_ultra96.yaml"))
    parser.add_argument("--seconds", type=float, default=900.0, help="wall-clock budget of each strategy")
    parser.add_argument("--strategies", nargs="+", default=["hao", "random"])
    parser.add_argument("--cache", help="measurement cache (default: a fresh temporary folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    base = load_config(args.experiment)
    work = Path(tempfile.mkdtemp(prefix="mnist-search-"))
    cache = Path(args.cache) if args.cache else work / "cache"
    record = config_record(base)
    start = time.perf_counter()
    # train the shared supernet once, outside the timed runs
    warm = config_from_mapping({**record_without(record), "accuracy": {**record["accuracy"], "cache_dir": str(cache)}}, source=base.source)
    problem = build_problem(warm)
    torch.set_num_threads(warm.accuracy.threads)  # this script owns the process, as the codesign command does
    _ = problem.accuracy.evaluator  # type: ignore[union-attr]
    supernet_s = time.perf_counter() - start

    fronts, runs = [], {}
    for name in args.strategies:
        data = {
            **record_without(record),
            "name": f"{base.name}-{name}",
            "strategy": {"name": name},
            "accuracy": {**record["accuracy"], "cache_dir": str(cache)},
            "budget": {**record["budget"], "trials": 100_000, "timeout_s": args.seconds},
        }
        config = config_from_mapping(data, source=base.source)
        t = time.perf_counter()
        result = run_experiment(config, out_dir=work / name)
        runs[name] = {
            "trials": result.outcome.completed,
            "seconds": time.perf_counter() - t,
            "front_pairs": len(result.front),
            "verification": result.verification.to_dict() if result.verification else None,
        }
        fronts.append(result.front)
    table = compare_fronts(fronts)
    figures: dict[str, object] = {"supernet_s": supernet_s, "seconds_per_strategy": args.seconds}
    for name, row in zip(args.strategies, table.itertuples(index=False), strict=True):
        figures[f"verified_hv.{name}"] = float(row.hypervolume)
        figures[f"dominated_share.{name}"] = float(row.dominated_share)
        figures[f"trials.{name}"] = runs[name]["trials"]
        figures[f"front_pairs.{name}"] = runs[name]["front_pairs"]
        verification = runs[name]["verification"]
        if verification:
            figures[f"accuracy_mae_searched_vs_verified.{name}"] = verification["accuracy_mae"]  # type: ignore[index]
    if "hao" in args.strategies and "random" in args.strategies:
        figures["hv_ratio_hao_over_random"] = float(
            np.divide(figures["verified_hv.hao"], figures["verified_hv.random"])  # type: ignore[arg-type]
        )
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:45s} {value}")


def record_without(record: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in record.items() if k not in ("source", "identity")}


if __name__ == "__main__":
    main()

"""Search benchmark on the NAS-Bench-201 table, where every cell is known and so is the true front.

Each run is one search through the product's loop (:func:`codesign.search.loop.open_study` and
:func:`codesign.search.loop.run_trials` with the problem built by :func:`codesign.search.build.build_problem` from
an in-memory experiment; an in-memory Optuna storage) with ``--evals`` evaluations; every evaluation is a
counted table look-up, and only this script reads the whole table (for the true front).

Figures, per strategy:
- ``hv_ratio_median.<strategy>``: median over seeds of the share of the true front's hypervolume reached
  (CIFAR-10 accuracy, maximised, vs ``lat_ms_fpga``, minimised); ``hv3_ratio_median.<strategy>`` the same
  with ``lat_ms_eyeriss`` as a third objective. Hypervolume on the raw objectives, reference point at the
  true front's nadir plus 1% of each objective's range over the whole table.
- ``hv_ratios.<strategy>`` / ``hv3_ratios.<strategy>``: the ratio of every seed (seeds 0, 1, ...).
- ``wtl.<variant>.hao_vs_<baseline>``: wins / ties / losses of ``hao`` against a baseline, paired by seed
  (a tie is a difference below 1e-4).
- ``run_s_median.<variant>.<strategy>``: median wall time of one run (seconds).
- ``seeds.<strategy>``: how many seeds were run (``gp`` may run fewer, ``--seeds-gp``).

Usage: ``python experiments/benchmarks/search.py [--json] [--seeds 10] [--evals 300]
[--strategies hao random nsga2 tpe gp] [--seeds-gp N] [--variants 2 3] [--workers 1]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from codesign.config.experiment import ExperimentConfig, config_from_mapping
from codesign.core import pareto
from codesign.search.build import build_problem
from codesign.search.guided import guided_sampler_for
from codesign.search.loop import open_study, run_trials
from codesign.search.strategies import RandomStrategy, make_strategy

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / ".." / "shared" / "data" / "nasbench201" / "nb201_accuracy_latency.csv.gz"
ACCURACY = "cifar10_test_acc"
VARIANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "2": (("accuracy", "maximize"), ("lat_ms_fpga", "minimize")),
    "3": (("accuracy", "maximize"), ("lat_ms_fpga", "minimize"), ("lat_ms_eyeriss", "minimize")),
}
STRATEGIES = ("hao", "random", "nsga2", "tpe", "gp")
TIE = 1e-4


def experiment(variant: str, strategy: str, seed: int, evals: int, options: dict[str, Any] | None = None) -> ExperimentConfig:
    objectives = dict(VARIANTS[variant])
    return config_from_mapping(
        {
            "name": f"nb201_{variant}obj_{strategy}_{seed}",
            "space": {"architecture": "nb201"},
            "accuracy": {"method": "table", "metric": ACCURACY, "data_dir": str(TABLE.resolve())},
            "objectives": objectives,
            "strategy": {"name": strategy, "options": options or {}},
            "budget": {"trials": evals, "seed": seed},
        }
    )


def true_front(variant: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Reference point and true hypervolume (losses) from the whole table."""
    from search_spaces.nb201 import read_table

    frame = read_table(TABLE)  # accuracies as fractions, the unit the searches' accuracy values are in
    names = [ACCURACY if n == "accuracy" else n for n, _ in VARIANTS[variant]]
    losses = pareto.to_losses(frame[names].to_numpy(float), [d for _, d in VARIANTS[variant]])
    front = losses[pareto.pareto_mask(losses)]
    span = losses.max(axis=0) - losses.min(axis=0)
    reference = front.max(axis=0) + 0.01 * span
    return front, reference, pareto.hypervolume(front, reference)


def one_run(variant: str, strategy: str, seed: int, evals: int, options: dict[str, Any] | None = None) -> tuple[float, float]:
    """(hypervolume ratio, wall seconds) of one search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = experiment(variant, strategy, seed, evals, options if strategy == "hao" else None)
    problem = build_problem(config)
    _, reference, true_hv = true_front(variant)
    start = time.perf_counter()
    sampler: optuna.samplers.BaseSampler
    if strategy == "hao":
        sampler = guided_sampler_for(problem, seed=seed, options=config.strategy.options)
    else:
        sampler = make_strategy(strategy, config.strategy.options).sampler(problem, seed)
    study = open_study(config, optuna.storages.InMemoryStorage(), sampler)
    # the sampler decides every decision of the table problem (the default evaluator of every strategy)
    run_trials(config, study, RandomStrategy().evaluator(problem), target=evals)
    seconds = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    values = np.asarray([t.values for t in trials], dtype=float)
    losses = pareto.to_losses(values, config.directions)
    hv = pareto.hypervolume(losses[pareto.pareto_mask(losses)], reference)
    return hv / true_hv, seconds


def wtl(hao: Sequence[float], other: Sequence[float]) -> str:
    pairs = list(zip(hao, other, strict=False))
    wins = sum(a > b + TIE for a, b in pairs)
    ties = sum(abs(a - b) <= TIE for a, b in pairs)
    return f"{wins}/{ties}/{len(pairs) - wins - ties}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seeds-gp", type=int, default=None, help="seeds for gp (default: --seeds)")
    parser.add_argument("--evals", type=int, default=300)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--hao-options", type=json.loads, default={}, help="strategy options for hao, as JSON")
    args = parser.parse_args(argv)
    if not TABLE.is_file():
        print(f"NAS-Bench-201 table not found at {TABLE}", file=sys.stderr)
        return 2

    jobs = []
    for variant in args.variants:
        for strategy in args.strategies:
            n = args.seeds_gp if strategy == "gp" and args.seeds_gp is not None else args.seeds
            jobs += [(variant, strategy, seed, args.evals, args.hao_options) for seed in range(n)]
    results = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for job, result in zip(jobs, pool.map(one_run, *zip(*jobs, strict=True)), strict=True):
            print(f"{job[0]} objectives, {job[1]}, seed {job[2]}: hv ratio {result[0]:.4f} in {result[1]:.1f} s", file=sys.stderr, flush=True)
            results.append(result)

    ratios: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    for (variant, strategy, *_), (ratio, wall) in zip(jobs, results, strict=True):
        ratios.setdefault((variant, strategy), []).append(ratio)
        seconds.setdefault((variant, strategy), []).append(wall)
    figures: dict[str, Any] = {"evals": args.evals, "hao_options": args.hao_options}
    for (variant, strategy), values in ratios.items():
        prefix = "hv" if variant == "2" else "hv3"
        figures[f"{prefix}_ratio_median.{strategy}"] = round(statistics.median(values), 4)
        figures[f"{prefix}_ratios.{strategy}"] = [round(v, 4) for v in values]
        figures[f"run_s_median.{variant}obj.{strategy}"] = round(statistics.median(seconds[variant, strategy]), 2)
        figures[f"seeds.{strategy}"] = len(values)
        if strategy != "hao" and (variant, "hao") in ratios:
            figures[f"wtl.{variant}obj.hao_vs_{strategy}"] = wtl(ratios[variant, "hao"], values)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:40s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

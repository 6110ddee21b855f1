"""Accuracy-measurement benchmark on MNIST (mbconv_mnist space).

Figures:
- ``fp32_test_acc``: the space's largest candidate trained from scratch on the full training split;
  ``w4a8_test_acc`` / ``w2a4_test_acc``: the same weights quantized (calibration + short QAT fine-tune).
- ``supernet_train_s``: wall time to train the weight-sharing supernet (recorded when it was trained;
  a cached supernet reports its recorded time and ``supernet_cached: true``).
- ``seconds_per_measurement``: median wall time of one supernet-path measurement (weights inherited,
  BatchNorm recalibrated, calibrated at the candidate's bits, scored on validation);
  ``scratch_seconds_per_measurement`` and ``measurement_speedup`` compare with training from scratch.
- ``supernet_rank_spearman`` (and Kendall tau): supernet-measured vs from-scratch validation accuracy of
  the same candidates (random architectures with a spread of per-layer bit-widths).

Usage: ``python experiments/benchmarks/training.py [--json] [--cache DIR] [--phase all|scratch|supernet]``.
The cache folder keeps trained weights, so a rerun skips training (use a fresh folder for fresh times).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codesign.nn.data import load_dataset
from codesign.nn.training import ScratchEvaluator, TrainSchedule
from search_spaces.bitwidth import BitWidthSpace
from search_spaces.registry import make_space

FINAL = TrainSchedule(epochs=5, batch_size=128, lr=3e-3, qat_steps=200, qat_lr=5e-4)
SEARCH = TrainSchedule(epochs=3, batch_size=128, lr=3e-3, qat_steps=0)
BIT_PATTERNS = (
    (BitWidthSpace((8,), (8,))),
    (BitWidthSpace((4,), (8,))),
    (BitWidthSpace((4, 8), (8,))),
    (BitWidthSpace((4,), (4,))),
    (BitWidthSpace((4, 8), (4, 8))),
    (BitWidthSpace((2, 4), (8,))),
)


def candidates(space: Any, n: int, seed: int) -> list[tuple[Any, tuple[int, ...], tuple[int, ...]]]:
    """``n`` architectures spanning the space (largest, smallest, random) each with bits from a cycle of
    patterns: uniform 8/8, 4/8, 4/4, and mixed assignments."""
    rng = np.random.default_rng(seed)
    archs = [space.largest(), space.smallest()]
    while len(archs) < n:
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)
    out = []
    for i, arch in enumerate(archs):
        w, a = BIT_PATTERNS[i % len(BIT_PATTERNS)].sample(rng, space.network(arch))
        out.append((arch, w, a))
    return out


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def kendall(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def final_figures(space: Any, root: Path | None, cache: Path, seed: int) -> dict[str, Any]:
    data = load_dataset("mnist", root=root, seed=seed)
    ev = ScratchEvaluator(space, data, schedule=FINAL, cache=cache, seed=seed)
    arch = space.largest()
    n = len(space.network(arch).weighted_layers)
    out: dict[str, Any] = {"largest_arch": space.arch_id(arch)}
    for label, w, a in (("w8a8", 8, 8), ("w4a8", 4, 8), ("w2a4", 2, 4)):
        m = ev.measure(arch, (w,) * n, (a,) * n, split="test")
        out["fp32_test_acc"] = m.fp32_acc
        out[f"{label}_test_acc"] = m.quant_acc
        out["fp32_train_s"] = m.cost_seconds if label == "w8a8" else out["fp32_train_s"]
    return out


def scratch_figures(
    space: Any, data: Any, cands: list[Any], cache: Path, seed: int
) -> tuple[list[float], list[float]]:
    ev = ScratchEvaluator(space, data, schedule=SEARCH, cache=cache, seed=seed)
    accs, costs = [], []
    for arch, w, a in cands:
        m = ev.measure(arch, w, a)
        accs.append(m.quant_acc)
        costs.append(m.cost_seconds)
    return accs, costs


def supernet_figures(
    space: Any, data: Any, cands: list[Any], cache: Path, seed: int, steps: int, val_limit: int | None
) -> dict[str, Any]:
    from codesign.nn.supernet import SupernetEvaluator, SupernetSchedule

    start = time.perf_counter()
    ev = SupernetEvaluator.create(
        space,
        data,
        schedule=SEARCH,
        supernet_schedule=SupernetSchedule(steps=steps, batch_size=64),
        cache=cache,
        seed=seed,
        val_limit=val_limit,
    )
    load_s = time.perf_counter() - start
    accs, secs, cpu = [], [], []
    for arch, w, a in cands:
        cpu_start = time.process_time()
        m = ev.measure(arch, w, a)
        cpu.append(time.process_time() - cpu_start)
        accs.append(m.quant_acc)
        secs.append(m.seconds if not m.cached else m.cost_seconds)
    return {
        "supernet_train_s": ev.supernet.train_seconds,
        "supernet_train_cpu_s": ev.supernet.train_cpu_seconds,
        "supernet_cached": ev.supernet.cached,
        "supernet_load_s": load_s,
        "accs": accs,
        "seconds": secs,
        "cpu_seconds": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--cache", type=Path, default=Path(".codesign-cache/bench-training"))
    parser.add_argument("--root", type=Path, default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--phase", choices=("all", "final", "scratch", "supernet"), default="all")
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument(
        "--train-subset", type=int, default=10000, help="training images for search-time measurement"
    )
    parser.add_argument("--supernet-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--supernet-val", type=int, default=2000, help="validation images a supernet-path measurement scores"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    space = make_space("mbconv_mnist")
    figures: dict[str, Any] = {"space": space.name, "candidates": args.candidates}
    if args.phase in ("all", "final"):
        figures.update(final_figures(space, args.root, args.cache, args.seed))
    cands = candidates(space, args.candidates, args.seed)
    data = load_dataset("mnist", root=args.root, seed=args.seed, train_subset=args.train_subset)
    scratch_accs: list[float] = []
    if args.phase in ("all", "scratch", "supernet"):
        scratch_accs, scratch_costs = scratch_figures(space, data, cands, args.cache, args.seed)
        figures["scratch_seconds_per_measurement"] = statistics.median(scratch_costs)
        figures["scratch_val_acc_range"] = [min(scratch_accs), max(scratch_accs)]
    if args.phase in ("all", "supernet"):
        sn = supernet_figures(
            space, data, cands, args.cache, args.seed, args.supernet_steps, args.supernet_val
        )
        figures["supernet_train_s"] = sn["supernet_train_s"]
        figures["supernet_train_cpu_s"] = sn["supernet_train_cpu_s"]
        figures["supernet_cached"] = sn["supernet_cached"]
        figures["seconds_per_measurement"] = statistics.median(sn["seconds"])
        figures["cpu_seconds_per_measurement"] = statistics.median(sn["cpu_seconds"])
        figures["measurement_speedup"] = (
            figures["scratch_seconds_per_measurement"] / figures["seconds_per_measurement"]
        )
        figures["supernet_rank_spearman"] = spearman(sn["accs"], scratch_accs)
        figures["supernet_rank_kendall"] = kendall(sn["accs"], scratch_accs)
        figures["supernet_val_acc_range"] = [min(sn["accs"]), max(sn["accs"])]
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:34s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sensitivity and integer-program benchmark.

Figures:
- ``ilp_52_layers_s``: median wall time (seconds) of :func:`codesign.quantization.allocation.allocate_bits` on a 52-layer
  problem (ResNet-50's bottleneck convolutions, four shortcut ties, bit choices 2/4/8, a model-size budget at
  alpha 0.5 and a bit-ops budget at alpha 0.4), solved to proven optimality; ``ilp_52_layers_runs_s``
  every run, ``ilp_52_layers_objective`` the optimum.
- ``ilp_front_52_layers_s`` / ``ilp_front_points``: the sensitivity-versus-size front of the same
  problem (bit-ops budget kept) by a sweep of 25 size budgets, and its number of distinct optima.
- ``hessian_trace_s``: median wall time of the Hutchinson traces of every layer of the quickstart
  network (``mbconv_digits``, its largest architecture, 200 Adam steps on digits) on 128 validation
  images, PyHessian's stopping rule (tol 1e-3, at most 100 vectors); ``hessian_trace_cpu_s`` the CPU
  time of the same (wall time is inflated when the machine is shared), ``hessian_trace_layers``,
  ``hessian_trace_vectors`` (total Rademacher vectors drawn).
- ``sensitivity_rank_spearman``: Spearman correlation between Omega at 2 bits and the measured MNIST test
  accuracy drop when that single layer is quantized to 2 bits (others full precision), over the
  ``sensitivity_rank_layers`` layers of a ResNet (``resnet_mnist``) trained on 10,000 MNIST images;
  ``sensitivity_rank_spearman_zeroq`` the same with the data-free (ZeroQ) Omega;
  ``sensitivity_rank_spearman_baseline`` with the quantization error ``||Q(W)-W||^2`` alone (no Hessian),
  and ``sensitivity_rank_ratio`` = Hessian / baseline.
- ``hao_program_s``: wall time of the exact joint bits + overlay program for the quickstart network on an
  xczu3eg (every configuration of the default overlay grid, bits 4/8/16, minimum latency at half the
  largest Omega), with ``hao_programs_solved`` of ``hao_candidates`` integer programs.

Usage: ``python experiments/benchmarks/ilp.py [--json] [--runs 7] [--skip-mnist]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from codesign.nn.data import load_dataset
from codesign.nn.training import accuracy, fit, seeded_model
from codesign.quantization.allocation import BitAllocationProblem, Budget, allocate_bits, sensitivity_front
from codesign.quantization.joint import hao_program
from codesign.quantization.sensitivity import (
    LayerTrace,
    TraceSettings,
    data_free_sensitivity_table,
    hessian_traces,
    perturbation_table,
    sensitivity_table,
    single_layer_drops,
    weighted_layers,
)
from search_spaces.registry import make_space
from simulators.devices import default_catalog
from simulators.overlay import OverlaySpace

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / ".." / "shared" / "data" / "mnist"
BITS = (2, 4, 8)


def resnet50_like_problem(seed: int) -> BitAllocationProblem:
    """The 52 convolutions of ResNet-50's bottlenecks (16 blocks of three convs and four shortcut convs
    tied to their block's first conv; the stem and the classifier stay at 8 bits as in HAWQ-V3) with
    log-uniform Omega."""
    rng = np.random.default_rng(seed)
    layers: list[tuple[str, int, int]] = []
    ties = []
    for stage, (blocks, width, pixels) in enumerate(
        ((3, 64, 56 * 56), (4, 128, 28 * 28), (6, 256, 14 * 14), (3, 512, 7 * 7))
    ):
        for block in range(blocks):
            name = f"s{stage}b{block}"
            cin = width * 4 if block else width * (2 if stage else 1)
            layers += [
                (f"{name}.conv1", cin * width, pixels),
                (f"{name}.conv2", width * width * 9, pixels),
                (f"{name}.conv3", width * width * 4, pixels),
            ]
            if block == 0:
                layers.append((f"{name}.shortcut", cin * width * 4, pixels))
                ties.append((f"{name}.conv1", f"{name}.shortcut"))
    omega = {}
    size = {}
    bops = {}
    for name, params, pixels in layers:
        scale = 10 ** rng.uniform(-3, 1) / params
        base = rng.uniform(0.5, 2.0)
        omega[name] = {b: float(scale * base * 4.0 ** -(b - 2)) for b in BITS}
        size[name] = {b: params * b / 8e6 for b in BITS}
        bops[name] = {b: float(params * pixels * b * 8) for b in BITS}
    return BitAllocationProblem.from_tables(
        omega=omega,
        costs={"size_mb": size, "bops": bops},
        ties=ties,
        budgets=[Budget("size_mb", alpha=0.5), Budget("bops", alpha=0.4)],
    )


def bench_ilp(runs: int) -> dict[str, Any]:
    problem = resnet50_like_problem(0)
    if len(problem.layers) != 52:
        raise SystemExit(f"expected 52 layers, built {len(problem.layers)}")
    times = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = allocate_bits(problem)
        times.append(time.perf_counter() - start)
    assert result is not None
    start = time.perf_counter()
    front = sensitivity_front(problem, "size_mb", points=25)
    front_s = time.perf_counter() - start
    return {
        "ilp_52_layers_s": statistics.median(times),
        "ilp_52_layers_runs_s": times,
        "ilp_52_layers_objective": result.objective,
        "ilp_52_layers_bits_histogram": {str(b): sum(1 for _, x in result.bits if x == b) for b in BITS},
        "ilp_front_52_layers_s": front_s,
        "ilp_front_points": len(front),
    }


def quickstart_model() -> tuple[Any, Any, nn.Module, Any]:
    space = make_space("mbconv_digits")
    arch = space.largest()
    data = load_dataset("digits", seed=0)
    model = seeded_model(space, arch, 0)
    fit(
        model,
        data.train_x,
        data.train_y,
        steps=200,
        batch_size=64,
        lr=3e-3,
        weight_decay=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    model.eval()
    return space, arch, model, data


def bench_hessian(runs: int, model: nn.Module, data: Any) -> tuple[dict[str, Any], tuple[LayerTrace, ...]]:
    batch = [(data.val_x[:128], data.val_y[:128])]
    wall, cpu = [], []
    traces: tuple[LayerTrace, ...] = ()
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        traces = hessian_traces(model, nn.functional.cross_entropy, batch, settings=TraceSettings(seed=0))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    figures = {
        "hessian_trace_s": statistics.median(wall),
        "hessian_trace_runs_s": wall,
        "hessian_trace_cpu_s": statistics.median(cpu),
        "hessian_trace_layers": len(traces),
        "hessian_trace_vectors": sum(t.iterations for t in traces),
        "quickstart_val_accuracy": accuracy(model, data.val_x, data.val_y),
    }
    return figures, traces


def bench_hao(space: Any, arch: Any, model: nn.Module, traces: tuple[LayerTrace, ...]) -> dict[str, Any]:
    network = space.network(arch)
    names = [layer.name for layer in network.weighted_layers]
    table = perturbation_table(model, traces, (4, 8, 16)).renamed(names)
    bits = BitAllocationProblem.from_tables(omega=table.omega_map())
    largest = sum(row[0] for row in table.omega)
    device = default_catalog().get("xczu3eg")
    start = time.perf_counter()
    result = hao_program(
        network,
        bits,
        space=OverlaySpace.for_device(device),
        omega_budget=0.5 * largest,
        act_follows_weights=True,
    )
    elapsed = time.perf_counter() - start
    return {
        "hao_program_s": elapsed,
        "hao_programs_solved": result.programs_solved,
        "hao_candidates": result.candidates,
        "hao_latency_ms": result.latency_ms,
        "hao_accelerator": dict(result.accelerator.params),
        "hao_network_layers": len(names),
    }


def bench_ranking() -> dict[str, Any]:
    data = load_dataset("mnist", root=MNIST, seed=0, train_subset=10_000, val_size=1000)
    space = make_space("resnet_mnist")
    arch = space.from_choices(
        {"s0_depth": 1, "s0_width": 16, "s1_depth": 1, "s1_width": 24, "s2_depth": 1, "s2_width": 48}
    )
    model = seeded_model(space, arch, 0)
    fit(
        model,
        data.train_x,
        data.train_y,
        steps=2 * 79,
        batch_size=128,
        lr=3e-3,
        weight_decay=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    model.eval()
    names = [name for name, _ in weighted_layers(model)]
    drops = single_layer_drops(model, names, 2, lambda m: accuracy(m, data.test_x, data.test_y))
    measured = [drops[n] for n in names]
    batches = [(data.val_x[:256], data.val_y[:256]), (data.val_x[256:512], data.val_y[256:512])]
    table = sensitivity_table(model, nn.functional.cross_entropy, batches, bits=(2,))
    zeroq = data_free_sensitivity_table(model, data.input_shape, bits=(2,))
    # the baseline drops the Hessian: ||Q(W) - W||^2 alone is Omega divided by |trace| / params
    quant_error = [row[0] * n / abs(t) for row, t, n in zip(table.omega, table.traces, table.params, strict=True)]
    rho = float(spearmanr([r[0] for r in table.omega], measured).statistic)
    base = float(spearmanr(quant_error, measured).statistic)
    return {
        "sensitivity_rank_spearman": rho,
        "sensitivity_rank_spearman_zeroq": float(spearmanr([r[0] for r in zeroq.omega], measured).statistic),
        "sensitivity_rank_spearman_baseline": base,
        "sensitivity_rank_ratio": rho / base if base > 0 else float("inf"),
        "sensitivity_rank_layers": len(names),
        "sensitivity_full_precision_accuracy": accuracy(model, data.test_x, data.test_y),
        "sensitivity_drops": {n: round(d, 4) for n, d in drops.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    parser.add_argument("--runs", type=int, default=7, help="repetitions of the timed figures (median)")
    parser.add_argument("--skip-mnist", action="store_true", help="leave out the MNIST ranking figure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures: dict[str, Any] = {}
    figures.update(bench_ilp(args.runs))
    space, arch, model, data = quickstart_model()
    hessian, traces = bench_hessian(max(1, args.runs // 2), model, data)
    figures.update(hessian)
    figures.update(bench_hao(space, arch, model, traces))
    if not args.skip_mnist:
        figures.update(bench_ranking())
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()

"""Speed and fidelity of the FPGA hardware models.

Figures (medians of ``--repeats`` runs where timed; times are CPU seconds of this single-threaded process):

- ``vectorized_evals_per_s``: overlay evaluations per second of the 20-layer network over the whole
  accelerator grid at once (one core, the path ``best_accelerator`` uses); ``batch_api_evals_per_s`` is the
  same through ``evaluate_batch`` with ``AcceleratorConfig`` objects;
- ``scalar_ms_per_eval``: one ``evaluate`` call with its full per-layer report (overlay);
  ``dataflow_scalar_ms_per_eval`` the same for the dataflow template;
- ``best_accel_ms``: the exact latency-optimal overlay configuration over ``best_accel_configs``
  configurations; ``dataflow_best_accel_ms`` the optimal folding of the same network on the ZCU104 (one
  binding budget: solved by dynamic programming), ``dataflow_best_accel_ilp_wall_ms`` on the Ultra96
  (DSP and LUT both bind: an integer program, CBC runs as a child process so this one is wall time);
- ``nb201_fpga_spearman``: every NAS-Bench-201 cell mapped to its layer list, simulated on one fixed
  overlay accelerator, rank-correlated with the measured ``lat_ms_fpga``; ``nb201_flops_spearman`` and
  ``nb201_params_spearman`` rank the same layer lists by MACs and by parameters. HW-NAS-Bench synthesized
  every operation of a cell, dead or not (a least-squares fit of ``lat_ms_fpga`` on the per-cell counts of
  each operation ranks the cells with Spearman 0.9996 when dead operations are counted and 0.896 when
  they are not), so the cells are mapped with ``NB201Space(prune=False)``; the figures with dead
  operations dropped end in ``_pruned``. ``nb201_fpga_spearman_grid_{min,median}`` show how much
  the figure depends on the fixed accelerator (a grid of 16 arrays), and
  ``nb201_fpga_spearman_blind.<device>`` uses an accelerator chosen without the table (the
  latency-optimal design for the largest cell on that device).

Usage: ``python experiments/benchmarks/simulator.py [--json] [--data ../shared/data] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT / ".." / "shared" / "data"
FIXED_NB201: dict[str, Any] = {
    "template": "overlay",
    "device": "xczu3eg",
    "clock_mhz": 200.0,
    "params": {"tm": 16, "tn": 4, "tr": 16, "tc": 16},
}
"""The fixed accelerator the NAS-Bench-201 cells are simulated on: a small 16 x 4 array on the Ultra96."""
ALL_CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TABLE_BLIND_DEVICES = ("xc7z020", "xczu3eg", "xczu9eg")
"""Devices on which ``nb201_fpga_spearman_blind.<device>`` simulates every cell on the accelerator chosen
without looking at the table (the latency-optimal one for the largest cell)."""


def median_wall_s(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock time of one call (s), for work done partly in a child process (CBC)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_time_s(fn: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """Median over ``repeats`` runs of the CPU time of one call (s). CPU time of this single-threaded
    process, so the figure is the cost on one core even when other jobs share the machine."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            fn()
        times.append((time.process_time() - start) / inner)
    return statistics.median(times)


def speed_figures(repeats: int) -> dict[str, float]:
    from codesign.values import AcceleratorConfig
    from search_spaces.accelerator import OverlaySpace
    from simulators.common import LayerArrays
    from simulators.dataflow import DataflowModel
    from simulators.overlay import OverlayModel, overlay_arrays
    from simulators.testing import conv_stack

    net = conv_stack(20)
    overlay, dataflow = OverlayModel(), DataflowModel()
    device = overlay.catalog.get("xczu3eg")
    space = OverlaySpace(device="xczu3eg", clocks_mhz=(150.0, 200.0, 250.0))
    grid = space.grid()
    layers = LayerArrays.of(net)

    def vectorized() -> None:
        result = overlay_arrays(
            layers, grid["tm"], grid["tn"], grid["tr"], grid["tc"], grid["clock_mhz"], device, overlay.energy
        )
        result.totals(device)

    configs = space.configs(net)
    accel = AcceleratorConfig.make("overlay", "xczu3eg", 200, tm=32, tn=16, tr=16, tc=16)
    fold, _ = dataflow.best_accelerator(net, "xczu7ev")
    default_space = OverlaySpace.for_device(device)
    return {
        "vectorized_evals_per_s": len(space) / median_time_s(vectorized, repeats),
        "vectorized_configs": float(len(space)),
        "batch_api_evals_per_s": len(configs)
        / median_time_s(lambda: overlay.evaluate_batch(net, configs), repeats),
        "scalar_ms_per_eval": 1e3 * median_time_s(lambda: overlay.evaluate(net, accel), repeats, inner=200),
        "dataflow_scalar_ms_per_eval": 1e3
        * median_time_s(lambda: dataflow.evaluate(net, fold), repeats, inner=200),
        "best_accel_ms": 1e3 * median_time_s(lambda: overlay.best_accelerator(net, "xczu3eg"), repeats),
        "best_accel_configs": float(len(default_space)),
        "dataflow_best_accel_ms": 1e3
        * median_time_s(lambda: dataflow.best_accelerator(net, "xczu7ev"), repeats),
        "dataflow_best_accel_ilp_wall_ms": 1e3
        * median_wall_s(lambda: dataflow.best_accelerator(net, "xczu3eg"), max(1, repeats // 2)),
    }


def nb201_figures(data: Path) -> dict[str, float]:
    from scipy.stats import spearmanr

    from codesign.values import AcceleratorConfig
    from search_spaces.nb201 import NB201Space, NB201Table
    from simulators.overlay import OverlayModel

    table = NB201Table.load(data / "nasbench201" / "nb201_accuracy_latency.csv.gz")
    measured = table.column("lat_ms_fpga")
    model = OverlayModel()
    accel = AcceleratorConfig.from_dict(FIXED_NB201)
    grid = [
        AcceleratorConfig.make("overlay", accel.device, accel.clock_mhz, tm=tm, tn=tn, tr=16, tc=16)
        for tm in (8, 16, 32, 64)
        for tn in (4, 8, 16, 32)
    ]
    out: dict[str, float] = {}
    for prune in (False, True):
        space = NB201Space(table, prune=prune)
        nets = [space.network(space.from_id(a)) for a in table.arch_strs()]
        simulated = np.asarray([model.evaluate(n, accel).latency_ms for n in nets])
        suffix = "_pruned" if prune else ""
        out[f"nb201_fpga_spearman{suffix}"] = float(spearmanr(simulated, measured)[0])
        out[f"nb201_flops_spearman{suffix}"] = float(spearmanr([n.macs for n in nets], measured)[0])
        out[f"nb201_params_spearman{suffix}"] = float(spearmanr([n.params for n in nets], measured)[0])
        if not prune:
            batch = np.stack([model.evaluate_batch(n, grid)["latency_ms"] for n in nets])
            rhos = [float(spearmanr(batch[:, j], measured)[0]) for j in range(len(grid))]
            out["nb201_fpga_spearman_grid_min"] = min(rhos)
            out["nb201_fpga_spearman_grid_median"] = statistics.median(rhos)
            # chosen without the table: HAO's latency-optimal design for the largest (all 3x3 conv) cell
            largest = space.network(space.from_id(ALL_CONV_CELL))
            for device in TABLE_BLIND_DEVICES:
                design, _ = model.best_accelerator(largest, device)
                blind = [model.evaluate(n, design).latency_ms for n in nets]
                out[f"nb201_fpga_spearman_blind.{device}"] = float(spearmanr(blind, measured)[0])
    out["nb201_cells"] = float(len(table))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (default: %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median reported)")
    parser.add_argument("--skip-nb201", action="store_true", help="leave out the NAS-Bench-201 figures")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = dict(speed_figures(args.repeats))
    if not args.skip_nb201:
        figures.update(nb201_figures(args.data))
    figures["nb201_fixed_accelerator"] = FIXED_NB201
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:36s} {value:.4g}" if isinstance(value, float) else f"{name:36s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
- ``nb201_fpga_spearman`` (the headline): every NAS-Bench-201 cell mapped to its layer list, simulated on
  its own latency-optimal layer-pipelined design on the ZC706's Zynq XC7Z045, rank-correlated (Spearman)
  with the measured ``lat_ms_fpga``; ``nb201_flops_spearman`` and ``nb201_params_spearman`` rank the same
  layer lists by MACs and by parameters. The accelerator is chosen without the table, exactly as the
  co-design loop would deploy it: template ``pipeline`` (one engine per layer, feature maps and weights
  through DRAM: the class of HLS design HW-NAS-Bench measured), device ``xc7z045`` (the table's FPGA), its
  default 200 MHz clock, and ``PipelineModel.best_accelerator`` (HAO's inner problem: the exact split of
  the device's DSP/LUT/BRAM budgets among the engines that minimises that cell's latency). The template's
  constants (4.26 GB/s DDR3 of UG954, DSP48E1 packing, FINN-R LUT costs) are those of
  ``simulators/devices/xc7z045.yaml`` and ``simulators/costs.py`` and were not changed after this figure
  was measured. Which variant is the headline was fixed before any pipeline figure was measured (the
  per-cell optimum, what a co-design tool deploys); ``_pipeline_largest`` below scores higher and was
  left beside it rather than promoted, so that no choice is made by looking at the table.
- ``nb201_fpga_spearman_pipeline_own.<device>``: the same per-cell optimum on other devices (xc7z045 is
  the headline; xczu9eg only with ``--slow``; xc7z020 and xczu3eg are too small for the largest cells'
  148 engines).
  ``nb201_fpga_spearman_pipeline_largest.<device>``: every cell on the engines of the latency-optimal
  pipeline design for the largest cell (all 3x3 convolutions): a layer runs on the engine of its cell edge
  (or of the same add or reduction layer), folded onto at most that engine's lanes
  (``simulators.design_spaces.refold``), i.e. every cell keeps the largest cell's split of the DSPs;
  ``nb201_pipeline_largest_feasible_fraction.<device>`` is the fraction of cells whose design fits.
- ``nb201_fpga_spearman_fixed_overlay``: the former headline, one fixed 16x4 overlay array on the Ultra96
  (``nb201_fixed_accelerator``). That array was picked with knowledge of the table, so it does not count
  as evidence; ``nb201_fpga_spearman_grid_{min,median}`` show how much the overlay figure depends on the
  array (a grid of 16), and ``nb201_fpga_spearman_blind.<device>`` uses the latency-optimal overlay design
  for the largest cell on that device (chosen without the table).
- HW-NAS-Bench synthesized every operation of a cell, dead or not, so the cells are mapped with
  ``NB201Space(prune=False)``; the figures with dead operations dropped end in ``_pruned``.

Usage: ``python experiments/benchmarks/simulator.py [--json] [--data ../shared/data] [--repeats 5] [--slow]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from codesign.core.values import AcceleratorConfig, Network
    from simulators.base import HardwareModel
    from simulators.pipeline import PipelineModel

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
ALL_CONV_CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
TABLE_BLIND_DEVICES = ("xc7z020", "xczu3eg", "xczu9eg")
"""Devices on which ``nb201_fpga_spearman_blind.<device>`` simulates every cell on the overlay accelerator
chosen without looking at the table (the latency-optimal one for the largest cell)."""
HEADLINE_DEVICE = "xc7z045"
"""The device of the headline ``nb201_fpga_spearman``: the ZC706's Zynq XC7Z045, the FPGA of the table."""
HEADLINE_ACCELERATOR: dict[str, Any] = {
    "template": "pipeline",
    "device": HEADLINE_DEVICE,
    "clock_mhz": "device default (200)",
    "params": "per cell: PipelineModel.best_accelerator (latency-optimal, exact)",
}
"""How the headline's accelerators are chosen, printed with the figures."""
PIPELINE_DEVICES = ("xc7z045", "xczu9eg")
"""Devices of the pipeline-template figures. The smaller xc7z020 and xczu3eg are left out: the largest cells
(148 layers, one engine each) do not fit their LUT budgets, so there is no design to measure."""
SLOW_DEVICES = ("xczu9eg",)
"""Devices where both DSP and LUT bind, so every per-cell optimum is an integer program (CBC, seconds each):
their ``_pipeline_own`` figure is measured only with ``--slow``."""


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
    from codesign.core.values import AcceleratorConfig
    from simulators.common import LayerArrays
    from simulators.dataflow import DataflowModel
    from simulators.overlay import OverlayModel, OverlaySpace, overlay_arrays
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


def distinct_multisets(nets: Sequence[Network]) -> tuple[list[Network], np.ndarray]:
    """One network per distinct multiset of layers (layers without their names) and, for every network, the
    index of its representative. Networks with the same multiset have the same latency on any overlay
    design and on their own optimal design of any template (latency and resources are sums over layers), so
    those figures are computed once per multiset, and cells that differ only in where their operations sit
    get exactly equal values (not ones that differ in the last bit of a sum taken in another order)."""
    index: dict[tuple[tuple[Any, ...], ...], int] = {}
    representatives: list[Network] = []
    inverse = []
    for net in nets:
        key = tuple(sorted(tuple(v for k, v in vars(layer).items() if k != "name") for layer in net.layers))
        if key not in index:
            index[key] = len(representatives)
            representatives.append(net)
        inverse.append(index[key])
    return representatives, np.asarray(inverse)


def per_multiset(
    distinct: Sequence[Network], inverse: np.ndarray, latency_ms: Callable[[Network], float]
) -> np.ndarray:
    """``latency_ms`` of every network, computed on the representatives of :func:`distinct_multisets`."""
    return np.asarray([latency_ms(n) for n in distinct])[inverse]


def latency_on(model: HardwareModel, config: AcceleratorConfig, network: Network) -> float:
    return model.evaluate(network, config).latency_ms


def optimal_latency(model: PipelineModel, device: str, network: Network) -> float:
    """The latency (ms) of ``network`` on its own latency-optimal design on ``device``."""
    return model.best_accelerator(network, device)[1].latency_ms


def edge_slot(name: str) -> str:
    """The engine slot of an NB201 layer: the cell edge it sits on (``s0c1_e21_conv3`` -> ``s0c1_e21``), so
    a 1x1 convolution or a pooling on an edge runs on the engine the largest cell puts there."""
    head, _, op = name.rpartition("_")
    return head if head and op in ("conv1", "conv3", "pool") and "_e" in head else name


def nb201_figures(data: Path, *, slow: bool = False) -> dict[str, float]:
    from scipy.stats import spearmanr

    from codesign.core.values import AcceleratorConfig
    from search_spaces.nb201 import NB201Space, NB201Table
    from simulators.folding import refold
    from simulators.overlay import OverlayModel
    from simulators.pipeline import PipelineModel

    def rho(simulated: Sequence[float] | np.ndarray) -> float:
        return float(spearmanr(simulated, measured)[0])

    table = NB201Table.load(data / "nasbench201" / "nb201_accuracy_latency.csv.gz")
    measured = table.column("lat_ms_fpga")
    overlay, pipeline = OverlayModel(), PipelineModel()
    fixed = AcceleratorConfig.from_dict(FIXED_NB201)
    grid = [
        AcceleratorConfig.make("overlay", fixed.device, fixed.clock_mhz, tm=tm, tn=tn, tr=16, tc=16)
        for tm in (8, 16, 32, 64)
        for tn in (4, 8, 16, 32)
    ]
    out: dict[str, float] = {}
    for prune in (False, True):
        space = NB201Space(table, prune=prune)
        nets = [space.network(space.from_id(a)) for a in table.arch_strs()]
        distinct, inverse = distinct_multisets(nets)
        suffix = "_pruned" if prune else ""
        own = per_multiset(distinct, inverse, functools.partial(optimal_latency, pipeline, HEADLINE_DEVICE))
        out[f"nb201_fpga_spearman{suffix}"] = rho(own)
        out[f"nb201_flops_spearman{suffix}"] = rho([n.macs for n in nets])
        out[f"nb201_params_spearman{suffix}"] = rho([n.params for n in nets])
        out[f"nb201_fpga_spearman_fixed_overlay{suffix}"] = rho(
            per_multiset(distinct, inverse, functools.partial(latency_on, overlay, fixed))
        )
        if prune:
            continue
        out[f"nb201_fpga_spearman_pipeline_own.{HEADLINE_DEVICE}"] = out["nb201_fpga_spearman"]
        batch = np.stack([overlay.evaluate_batch(n, grid)["latency_ms"] for n in distinct])[inverse]
        rhos = [rho(batch[:, j]) for j in range(len(grid))]
        out["nb201_fpga_spearman_grid_min"] = min(rhos)
        out["nb201_fpga_spearman_grid_median"] = statistics.median(rhos)
        largest = space.network(space.from_id(ALL_CONV_CELL))
        for device in TABLE_BLIND_DEVICES:
            design, _ = overlay.best_accelerator(largest, device)
            out[f"nb201_fpga_spearman_blind.{device}"] = rho(
                per_multiset(distinct, inverse, functools.partial(latency_on, overlay, design))
            )
        for device in PIPELINE_DEVICES:
            if device != HEADLINE_DEVICE and (slow or device not in SLOW_DEVICES):
                out[f"nb201_fpga_spearman_pipeline_own.{device}"] = rho(
                    per_multiset(distinct, inverse, functools.partial(optimal_latency, pipeline, device))
                )
            design, _ = pipeline.best_accelerator(largest, device)
            totals = [pipeline.evaluate_batch(n, [refold(design, largest, n, slot=edge_slot)]) for n in nets]
            out[f"nb201_fpga_spearman_pipeline_largest.{device}"] = rho([t["latency_ms"][0] for t in totals])
            out[f"nb201_pipeline_largest_feasible_fraction.{device}"] = float(
                np.mean([t["feasible"][0] for t in totals])
            )
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
    parser.add_argument(
        "--slow",
        action="store_true",
        help=f"also the per-cell optimal pipeline designs on {', '.join(SLOW_DEVICES)} (about 10 min of CBC)",
    )
    args = parser.parse_args(argv)
    figures: dict[str, Any] = dict(speed_figures(args.repeats))
    if not args.skip_nb201:
        figures.update(nb201_figures(args.data, slow=args.slow))
    figures["nb201_fixed_accelerator"] = FIXED_NB201
    figures["nb201_headline_accelerator"] = HEADLINE_ACCELERATOR
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:36s} {value:.4g}" if isinstance(value, float) else f"{name:36s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

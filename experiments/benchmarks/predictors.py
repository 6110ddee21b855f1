"""Predictor benchmark: learned latency and accuracy predictors against their baselines.

Figures (medians over ``--seeds`` seeds; each seed redraws samples, splits and model seeds):

- ``latency_mape``, ``latency_within_10pct``, ``latency_kendall`` (+ ``latency_spearman``,
  ``latency_rmse_ms``, ``latency_within_5pct``/``15pct``): the per-layer XGBoost latency predictor trained on
  at most 2,000 (network, overlay configuration) samples of the overlay simulator, evaluated on a held-out
  architecture family (each of the four space presets held out in turn; the training set is the other
  three). ``latency_baseline_*``: the FLOPs/bit-ops linear baseline on the same split;
  ``latency_hint_*``: the untrained hint on the same split (each layer's cycle hint, which is the overlay's
  own compute-cycle formula, summed and linearly calibrated: what the trees add is the difference). These
  are figures on simulated latencies, of how closely the predictor tracks the simulator; the figures on
  measured hardware are ``import_*``.
  ``latency_random_split_mape``: the same predictor on a random 25 % split;
  ``latency_network_mode_mape``: the whole-network (measurement-style) predictor on the held-out family.
- ``import_spearman_10.<device>`` / ``import_spearman_100.<device>``, for each NAS-Bench-201 device of
  the table (``fpga``, ``eyeriss``, ``pixel3``; HW-NAS-Bench's measurements): 10 / 100 cells drawn at
  random, written to a CSV of ``arch,latency_ms`` and imported with ``codesign hardware import --space
  nb201 --space-option prune=false`` (the path a user takes: the method is chosen by the import's own
  cross-validation), then the saved model ranks every other cell (Spearman). ``flops_spearman.<device>``:
  MACs of the cell's layers with every operation counted, as HW-NAS-Bench counts FLOPs;
  ``hint_spearman.fpga``: the analytic hint, the pipeline simulator on each cell's own latency-optimal
  design on the table's FPGA (``experiments/benchmarks/simulator.py``'s headline; the other devices have
  no hardware model here). ``import_pruned_spearman_10.<device>``: the same import with dead operations
  dropped instead of listed (``prune=true``), for comparison.
- ``nb201_fpga_xgb_spearman_100``: XGBoost on the cell graph features from 100 cells, for comparison.
- ``nb201_acc_kendall_500``: CIFAR-10 accuracy predictor (XGBoost ensemble on cell graph features) from
  500 cells, tested on the rest; ``nb201_acc_onehot_kendall_500``: the same on the plain edge one-hot.
- ``mnist_acc_kendall``: accuracy predictor trained on real MNIST measurements of 75 % of 240 candidates
  of ``mbconv_mnist`` with mixed per-layer bits, Kendall tau on the other 25 % (architectures never seen
  in training). Measurement (supernet path): weights inherited from a sandwich-rule supernet (1,500
  steps), BatchNorm recalibrated on 16 batches, activations calibrated on 8 batches at the candidate's
  bits, scored on 5,000 validation images (a 1,000-image score has a standard error of about 0.7 points
  at 95 %, as large as the spread between architectures). Features: the architecture encoding, bit
  statistics, per-layer weight and activation bits laid out by supernet layer slot, and HAWQ's summed
  perturbation ``sum_i Tr(H_i)/n_i * ||Q(W_i) - W_i||^2`` with Hutchinson traces of the largest subnet
  (:meth:`codesign.nn.supernet.SupernetEvaluator.layer_traces`). Model:
  :class:`codesign.predictors.quantized.QuantizedAccuracyPredictor` (XGBoost ensembles for the
  full-precision logit from the encoding and for the logit drop from every feature; every measurement
  also gives the full-precision score on the same images). These choices were made by 5-fold
  cross-validation on each seed's training candidates only, never on the held-out ones; the comparison
  figures below are printed by this script.
  Comparisons: ``mnist_acc_no_perturbation_kendall`` drops the perturbation;
  ``mnist_acc_direct_kendall`` is one XGBoost ensemble on raw accuracy with every feature;
  ``mnist_acc_bits_only_kendall`` the same on the bits alone; ``mnist_perturbation_alone_kendall`` ranks
  by the traced perturbation alone, ``mnist_unit_perturbation_alone_kendall`` by the same sum with every
  trace taken as 1.
- ``seconds``: wall time of the whole run.

Usage: ``python experiments/benchmarks/predictors.py [--json] [--seeds 3] [--only latency import nb201
mnist] [--cache DIR]`` (``import`` always uses 5 seeds: ``--import-seeds``). The MNIST part trains a supernet once (cached in ``--cache``) and reads the data from
``../shared/data/mnist`` beside the checkout (``--mnist-root``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from codesign.predictors.accuracy import AccuracyFeaturizer, AccuracyPredictor
from codesign.predictors.cells import CELL_FEATURE_NAMES, CELL_SCHEMA, cell_features
from codesign.predictors.evaluation import (
    LatencySamples,
    evaluate_latency,
    family_split,
    random_pairs,
    random_split,
    sample_hardware,
)
from codesign.predictors.latency import LatencyPredictor
from codesign.predictors.metrics import kendall, spearman
from codesign.predictors.quantized import QuantizedAccuracyPredictor

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FAMILIES = ("mbconv_digits", "resnet_digits", "mbconv_mnist", "resnet_mnist")
# the MNIST measurement protocol (see the module docstring): on one core of the shared 2-core machine the
# supernet trains in about 10 minutes and the 240 measurements take 30-40 minutes; both are cached
MNIST_TRAIN_SUBSET = 8000
MNIST_VAL_SIZE = 5000
MNIST_BN_BATCHES = 16
MNIST_CALIB_BATCHES = 8


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


# -- latency on the overlay simulator ------------------------------------------------------------------
def overlay_samples(n_per_family: int, seed: int) -> LatencySamples:
    from search_spaces.registry import make_space
    from simulators.overlay import OverlayModel, OverlaySpace

    accel_spaces = [OverlaySpace(device=d, clocks_mhz=(150.0, 200.0, 250.0)) for d in ("xczu3eg", "xczu9eg")]
    spaces = [make_space(name) for name in FAMILIES]
    networks, accels, families = random_pairs(
        spaces, accel_spaces, n_per_family, np.random.default_rng(seed), weight_bits=(2, 4, 8)
    )
    return sample_hardware(OverlayModel(), networks, accels, families)


def latency_figures(seeds: int) -> dict[str, float]:
    per_seed: dict[str, list[float]] = {}
    for seed in range(seeds):
        # 4 families x 667 samples; holding one out trains on 2,000 of the other three
        samples = overlay_samples(667, seed)
        reports, hints = [], []
        for held in FAMILIES:
            train, test = family_split(samples.families, [held])
            reports.append(evaluate_latency(samples, train, test, LatencyPredictor(seed=seed)))
            hints.append(evaluate_latency(samples, train, test, LatencyPredictor(residual="none", seed=seed)))
        figures: dict[str, Any] = {
            "latency_mape": np.mean([r.model.mape for r in reports]),
            "latency_within_5pct": np.mean([r.model.within_5 for r in reports]),
            "latency_within_10pct": np.mean([r.model.within_10 for r in reports]),
            "latency_within_15pct": np.mean([r.model.within_15 for r in reports]),
            "latency_kendall": np.mean([r.model.kendall for r in reports]),
            "latency_spearman": np.mean([r.model.spearman for r in reports]),
            "latency_rmse_ms": np.mean([r.model.rmse for r in reports]),
            "latency_worst_family_mape": max(r.model.mape for r in reports),
            "latency_baseline_mape": np.mean([r.baseline.mape for r in reports]),
            "latency_baseline_within_10pct": np.mean([r.baseline.within_10 for r in reports]),
            "latency_baseline_kendall": np.mean([r.baseline.kendall for r in reports]),
            "latency_hint_mape": np.mean([r.model.mape for r in hints]),
            "latency_hint_within_10pct": np.mean([r.model.within_10 for r in hints]),
            "latency_hint_kendall": np.mean([r.model.kendall for r in hints]),
        }
        train, test = random_split(len(samples), 0.25, np.random.default_rng(seed))
        train = train[:2000]
        figures["latency_random_split_mape"] = evaluate_latency(
            samples, train, test, LatencyPredictor(seed=seed)
        ).model.mape
        whole = LatencySamples(samples.networks, samples.accels, samples.latency_ms, samples.families)
        train, test = family_split(samples.families, ["resnet_mnist"])
        figures["latency_network_mode_mape"] = evaluate_latency(
            whole, train, test, LatencyPredictor(seed=seed)
        ).model.mape
        for key, value in figures.items():
            per_seed.setdefault(key, []).append(float(value))
    return {k: _median(v) for k, v in per_seed.items()}


# -- NAS-Bench-201 -------------------------------------------------------------------------------------
IMPORT_DEVICES = ("fpga", "eyeriss", "pixel3")


def import_figures(seeds: int, work: Path) -> dict[str, float]:
    """``import_spearman_{10,100}.<device>`` through ``codesign hardware import`` (module docstring)."""
    import contextlib
    import io

    from codesign.cli import main as cli_main
    from codesign.predictors.features import LatencyFeaturizer
    from codesign.predictors.measured import load_measured
    from search_spaces.nb201 import NB201Space, read_table

    table = read_table(DATA / "nasbench201" / "nb201_accuracy_latency.csv.gz")
    arch = table.arch_str.to_numpy()
    featurizer = LatencyFeaturizer.for_configs([None])
    features = {}
    for prune in (False, True):
        space = NB201Space(prune=prune)
        nets = [space.network(space.from_id(a)) for a in arch]
        features[prune] = featurizer.transform(nets, [None] * len(nets))
        if not prune:
            full_macs = np.array([net.macs for net in nets], dtype=float)
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[float]] = {}
    for device in IMPORT_DEVICES:
        y = table[f"lat_ms_{device}"].to_numpy()
        for n, prune in ((10, False), (100, False), (10, True)):
            for seed in range(seeds):
                order = np.random.default_rng(seed).permutation(len(y))
                train, test = order[:n], order[n:]
                csv = work / f"{device}_{n}_{seed}.csv"
                pd.DataFrame({"arch": arch[train], "latency_ms": y[train]}).to_csv(csv, index=False)
                name = f"{device}_{n}_{seed}_{'pruned' if prune else 'full'}"
                argv = ["hardware", "import", str(csv), "--name", name, "--space", "nb201", "--space-option",
                        f"prune={str(prune).lower()}", "--out", str(work), "--seed", str(seed), "--force"]  # fmt: skip
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    if cli_main(argv) != 0:
                        raise RuntimeError(f"codesign {' '.join(argv)} failed")
                model = load_measured(name, work)
                model.latency.schema_.check(featurizer.schema)
                predicted = model.latency.predict_matrix(features[prune][test])
                key = f"import_{'pruned_' if prune else ''}spearman_{n}.{device}"
                figures.setdefault(key, []).append(spearman(y[test], predicted))
    out = {k: _median(v) for k, v in figures.items()}
    for device in IMPORT_DEVICES:
        out[f"flops_spearman.{device}"] = spearman(table[f"lat_ms_{device}"].to_numpy(), full_macs)
    out["hint_spearman.fpga"] = _fpga_hint_spearman(arch, table.lat_ms_fpga.to_numpy())
    return out


def _fpga_hint_spearman(arch: np.ndarray, latency: np.ndarray) -> float:
    import functools

    from simulator import HEADLINE_DEVICE, distinct_multisets, optimal_latency, per_multiset

    from search_spaces.nb201 import NB201Space
    from simulators.pipeline import PipelineModel

    space = NB201Space(prune=False)
    distinct, inverse = distinct_multisets([space.network(space.from_id(a)) for a in arch])
    hint = per_multiset(distinct, inverse, functools.partial(optimal_latency, PipelineModel(), HEADLINE_DEVICE))
    return spearman(latency, hint)


# -- NAS-Bench-201 -------------------------------------------------------------------------------------
def nb201_figures(seeds: int) -> dict[str, float]:
    from search_spaces.nb201 import read_table

    table = read_table(DATA / "nasbench201" / "nb201_accuracy_latency.csv.gz")  # accuracies as fractions
    X = cell_features(list(table.arch_str))
    latency = table.lat_ms_fpga.to_numpy()
    acc = table.cifar10_test_acc.to_numpy()
    onehot_cols = [i for i, n in enumerate(CELL_FEATURE_NAMES) if n.startswith("edge")]
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(float(value))

    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(table))
        train, test = order[:100], order[100:]
        xgb_model = AccuracyPredictor(model="xgboost", n_members=1, seed=seed).fit(
            X[train], latency[train], schema=CELL_SCHEMA
        )
        add("nb201_fpga_xgb_spearman_100", spearman(latency[test], xgb_model.predict(X[test])))
        train, test = order[:500], order[500:]
        predictor = AccuracyPredictor(model="xgboost", seed=seed).fit(
            X[train], acc[train], schema=CELL_SCHEMA
        )
        add("nb201_acc_kendall_500", kendall(acc[test], predictor.predict(X[test])))
        onehot = AccuracyPredictor(model="xgboost", seed=seed).fit(X[train][:, onehot_cols], acc[train])
        add("nb201_acc_onehot_kendall_500", kendall(acc[test], onehot.predict(X[test][:, onehot_cols])))
    return {k: _median(v) for k, v in figures.items()}


# -- MNIST accuracy ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MnistMeasurements:
    """Candidates of ``mbconv_mnist`` and what was measured of them (accuracies are fractions)."""

    space: Any
    archs: list[Any]
    weight_bits: list[tuple[int, ...]]
    act_bits: list[tuple[int, ...]]
    accuracy: np.ndarray
    """Validation accuracy at the candidate's bits."""
    float_accuracy: np.ndarray
    """Validation accuracy of the same weights in full precision (same images)."""
    perturbation: np.ndarray
    """HAWQ's summed perturbation with the supernet's Hutchinson traces."""
    unit_perturbation: np.ndarray
    """The same sum with every trace taken as 1 (the mean squared quantization error per layer, summed)."""
    slots: tuple[str, ...]
    """The supernet's weighted layers: every layer position a candidate can fill."""
    layer_slots: list[tuple[str, ...]]
    """Per candidate, the slot each of its weighted layers is sliced from."""


def mnist_measurements(cache: Path, root: Path, n: int, seed: int, steps: int) -> MnistMeasurements:
    """``n`` distinct architectures of ``mbconv_mnist`` with varied per-layer bits, measured on MNIST
    validation images through the supernet path (cached in ``cache``), with each candidate's summed
    weight perturbation."""
    from codesign.nn.data import load_dataset
    from codesign.nn.supernet import SupernetEvaluator, SupernetSchedule
    from codesign.nn.training import TrainSchedule
    from codesign.quantization.sensitivity import weight_perturbation
    from search_spaces.bitwidth import BitWidthSpace
    from search_spaces.registry import make_space

    space = make_space("mbconv_mnist")
    data = load_dataset("mnist", root=root, seed=0, train_subset=MNIST_TRAIN_SUBSET, val_size=MNIST_VAL_SIZE)
    evaluator = SupernetEvaluator.create(
        space, data, schedule=TrainSchedule(epochs=1, batch_size=64, calib_batches=MNIST_CALIB_BATCHES),
        supernet_schedule=SupernetSchedule(steps=steps, batch_size=64, n_random=1, bn_batches=MNIST_BN_BATCHES),
        cache=cache, seed=0,
    )  # fmt: skip
    traces = evaluator.layer_traces()
    patterns = [
        BitWidthSpace(w, a)
        for w, a in (
            ((8,), (8,)),
            ((4,), (8,)),
            ((4, 8), (8,)),
            ((4,), (4,)),
            ((4, 8), (4, 8)),
            ((2, 4), (8,)),
            ((2, 4, 8), (4, 8)),
        )
    ]
    rng = np.random.default_rng(seed)
    archs: list[Any] = []
    seen: set[str] = set()
    while len(archs) < n:
        arch = space.sample(rng)
        if space.arch_id(arch) not in seen:
            seen.add(space.arch_id(arch))
            archs.append(arch)
    weight_bits, act_bits, accs, fp32, perturbation, unit, layer_slots = [], [], [], [], [], [], []
    for i, arch in enumerate(archs):
        w, a = patterns[i % len(patterns)].sample(rng, space.network(arch))
        weight_bits.append(tuple(w))
        act_bits.append(tuple(a))
        measurement = evaluator.measure(arch, w, a)
        accs.append(measurement.quant_acc)
        fp32.append(measurement.fp32_acc)
        model = evaluator.trained_model(arch)
        layer_slots.append(evaluator.supernet.layer_names(arch))
        perturbation.append(weight_perturbation(model, w, [traces[name] for name in layer_slots[-1]]))
        unit.append(weight_perturbation(model, w))
    return MnistMeasurements(
        space, archs, weight_bits, act_bits, np.asarray(accs), np.asarray(fp32), np.asarray(perturbation),
        np.asarray(unit), evaluator.supernet.layer_names(space.largest()), layer_slots,
    )  # fmt: skip


def mnist_figures(seeds: int, cache: Path, root: Path, n: int, steps: int) -> dict[str, float]:
    m = mnist_measurements(cache, root, n, seed=0, steps=steps)
    encodings = np.stack([m.space.encode(a) for a in m.archs])
    featurizer = AccuracyFeaturizer(
        encoding_dim=encodings.shape[1], slots=m.slots, use_perturbation=True, space=m.space.name
    )
    X = featurizer.transform(encodings, m.weight_bits, m.act_bits, m.perturbation, layer_slots=m.layer_slots)
    names = featurizer.schema.names
    every = list(range(len(names)))
    no_pert = [i for i, name in enumerate(names) if name != "log_perturbation"]
    bit_cols = [
        i for i, name in enumerate(names) if not name.startswith("enc") and name != "log_perturbation"
    ]
    figures: dict[str, list[float]] = {}
    direct = {"model": "xgboost", "max_depth": 3, "learning_rate": 0.05}
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(m.accuracy))
        n_test = len(m.accuracy) // 4
        train, test = order[n_test:], order[:n_test]
        truth = m.accuracy[test]
        for key, cols in (("mnist_acc_kendall", every), ("mnist_acc_no_perturbation_kendall", no_pert)):
            model = QuantizedAccuracyPredictor(arch_columns=featurizer.encoding_dim, seed=seed)
            model.fit(X[train][:, cols], m.accuracy[train], m.float_accuracy[train])
            figures.setdefault(key, []).append(kendall(truth, model.predict(X[test][:, cols])))
        for key, cols in (("mnist_acc_direct_kendall", every), ("mnist_acc_bits_only_kendall", bit_cols)):
            predictor = AccuracyPredictor(seed=seed, **direct).fit(X[train][:, cols], m.accuracy[train])  # type: ignore[arg-type]
            figures.setdefault(key, []).append(kendall(truth, predictor.predict(X[test][:, cols])))
    return {
        **{key: _median(values) for key, values in figures.items()},
        "mnist_perturbation_alone_kendall": kendall(m.accuracy, -m.perturbation),
        "mnist_unit_perturbation_alone_kendall": kendall(m.accuracy, -m.unit_perturbation),
        "mnist_candidates": float(len(m.accuracy)),
        "mnist_val_acc_min": float(m.accuracy.min()),
        "mnist_val_acc_max": float(m.accuracy.max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("latency", "import", "nb201", "mnist"),
        default=("latency", "import", "nb201", "mnist"),
    )
    parser.add_argument("--import-seeds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path(".codesign-cache/bench-predictors"))
    parser.add_argument("--mnist-root", type=Path, default=DATA / "mnist")
    parser.add_argument("--mnist-candidates", type=int, default=240)
    parser.add_argument("--supernet-steps", type=int, default=1500)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    figures: dict[str, float] = {}
    if "latency" in args.only:
        figures |= latency_figures(args.seeds)
    if "import" in args.only:
        figures |= import_figures(args.import_seeds, args.cache / "import")
    if "nb201" in args.only:
        figures |= nb201_figures(args.seeds)
    if "mnist" in args.only:
        figures |= mnist_figures(
            args.seeds, args.cache, args.mnist_root, args.mnist_candidates, args.supernet_steps
        )
    figures["seconds"] = time.perf_counter() - start
    if args.json:
        print(json.dumps({k: round(v, 5) for k, v in figures.items()}))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

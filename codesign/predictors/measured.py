"""Measured hardware as a plug-in: a hardware model backed by a latency predictor learned from a user's own
measurements (``codesign hardware import``).

With few measurements (10-50) a simulator's estimate serves as a prior and only the correction is learned:
a non-negative linear calibration of the simulated latency, optionally with a per-kernel-type cost table
or a small tree model of the remaining log ratio. Without a prior the candidates are the per-operation
additive cost table (with dead layers, also costed apart or left out) and a scale model with an optional
tree correction (:func:`candidate_methods`). Linear methods are fitted on relative and on absolute error:
near-zero latencies (a runtime that folds a network whose output does not depend on its input) dominate a
relative fit. Cross-validation chooses (:func:`choose`): the best out-of-fold Spearman, then the lowest
mean absolute error; ties among measured latencies take average ranks. The chosen method's out-of-fold
errors give the confidence reported with the model and a per-prediction interval, and a poor fit
(:attr:`Confidence.poor`) is noted in every report.

A saved model is a folder ``<models>/<name>/`` holding ``measured.json`` and the predictor folders
``latency/`` (and ``energy/`` when energy was measured). :func:`load_measured` finds it by name.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Fidelity, HardwareReport, Network, Resources
from codesign.predictors.latency import BASES_WITH_DEAD, LOSSES, LatencyPredictor
from codesign.predictors.metrics import RegressionMetrics, regression_metrics, spearman
from simulators.base import HardwareModel
from simulators.devices import DeviceCatalog

NO_PRIOR_NOTE = "measured model {name!r} has no prior: resources are unknown (reported as zero), feasibility unchecked"
"""The note every report of a measured model without a prior carries."""
MEASURED_FORMAT_VERSION = 2
META_FILE = "measured.json"
MODELS_ENV = "CODESIGN_MODELS"
"""Environment variable naming the folder that holds measured models (default ``./models``)."""

POOR_FIT_NOTE = (
    "measured model {name!r}: its cross-validated fit is poor (Spearman {spearman:.2f}, mean error "
    "{nmae:.0%} of the mean latency); more or more varied measurements would help"
)
"""The note every report of a measured model with a poor fit (:attr:`Confidence.poor`) carries."""
POOR_SPEARMAN = 0.8
POOR_NMAE = 0.25
"""A cross-validated fit ranking the measurements below this Spearman, or with a mean absolute error above
this share of the mean latency, is poor: the import warns and every report says so."""
SPEARMAN_TOLERANCE = 0.01
"""Candidates whose out-of-fold Spearman is within this of the best count as ranking equally well."""
NEAR_ZERO = 0.01
"""A measurement below this share of the median is near zero (e.g. a network a runtime folds away)."""


@dataclass(frozen=True)
class Method:
    """One way to learn latency from whole-network measurements (see :class:`LatencyPredictor`)."""

    base: str
    residual: str
    loss: str

    @property
    def label(self) -> str:
        return f"{self.base}/{self.residual}/{self.loss}"


def candidate_methods(rows: int, *, prior: bool, dead: bool) -> tuple[Method, ...]:
    """The methods cross-validation chooses among: with a prior, calibrations of it (alone, with a
    per-kernel-type table, or with a tree correction); without, the per-operation additive table
    (``kernels``; with ``dead`` layers also ``kernels+dead`` and ``live_kernels``) and the scale model,
    each fitted on relative and on absolute error, and the scale model with a tree correction. Trees need
    20 rows: on fewer they only memorise them."""
    bases = ("prior", "prior+kernels") if prior else ("kernels", *(BASES_WITH_DEAD if dead else ()), "scale")
    methods = [Method(base, "none", loss) for base in bases for loss in LOSSES]
    if rows >= 20:
        methods.append(Method("prior" if prior else "scale", "xgboost", "relative"))
    return tuple(methods)


@dataclass(frozen=True)
class Confidence:
    """How far to trust a measured model: cross-validated metrics of the chosen method and the 5 %/95 %
    quantiles of ``measured / predicted`` out of fold (a per-prediction 90 % interval is
    ``[prediction * low, prediction * high]``). ``candidates`` holds each method's out-of-fold
    ``(label, spearman, nmae)``; ``near_zero`` counts the measurements below :data:`NEAR_ZERO` of the
    median."""

    method: str
    folds: int
    cv_mape: float
    cv_within_10: float
    cv_spearman: float
    interval_low: float
    interval_high: float
    candidates: tuple[tuple[str, float, float], ...]
    cv_nmae: float = math.nan
    near_zero: int = 0

    constant: bool = False
    """Whether every measurement was the same: there is no order to learn, only the value."""

    @property
    def poor(self) -> bool:
        """Whether the cross-validated fit is poor (:data:`POOR_SPEARMAN`, :data:`POOR_NMAE`): it ranks the
        measurements badly or misses them by much; with equal measurements, only the error counts."""
        ranks = self.constant or self.cv_spearman >= POOR_SPEARMAN
        return not (ranks and self.cv_nmae <= POOR_NMAE)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["candidates"] = [list(c) for c in self.candidates]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Confidence:
        candidates = tuple((str(c[0]), float(c[1]), float(c[2])) for c in data["candidates"])
        return cls(**{**data, "candidates": candidates})


def _predictor(method: Method, seed: int) -> LatencyPredictor:
    # small shallow trees: tables here hold tens of rows
    return LatencyPredictor(
        base=method.base,
        residual=method.residual,
        loss=method.loss,
        seed=seed,
        n_estimators=150,
        max_depth=2,
        learning_rate=0.1,
        min_child_weight=2.0,
    )


def _folds(n: int, seed: int) -> list[np.ndarray]:
    k = n if n <= 20 else 5  # leave-one-out for the smallest tables
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::k] for i in range(k)]


def _out_of_fold(
    method: Method,
    networks: Sequence[Network],
    accels: Sequence[AcceleratorConfig | None],
    y: np.ndarray,
    prior: np.ndarray | None,
    seed: int,
) -> np.ndarray:
    oof = np.empty_like(y)
    for test in _folds(len(y), seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
        model = _predictor(method, seed).fit(
            pick(train, networks),
            pick(train, accels),
            y[train],
            prior_ms=None if prior is None else prior[train],
        )
        oof[test] = model.predict(
            pick(test, networks), pick(test, accels), prior_ms=None if prior is None else prior[test]
        )
    return oof


def _nmae(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - y)) / np.mean(y))


def choose(scored: Sequence[tuple[Method, float, float]]) -> Method:
    """The method whose out-of-fold predictions rank the measurements best (Spearman: a Pareto front
    depends only on each objective's order), the lowest mean absolute error among those within
    :data:`SPEARMAN_TOLERANCE` of the best; ``scored`` holds ``(method, spearman, nmae)``."""
    best = max(spearman for _, spearman, _ in scored)
    tied = [s for s in scored if s[1] >= best - SPEARMAN_TOLERANCE]
    return min(tied, key=lambda s: s[2])[0]


def fit_with_confidence(
    networks: Sequence[Network],
    accels: Sequence[AcceleratorConfig | None],
    y: np.ndarray,
    prior: np.ndarray | None,
    seed: int,
) -> tuple[LatencyPredictor, Confidence, RegressionMetrics]:
    """Choose a method by cross-validation (:func:`choose` over :func:`candidate_methods`), refit it on
    every row, and report."""
    if len(y) < 5:
        raise CodesignError(f"measured model: need at least 5 measurements, got {len(y)}")
    dead = any(net.dead for net in networks)
    methods = candidate_methods(len(y), prior=prior is not None, dead=dead)
    oofs = {m: _out_of_fold(m, networks, accels, y, prior, seed) for m in methods}
    scored = [(m, spearman(y, oof), _nmae(y, oof)) for m, oof in oofs.items()]
    method = choose(scored)
    oof = oofs[method]
    metrics = regression_metrics(y, oof)
    ratio = np.log(y / oof)
    confidence = Confidence(
        method=method.label, folds=len(_folds(len(y), seed)), cv_mape=metrics.mape, cv_within_10=metrics.within_10,
        cv_spearman=metrics.spearman, interval_low=float(np.exp(np.quantile(ratio, 0.05))),
        interval_high=float(np.exp(np.quantile(ratio, 0.95))),
        candidates=tuple((m.label, float(rho), float(err)) for m, rho, err in scored),
        cv_nmae=_nmae(y, oof), near_zero=int(np.sum(y < NEAR_ZERO * np.median(y))), constant=bool(np.all(y == y[0])),
    )  # fmt: skip
    model = _predictor(method, seed).fit(networks, accels, y, prior_ms=prior)
    return model, confidence, metrics


class MeasuredModel(HardwareModel):
    """A hardware model whose latency (and energy, when measured) comes from a predictor fitted to
    measurements. ``prior`` is the simulator used as a prior (``None`` for none), ``device``/``clock_mhz``
    the device its best accelerator is chosen on when a call gives no accelerator configuration.
    Resources and feasibility come from the prior's report (zero and feasible without a prior)."""

    def __init__(
        self,
        *,
        name: str,
        latency: LatencyPredictor,
        confidence: Confidence,
        prior: HardwareModel | None = None,
        prior_name: str | None = None,
        device: str | None = None,
        clock_mhz: float | None = None,
        energy: LatencyPredictor | None = None,
        energy_confidence: Confidence | None = None,
        uses_accel: bool = False,
        catalog: DeviceCatalog | None = None,
    ) -> None:
        super().__init__(catalog=catalog)
        self.name = name
        self.latency = latency
        self.confidence = confidence
        self.prior = prior
        self.prior_name = prior_name
        self.device = device
        self.clock_mhz = clock_mhz
        self.energy = energy
        self.energy_confidence = energy_confidence
        self.uses_accel = uses_accel
        """Whether the measurements named accelerator configurations; when not, the one a call passes is
        ignored (the measured device is one fixed design)."""

    fidelity = Fidelity.PREDICTED
    """Its numbers are predictions learned from measurements (the search records them as such)."""

    @staticmethod
    def prior_reports(
        prior: HardwareModel,
        networks: Sequence[Network],
        accels: Sequence[AcceleratorConfig | None],
        device: str | None,
        clock_mhz: float | None,
    ) -> list[HardwareReport]:
        """The prior's report per row: on the row's accelerator, else on the latency-optimal one of ``device``."""
        reports = []
        for net, acc in zip(networks, accels, strict=True):
            if acc is not None:
                reports.append(prior.evaluate(net, acc))
                continue
            if device is None:
                raise CodesignError(
                    f"measured model: the prior {prior.name!r} needs an accelerator configuration per row, "
                    "or a device to choose the best one on (--device)"
                )
            reports.append(prior.best_accelerator(net, device, clock_mhz)[1])
        return reports

    @classmethod
    def fit(
        cls,
        *,
        name: str,
        networks: Sequence[Network],
        accels: Sequence[AcceleratorConfig | None],
        latency_ms: Sequence[float],
        energy_mj: Sequence[float] | None = None,
        prior: HardwareModel | None = None,
        prior_name: str | None = None,
        device: str | None = None,
        clock_mhz: float | None = None,
        seed: int = 0,
    ) -> MeasuredModel:
        """Learn from measurements, choosing the method by cross-validation (see the module docstring)."""
        y = np.asarray(latency_ms, dtype=float)
        prior_lat = prior_energy = None
        if prior is not None:
            reports = cls.prior_reports(prior, networks, accels, device, clock_mhz)
            prior_lat = np.array([r.latency_ms for r in reports])
            prior_energy = np.array([r.energy_mj for r in reports])
        latency, confidence, _ = fit_with_confidence(networks, accels, y, prior_lat, seed)
        energy = energy_conf = None
        if energy_mj is not None:
            energy, energy_conf, _ = fit_with_confidence(
                networks, accels, np.asarray(energy_mj, dtype=float), prior_energy, seed
            )
        return cls(name=name, latency=latency, confidence=confidence, prior=prior, prior_name=prior_name, device=device,
                   clock_mhz=clock_mhz, energy=energy, energy_confidence=energy_conf,
                   uses_accel=any(a is not None for a in accels))  # fmt: skip

    def _prior_report(self, network: Network, accel: AcceleratorConfig | None) -> HardwareReport | None:
        if self.prior is None:
            return None
        return self.prior_reports(self.prior, [network], [accel], self.device, self.clock_mhz)[0]

    def best_accelerator(
        self, network: Network, device: str, clock_mhz: float | None = None
    ) -> tuple[AcceleratorConfig | None, HardwareReport]:
        """A model learned without accelerator configurations is one fixed design: ``(None, report)``.
        One learned over configurations takes the prior's latency-optimal configuration on ``device``
        (the measured device when empty) and predicts its latency."""
        if not self.uses_accel:
            return None, self.evaluate(network, None)
        if self.prior is None:
            raise CodesignError(f"measured model {self.name!r}: needs a prior to choose an accelerator configuration")
        accel, _ = self.prior.best_accelerator(network, device or self.device or "", clock_mhz or self.clock_mhz)
        return accel, self.evaluate(network, accel)

    def predict_interval(
        self, network: Network, accel: AcceleratorConfig | None = None
    ) -> tuple[float, float, float]:
        """(low, predicted, high) latency in ms, the bounds being the 90 % cross-validated interval."""
        latency = self.evaluate(network, accel).latency_ms
        return latency * self.confidence.interval_low, latency, latency * self.confidence.interval_high

    def evaluate(self, network: Network, accel: AcceleratorConfig | None = None) -> HardwareReport:
        """Predicted latency (ms) and energy (mJ); energy without measurements is the prior's at the same
        average power, and NaN with neither (an objective over it is then meaningless, not zero)."""
        if not self.uses_accel:
            accel = None
        prior = self._prior_report(network, accel)
        prior_lat = None if prior is None else [prior.latency_ms]
        latency = float(self.latency.predict([network], [accel], prior_ms=prior_lat)[0])
        if self.energy is not None:
            prior_e = None if prior is None else [prior.energy_mj]
            energy = float(self.energy.predict([network], [accel], prior_ms=prior_e)[0])
        elif prior is not None:
            energy = prior.energy_mj * latency / prior.latency_ms
        else:
            energy = math.nan
        notes = self._fit_notes()
        if prior is None:
            return HardwareReport(
                latency_ms=latency,
                throughput_fps=1e3 / latency,
                energy_mj=energy,
                resources=Resources(),
                device_resources=Resources(),
                notes=(NO_PRIOR_NOTE.format(name=self.name), *notes),
            )
        # a pipelined prior's throughput exceeds 1/latency; keep its ratio
        speedup = prior.throughput_fps * prior.latency_ms / 1e3
        return HardwareReport(
            latency_ms=latency, throughput_fps=speedup * 1e3 / latency, energy_mj=energy, resources=prior.resources,
            device_resources=prior.device_resources, violations=prior.violations, notes=(*prior.notes, *notes),
        )  # fmt: skip

    def _fit_notes(self) -> tuple[str, ...]:
        fits = (self.confidence, self.energy_confidence)
        return tuple(
            POOR_FIT_NOTE.format(name=self.name, spearman=c.cv_spearman, nmae=c.cv_nmae)
            for c in fits
            if c is not None and c.poor
        )

    def save(self, folder: str | Path) -> Path:
        """Write the model into ``folder`` (conventionally ``<models>/<name>``)."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self.latency.save(path / "latency")
        if self.energy is not None:
            self.energy.save(path / "energy")
        meta = {
            "format_version": MEASURED_FORMAT_VERSION, "name": self.name, "prior": self.prior_name,
            "device": self.device, "clock_mhz": self.clock_mhz, "uses_accel": self.uses_accel, "confidence": self.confidence.to_dict(),
            "energy_confidence": None if self.energy_confidence is None else self.energy_confidence.to_dict(),
        }  # fmt: skip
        (path / META_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, folder: str | Path, *, catalog: DeviceCatalog | None = None) -> MeasuredModel:
        """Read a model saved by :meth:`save`; the prior is rebuilt by name from the hardware-model registry.
        A corrupt or edited model (missing or mistyped fields, a damaged predictor file) is a
        :class:`CodesignError` naming the folder."""
        try:
            return cls._load(Path(folder), catalog=catalog)
        except CodesignError:
            raise
        except Exception as exc:  # json, xgboost and the dataclasses raise many types for damaged files
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise CodesignError(
                f"measured hardware model at {folder} is corrupt ({type(exc).__name__}{': ' + detail if detail else ''}); "
                "import it again with codesign hardware import"
            ) from None

    @classmethod
    def _load(cls, path: Path, *, catalog: DeviceCatalog | None = None) -> MeasuredModel:
        """:meth:`load` without the translation of unexpected errors."""
        if not (path / META_FILE).is_file():
            raise CodesignError(f"no measured hardware model at {path}: {META_FILE} not found")
        try:
            meta = json.loads((path / META_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise CodesignError(f"{path / META_FILE}: not valid JSON ({exc.msg})") from exc
        if meta.get("format_version") != MEASURED_FORMAT_VERSION:
            raise CodesignError(
                f"{path / META_FILE}: format version {meta.get('format_version')!r}, this version reads {MEASURED_FORMAT_VERSION}"
            )
        prior = None
        if meta.get("prior"):
            from simulators.registry import make_hardware_model

            prior = make_hardware_model(str(meta["prior"]), catalog=catalog)
        energy_path = path / "energy"
        return cls(
            name=str(meta["name"]), latency=LatencyPredictor.load(path / "latency"), confidence=Confidence.from_dict(meta["confidence"]),
            prior=prior, prior_name=meta.get("prior"), device=meta.get("device"), clock_mhz=meta.get("clock_mhz"),
            energy=LatencyPredictor.load(energy_path) if energy_path.is_dir() else None,
            energy_confidence=None if meta.get("energy_confidence") is None else Confidence.from_dict(meta["energy_confidence"]),
            uses_accel=bool(meta.get("uses_accel", False)), catalog=catalog,
        )  # fmt: skip


def models_dir(explicit: str | Path | None = None) -> Path:
    """Where measured models live: ``explicit``, else ``$CODESIGN_MODELS``, else ``./models``."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(MODELS_ENV) or "models")


def load_measured(name: str, directory: str | Path | None = None, *, catalog: DeviceCatalog | None = None) -> MeasuredModel:
    """The measured model saved as ``<directory>/<name>`` (``measured:NAME`` in an experiment).

    Keyword-compatible with the hardware-model registry: registered as ``measured =
    codesign.predictors.measured:load_measured``, ``make_hardware_model("measured", name="board")`` opens it."""
    folder = models_dir(directory) / name
    if not (folder / META_FILE).is_file():
        root = models_dir(directory)
        known = sorted(p.name for p in root.iterdir() if (p / META_FILE).is_file()) if root.is_dir() else []
        raise CodesignError(
            f"unknown measured hardware model {name!r} in {root}; known: {', '.join(known) or 'none'}"
        )
    return MeasuredModel.load(folder, catalog=catalog)

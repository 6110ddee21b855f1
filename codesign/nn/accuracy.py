"""Real accuracy for a search: the experiment's ``accuracy`` section turned into a measuring evaluator.

Nothing heavy happens until the first measurement: data are loaded and (for ``supernet``) the supernet is
trained or read from the cache then. Measurements are cached on disk by content hash, so resumed runs,
other strategies and other workers reuse them.

The experiment's ``accuracy.threads`` is not applied here: torch's thread count is process-wide, so the
caller that owns the process sets it (the ``codesign run`` command does; a Python caller calls
``torch.set_num_threads`` itself). ``accuracy.device`` is: training and measurement run there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codesign.config.experiment import ExperimentConfig
from codesign.core.errors import CodesignError, ConfigError
from codesign.nn.training import Measurement, TrainSchedule


def default_cache_dir() -> Path:
    """``$CODESIGN_CACHE``, else ``$XDG_CACHE_HOME/codesign``, else ``~/.cache/codesign``."""
    if os.environ.get("CODESIGN_CACHE"):
        return Path(os.environ["CODESIGN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codesign"


class LazyEvaluator:
    """Builds the data splits and the evaluator on first use; then measures candidates."""

    def __init__(self, config: ExperimentConfig, space: Any, *, source: Any = None) -> None:
        self._config = config
        self._space = space
        self._source = source
        self._evaluator: Any = None
        self._failure: CodesignError | None = None

    @property
    def evaluator(self) -> Any:
        if self._failure is not None:  # bad data fail every trial alike: say so without loading them again
            raise self._failure
        if self._evaluator is None:
            try:
                self._evaluator = self._build()
            except CodesignError as exc:
                self._failure = exc
                raise
        return self._evaluator

    def _build(self) -> Any:
        from codesign.nn.device import resolve_device
        from codesign.nn.user_data import dataset_source

        acc = self._config.accuracy
        seed = self._config.budget.seed
        root = self._config.resolve(acc.data_dir)
        base = self._config.source.parent if self._config.source is not None else None
        try:
            device = resolve_device(acc.device)
        except CodesignError as exc:
            raise ConfigError("accuracy.device", str(exc)) from None
        source = self._source if self._source is not None else dataset_source(acc.dataset, base_dir=base)
        data = source.load(seed=seed, root=root, train_subset=acc.train_subset)
        if data.input_shape != tuple(self._space.input_shape):
            raise ConfigError(
                "accuracy.dataset",
                f"{acc.dataset} images are {data.input_shape} but space {self._space.name!r} expects {tuple(self._space.input_shape)}",
            )
        classes = getattr(self._space, "num_classes", None)  # not every space has a classifier head of its own
        if classes is not None and data.num_classes != classes:
            raise ConfigError(
                "accuracy.dataset",
                f"{acc.dataset} has {data.num_classes} classes but space {self._space.name!r} has {classes} "
                f"outputs (space.options: {{num_classes: {data.num_classes}}})",
            )
        cache = self._config.resolve(acc.cache_dir) or default_cache_dir()
        schedule = TrainSchedule(epochs=acc.epochs, batch_size=acc.batch_size, lr=acc.lr, qat_steps=acc.qat_steps)
        if acc.method == "supernet":
            from codesign.nn.supernet import SupernetEvaluator, SupernetSchedule

            try:
                options: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in acc.supernet.items()}
                supernet = SupernetSchedule(**options)
            except TypeError as exc:
                raise ConfigError("accuracy.supernet", f"unknown supernet option: {exc}") from None
            except CodesignError as exc:
                raise ConfigError("accuracy.supernet", str(exc)) from None
            return SupernetEvaluator(
                self._space, data, schedule=schedule, supernet_schedule=supernet, cache=str(cache), seed=seed,
                device=device,
            )
        from codesign.nn.training import ScratchEvaluator

        return ScratchEvaluator(self._space, data, schedule=schedule, cache=str(cache), seed=seed, device=device)

    def measure(self, arch: Any, weight_bits: Any, act_bits: Any, *, split: str = "val") -> Measurement:
        result: Measurement = self.evaluator.measure(arch, weight_bits, act_bits, split=split)
        return result

    def trained_model(self, arch: Any, weight_bits: Any, act_bits: Any) -> Any:
        """The trained model, on the CPU (for export and inspection, whichever device measured it)."""
        return self.evaluator.trained_model(arch, weight_bits, act_bits).cpu()

    def is_cached(self, arch: Any, weight_bits: Any, act_bits: Any) -> bool:
        result: bool = self.evaluator.is_cached(arch, weight_bits, act_bits)
        return result

    @property
    def data(self) -> Any:
        """The data splits the accuracy is measured on."""
        return self.evaluator.data


def make_accuracy_source(config: ExperimentConfig, space: Any, *, source: Any = None) -> LazyEvaluator:
    """The accuracy source of ``config``; ``source`` (a :class:`codesign.nn.data.DatasetSource`) replaces
    the data set ``accuracy.dataset`` names (data handed over in memory)."""
    return LazyEvaluator(config, space, source=source)

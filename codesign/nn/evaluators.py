"""The cached measurement pipeline: full-precision weights per architecture, a quantized copy per bit
assignment, and their accuracies, each stage cached by content hash (:mod:`codesign.nn.cache`).

:class:`ScratchEvaluator` trains each architecture from scratch (:mod:`codesign.nn.fitting`);
:class:`codesign.nn.supernet.SupernetEvaluator` takes its weights from a weight-sharing supernet. Neither
changes torch's process-wide thread count: the caller that owns the process sets it (the ``codesign run``
command does so from the experiment's ``accuracy.threads``; Python callers use ``torch.set_num_threads``).

Models train and are measured on the evaluator's ``device`` (:func:`codesign.nn.device.resolve_device`); the
models it hands out are on that device, and the weights it caches are stored from the CPU, so a cache
filled on a GPU serves a CPU and the other way round (cache keys do not name the device).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codesign.core.errors import CodesignError
from codesign.nn.cache import DiskCache, MemoryCache, content_key
from codesign.nn.data import DataSplits
from codesign.nn.device import resolve_device
from codesign.nn.fitting import TrainSchedule, accuracy, quantize, seeded_model, train_from_scratch
from codesign.quantization.fake import quant_layers, set_bits, set_quant_mode

SPLITS = ("val", "test")


def space_identity(space: Any) -> Any:
    """What the caches key a space on: its own ``cache_identity()`` where it has one (a user's model,
    whose factory is no value), else its fields."""
    identity = getattr(space, "cache_identity", None)
    return identity() if callable(identity) else asdict(space)


@dataclass(frozen=True)
class Measurement:
    """Accuracy of one candidate on one split (fractions in [0, 1]); ``seconds`` is the wall time of the
    call that produced it, ``cached`` whether nothing had to be trained or evaluated."""

    arch_id: str
    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]
    split: str
    fp32_acc: float
    quant_acc: float
    seconds: float
    cached: bool
    method: str
    cost_seconds: float = 0.0
    """Compute time it took to produce the weights behind this measurement (training, extraction,
    calibration, fine-tuning), whether or not it came from the cache."""


class CachedEvaluator:
    """The measurement pipeline shared by the from-scratch and supernet evaluators: a full-precision model
    per architecture (from :meth:`_float_model`), then a quantized copy per bit assignment; each stage's
    accuracies and weights are cached under a content hash."""

    method = "abstract"

    def __init__(
        self,
        space: Any,
        data: DataSplits,
        *,
        schedule: TrainSchedule,
        cache: DiskCache | str | Path | None,
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.space = space
        self.device = resolve_device(device)
        """Where models train and are measured (``auto`` resolves to the GPU when there is one)."""
        self.val_limit: int | None = None
        """Score validation accuracy on the first ``val_limit`` validation images only (a cheaper,
        noisier estimate for search-time measurement); ``None`` uses them all."""
        self.data = data
        self.schedule = schedule
        self.cache = (
            MemoryCache() if cache is None else cache if isinstance(cache, DiskCache) else DiskCache(cache)
        )
        self.seed = seed
        self.trainings = 0
        """How many models this evaluator really trained or fine-tuned (cache hits do not count)."""

    # subclasses: the full-precision weights of one architecture
    def _float_key_parts(self) -> dict[str, Any]:
        raise NotImplementedError

    def _make_float_model(self, arch: Any) -> nn.Module:
        raise NotImplementedError

    def _key(self, arch: Any, bits: tuple[tuple[int, ...], tuple[int, ...]] | None) -> str:
        parts: dict[str, Any] = {
            "method": self.method,
            "space": space_identity(self.space),
            "arch": self.space.arch_id(arch),
            "data": self.data.describe(),
            "seed": self.seed,
            **self._float_key_parts(),
        }
        if self.val_limit is not None:
            parts["val_limit"] = self.val_limit
        if bits is not None:
            parts.update(weight_bits=list(bits[0]), act_bits=list(bits[1]), quant=self.schedule.quant_part())
        return content_key(parts)

    def _bits(
        self, arch: Any, weight_bits: Sequence[int] | None, act_bits: Sequence[int] | None
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        n = len(self.space.network(arch).weighted_layers)
        w = tuple(int(b) for b in weight_bits) if weight_bits is not None else (8,) * n
        a = tuple(int(b) for b in act_bits) if act_bits is not None else (8,) * n
        if len(w) != n or len(a) != n:
            raise CodesignError(
                f"{self.space.arch_id(arch)}: expected {n} weight and act bits, got {len(w)} and {len(a)}"
            )
        return w, a

    def _scores(self, model: nn.Module) -> dict[str, float]:
        # the test split is scored only when asked for (see measure): the search never needs it
        return {"val": self._accuracy(model, "val")}

    def _accuracy(self, model: nn.Module, split: str) -> float:
        x, y = self.data.split(split)
        if split == "val" and self.val_limit is not None:
            x, y = x[: self.val_limit], y[: self.val_limit]
        return accuracy(model, x, y, device=self.device)

    def _score_split(self, key: str, record: dict[str, Any], split: str, model: nn.Module) -> dict[str, Any]:
        record = {**record, split: self._accuracy(model, split)}
        self.cache.put_json(key, record)
        return record

    def float_model(self, arch: Any) -> tuple[nn.Module, dict[str, Any]]:
        """The full-precision model of ``arch`` (on :attr:`device`) and its cached record (accuracies per
        split)."""
        key = self._key(arch, None)
        model = seeded_model(self.space, arch, self.seed)
        record, state = self.cache.get_json(key), self.cache.get_state(key)
        if record is not None and state is not None:
            model.load_state_dict(state)
            return model.to(self.device), record
        start = time.perf_counter()
        model = self._make_float_model(arch)
        self.trainings += 1
        record = {**self._scores(model), "seconds": time.perf_counter() - start}
        self.cache.put_state(key, model.state_dict())
        self.cache.put_json(key, record)
        return model, record

    def trained_model(
        self, arch: Any, weight_bits: Sequence[int] | None = None, act_bits: Sequence[int] | None = None
    ) -> nn.Module:
        """The trained model of ``arch`` in eval mode, on :attr:`device`: full precision when no bits are
        given, otherwise calibrated (and fine-tuned) at those bits, in quant mode."""
        model, _ = self.float_model(arch)
        if weight_bits is None and act_bits is None:
            return model.eval()
        bits = self._bits(arch, weight_bits, act_bits)
        self._quant_record(arch, bits, model)
        model.load_state_dict(self._required_state(self._key(arch, bits)))
        set_bits(model, *bits)
        set_quant_mode(model, "quant")
        return model.eval()

    def is_cached(self, arch: Any, weight_bits: Sequence[int] | None = None, act_bits: Sequence[int] | None = None) -> bool:
        """Whether :meth:`trained_model` finds everything in the cache (and so trains nothing)."""
        keys = [self._key(arch, None)]
        if weight_bits is not None or act_bits is not None:
            keys.append(self._key(arch, self._bits(arch, weight_bits, act_bits)))
        return all(key in self.cache and self.cache.get_json(key) is not None for key in keys)

    def _required_state(self, key: str) -> Mapping[str, torch.Tensor]:
        state = self.cache.get_state(key)
        if state is None:
            raise CodesignError(f"cache entry {key} has no weights")
        return state

    def _quant_record(
        self, arch: Any, bits: tuple[tuple[int, ...], tuple[int, ...]], model: nn.Module
    ) -> tuple[dict[str, Any], bool]:
        key = self._key(arch, bits)
        record = self.cache.get_json(key)
        if record is not None and key in self.cache:
            return record, True
        for layer in quant_layers(model):
            layer.act_quant.reset()
        start = time.perf_counter()
        quantize(model, *bits, self.data, self.schedule, seed=self.seed, device=self.device)
        if self.schedule.qat_steps:
            self.trainings += 1
        record = {**self._scores(model), "seconds": time.perf_counter() - start}
        self.cache.put_state(key, model.state_dict())
        self.cache.put_json(key, record)
        return record, False

    def measure(
        self,
        arch: Any,
        weight_bits: Sequence[int] | None = None,
        act_bits: Sequence[int] | None = None,
        *,
        split: str = "val",
    ) -> Measurement:
        """Accuracy of ``arch`` in full precision and at the given bits (default 8/8) on ``split``."""
        if split not in SPLITS:
            raise CodesignError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        start = time.perf_counter()
        bits = self._bits(arch, weight_bits, act_bits)
        key = self._key(arch, bits)
        fp_key = self._key(arch, None)
        quant, fp = self.cache.get_json(key), self.cache.get_json(fp_key)
        cached = quant is not None and fp is not None and split in quant and split in fp
        if quant is None or fp is None:
            model, fp = self.float_model(arch)
            quant, _ = self._quant_record(arch, bits, model)
        if split not in fp:
            fp = self._score_split(fp_key, fp, split, self.trained_model(arch))
        if split not in quant:
            quant = self._score_split(key, quant, split, self.trained_model(arch, *bits))
        return Measurement(
            arch_id=self.space.arch_id(arch),
            weight_bits=bits[0],
            act_bits=bits[1],
            split=split,
            fp32_acc=float(fp[split]),
            quant_acc=float(quant[split]),
            seconds=time.perf_counter() - start,
            cached=cached,
            method=self.method,
            cost_seconds=float(fp.get("seconds", 0.0)) + float(quant.get("seconds", 0.0)),
        )


class ScratchEvaluator(CachedEvaluator):
    """Trains every architecture from scratch with ``schedule`` (seeded by ``seed``)."""

    method = "scratch"

    def __init__(
        self,
        space: Any,
        data: DataSplits,
        *,
        schedule: TrainSchedule | None = None,
        cache: DiskCache | str | Path | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(space, data, schedule=schedule or TrainSchedule(), cache=cache, seed=seed, device=device)

    def _float_key_parts(self) -> dict[str, Any]:
        return {"train": self.schedule.train_part()}

    def _make_float_model(self, arch: Any) -> nn.Module:
        model = seeded_model(self.space, arch, self.seed)
        if getattr(self.space, "pretrained", False):  # a user's trained weights: quantized, never retrained
            return model.to(self.device)
        return train_from_scratch(model, self.data, self.schedule, seed=self.seed, device=self.device)

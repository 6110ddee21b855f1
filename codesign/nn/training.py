"""Training candidates and measuring their accuracy in full precision and at their bit-widths.

:class:`ScratchEvaluator` trains each architecture from scratch (seeded, a few epochs of Adam), then
quantizes a copy at the requested bits (post-training calibration, optionally a short quantization-aware
fine-tune) and measures both. Every stage is cached by content hash (:mod:`codesign.nn.cache`), so the same
architecture is trained once whatever bits are asked of it, and a repeated request trains nothing.
:class:`codesign.nn.supernet.SupernetEvaluator` has the same interface and takes its weights from a
weight-sharing supernet instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codesign.core.errors import CodesignError
from codesign.nn import models
from codesign.nn.cache import DiskCache, MemoryCache, content_key
from codesign.nn.data import DataSplits
from codesign.quantization.fake import calibrate, quant_layers, set_bits, set_quant_mode

SPLITS = ("val", "test")


@dataclass(frozen=True, kw_only=True)
class TrainSchedule:
    """How a candidate is trained from scratch and quantized. ``lr`` follows a cosine decay to zero."""

    epochs: int = 12
    batch_size: int = 128
    lr: float = 5e-3
    weight_decay: float = 1e-4
    calib_batches: int = 4
    """Training batches used for post-training calibration of activation ranges."""
    qat_steps: int = 0
    """Quantization-aware fine-tuning steps after calibration (0: post-training quantization only)."""
    qat_lr: float = 5e-4

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "calib_batches"):
            if getattr(self, name) < 1:
                raise CodesignError(f"schedule: {name} must be >= 1, got {getattr(self, name)}")
        if self.qat_steps < 0 or self.lr <= 0 or self.qat_lr <= 0:
            raise CodesignError("schedule: qat_steps must be >= 0 and learning rates > 0")

    def train_part(self) -> dict[str, Any]:
        """The fields that change the full-precision weights (cache key of the trained model)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
        }

    def quant_part(self) -> dict[str, Any]:
        return {
            "calib_batches": self.calib_batches,
            "qat_steps": self.qat_steps,
            "qat_lr": self.qat_lr,
            "batch_size": self.batch_size,
        }


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


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches in a seeded random order (``generator``) or in order (``None``)."""
    order = torch.randperm(len(y), generator=generator) if generator is not None else torch.arange(len(y))
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        xb = x[idx]
        # channels-last makes CPU depthwise convolutions (forward and backward) about twice as fast
        yield (xb.contiguous(memory_format=torch.channels_last) if xb.dim() == 4 else xb), y[idx]


def seeded_model(space: Any, arch: Any, seed: int) -> nn.Module:
    """:func:`codesign.nn.models.build_model` with weights initialised from ``seed`` (the global torch RNG
    is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.build_model(space, arch)


def build_model(space: Any, arch: Any) -> nn.Module:
    """A fresh quantizable model of ``arch``; its quantized layers follow ``space.network(arch)``'s
    weighted layers (see :func:`codesign.quantization.fake.set_bits`)."""
    return seeded_model(space, arch, 0)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy in eval mode."""
    model.eval()
    correct = 0
    for xb, yb in batches(x, y, batch_size, None):
        correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(len(y), 1)


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    generator: torch.Generator,
) -> None:
    """``steps`` Adam steps with cosine learning-rate decay over seeded shuffled mini-batches."""
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + np.cos(np.pi * min(i, steps) / steps))
    )
    model.train()
    done = 0
    while done < steps:
        for xb, yb in batches(x, y, batch_size, generator):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            sched.step()
            done += 1
            if done == steps:
                break


def train_from_scratch(
    model: nn.Module, data: DataSplits, schedule: TrainSchedule, *, seed: int
) -> nn.Module:
    set_quant_mode(model, "float")
    steps = schedule.epochs * -(-len(data.train_y) // schedule.batch_size)
    gen = torch.Generator().manual_seed(seed)
    fit(
        model,
        data.train_x,
        data.train_y,
        steps=steps,
        batch_size=schedule.batch_size,
        lr=schedule.lr,
        weight_decay=schedule.weight_decay,
        generator=gen,
    )
    return model


def quantize(
    model: nn.Module,
    weight_bits: Sequence[int],
    act_bits: Sequence[int],
    data: DataSplits,
    schedule: TrainSchedule,
    *,
    seed: int,
) -> nn.Module:
    """Set the bits, calibrate activation ranges on training batches, and fine-tune for
    ``schedule.qat_steps`` steps when asked. Leaves ``model`` in quant and eval mode."""
    set_bits(model, weight_bits, act_bits)
    gen = torch.Generator().manual_seed(seed + 1)
    calib = [
        xb
        for _, (xb, _) in zip(
            range(schedule.calib_batches),
            batches(data.train_x, data.train_y, schedule.batch_size, gen),
            strict=False,
        )
    ]
    calibrate(model, calib)
    if schedule.qat_steps:
        fit(
            model,
            data.train_x,
            data.train_y,
            steps=schedule.qat_steps,
            batch_size=schedule.batch_size,
            lr=schedule.qat_lr,
            weight_decay=0.0,
            generator=gen,
        )
    model.eval()
    return model


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (``None``: unchanged), restoring the previous count.
    Small CPU models train far faster on one thread than on several contended ones."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
        threads: int | None = 1,
    ) -> None:
        self.space = space
        self.threads = threads
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
            "space": asdict(self.space),
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
        return accuracy(model, x, y)

    def _score_split(self, key: str, record: dict[str, Any], split: str, model: nn.Module) -> dict[str, Any]:
        record = {**record, split: self._accuracy(model, split)}
        self.cache.put_json(key, record)
        return record

    def float_model(self, arch: Any) -> tuple[nn.Module, dict[str, Any]]:
        """The full-precision model of ``arch`` and its cached record (accuracies per split)."""
        key = self._key(arch, None)
        model = seeded_model(self.space, arch, self.seed)
        record, state = self.cache.get_json(key), self.cache.get_state(key)
        if record is not None and state is not None:
            model.load_state_dict(state)
            return model, record
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
        """The trained model of ``arch`` in eval mode: full precision when no bits are given, otherwise
        calibrated (and fine-tuned) at those bits, in quant mode."""
        with torch_threads(self.threads):
            model, _ = self.float_model(arch)
            if weight_bits is None and act_bits is None:
                return model.eval()
            bits = self._bits(arch, weight_bits, act_bits)
            self._quant_record(arch, bits, model)
        model.load_state_dict(self._required_state(self._key(arch, bits)))
        set_bits(model, *bits)
        set_quant_mode(model, "quant")
        return model.eval()

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
        quantize(model, *bits, self.data, self.schedule, seed=self.seed)
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
            with torch_threads(self.threads):
                model, fp = self.float_model(arch)
                quant, _ = self._quant_record(arch, bits, model)
        if split not in fp:
            with torch_threads(self.threads):
                fp = self._score_split(fp_key, fp, split, self.trained_model(arch))
        if split not in quant:
            with torch_threads(self.threads):
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
        threads: int | None = 1,
    ) -> None:
        super().__init__(
            space, data, schedule=schedule or TrainSchedule(), cache=cache, seed=seed, threads=threads
        )

    def _float_key_parts(self) -> dict[str, Any]:
        return {"train": self.schedule.train_part()}

    def _make_float_model(self, arch: Any) -> nn.Module:
        model = seeded_model(self.space, arch, self.seed)
        return train_from_scratch(model, self.data, self.schedule, seed=self.seed)

"""Training candidates and measuring their accuracy in full precision and at their bit-widths.

:class:`ScratchEvaluator` trains each architecture from scratch (seeded, a few epochs of Adam), then
quantizes a copy at the requested bits (post-training calibration, optionally a short quantization-aware
fine-tune) and measures both. Every stage is cached by content hash (:mod:`codesign.nn.cache`), so the same
architecture is trained once whatever bits are asked of it, and a repeated request trains nothing.
:class:`codesign.nn.supernet.SupernetEvaluator` has the same interface and takes its weights from a
weight-sharing supernet instead.

The code lives in :mod:`codesign.nn.fitting` (schedule, training, quantization, accuracy) and
:mod:`codesign.nn.evaluators` (the cached measurement pipeline); this module gathers their public names.

Nothing here changes torch's process-wide thread count. Small CPU models train far faster on one thread
than on several contended ones: the ``codesign run`` command sets it from the experiment's
``accuracy.threads``; a Python caller calls ``torch.set_num_threads`` itself.
"""

from __future__ import annotations

from codesign.nn.evaluators import SPLITS, CachedEvaluator, Measurement, ScratchEvaluator
from codesign.nn.fitting import (
    TrainSchedule,
    accuracy,
    batches,
    build_model,
    fit,
    quantize,
    seeded_model,
    train_from_scratch,
)

__all__ = [
    "SPLITS",
    "CachedEvaluator",
    "Measurement",
    "ScratchEvaluator",
    "TrainSchedule",
    "accuracy",
    "batches",
    "build_model",
    "fit",
    "quantize",
    "seeded_model",
    "train_from_scratch",
]

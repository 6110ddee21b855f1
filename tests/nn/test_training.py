"""From-scratch measurement: real accuracy, determinism under a seed, cache hits, trained models back."""

from __future__ import annotations

import pytest
import torch

from codesign.core.errors import CodesignError
from codesign.nn.cache import DiskCache, content_key
from codesign.nn.training import ScratchEvaluator, TrainSchedule, accuracy
from codesign.quantization.fake import get_bits, integer_conv2d, quant_layers

FAST = TrainSchedule(epochs=6, batch_size=64, lr=5e-3)


def test_same_seed_same_accuracy_and_real_learning(space, digits, tmp_path):
    arch = space.from_id("8-k3e2_12-k3e2_16-k3e2")
    n = len(space.network(arch).weighted_layers)
    bits = ((4,) * n, (8,) * n)
    a = ScratchEvaluator(space, digits, schedule=FAST, seed=3).measure(arch, *bits)
    b = ScratchEvaluator(space, digits, schedule=FAST, seed=3, cache=tmp_path).measure(arch, *bits)
    assert (a.fp32_acc, a.quant_acc) == (b.fp32_acc, b.quant_acc)
    assert a.fp32_acc > 0.6  # ten classes: chance is 0.1
    assert not a.cached and a.method == "scratch" and a.split == "val"
    low = ScratchEvaluator(space, digits, schedule=FAST, seed=3).measure(arch, (2,) * n, (4,) * n)
    assert low.fp32_acc == a.fp32_acc and low.quant_acc < a.quant_acc


def test_second_measurement_is_a_cache_hit(space, digits, tmp_path):
    arch = space.smallest()
    n = len(space.network(arch).weighted_layers)
    first = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path)
    m1 = first.measure(arch, (8,) * n, (8,) * n)
    m1b = first.measure(arch, (4,) * n, (8,) * n)  # new bits: quantize again, do not retrain
    assert first.trainings == 1 and not m1b.cached
    again = ScratchEvaluator(space, digits, schedule=FAST, cache=DiskCache(tmp_path))
    m2 = again.measure(arch, (8,) * n, (8,) * n)
    assert m2.cached and again.trainings == 0
    assert (m2.fp32_acc, m2.quant_acc) == (m1.fp32_acc, m1.quant_acc)
    test = again.measure(arch, (8,) * n, (8,) * n, split="test")  # scored on demand, not retrained
    assert not test.cached and test.split == "test" and again.trainings == 0
    repeat = again.measure(arch, (8,) * n, (8,) * n, split="test")
    assert repeat.cached and (repeat.fp32_acc, repeat.quant_acc) == (test.fp32_acc, test.quant_acc)
    # a different schedule is a different entry
    other = ScratchEvaluator(space, digits, schedule=TrainSchedule(epochs=5), cache=tmp_path)
    other.measure(arch, (8,) * n, (8,) * n)
    assert other.trainings == 1


def test_trained_model_reproduces_the_measurement(space, digits, tmp_path):
    arch = space.from_id("8-k3e1_12-k3e2_16-k5e1")
    n = len(space.network(arch).weighted_layers)
    w = tuple(4 if i % 2 else 8 for i in range(n))
    ev = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path)
    m = ev.measure(arch, w, (8,) * n)
    model = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path).trained_model(arch, w, (8,) * n)
    assert get_bits(model) == (w, (8,) * n)
    assert accuracy(model, digits.val_x, digits.val_y) == m.quant_acc
    fp = ev.trained_model(arch)
    assert accuracy(fp, digits.val_x, digits.val_y) == m.fp32_acc
    # the stem of the trained, calibrated model computes what integer arithmetic computes
    stem = quant_layers(model)[0]
    out = stem(digits.val_x[:8])
    assert torch.allclose(out, integer_conv2d(digits.val_x[:8], stem), atol=1e-4)


def test_bad_requests_are_errors(space, digits):
    ev = ScratchEvaluator(space, digits, schedule=FAST)
    with pytest.raises(CodesignError, match="unknown split 'train'"):
        ev.measure(space.smallest(), split="train")
    with pytest.raises(CodesignError, match="expected .* weight and act bits"):
        ev.measure(space.smallest(), (8,), (8,))
    with pytest.raises(CodesignError, match="epochs must be >= 1"):
        TrainSchedule(epochs=0)


def test_content_key_depends_on_every_part():
    base = {"arch": "a", "bits": [4, 8]}
    assert content_key(base) == content_key(dict(reversed(list(base.items()))))
    assert content_key(base) != content_key({**base, "bits": [8, 4]})


def test_val_limit_scores_a_prefix_of_the_validation_split(space, digits, tmp_path):
    arch = space.smallest()
    full = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path)
    part = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path)
    part.val_limit = 100
    m_full, m_part = full.measure(arch), part.measure(arch)
    model = full.trained_model(arch)
    assert m_part.fp32_acc == accuracy(model, digits.val_x[:100], digits.val_y[:100])
    assert m_full.fp32_acc == accuracy(model, digits.val_x, digits.val_y)
    assert part.trainings == 1  # its own cache entry (retrained deterministically: same weights)

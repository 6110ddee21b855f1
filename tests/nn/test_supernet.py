"""Weight-sharing supernet: subnets are exact slices, training is seeded and cached, measurement works."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codesign.core.errors import CodesignError
from codesign.nn.supernet import Supernet, SupernetEvaluator, SupernetSchedule, train_supernet
from codesign.nn.training import TrainSchedule, accuracy
from codesign.quantization.fake import quant_layers
from codesign.quantization.sensitivity import TraceSettings, hessian_traces, weighted_layers
from search_spaces.registry import make_space

TINY = SupernetSchedule(steps=30, batch_size=32, n_random=1, bn_batches=4)


def test_extracted_subnet_computes_the_supernet_slice(space, digits):
    supernet = Supernet(space, seed=1)
    rng = np.random.default_rng(0)
    x = digits.train_x[:16]
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(4))]:
        model = supernet.extract(arch).train()  # batch statistics, as in the supernet's forward
        assert len(quant_layers(model)) == len(space.network(arch).weighted_layers)
        with torch.no_grad():
            assert torch.allclose(supernet.forward(arch, x), model(x), atol=1e-5)


def test_random_bits_change_the_subnet_output(space, digits):
    supernet = Supernet(space, seed=1)
    arch = space.largest()
    n = space.n_weighted(arch)
    x = digits.train_x[:16]
    with torch.no_grad():
        float_out = supernet.forward(arch, x)
        w8 = supernet.forward(arch, x, [(8, 8)] * n)
        w2 = supernet.forward(arch, x, [(2, 4)] * n)
    assert (w8 - float_out).abs().mean() < (w2 - float_out).abs().mean()


def test_training_is_seeded(space, digits):
    short = SupernetSchedule(steps=4, batch_size=16, n_random=1, quant_prob=1.0)
    a = train_supernet(space, digits, short, seed=5)
    b = train_supernet(space, digits, short, seed=5)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert a.train_seconds > 0


def test_evaluator_caches_the_supernet_and_measures(space, digits, tmp_path):
    schedule = TrainSchedule(batch_size=64)
    first = SupernetEvaluator.create(space, digits, schedule=schedule, supernet_schedule=TINY, cache=tmp_path)
    assert not first.supernet.cached
    arch = space.largest()
    n = space.n_weighted(arch)
    m = first.measure(arch, (8,) * n, (8,) * n)
    assert m.method == "supernet" and m.fp32_acc > 0.3  # chance is 0.1 on ten classes
    again = SupernetEvaluator.create(space, digits, schedule=schedule, supernet_schedule=TINY, cache=tmp_path)
    assert again.supernet.cached and again.supernet.train_seconds == first.supernet.train_seconds
    assert again.measure(arch, (8,) * n, (8,) * n).cached
    model = again.trained_model(arch)
    assert accuracy(model, digits.val_x, digits.val_y) == m.fp32_acc


def test_supernet_needs_an_mbconv_space():
    with pytest.raises(CodesignError, match="needs an MBConv space"):
        Supernet(make_space("resnet_digits"))


def test_layer_names_point_at_the_modules_each_layer_is_sliced_from(space):
    supernet = Supernet(space, seed=2)
    modules = dict(supernet.net.named_modules())
    rng = np.random.default_rng(1)
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(6))]:
        names = supernet.layer_names(arch)
        layers = weighted_layers(supernet.extract(arch))
        assert len(names) == len(layers) == space.n_weighted(arch)
        for name, (_, layer) in zip(names, layers, strict=True):
            small, big = layer.weight, modules[name].weight
            lo = (big.shape[-1] - small.shape[-1]) // 2 if small.dim() == 4 else 0
            piece = big[: small.shape[0], : small.shape[1]]
            if small.dim() == 4:
                piece = piece[:, :, lo : lo + small.shape[2], lo : lo + small.shape[3]]
            assert torch.equal(small, piece), name
    assert supernet.layer_names(space.largest()) == tuple(n for n, _ in weighted_layers(supernet.net))


def test_layer_traces_of_the_largest_subnet_are_cached(space, digits, tmp_path, monkeypatch):
    schedule = TrainSchedule(batch_size=64)
    settings = TraceSettings(max_iter=5, tol=0.0)
    first = SupernetEvaluator.create(space, digits, schedule=schedule, supernet_schedule=TINY, cache=tmp_path)
    traces = first.layer_traces(images=64, settings=settings)
    assert tuple(traces) == first.supernet.layer_names(space.largest())
    model = first.trained_model(space.largest())
    x, y = digits.train_x[:64], digits.train_y[:64]
    direct = hessian_traces(model, F.cross_entropy, [(x, y)], settings=settings)
    assert [traces[t.name] for t in direct] == pytest.approx([t.trace_per_param for t in direct], rel=1e-9)
    assert sum(traces.values()) > 0

    def no_recompute(*args, **kwargs):
        raise AssertionError("traces recomputed despite the cache")

    monkeypatch.setattr("codesign.nn.supernet.hessian_traces", no_recompute)
    again = SupernetEvaluator.create(space, digits, schedule=schedule, supernet_schedule=TINY, cache=tmp_path)
    assert again.layer_traces(images=64, settings=settings) == traces
    with pytest.raises(CodesignError, match="images must be >= 1"):
        again.layer_traces(images=0)

"""``accuracy.device``: how ``auto``, ``cpu``, ``cuda`` and ``cuda:N`` resolve (the GPU branches with torch's
CUDA queries patched, so no GPU is needed), the checks at load and build, that the device leaves the
experiment's identity and the cache keys alone, and that training on ``device="cpu"`` is bit for bit the
path it always was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codesign.config.experiment import config_from_record, config_record, load_config
from codesign.core.errors import CodesignError, ConfigError
from codesign.nn.cache import DiskCache
from codesign.nn.data import DataSplits
from codesign.nn.device import resolve_device
from codesign.nn.fitting import TrainSchedule, accuracy, batches, quantize, seeded_model, train_from_scratch
from codesign.nn.training import ScratchEvaluator
from codesign.quantization.sensitivity import TraceSettings, hessian_traces
from codesign.search.build import build
from search_spaces.mbconv import MBConvSpace
from tests.helpers import digits_yaml


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_is_the_cpu_without_a_gpu_and_the_gpu_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    _gpus(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("cuda") == torch.device("cuda", 0)


def test_a_gpu_that_is_not_there_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    with pytest.raises(CodesignError, match=r"device 'cuda:1' asked for, but torch sees no CUDA GPU.*use cpu or auto"):
        resolve_device("cuda:1")
    _gpus(monkeypatch, 1)
    with pytest.raises(CodesignError, match=r"device 'cuda:1' asked for, but this machine has 1 CUDA GPU \(cuda:0\)"):
        resolve_device("cuda:1")
    with pytest.raises(CodesignError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_the_device_is_checked_at_load_and_at_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = tmp_path / "dg.yaml"
    exp.write_text(digits_yaml(tmp_path).replace("epochs: 2", "epochs: 2, device: gpu"))
    with pytest.raises(ConfigError, match=r"^accuracy\.device: expected auto, cpu, cuda or cuda:N"):
        load_config(exp)
    _gpus(monkeypatch, 0)
    exp.write_text(digits_yaml(tmp_path).replace("epochs: 2", "epochs: 2, device: 'cuda:1'"))
    with pytest.raises(ConfigError, match=r"^accuracy\.device: device 'cuda:1' asked for") as info:
        build(load_config(exp))
    assert "\n" not in str(info.value)
    exp.write_text(digits_yaml(tmp_path).replace("epochs: 2", "epochs: 2, device: cpu"))
    problem, _ = build(load_config(exp))
    assert problem.accuracy.evaluator.device == torch.device("cpu")  # type: ignore[attr-defined]


def test_the_device_is_machine_local(tmp_path: Path) -> None:
    exp = tmp_path / "dg.yaml"
    records = []
    for device in ("auto", "cpu", "'cuda:3'"):
        exp.write_text(digits_yaml(tmp_path).replace("epochs: 2", f"epochs: 2, device: {device}"))
        records.append(config_record(load_config(exp)))
    assert records[0]["identity"] == records[1]["identity"] == records[2]["identity"]
    assert records[2]["accuracy"]["device"] == "cuda:3"  # recorded as run ...
    assert config_from_record(records[2]).accuracy.device == "auto"  # ... and rebuilt with this machine's choice


def _tiny(space: MBConvSpace) -> tuple[torch.nn.Module, object]:
    arch = space.smallest()
    return seeded_model(space, arch, 0), arch


def test_training_on_the_cpu_device_is_the_old_path_bit_for_bit(digits: DataSplits, space: MBConvSpace) -> None:
    schedule = TrainSchedule(epochs=1, batch_size=64, calib_batches=2, qat_steps=3)
    models = []
    for device in (None, "cpu", torch.device("cpu")):
        model, arch = _tiny(space)
        train_from_scratch(model, digits, schedule, seed=0, device=device)
        quantize(model, (8,) * space.n_weighted(arch), (8,) * space.n_weighted(arch), digits, schedule, seed=0, device=device)
        models.append((model.state_dict(), accuracy(model, digits.val_x, digits.val_y, device=device)))
    for state, acc in models[1:]:
        assert acc == models[0][1]
        assert all(torch.equal(state[k], models[0][0][k]) for k in state)
    xb, yb = next(batches(digits.train_x, digits.train_y, 32, None, "meta"))  # batches go where they are sent
    assert xb.device.type == yb.device.type == "meta"


def test_an_evaluator_on_the_cpu_measures_and_caches_as_before(digits: DataSplits, space: MBConvSpace, tmp_path: Path) -> None:
    schedule = TrainSchedule(epochs=1, batch_size=64)
    arch = space.smallest()
    old = ScratchEvaluator(space, digits, schedule=schedule, cache=tmp_path / "a").measure(arch)
    new = ScratchEvaluator(space, digits, schedule=schedule, cache=tmp_path / "b", device="cpu").measure(arch)
    assert (old.fp32_acc, old.quant_acc) == (new.fp32_acc, new.quant_acc)
    same = ScratchEvaluator(space, digits, schedule=schedule, cache=tmp_path / "a", device="auto")
    assert same._key(arch, None) == ScratchEvaluator(space, digits, schedule=schedule)._key(arch, None)
    state = DiskCache(tmp_path / "b").get_state(same._key(arch, None))
    assert state is not None and all(t.device.type == "cpu" for t in state.values())


def test_hessian_traces_are_the_same_wherever_the_model_was_placed(digits: DataSplits, space: MBConvSpace) -> None:
    model, _ = _tiny(space)
    batch = [(digits.train_x[:64], digits.train_y[:64])]
    settings = TraceSettings(max_iter=3, tol=0.0)
    a = hessian_traces(model, torch.nn.functional.cross_entropy, batch, settings=settings)
    b = hessian_traces(model.to("cpu"), torch.nn.functional.cross_entropy, batch, settings=settings)
    assert [t.trace for t in a] == [t.trace for t in b]
    assert all(t.iterations == 3 for t in a)

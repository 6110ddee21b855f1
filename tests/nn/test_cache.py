"""The content-addressed cache detects corrupt and edited entries: each is reported once, naming its file,
and recomputed; a measurement is never taken from one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from codesign.core.errors import CodesignWarning
from codesign.nn.cache import DiskCache
from codesign.nn.training import ScratchEvaluator, TrainSchedule

FAST = TrainSchedule(epochs=2, batch_size=64, lr=5e-3)


def _edit_json(path: Path, change: dict[str, object]) -> None:
    header, _, body = path.read_bytes().partition(b"\n")
    path.write_bytes(header + b"\n" + json.dumps({**json.loads(body), **change}).encode())


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "garbage": lambda p: p.write_bytes(b"\x00\xff" * 64),
    "empty": lambda p: p.write_bytes(b""),
    "no header": lambda p: p.write_bytes(p.read_bytes().partition(b"\n")[2]),
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_entry_reads_as_absent_and_is_removed(tmp_path: Path, how: str) -> None:
    cache = DiskCache(tmp_path)
    cache.put_json("ab12", {"accuracy": 0.9})
    cache.put_state("ab12", {"w": torch.arange(6.0)})
    for path, get in ((tmp_path / "ab" / "ab12.json", cache.get_json), (tmp_path / "ab" / "ab12.pt", cache.get_state)):
        CORRUPTIONS[how](path)
        with pytest.warns(CodesignWarning, match=f"cache entry {path} "):
            assert get("ab12") is None
        assert not path.exists()


def test_an_edited_but_valid_entry_fails_its_checksum(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.put_json("cd34", {"accuracy": 0.9})
    assert cache.get_json("cd34") == {"accuracy": 0.9}
    _edit_json(tmp_path / "cd" / "cd34.json", {"accuracy": 0.0123})
    with pytest.warns(CodesignWarning, match="does not match its checksum"):
        assert cache.get_json("cd34") is None


def test_a_measurement_from_a_corrupt_cache_is_recomputed_not_used(space, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    arch = space.smallest()
    n = len(space.network(arch).weighted_layers)
    bits = ((8,) * n, (8,) * n)
    first = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path).measure(arch, *bits)
    entries = sorted(tmp_path.rglob("*.json"))
    assert entries
    for entry in entries:
        _edit_json(entry, {"quant_acc": 0.0123, "fp32_acc": 0.0123})
    for state in tmp_path.rglob("*.pt"):
        state.write_bytes(b"not a state dict")
    again = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path)
    with pytest.warns(CodesignWarning, match="recomputing"):
        second = again.measure(arch, *bits)
    assert again.trainings == 1 and not second.cached
    assert (second.fp32_acc, second.quant_acc) == (first.fp32_acc, first.quant_acc)
    third = ScratchEvaluator(space, digits, schedule=FAST, cache=tmp_path)
    assert third.measure(arch, *bits).cached and third.trainings == 0  # the recomputed entries are sound


def test_a_measurement_does_not_depend_on_where_the_float_model_came_from(space, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Quantizing a freshly trained model and one read back from the cache gives the same numbers, so a
    worker with an empty cache folder computes what the worker that trained the model computed."""
    schedule = TrainSchedule(epochs=2, batch_size=64, lr=5e-3, qat_steps=5)
    arch = space.from_id("8-k3e2_12-k3e2_16-k3e2")
    n = len(space.network(arch).weighted_layers)
    bits = ((4,) * n, (8,) * n)
    fresh = ScratchEvaluator(space, digits, schedule=schedule, cache=tmp_path / "a").measure(arch, *bits)
    ScratchEvaluator(space, digits, schedule=schedule, cache=tmp_path / "b").float_model(arch)
    from_cache = ScratchEvaluator(space, digits, schedule=schedule, cache=tmp_path / "b")
    loaded = from_cache.measure(arch, *bits)
    assert from_cache.trainings == 1  # the fine-tuning only: the float model was read back
    assert (loaded.fp32_acc, loaded.quant_acc) == (fresh.fp32_acc, fresh.quant_acc)
    a = ScratchEvaluator(space, digits, schedule=schedule, cache=tmp_path / "a").trained_model(arch, *bits).state_dict()
    b = from_cache.trained_model(arch, *bits).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "bit-identical weights and ranges"

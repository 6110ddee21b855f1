"""Library calls leave process-wide state alone: torch's thread count, matplotlib's backend, and no
module-level cache that a second problem in the same process could see."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from codesign.config.experiment import load_config
from codesign.experiment.run import run_experiment
from codesign.nn.data import load_dataset
from codesign.nn.training import ScratchEvaluator, TrainSchedule
from search_spaces.registry import make_space
from tests.helpers import digits_yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def set_threads_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every ``torch.set_num_threads`` call made during the test (the real one still runs)."""
    calls: list[int] = []
    real = torch.set_num_threads

    def record(n: int) -> None:
        calls.append(n)
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", record)
    return calls


def test_an_experiment_through_the_python_api_keeps_the_thread_count(tmp_path: Path, set_threads_calls: list[int]) -> None:
    before = torch.get_num_threads()
    other = before + 1
    exp = tmp_path / "dg.yaml"
    text = digits_yaml(tmp_path, trials=2).replace("epochs: 2", f"epochs: 1, threads: {other}")
    exp.write_text(text)
    config = load_config(exp)
    assert config.accuracy.threads == other
    result = run_experiment(config, out_dir=tmp_path / "out")
    assert result.outcome.completed == 2 and result.verification is not None
    assert set_threads_calls == []
    assert torch.get_num_threads() == before


def test_an_evaluator_keeps_the_thread_count(tmp_path: Path, set_threads_calls: list[int]) -> None:
    before = torch.get_num_threads()
    space = make_space("mbconv_digits")
    data = load_dataset("digits", seed=0, train_subset=200)
    evaluator = ScratchEvaluator(space, data, schedule=TrainSchedule(epochs=1), cache=tmp_path / "cache")
    arch = space.smallest()
    evaluator.measure(arch, split="test")
    evaluator.trained_model(arch)
    assert set_threads_calls == [] and torch.get_num_threads() == before


def test_the_run_command_sets_the_threads_of_its_process_once(
    tmp_path: Path, set_threads_calls: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import codesign.experiment.run as experiment_run
    from codesign.cli import main
    from codesign.core.errors import CodesignError

    before = torch.get_num_threads()
    seen: list[int] = []

    def stop(*args: object, **kwargs: object) -> None:
        seen.append(torch.get_num_threads())
        raise CodesignError("stopped by the test")

    monkeypatch.setattr(experiment_run, "run_experiment", stop)
    exp = tmp_path / "dg.yaml"
    exp.write_text(digits_yaml(tmp_path).replace("epochs: 2", "epochs: 1, threads: 3"))
    try:
        assert main(["run", str(exp), "--quiet"]) == 2
    finally:
        torch.set_num_threads(before)  # the command owns its process; this test borrowed pytest's
    assert "stopped by the test" in capsys.readouterr().err
    assert set_threads_calls[0] == 3 and seen == [3]


def test_plotting_a_front_leaves_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import matplotlib
        matplotlib.use("svg")
        from codesign.results.front import compute_front
        rows = [
            {{"trial": i, "state": "COMPLETE", "key": str(i), "arch": "a", "bits": "", "accelerator": "",
              "candidate": "", "violations": "", "error": "", "verified": False,
              "accuracy": acc, "latency_ms": lat}}
            for i, (acc, lat) in enumerate([(0.9, 3.0), (0.8, 1.0), (0.7, 2.0)])
        ]
        front = compute_front(rows, study="s", objectives=[("accuracy", "maximize"), ("latency_ms", "minimize")])
        assert [r["trial"] for r in front.rows] == [0, 1]
        front.plot({str(tmp_path / "front.png")!r})
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert "matplotlib.pyplot" not in sys.modules
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "front.png").stat().st_size > 1000


def test_the_builtin_device_catalog_is_read_afresh() -> None:
    from simulators.devices import builtin_devices, default_catalog

    assert not hasattr(builtin_devices, "cache_clear")  # no process-wide lru_cache
    first, second = default_catalog(), default_catalog()
    assert first == second and first.devices is not second.devices

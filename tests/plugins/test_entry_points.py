"""Plugins installed as a separate package are found through their entry-point groups and used by
``codesign run``: a tiny package with a hardware model, a search space, a data set and a strategy, put on
``sys.path`` with its own entry-point metadata (a ``.dist-info`` folder, as pip installs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = '''
"""A third-party package: one plugin of each kind."""

import dataclasses

import optuna

from codesign.nn.data import DigitsDataset
from codesign.search.strategies import Strategy
from search_spaces.registry import mbconv_digits
from simulators.base import HardwareModel
from simulators.overlay import OverlayModel


class DemoModel(HardwareModel):
    """The overlay template under another name, at half its speed."""

    name = "demo_hw"

    def __init__(self, *, catalog=None, slowdown=2.0):
        super().__init__(catalog=catalog)
        self.slowdown = slowdown
        self.inner = OverlayModel(catalog=self.catalog)

    def evaluate(self, network, accel):
        report = self.inner.evaluate(network, dataclasses.replace(accel, template="overlay"))
        return dataclasses.replace(
            report, latency_ms=report.latency_ms * self.slowdown, throughput_fps=report.throughput_fps / self.slowdown,
            per_layer=tuple(dataclasses.replace(c, latency_ms=c.latency_ms * self.slowdown) for c in report.per_layer),
        )

    def best_accelerator(self, network, device, clock_mhz=None):
        accel, _ = self.inner.best_accelerator(network, device, clock_mhz)
        mine = dataclasses.replace(accel, template=self.name)
        return mine, self.evaluate(network, mine)


def demo_space(**options):
    return dataclasses.replace(mbconv_digits(**options), name="demo_space")


class DemoDigits(DigitsDataset):
    name = "demo_digits"


class DemoStrategy(Strategy):
    name = "demo_random"

    def __init__(self, **options):
        if options:
            raise ValueError(f"no options, got {sorted(options)}")

    def sampler(self, problem, seed):
        return optuna.samplers.RandomSampler(seed=seed)
'''

ENTRY_POINTS = """\
[codesign.hardware_models]
demo_hw = codesign_demo_plugin:DemoModel
overlay = codesign_demo_plugin:DemoModel

[codesign.search_spaces]
demo_space = codesign_demo_plugin:demo_space

[codesign.datasets]
demo_digits = codesign_demo_plugin:DemoDigits

[codesign.strategies]
demo_random = codesign_demo_plugin:DemoStrategy
"""

EXPERIMENT = """\
name: demo
space: {architecture: demo_space, weight_bits: [8], act_bits: [8], options: {depths: [1], expansions: [1]}}
hardware: {model: demo_hw, device: xczu3eg, clock_mhz: 200, options: {slowdown: 3.0}}
accuracy: {method: scratch, dataset: demo_digits, epochs: 1, cache_dir: CACHE}
objectives: {accuracy: maximize, latency_ms: minimize}
strategy: {name: demo_random}
budget: {trials: 3, seed: 0}
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "codesign_demo_plugin").mkdir(parents=True)
    (site / "codesign_demo_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "codesign_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: codesign-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def _codesign(args: list[str], plugin_path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "codesign", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


@pytest.mark.slow
def test_codesign_run_finds_and_uses_every_kind_of_plugin(plugin_path: Path, tmp_path: Path) -> None:
    experiment = tmp_path / "demo.yaml"
    experiment.write_text(EXPERIMENT.replace("CACHE", str(tmp_path / "cache")))
    done = _codesign(["run", str(experiment), "--out", str(tmp_path / "out")], plugin_path, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    pairs = json.loads((tmp_path / "out" / "front.json").read_text())["pairs"]
    assert pairs
    for pair in pairs:
        assert pair["candidate"]["space"] == "demo_space"
        assert pair["candidate"]["accelerator"]["template"] == "demo_hw"
    listed = _codesign(["hardware", "list"], plugin_path, tmp_path)
    assert listed.returncode == 0 and "demo_hw" in listed.stdout
    # the package's attempt to take over the built-in 'overlay' is ignored, and said so
    assert "ignored (takes a built-in name): overlay = codesign_demo_plugin:DemoModel" in listed.stderr


def test_the_plugin_latency_is_the_plugins_own(plugin_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: the hardware options reach the plugin, and its numbers are the ones recorded."""
    import importlib.metadata

    monkeypatch.syspath_prepend(str(plugin_path))
    importlib.invalidate_caches()
    from codesign.core.plugins import DATASETS, HARDWARE_MODELS, SEARCH_SPACES, STRATEGIES, plugin_names
    from simulators.overlay import OverlayModel
    from simulators.registry import make_hardware_model
    from simulators.testing import conformance_network

    assert "demo_hw" in plugin_names(HARDWARE_MODELS)
    assert "demo_space" in plugin_names(SEARCH_SPACES)
    assert "demo_digits" in plugin_names(DATASETS)
    assert "demo_random" in plugin_names(STRATEGIES)
    model = make_hardware_model("demo_hw", slowdown=3.0)
    network = conformance_network()
    _, mine = model.best_accelerator(network, "xczu3eg")
    _, plain = OverlayModel().best_accelerator(network, "xczu3eg")
    assert mine.latency_ms == pytest.approx(3.0 * plain.latency_ms)
    assert importlib.metadata.version("codesign-demo-plugin") == "0.1"

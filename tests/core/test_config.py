"""Experiment files: every kind of bad input gives one line naming the bad key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import simulators
from codesign.config.experiment import Constraint, load_config, parse_constraint
from codesign.core.errors import ConfigError
from codesign.search.build import build, build_problem
from codesign.search.problem import CodesignProblem
from simulators.testing import conformance_network

GOOD = """\
name: t
space: {architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [8]}
hardware: {model: overlay, device: xczu3eg, clock_mhz: 200}
accuracy: {method: scratch, dataset: digits, epochs: 1}
objectives: {accuracy: maximize, latency_ms: minimize}
constraints: {dsp_fraction: "<= 0.8"}
strategy: {name: tpe}
budget: {trials: 4, seed: 1}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_good_file_loads_into_a_frozen_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.name == "t"
    assert config.objectives == (("accuracy", "maximize"), ("latency_ms", "minimize"))
    assert config.constraints == (Constraint("dsp_fraction", "<=", 0.8),)
    assert config.space.weight_bits == (4, 8)
    assert config.budget.seed == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]
    build_problem(config)  # every name resolves


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "my-study.yaml"
    path.write_text(GOOD.replace("name: t\n", ""))
    assert load_config(path).name == "my-study"


# (replacement applied to GOOD, key path the message must start with, a word the message must hold)
SHAPE_ERRORS = [
    ("budget: {trials: 4, seed: 1}", "budget: {trials: 4, seed: 1, trails: 3}", "budget.trails", "allowed here"),
    ("strategy: {name: tpe}", "strategy: {name: tpe}\nstrategy: {name: random}", "strategy", "duplicate key"),
    ("{trials: 4, seed: 1}", "{trials: many, seed: 1}", "budget.trials", "integer"),
    ("{trials: 4, seed: 1}", "{trials: 0, seed: 1}", "budget.trials", "greater than or equal to 1"),
    ("weight_bits: [4, 8]", "weight_bits: [4, 64]", "space.weight_bits", "outside 1..32"),
    ("weight_bits: [4, 8]", "weight_bits: []", "space.weight_bits", "at least one"),
    ("latency_ms: minimize", "latency_ms: smaller", "objectives.latency_ms", "'minimize' or 'maximize'"),
    ('"<= 0.8"', '"about 0.8"', "constraints.dsp_fraction", "'<= number'"),
    ("clock_mhz: 200", "clock_mhz: -5", "hardware.clock_mhz", "positive"),
    ("method: scratch", "method: guess", "accuracy.method", "scratch"),
    ("space: {architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [8]}", "", "space", "required"),
    ("objectives: {accuracy: maximize, latency_ms: minimize}", "objectives: {}", "objectives", "at least one"),
    ("name: t", "name: 'has space'", "name", "pattern"),
]


@pytest.mark.parametrize(("old", "new", "path", "word"), SHAPE_ERRORS)
def test_shape_errors_name_the_key(tmp_path: Path, old: str, new: str, path: str, word: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path + ":"), message
    assert word in message, message


NAME_ERRORS = [
    ("device: xczu3eg", "device: xc7z999", "hardware.device", "xczu3eg"),
    ("model: overlay", "model: tpu", "hardware.model", "overlay"),
    ("architecture: mbconv_digits", "architecture: vit", "space.architecture", "mbconv_digits"),
    ("name: tpe", "name: annealing", "strategy.name", "nsga2"),
    ("name: tpe", "name: tpe, options: {bogus: 1}", "strategy.options.bogus", "n_startup_trials"),
    ("name: tpe", "name: hao, options: {sampler: {bogus: 1}}", "strategy.options.sampler.bogus", "n_startup_trials"),
    ("dataset: digits", "dataset: cifar", "accuracy.dataset", "mnist"),
    ("latency_ms: minimize", "latency_s: minimize", "objectives.latency_s", "latency_ms"),
    ("dsp_fraction:", "dsp_share:", "constraints.dsp_share", "dsp_fraction"),
    ("clock_mhz: 200", "clock_mhz: 2000", "hardware.clock_mhz", "limit"),
    ("act_bits: [8]}", "act_bits: [8], options: {depths: [1, 2], colour: red}}", "space.options.colour", "depths"),
]


@pytest.mark.parametrize(("old", "new", "path", "word"), NAME_ERRORS)
def test_unknown_names_list_the_known_ones(tmp_path: Path, old: str, new: str, path: str, word: str) -> None:
    assert old in GOOD
    config = load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    with pytest.raises(ConfigError) as info:
        build(config)
    message = str(info.value)
    assert message.startswith(path + ":"), message
    assert word in message, message


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"malformed YAML at line 3"):
        load_config(write(tmp_path, "name: t\nspace: {architecture: [\n"))


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_duplicate_nested_key_names_full_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^hardware\.device: duplicate key \(lines 3 and 3\)"):
        load_config(write(tmp_path, GOOD.replace("device: xczu3eg", "device: xczu3eg, device: xczu9eg")))


def test_constraint_parsing() -> None:
    c = parse_constraint("accuracy", ">= 0.9")
    assert (c.value(0.95), c.holds(0.95), c.holds(0.85)) == (pytest.approx(-0.05), True, False)
    assert parse_constraint("latency_ms", 5).op == "<="
    with pytest.raises(ValueError):
        parse_constraint("latency_ms", "<= inf")


@pytest.mark.parametrize("model", ["overlay", "dataflow", "pipeline"])
def test_device_files_reach_every_hardware_model(tmp_path: Path, model: str) -> None:
    """A device that only the experiment's device file holds works with every registered template."""
    builtin = (Path(simulators.__file__).parent / "devices" / "xczu3eg.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(builtin.replace("name: xczu3eg", "name: my_board"))
    text = (
        GOOD.replace("device: xczu3eg", "device: my_board, device_files: [mine.yaml]")
        .replace("model: overlay", f"model: {model}")
    )
    problem = build_problem(load_config(write(tmp_path, text)))
    assert isinstance(problem, CodesignProblem)
    assert "my_board" in problem.hardware.catalog
    network = conformance_network(bits=4)
    accel, report = problem.hardware.best_accelerator(network, "my_board", 200)
    assert accel is not None and accel.device == "my_board" and report.feasible


# (constraints replacing GOOD's, key path the message must start with, words the message must hold)
RANGE_ERRORS = [
    ('{accuracy: ">= 90"}', "constraints.accuracy", ("bound 90", "[0, 1]", "0.9 means 90 %", "never hold")),
    ('{fp32_accuracy: ">= -0.1"}', "constraints.fp32_accuracy", ("bound -0.1", "[0, 1]", "always holds")),
    ('{dsp_fraction: "<= 80"}', "constraints.dsp_fraction", ("bound 80", "[0, 1]", "always holds")),
    ('{dsp_fraction: "<= 1.5"}', "constraints.dsp_fraction", ("bound 1.5", "[0, 1]", "always holds")),
    ('{lut_fraction: ">= 2"}', "constraints.lut_fraction", ("bound 2", "never hold")),
    ('{latency_ms: "<= -1"}', "constraints.latency_ms", ("bound -1", "latency_ms's range [0, inf)", "never hold")),
    ("{energy_mj: -3}", "constraints.energy_mj", ("bound -3", "[0, inf)")),
    ('{dsp: ">= -5"}', "constraints.dsp", ("bound -5", "always holds")),
    ('{model_size_mb: "<= -0.5"}', "constraints.model_size_mb", ("bound -0.5",)),
    ('{throughput_fps: ">= -1"}', "constraints.throughput_fps", ("bound -1",)),
    ('{bram18: "<= -1"}', "constraints.bram18", ("bound -1",)),
]


@pytest.mark.parametrize(("new", "path", "words"), RANGE_ERRORS)
def test_constraint_bounds_outside_the_metric_range_name_the_key(
    tmp_path: Path, new: str, path: str, words: tuple[str, ...]
) -> None:
    config = load_config(write(tmp_path, GOOD.replace('{dsp_fraction: "<= 0.8"}', new, 1)))
    with pytest.raises(ConfigError) as info:
        build_problem(config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path + ":"), message
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    "constraints",
    [
        '{accuracy: ">= 0.9", dsp_fraction: "<= 1"}',
        '{accuracy: ">= 0", fp32_accuracy: "<= 1", latency_ms: "<= 0"}',
        "{macs: 1000000000, params: 2000000.0, bit_ops: \"<= 1e12\", uram: 0, ff: 10000}",
    ],
)
def test_constraint_bounds_on_the_range_or_inside_it_build(tmp_path: Path, constraints: str) -> None:
    build_problem(load_config(write(tmp_path, GOOD.replace('{dsp_fraction: "<= 0.8"}', constraints, 1))))


@pytest.mark.parametrize("bound", [".nan", ".inf", "-.inf", '"<= nan"', '">= inf"'])
def test_constraint_bounds_that_are_not_finite_fail_loading(tmp_path: Path, bound: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace('"<= 0.8"', bound, 1)))
    assert str(info.value).startswith("constraints.dsp_fraction:"), str(info.value)


def test_table_accuracy_constraints_are_fractions(tmp_path: Path, nb201_table: Path) -> None:
    """On the NAS-Bench-201 table, accuracy and its columns are fractions: 0.9 binds, 90 is refused."""
    from codesign.config.experiment import ExperimentConfig
    from codesign.core.values import Candidate
    from tests.helpers import nb201_yaml

    def config(constraints: str) -> ExperimentConfig:
        path = tmp_path / "nb.yaml"
        path.write_text(nb201_yaml(nb201_table, trials=2, extra=f"constraints: {constraints}\n"))
        return load_config(path)

    good = config('{accuracy: ">= 0.9", cifar100_test_acc: ">= 0.5", lat_ms_fpga: "<= 6"}')
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    metrics = build_problem(good).evaluate(Candidate("nb201", cell)).metrics
    assert metrics["accuracy"] == pytest.approx(0.9366)  # 93.66 % in the file
    assert all(c.holds(metrics[c.metric]) for c in good.constraints)
    assert not parse_constraint("accuracy", ">= 0.95").holds(metrics["accuracy"])  # a fraction bound binds
    for constraints, path in (
        ('{accuracy: ">= 90"}', "constraints.accuracy"),
        ('{cifar10_fp32_acc_b: ">= 85"}', "constraints.cifar10_fp32_acc_b"),
        ('{lat_ms_eyeriss: "<= -1"}', "constraints.lat_ms_eyeriss"),
    ):
        with pytest.raises(ConfigError, match=rf"^{path}: bound"):
            build_problem(config(constraints))


def test_missing_data_is_a_configuration_error_before_any_trial(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    text = GOOD.replace("dataset: digits", "dataset: mnist, data_dir: empty")
    assert text != GOOD
    with pytest.raises(ConfigError, match=r"^accuracy\.data_dir: MNIST files missing in .*empty: train-images"):
        build_problem(load_config(write(tmp_path, text)))

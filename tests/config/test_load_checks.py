"""What a user's trial of 1,500 generated experiment files found, each now refused when the file is loaded
and built (before any trial) with one :class:`ConfigError` line that starts with the key path."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import pytest

from codesign.config.experiment import NAME_MAX, config_from_mapping, load_config, parse_yaml
from codesign.core.errors import ConfigError
from codesign.search.build import build
from codesign.search.strategies import make_strategy

GOOD = """\
name: t
space: {architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [8], options: {depths: [1], expansions: [1, 3]}}
hardware: {model: overlay, device: xczu3eg, clock_mhz: 200}
accuracy: {method: scratch, dataset: digits, epochs: 1, cache_dir: cache}
objectives: {accuracy: maximize, latency_ms: minimize}
constraints: {dsp_fraction: "<= 0.8"}
strategy: {name: hao}
budget: {trials: 4, seed: 1}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> str:
    """The one-line message with which loading or building ``text`` is refused."""
    with pytest.raises(ConfigError) as info:
        config = load_config(write(tmp_path, text))
        problem, strategy = build(config)
        strategy.sampler(problem, config.budget.seed)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def accepted(tmp_path: Path, text: str) -> None:
    config = load_config(write(tmp_path, text))
    problem, strategy = build(config)
    strategy.sampler(problem, config.budget.seed)


def test_the_base_experiment_builds(tmp_path: Path) -> None:
    accepted(tmp_path, GOOD)


# 1. wrongly typed option values: (replaced in GOOD, replacement, key path, a word of the message)
OPTION_ERRORS = [
    ("expansions: [1, 3]", "expansions: [1, 3], kernels: 3", "space.options.kernels", "list of integers"),
    ("expansions: [1, 3]", "expansions: [1, 3], stage_widths: [8, 12]", "space.options.stage_widths", "lists of integers"),
    ("expansions: [1, 3]", "expansions: [1, 3], input_shape: [1, 8]", "space.options.input_shape", "3 integers"),
    ("expansions: [1, 3]", "expansions: [1, 3], stem_channels: x", "space.options.stem_channels", "an integer"),
    ("expansions: [1, 3]", "expansions: [1, 3], stem_channels: -4", "space.options", "stem_channels"),
    ("expansions: [1, 3]", "expansions: [1, 3], name: other", "space.options.name", "cannot be set"),
    ("expansions: [1, 3]", "expansions: [1, 3], input_shape: [1, 8, 9]", "space.options", "square"),
    ("expansions: [1, 3]", "expansions: {a: 1}", "space.options.expansions", "list of integers"),
    ("name: hao}", "name: hao, options: {alphas: 0.5}}", "strategy.options.alphas", "fractions"),
    ("name: hao}", "name: hao, options: {alphas: [a]}}", "strategy.options.alphas", "fractions"),
    ("name: hao}", "name: hao, options: {sampler: [1]}}", "strategy.options.sampler", "mapping"),
    ("name: hao}", "name: hao, options: {sampler: {n_startup_trials: x}}}", "strategy.options.sampler.n_startup_trials", "integer"),
    ("name: hao}", "name: hao, options: {sampler: {warp: 3}}}", "strategy.options.sampler.warp", "true or false"),
    ("name: hao}", "name: hao, options: {sampler: {pool_size: 0}}}", "strategy.options.sampler.pool_size", "integer in [1, 1,000,000]"),
    ("name: hao}", "name: hao, options: {sampler: {colour: 1}}}", "strategy.options.sampler.colour", "n_startup_trials"),
    ("name: hao}", "name: hao, options: {hessian_tol: x}}", "strategy.options.hessian_tol", "number"),
    ("name: hao}", "name: hao, options: {hessian_samples: 0}}", "strategy.options.hessian_samples", ">= 1"),
    ("name: hao}", "name: tpe, options: {n_startup_trials: x}}", "strategy.options.n_startup_trials", "integer"),
    ("name: hao}", "name: tpe, options: {gamma: 3}}", "strategy.options.gamma", "callable"),
    ("name: hao}", "name: tpe, options: {group: true, multivariate: false}}", "strategy.options", "multivariate"),
    ("name: hao}", "name: tpe, options: {sampler: {}}}", "strategy.options.sampler", "unknown option"),
    ("name: hao}", "name: nsga2, options: {population_size: 1}}", "strategy.options.population_size", ">= 2"),
    ("name: hao}", "name: nsga2, options: {crossover_prob: 1.5}}", "strategy.options.crossover_prob", "[0, 1]"),
    ("name: hao}", "name: gp, options: {independent_sampler: random}}", "strategy.options.independent_sampler", "BaseSampler"),
    ("name: hao}", "name: random, options: {n_startup_trials: 3}}", "strategy.options.n_startup_trials", "known: none"),
    ("clock_mhz: 200}", "clock_mhz: 200, options: {energy: 3}}", "hardware.options", "energy"),
    ("clock_mhz: 200}", "clock_mhz: 200, options: {energy: {mult_8x8_pj: -1}}}", "hardware.options", "positive"),
    ("clock_mhz: 200}", "clock_mhz: 200, options: {energy: {pj: 1}}}", "hardware.options", "unknown constant"),
    ("method: scratch", "method: supernet, supernet: {steps: x}", "accuracy.supernet.steps", "integer"),
    ("method: scratch", "method: supernet, supernet: {weight_bits: 4}", "accuracy.supernet.weight_bits", "list"),
    ("epochs: 1", "epochs: 1, supernet: {steps: 5}", "accuracy.supernet", "method"),
]


@pytest.mark.parametrize(("old", "new", "path", "word"), OPTION_ERRORS)
def test_wrongly_typed_options_are_refused_before_any_trial(tmp_path: Path, old: str, new: str, path: str, word: str) -> None:
    assert old in GOOD
    message = refused(tmp_path, GOOD.replace(old, new, 1))
    assert message.startswith(path + ":"), message
    assert word in message, message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("expansions: [1, 3]", "expansions: [1, 3], kernels: [3], head_channels: 16"),
        ("name: hao}", "name: hao, options: {alphas: [0, 1], hessian_tol: 0.01, sampler: {pool_size: 50, warp: false}}}"),
        ("name: hao}", "name: tpe, options: {n_startup_trials: 4, multivariate: false, n_ei_candidates: 8}}"),
        ("name: hao}", "name: nsga2, options: {population_size: 8, mutation_prob: null}}"),
        ("name: hao}", "name: gp, options: {n_startup_trials: 3}}"),
        ("clock_mhz: 200}", "clock_mhz: 200, options: {energy: {mult_8x8_pj: 0.3, fpga_factor: 8}}}"),
        ("method: scratch", "method: supernet, supernet: {steps: 5, weight_bits: [4, 8]}"),
    ],
)
def test_well_typed_options_still_build(tmp_path: Path, old: str, new: str) -> None:
    accepted(tmp_path, GOOD.replace(old, new, 1))


def test_an_energy_mapping_reaches_the_hardware_model(tmp_path: Path) -> None:
    text = GOOD.replace("clock_mhz: 200}", "clock_mhz: 200, options: {energy: {fpga_factor: 8}}}")
    problem, _ = build(load_config(write(tmp_path, text)))
    assert problem.hardware.energy.fpga_factor == 8.0  # type: ignore[union-attr]


def test_sampler_options_are_checked_when_the_strategy_is_made() -> None:
    """Without any problem: the strategy's constructor is where a bad option is found."""
    for name, options, path in (
        ("hao", {"sampler": {"batch_size": "x"}}, "strategy.options.sampler.batch_size"),
        ("tpe", {"n_ei_candidates": 0}, "strategy.options.n_ei_candidates"),
        ("nsga2", {"swapping_prob": True}, "strategy.options.swapping_prob"),
        ("gp", {"deterministic_objective": "yes"}, "strategy.options.deterministic_objective"),
    ):
        with pytest.raises(ConfigError, match=rf"^{path}:"):
            make_strategy(name, options)


# 2. constraint bounds must be finite numbers
@pytest.mark.parametrize("bound", [".nan", ".inf", "-.inf", '"<= nan"', '">= inf"', '"<= 1e999"', "1" + "0" * 400, '"<= e"'])
def test_constraint_bounds_must_be_finite_numbers(tmp_path: Path, bound: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace('"<= 0.8"', bound, 1)))
    assert str(info.value).startswith("constraints.dsp_fraction:"), str(info.value)


# 3. a boolean is never a number: (replaced in GOOD, replacement, key path)
BOOLEANS = [
    ("trials: 4", "trials: true", "budget.trials"),
    ("seed: 1", "seed: true", "budget.seed"),
    ("seed: 1", "seed: 1, timeout_s: true", "budget.timeout_s"),
    ("epochs: 1", "epochs: true", "accuracy.epochs"),
    ("epochs: 1", "epochs: 1, batch_size: false", "accuracy.batch_size"),
    ("epochs: 1", "epochs: 1, lr: true", "accuracy.lr"),
    ("epochs: 1", "epochs: 1, threads: true", "accuracy.threads"),
    ("epochs: 1", "epochs: 1, train_subset: true", "accuracy.train_subset"),
    ("epochs: 1", "epochs: 1, qat_steps: true", "accuracy.qat_steps"),
    ("clock_mhz: 200", "clock_mhz: true", "hardware.clock_mhz"),
    ("weight_bits: [4, 8]", "weight_bits: [true, 8]", "space.weight_bits.0"),
    ("act_bits: [8]", "act_bits: [yes]", "space.act_bits.0"),
    ('"<= 0.8"', "yes", "constraints.dsp_fraction"),
    ('"<= 0.8"', "true", "constraints.dsp_fraction"),
    ("depths: [1]", "depths: [true]", "space.options.depths"),
    ("depths: [1]", "depths: [1], stem_channels: true", "space.options.stem_channels"),
    ("name: hao}", "name: hao, options: {hessian_samples: true}}", "strategy.options.hessian_samples"),
    ("name: hao}", "name: hao, options: {alphas: [true]}}", "strategy.options.alphas"),
    ("name: hao}", "name: hao, options: {sampler: {n_startup_trials: true}}}", "strategy.options.sampler.n_startup_trials"),
    ("name: hao}", "name: tpe, options: {n_startup_trials: true}}", "strategy.options.n_startup_trials"),
    ("clock_mhz: 200}", "clock_mhz: 200, options: {energy: {fpga_factor: true}}}", "hardware.options"),
    ("method: scratch", "method: supernet, supernet: {steps: true}", "accuracy.supernet.steps"),
]


@pytest.mark.parametrize(("old", "new", "path"), BOOLEANS)
def test_booleans_where_numbers_belong_are_refused(tmp_path: Path, old: str, new: str, path: str) -> None:
    assert old in GOOD
    message = refused(tmp_path, GOOD.replace(old, new, 1))
    assert message.startswith(path + ":"), message


def test_booleans_are_refused_from_a_mapping_too() -> None:
    data = parse_yaml(GOOD)
    data["budget"] = {"trials": True}
    with pytest.raises(ConfigError, match=r"^budget\.trials: expected a number, got true \(a boolean\)"):
        config_from_mapping(data)


def test_seeds_beyond_32_bits_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace("seed: 1", f"seed: {2**32}"))
    assert message.startswith("budget.seed:"), message


# 4. the cache folder and the data folder are checked when the experiment is built
def test_a_cache_folder_that_does_not_exist_yet_is_fine_and_not_made_by_the_check(tmp_path: Path) -> None:
    accepted(tmp_path, GOOD.replace("cache_dir: cache", "cache_dir: new/deeper/cache"))
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["exp.yaml"]


def test_a_cache_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a folder")
    assert refused(tmp_path, GOOD).startswith("accuracy.cache_dir:")
    message = refused(tmp_path, GOOD.replace("cache_dir: cache", "cache_dir: cache/inner"))
    assert message.startswith("accuracy.cache_dir:") and "is a file" in message, message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, where nothing can be made")
def test_a_cache_folder_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace("cache_dir: cache", "cache_dir: /proc/codesign/cache"))
    assert message.startswith("accuracy.cache_dir:") and "not writable" in message, message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_cache_folder_under_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        message = refused(tmp_path, GOOD.replace("cache_dir: cache", "cache_dir: locked/cache"))
    finally:
        locked.chmod(0o700)
    assert message.startswith("accuracy.cache_dir:") and "not writable" in message, message


def test_a_missing_mnist_folder_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace("dataset: digits", "dataset: mnist, data_dir: nowhere"))
    assert message.startswith("accuracy.data_dir: MNIST folder not found"), message


def test_an_mnist_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mnist").write_text("x")
    message = refused(tmp_path, GOOD.replace("dataset: digits", "dataset: mnist, data_dir: mnist"))
    assert message.startswith("accuracy.data_dir:") and "is a file" in message, message


def test_mnist_files_that_are_not_idx_files_are_refused(tmp_path: Path) -> None:
    from codesign.nn.data import MNIST_FILES

    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in MNIST_FILES.values():
        (folder / name).write_bytes(gzip.compress((2049).to_bytes(4, "big") + bytes(4)))  # labels' header everywhere
    message = refused(tmp_path, GOOD.replace("dataset: digits", "dataset: mnist, data_dir: mnist"))
    assert message.startswith("accuracy.data_dir:") and "expected IDX images" in message, message
    (folder / MNIST_FILES["train_labels"]).write_text("plain text")
    for name in MNIST_FILES.values():
        if "images" in name:
            (folder / name).write_bytes(gzip.compress((2051).to_bytes(4, "big") + bytes(12)))
    message = refused(tmp_path, GOOD.replace("dataset: digits", "dataset: mnist, data_dir: mnist"))
    assert message.startswith("accuracy.data_dir:") and "not a readable gzip file" in message, message


def test_the_mnist_files_beside_the_checkout_pass_the_check(tmp_path: Path, mnist_root: Path) -> None:
    accepted(tmp_path, GOOD.replace("dataset: digits", f"dataset: mnist, data_dir: {mnist_root}").replace(
        "mbconv_digits", "mbconv_mnist"))  # fmt: skip


def test_digits_needs_no_data_folder(tmp_path: Path) -> None:
    accepted(tmp_path, GOOD.replace("dataset: digits", "dataset: digits, data_dir: nowhere"))


def test_a_path_the_file_system_refuses_is_a_config_error(tmp_path: Path) -> None:
    long = "a" * 300
    for old, new, path in (
        ("dataset: digits", f"dataset: mnist, data_dir: {long}", "accuracy.data_dir"),
        ("cache_dir: cache", f"cache_dir: {long}/x", "accuracy.cache_dir"),
        ("clock_mhz: 200", f"clock_mhz: 200, device_files: [{long}.yaml]", "hardware.device_files"),
    ):
        message = refused(tmp_path, GOOD.replace(old, new, 1))
        assert message.startswith(path + ":"), message


# 5. the study's name is a safe folder name
@pytest.mark.parametrize("name", ["a" * 100_000, "a" * (NAME_MAX + 1), "'.'", "'..'", "a/b", "'with space'", "'é'", "''"])
def test_bad_names_are_refused_at_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace("name: t", f"name: {name}", 1)))
    message = str(info.value)
    assert message.startswith("name:") and len(message) < 300, message


def test_names_up_to_the_limit_are_fine(tmp_path: Path) -> None:
    for name in ("a" * NAME_MAX, "mnist_ultra96", "my-study.v2", "dg9", "x"):
        assert load_config(write(tmp_path, GOOD.replace("name: t", f"name: {name}", 1))).name == name


def test_the_shipped_experiments_keep_their_names() -> None:
    shipped = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))
    assert shipped
    for path in shipped:
        assert load_config(path).name == path.stem


# 6. YAML that is small on disk but huge in memory, or nested without end
def _laughs(levels: int, width: int = 10) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_with_one_line(tmp_path: Path) -> None:
    """Nine levels of ten aliases expand to 10**9 strings; the file is refused after visiting each of its
    few nodes once, never expanding them."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, _laughs(9)))
    message = str(info.value)
    assert "\n" not in message and "YAML aliases" in message and "100,000" in message, message


def test_modest_aliases_still_work() -> None:
    text = "base: &opts {depths: [1], expansions: [1, 3]}\nspace: {options: *opts}\nmore: *opts\n"
    assert parse_yaml(text)["space"]["options"] == {"depths": [1], "expansions": [1, 3]}


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("a: &a [*a]\n", "cycle"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper"),
        ("a: &a [[[[[[[[[[1]]]]]]]]]]\nb: &b [[[[[[[[[[*a]]]]]]]]]]\nc: &c [[[[[[[[[[*b]]]]]]]]]]\n"
         "d: &d [[[[[[[[[[*c]]]]]]]]]]\ne: &e [[[[[[[[[[*d]]]]]]]]]]\nf: [[[[[[[[[[*e]]]]]]]]]]\n", "nests deeper"),
        ("a: 2020-13-45\n", "malformed YAML"),
        ("x: " + "y" * 1_000_001 + "\n", "at most"),
    ],
)
def test_yaml_that_cannot_be_built_safely_is_a_one_line_error(text: str, word: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text)
    message = str(info.value)
    assert "\n" not in message and word in message, message


def test_a_path_with_a_nul_is_a_config_error(tmp_path: Path) -> None:
    for old, new, path in (
        ("dataset: digits", 'dataset: mnist, data_dir: "a\\0b"', "accuracy.data_dir"),
        ("cache_dir: cache", 'cache_dir: "a\\0b"', "accuracy.cache_dir"),
        ("clock_mhz: 200", 'clock_mhz: 200, device_files: ["a\\0b.yaml"]', "hardware.device_files.0"),
    ):
        message = refused(tmp_path, GOOD.replace(old, new, 1))
        assert message.startswith(path + ":"), message

"""Malformed experiment files, generated: each one loads, builds and makes its sampler, or is refused
with a :class:`CodesignError`; any other exception (a traceback for the user) fails the test.

A valid experiment (MBConv on the bundled digits with every built-in strategy and hardware model, and
the NAS-Bench-201 table when ../shared/data has it) is mutated one to three times: a value replaced by a
wrongly typed one (a scalar for a list, a list for a mapping, a boolean, a string, null, NaN, an
infinity, a negative, huge or tiny number), a key added (a known option with a bad value, or an unknown
one), a key removed, or a name changed. The result goes through :func:`load_config` (as YAML text in a
file, or as a mapping through :func:`config_from_mapping`), :func:`build` and ``strategy.sampler``, the
steps ``codesign run`` takes before its first trial. Nothing is trained. The run is derandomized, so CI
sees the same files every time.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.config.experiment import ExperimentConfig, config_from_mapping, load_config
from codesign.core.errors import CodesignError
from codesign.nn.supernet import SupernetSchedule
from codesign.search.build import build
from codesign.search.guided import OPTIONS as SAMPLER_OPTIONS
from codesign.search.problem import CodesignProblem, Problem
from codesign.search.strategies import GPStrategy, NSGA2Strategy, TPEStrategy
from search_spaces.mbconv import MBConvSpace
from simulators.costs import EnergyTable

NB201_TABLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nasbench201" / "nb201_accuracy_latency.csv.gz"

EXAMPLES = 1000

Doc = dict[str, Any]
Path_ = tuple[Any, ...]


def digits_doc(strategy: str, model: str = "overlay") -> Doc:
    """The cheap valid experiment: MBConv on digits, trained from scratch (lazily: never here)."""
    return {
        "name": f"fz_{strategy}_{model}",
        "space": {
            "architecture": "mbconv_digits",
            "weight_bits": [4, 8],
            "act_bits": [8],
            "options": {"depths": [1], "expansions": [1, 3]},
        },
        "hardware": {"model": model, "device": "xczu3eg", "clock_mhz": 200},
        "accuracy": {"method": "scratch", "dataset": "digits", "epochs": 2, "cache_dir": "cache"},
        "objectives": {"accuracy": "maximize", "latency_ms": "minimize"},
        "constraints": {"dsp_fraction": "<= 0.8"},
        "strategy": {"name": strategy, "options": {"sampler": {"n_startup_trials": 2}} if strategy == "hao" else {}},
        "budget": {"trials": 3, "seed": 0},
    }


def nb201_doc(strategy: str) -> Doc:
    return {
        "name": f"fz_nb201_{strategy}",
        "space": {"architecture": "nb201"},
        "accuracy": {"method": "table", "metric": "cifar10_test_acc", "data_dir": str(NB201_TABLE)},
        "objectives": {"accuracy": "maximize", "lat_ms_fpga": "minimize"},
        "strategy": {"name": strategy},
        "budget": {"trials": 12, "seed": 3},
    }


BASES: list[Doc] = [
    *(digits_doc(s) for s in ("random", "tpe", "nsga2", "gp", "hao")),
    digits_doc("hao", "dataflow"),
    digits_doc("tpe", "pipeline"),
    *((nb201_doc("hao"), nb201_doc("tpe")) if NB201_TABLE.is_file() else ()),
]

# keys a mutation may add, by the mapping they go into ("*" for any other mapping)
STRATEGY_OPTIONS = sorted(
    {"alphas", "hessian_samples", "hessian_max_iter", "hessian_tol", "sampler"}
    | set(TPEStrategy.option_rules or {})
    | set(NSGA2Strategy.option_rules or {})
    | set(GPStrategy.option_rules or {})
)
KEYS: dict[Path_, list[str]] = {
    (): ["name", "description", "space", "hardware", "accuracy", "objectives", "constraints", "strategy", "budget", "output"],
    ("space",): ["architecture", "options", "weight_bits", "act_bits"],
    ("space", "options"): [f.name for f in fields(MBConvSpace)] + ["table", "prune"],
    ("hardware",): ["model", "device", "clock_mhz", "device_files", "options"],
    ("hardware", "options"): ["energy", "models_dir", "catalog"],
    ("hardware", "options", "energy"): [f.name for f in fields(EnergyTable)],
    ("accuracy",): [
        "method", "dataset", "data_dir", "epochs", "batch_size", "lr", "train_subset", "qat_steps",
        "metric", "cache_dir", "threads", "supernet",
    ],  # fmt: skip
    ("accuracy", "supernet"): [f.name for f in fields(SupernetSchedule)],
    ("objectives",): ["accuracy", "latency_ms", "energy_mj", "dsp", "lat_ms_fpga", "cifar10_test_acc"],
    ("constraints",): ["dsp_fraction", "accuracy", "latency_ms", "lut_fraction", "energy_mj", "lat_ms_fpga"],
    ("strategy",): ["name", "options"],
    ("strategy", "options"): STRATEGY_OPTIONS,
    ("strategy", "options", "sampler"): list(SAMPLER_OPTIONS),
    ("budget",): ["trials", "seed", "timeout_s"],
    ("output",): ["dir"],
}
NAMES = [
    "mbconv_digits", "resnet_digits", "mbconv_mnist", "nb201", "vit",
    "overlay", "dataflow", "pipeline", "measured:nope", "tpu", "xczu3eg", "xczu9eg", "xc7z999",
    "hao", "random", "tpe", "nsga2", "gp", "annealing",
    "scratch", "supernet", "table", "guess", "digits", "mnist", "cifar",
    "maximize", "minimize", "sideways", "<= 0.5", ">= 0.9", "<= 80", "== 1", "cifar10_test_acc", "lat_ms_fpga",
]  # fmt: skip
SCALARS = [
    None, True, False, 0, 1, -1, 2, 3, 7, 64, 0.5, -0.5, 1e-300, 1e300, 10**30, -(10**30), 2**64,
    math.nan, math.inf, -math.inf, "", "x", "bogus", "yes", "1e999", ".inf", "a" * 300,
]  # fmt: skip
CONTAINERS = [
    [], [1], [[1]], ["a"], [True], [None], [0.5, 2], [1, 1], [3, 5, 7], [2, 4, 8], [0, 0.5, 1],
    [math.nan], [-1], [10**30], [[8, 12], [16]], [1, 8, 8], [1, 8, 9], {}, {"a": 1}, {"bogus": [1]},
    {"n_startup_trials": 2}, {"steps": "x"}, {"mult_8x8_pj": -1}, {"depths": [1]},
]  # fmt: skip
TEXT = st.text(alphabet="abcxyz019._- <=>\0é", max_size=12)  # never a path outside the experiment's folder

values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(SCALARS),
    st.sampled_from(CONTAINERS),
    st.sampled_from(NAMES),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.lists(st.integers(min_value=-3, max_value=40), max_size=4),
    st.lists(st.one_of(st.booleans(), st.floats(), TEXT), max_size=3),
    st.dictionaries(TEXT, st.integers(min_value=-2, max_value=10), max_size=2),
)


def _paths(node: Any, path: Path_ = ()) -> list[Path_]:
    """Every key path below ``node`` (into mappings and lists)."""
    out: list[Path_] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        out.append((*path, key))
        out += _paths(child, (*path, key))
    return out


def _mappings(node: Any, path: Path_ = ()) -> list[Path_]:
    """Every path at which a mapping sits (the root included)."""
    if not isinstance(node, dict):
        return []
    return [path, *(p for key, child in node.items() for p in _mappings(child, (*path, key)))]


def _at(doc: Doc, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


OPTION_PLACES: list[Path_] = [
    ("space", "options"),
    ("hardware", "options"),
    ("hardware", "options", "energy"),
    ("accuracy", "supernet"),
    ("strategy", "options"),
    ("strategy", "options", "sampler"),
]
"""The mappings of plugin options, where most wrongly typed values used to get through."""


def _option_place(doc: Doc, where: Path_) -> Path_ | None:
    """``where``, its mappings made where missing; None when a value on the way is not a mapping."""
    node: Any = doc
    for key in where:
        if not isinstance(node, dict):
            return None
        node = node.setdefault(key, {})
    return where if isinstance(node, dict) else None


def _mutate(doc: Doc, draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    kind = draw(st.sampled_from(["replace", "replace", "add", "option", "option", "delete"]))
    if kind == "option":
        place = _option_place(doc, draw(st.sampled_from(OPTION_PLACES)))
        kind = "add" if place is None else kind
    if kind in ("add", "option"):
        where = place if kind == "option" and place is not None else draw(st.sampled_from(_mappings(doc)[::-1]))
        known = KEYS.get(tuple(str(p) for p in where), [])
        key = draw(st.sampled_from([*known, "bogus"]))
        _at(doc, where)[key] = copy.deepcopy(draw(values))  # never a shared constant, which a later mutation would change
        return f"add {'.'.join(map(str, (*where, key)))}"
    paths = _paths(doc)[::-1]  # Hypothesis favours the first choice: let it be a deep option, not the name
    if not paths:
        return "none"
    path = draw(st.sampled_from(paths))
    parent = _at(doc, path[:-1])
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(draw(values))
    return f"{kind} {'.'.join(map(str, path))}"


@st.composite
def malformed(draw: Callable[[st.SearchStrategy[Any]], Any]) -> tuple[Doc, tuple[str, ...], bool]:
    """A base experiment mutated one to three times, the mutations made, and whether to feed it as YAML
    text (else as a mapping)."""
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    done = tuple(_mutate(doc, draw) for _ in range(draw(st.integers(min_value=1, max_value=3))))
    return doc, done, draw(st.booleans())


def _feed(doc: Doc, as_text: bool, folder: Path) -> tuple[ExperimentConfig, Problem, optuna.samplers.BaseSampler]:
    """The steps of ``codesign run`` before its first trial."""
    path = folder / "experiment.yaml"
    if as_text:
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        config = load_config(path)
    else:
        config = config_from_mapping(copy.deepcopy(doc), source=path.resolve(), name=path.stem)
    problem, strategy = build(config)
    return config, problem, strategy.sampler(problem, config.budget.seed)


def _first_decisions(config: ExperimentConfig, problem: Problem, sampler: optuna.samplers.BaseSampler) -> None:
    """What an accepted experiment's first trial does before it trains: the sampler proposes, the
    problem turns the decisions into a candidate, and the hardware model finds its accelerator (a
    table problem looks the candidate up)."""
    study = optuna.create_study(directions=[optuna.study.StudyDirection[d.upper()] for d in config.directions], sampler=sampler)
    _, candidate = problem.suggest(study.ask())
    if isinstance(problem, CodesignProblem):
        problem.choose_accelerator(problem.network(candidate))
    else:
        problem.evaluate(candidate)


def test_every_base_experiment_builds(tmp_path: Path) -> None:
    for doc in BASES:
        _first_decisions(*_feed(copy.deepcopy(doc), True, tmp_path))


def test_malformed_experiments_are_accepted_or_refused_with_one_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(case=malformed())
    def check(case: tuple[Doc, tuple[str, ...], bool]) -> None:
        doc, mutations, as_text = case
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a sampler's notice about an option is not a failure
            try:
                config, problem, sampler = _feed(doc, as_text, folder)
            except CodesignError:
                outcomes["refused"] += 1
                return
            except Exception as exc:
                raise AssertionError(f"{type(exc).__name__} escaped loading {mutations}: {exc}") from exc
            try:
                _first_decisions(config, problem, sampler)
            except Exception as exc:  # accepted, so its first trial must get this far
                raise AssertionError(f"{type(exc).__name__} in the first decisions after {mutations}: {exc}") from exc
        outcomes["accepted"] += 1

    check()
    assert sum(outcomes.values()) >= EXAMPLES, outcomes
    # the mutations reach every step: many files are refused, and some get as far as their sampler
    assert outcomes["refused"] >= EXAMPLES // 2 and outcomes["accepted"] >= EXAMPLES // 20, outcomes

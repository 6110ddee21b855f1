"""The config boundary: the one place where names in an experiment become objects.

Every name (space, hardware model, device, clock, strategy, data set, metrics) is looked up in its
plugin registry (:mod:`codesign.core.plugins`: the entry-point groups, built-ins included); an unknown
one is a :class:`ConfigError` with the key path and the known names, and so is a constraint bound outside
its metric's range (:func:`check_constraint_range`; accuracies are fractions). :func:`build_problem` builds the
search problem and :func:`build_strategy` the strategy. Heavy parts (data, trained models) are built
lazily by the accuracy source, on first use; what they will need is checked here, before any trial: every
option's type (space, hardware model, strategy and its sampler, supernet schedule), the data folder, the
cache folder (:func:`check_cache_dir`) and one network of the space.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from codesign.config.experiment import Constraint, ExperimentConfig
from codesign.core.errors import CodesignError, ConfigError
from codesign.core.values import RESOURCE_NAMES
from codesign.search.problem import HARDWARE_METRICS, NETWORK_METRICS, CodesignProblem, Problem, TableProblem
from codesign.search.strategies import Strategy, make_strategy
from search_spaces.bitwidth import BitWidthSpace
from search_spaces.options import OptionError, dataclass_options, shown
from search_spaces.registry import make_space, space_names
from simulators.devices import DeviceCatalog
from simulators.registry import hardware_model_names, make_hardware_model

TABLE_SPACES = ("nb201",)
DEFAULT_TABLE_METRIC = "cifar10_test_acc"
_FRACTION = re.compile(r"(accuracy|_acc|_acc_.*|_fraction)$")
_NON_NEGATIVE = re.compile(r"^lat_ms_|_(ms|mj|fps)$")


def metric_range(metric: str) -> tuple[float, float] | None:
    """The values a metric can take, or None where unknown: accuracies (``accuracy``, ``fp32_accuracy``,
    ``*accuracy``, ``*_acc``, ``*_acc_*``) and resource ``*_fraction``s lie in [0, 1] (fractions, not
    percent), the other hardware and network metrics and the table's latencies (``lat_ms_*``) in
    [0, inf)."""
    if _FRACTION.search(metric):
        return (0.0, 1.0)
    if metric in HARDWARE_METRICS or metric in NETWORK_METRICS or _NON_NEGATIVE.search(metric):
        return (0.0, math.inf)
    return None


def check_constraint_range(constraint: Constraint) -> None:
    """Raise ConfigError at ``constraints.<metric>`` when the bound lies outside the metric's range
    (:func:`metric_range`), whichever way it points: then the constraint either never holds (``>= 90`` on
    an accuracy: every trial infeasible) or always holds (``<= 80`` on a fraction: it does nothing), and
    either is a slip, most often percent written for a fraction. A bound on the range's edge is allowed
    (``latency_ms <= 0`` makes every trial infeasible, on purpose or not, and says so in the results)."""
    span = metric_range(constraint.metric)
    bound = constraint.bound
    if math.isnan(bound):
        raise ConfigError(f"constraints.{constraint.metric}", "the bound is NaN; expected a number")
    if span is None or span[0] <= bound <= span[1]:
        return
    low, high = span
    if high == 1.0:
        shown, hint = "[0, 1]", f" (a fraction: {bound / 100:g} means {bound:g} %)" if 1 < bound <= 100 else ""
    else:
        shown, hint = f"[{low:g}, inf)", ""
    never = bound > high if constraint.op == ">=" else bound < low
    effect = "can never hold" if never else "always holds"
    raise ConfigError(
        f"constraints.{constraint.metric}",
        f"bound {bound:g} is outside {constraint.metric}'s range {shown}{hint}; "
        f"'{constraint}' {effect}",
    )


def catalog_for(config: ExperimentConfig) -> DeviceCatalog:
    files = [config.resolve(f) for f in config.hardware.device_files]
    try:
        return DeviceCatalog.load([f for f in files if f is not None])
    except CodesignError as exc:
        raise ConfigError("hardware.device_files", str(exc)) from None
    except (OSError, ValueError) as exc:  # a path the file system refuses (too long, a NUL in it)
        raise ConfigError("hardware.device_files", f"cannot read a device file: {getattr(exc, 'strerror', None) or exc}") from None


def _own_space(config: ExperimentConfig) -> Any:
    """``space.model`` or ``space.define``: the user's factory imported (a file relative to the experiment
    file), its model built and traced once, so a bad spec, a missing file or a model the hardware models
    cannot cost is a ConfigError at that key before any trial."""
    from codesign.nn.own_model import define_by_run_space, model_space
    from codesign.nn.user_data import load_factory

    space = config.space
    kind = space.kind
    spec = str(space.model if kind == "model" else space.define)
    base = config.source.parent if config.source is not None else None
    shape = tuple(space.input_shape or ())
    name = spec.rpartition(":")[2]
    try:
        function = load_factory(spec, base_dir=base, what=f"{'model factory' if kind == 'model' else 'build function'}")
    except CodesignError as exc:
        raise ConfigError(f"space.{kind}", str(exc)) from None
    try:
        if kind == "define":
            return define_by_run_space(function, shape, name=name, spec=spec, seed=config.budget.seed)
        weights = config.resolve(space.weights)
        if weights is not None and not weights.is_file():
            raise ConfigError("space.weights", f"weights file not found: {weights}")
        return model_space(function, shape, name=name, spec=spec, weights=weights)
    except CodesignError as exc:
        if isinstance(exc, ConfigError):
            raise
        where = "space.weights" if kind == "model" and space.weights and "weights" in str(exc) else f"space.{kind}"
        raise ConfigError(where, str(exc)) from None


def _space(config: ExperimentConfig) -> Any:
    if config.space.kind != "architecture":
        return _own_space(config)
    name = config.space.architecture
    if name not in space_names():
        raise ConfigError("space.architecture", f"unknown search space {name!r}; known: {', '.join(space_names())}")
    try:
        return make_space(name, **config.space.options)
    except OptionError as exc:
        raise ConfigError(f"space.options.{exc.key}", exc.detail) from None
    except CodesignError as exc:
        raise ConfigError("space.options", str(exc)) from None


def _check_network(space: Any) -> None:
    """Build one architecture's network, so options that give impossible shapes (a non-square input
    before global pooling, a linear layer on a feature map) are found now, not at every trial."""
    try:
        space.network(space.sample(np.random.default_rng(0)))
    except CodesignError as exc:
        raise ConfigError("space.options", str(exc)) from None


MEASURED_PREFIX = "measured:"


def _measured(config: ExperimentConfig, catalog: DeviceCatalog) -> tuple[Any, str, float | None]:
    """``measured:NAME``: a model learned by ``codesign hardware import`` (its folder from
    ``hardware.options.models_dir``, relative to the experiment file, else the default models folder)."""
    from codesign.predictors.measured import load_measured

    hw = config.hardware
    options = dict(hw.options)
    folder = options.pop("models_dir", None)
    if folder is not None and (not isinstance(folder, str) or "\0" in folder):
        raise ConfigError("hardware.options.models_dir", f"expected the path of a folder, got {shown(folder)}")
    directory = config.resolve(folder)
    if options:
        raise ConfigError("hardware.options", f"unknown option(s) {', '.join(sorted(options))} for a measured model; known: models_dir")
    try:
        model = load_measured(hw.model.removeprefix(MEASURED_PREFIX), directory, catalog=catalog)
    except CodesignError as exc:
        raise ConfigError("hardware.model", str(exc)) from None
    except (OSError, ValueError) as exc:  # a path the file system refuses (too long, a NUL in it)
        raise ConfigError("hardware.model", f"cannot read measured model {shown(hw.model)}: {getattr(exc, 'strerror', None) or exc}") from None
    if model.prior is None:
        resource_metrics = {*RESOURCE_NAMES, *(f"{n.removesuffix('18')}_fraction" for n in RESOURCE_NAMES)}
        named = [("constraints", c.metric) for c in config.constraints] + [("objectives", n) for n, _ in config.objectives]
        for where, name in named:
            if name in resource_metrics:
                raise ConfigError(
                    f"{where}.{name}",
                    f"measured model {model.name!r} was learned without a prior, so it knows no resources; "
                    "import it with --prior to get them",
                )
    return model, hw.device or model.device or "", hw.clock_mhz


def _hardware(config: ExperimentConfig, catalog: DeviceCatalog) -> tuple[Any, str, float | None]:
    hw = config.hardware
    if hw.model.startswith(MEASURED_PREFIX):
        return _measured(config, catalog)
    if hw.model not in hardware_model_names():
        known = ", ".join((*hardware_model_names(), MEASURED_PREFIX + "NAME"))
        raise ConfigError("hardware.model", f"unknown hardware model {hw.model!r}; known: {known}")
    if hw.device is None:
        raise ConfigError("hardware.device", f"required for hardware model {hw.model!r}; known devices: {', '.join(catalog.names())}")
    if hw.device not in catalog:
        raise ConfigError("hardware.device", f"unknown device {hw.device!r}; known: {', '.join(catalog.names())}")
    device = catalog.get(hw.device)
    if hw.clock_mhz is not None and hw.clock_mhz > device.max_clock_mhz:
        raise ConfigError("hardware.clock_mhz", f"{hw.clock_mhz:g} MHz exceeds {device.name}'s limit of {device.max_clock_mhz:g} MHz")
    options = dict(hw.options)
    if "catalog" in options:
        raise ConfigError("hardware.options.catalog", "set by the tool from the device catalog; use hardware.device_files")
    try:
        model = make_hardware_model(hw.model, catalog=catalog, **options)
    except CodesignError as exc:
        raise ConfigError("hardware.options", str(exc)) from None
    return model, hw.device, hw.clock_mhz


def check_cache_dir(config: ExperimentConfig) -> Path:
    """The folder where measurements are cached (``accuracy.cache_dir``, else the default), checked:
    it need not exist yet (it is created), but it must not be a file, and the nearest folder that
    exists on its path must be writable. Raises :class:`ConfigError` at ``accuracy.cache_dir``."""
    from codesign.nn.accuracy import default_cache_dir

    given = config.resolve(config.accuracy.cache_dir)
    folder = given if given is not None else default_cache_dir()
    label = "" if given is not None else " (the default cache folder; set accuracy.cache_dir or $CODESIGN_CACHE)"
    try:
        folder = folder.absolute()
        if folder.exists() and not folder.is_dir():
            raise ConfigError("accuracy.cache_dir", f"{folder} is a file, not a folder{label}")
        existing = next(p for p in (folder, *folder.parents) if p.exists())
    except (OSError, ValueError) as exc:  # an unreadable path, or a NUL in it
        raise ConfigError("accuracy.cache_dir", f"cannot use {shown(str(folder))}{label}: {getattr(exc, 'strerror', None) or exc}") from None
    if not existing.is_dir():
        raise ConfigError("accuracy.cache_dir", f"cannot create {folder}: {existing} is a file{label}")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_write_in(existing):
        raise ConfigError("accuracy.cache_dir", f"cannot create or write {folder}: {existing} is not writable{label}")
    return folder


def _can_write_in(folder: Path) -> bool:
    """Whether a folder can be made in ``folder`` (tried, and removed again: permissions alone do not
    tell, e.g. for root on a read-only or virtual file system)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".codesign-check-", dir=folder))
    except OSError:
        return False
    return True


def _check_supernet(config: ExperimentConfig) -> None:
    """``accuracy.supernet`` (options of the supernet's training schedule) checked by building it."""
    from codesign.nn.supernet import SupernetSchedule

    try:
        SupernetSchedule(**dataclass_options(SupernetSchedule, config.accuracy.supernet, owner="supernet schedule"))
    except OptionError as exc:
        raise ConfigError(f"accuracy.supernet.{exc.key}", exc.detail) from None
    except CodesignError as exc:
        raise ConfigError("accuracy.supernet", str(exc)) from None


def _accuracy_source(config: ExperimentConfig, space: Any, data: Any = None) -> Any:
    from codesign.nn.accuracy import make_accuracy_source

    return make_accuracy_source(config, space, source=data)


def _table_problem(config: ExperimentConfig, space: Any) -> TableProblem:
    from search_spaces.nb201 import TABLE_COLUMNS, NB201Table

    path = config.resolve(config.accuracy.data_dir)
    if path is None:
        raise ConfigError("accuracy.data_dir", "the path of the table file (nb201_accuracy_latency.csv.gz) is required")
    try:
        table = NB201Table.load(path)
    except CodesignError as exc:
        raise ConfigError("accuracy.data_dir", str(exc)) from None
    columns = tuple(c for c in TABLE_COLUMNS if c not in ("arch_str", "nb201_index"))
    metric = config.accuracy.metric or DEFAULT_TABLE_METRIC
    if metric not in columns:
        raise ConfigError("accuracy.metric", f"unknown column {metric!r}; known: {', '.join(columns)}")
    return TableProblem(space=space, table=table, accuracy_column=metric, columns=columns)


def _check_data(config: ExperimentConfig) -> None:
    """The data set's name (or factory) and files, and the device, before any trial."""
    from codesign.config.experiment import is_factory_spec
    from codesign.nn.data import dataset_names
    from codesign.nn.device import resolve_device
    from codesign.nn.user_data import dataset_source

    name = config.accuracy.dataset
    factory = is_factory_spec(name)
    if not factory and name not in dataset_names():
        raise ConfigError("accuracy.dataset", f"unknown data set {name!r}; known: {', '.join(dataset_names())}")
    base = config.source.parent if config.source is not None else None
    try:  # missing files are a configuration error now, not ten failed trials later
        dataset_source(name, base_dir=base).check(config.resolve(config.accuracy.data_dir))
    except CodesignError as exc:
        raise ConfigError("accuracy.dataset" if factory else "accuracy.data_dir", str(exc)) from None
    try:
        resolve_device(config.accuracy.device)
    except CodesignError as exc:
        raise ConfigError("accuracy.device", str(exc)) from None


def build_strategy(config: ExperimentConfig) -> Strategy:
    """The experiment's strategy, its options checked."""
    return make_strategy(config.strategy.name, config.strategy.options)


def build_problem(config: ExperimentConfig, *, space: Any = None, data: Any = None) -> Problem:
    """Validate every name of ``config`` but the strategy's (:func:`build_strategy`) and build its search
    problem. ``space`` replaces the one ``config.space`` names and ``data`` (a
    :class:`codesign.nn.data.DatasetSource`) the data set ``accuracy.dataset`` names: objects a file cannot
    name, such as the model and data :func:`codesign.optimize_model` is given."""
    space = _space(config) if space is None else space
    if config.space.architecture in TABLE_SPACES or config.accuracy.method == "table":
        if config.space.architecture not in TABLE_SPACES:
            raise ConfigError("accuracy.method", f"'table' needs a tabular space ({', '.join(TABLE_SPACES)})")
        problem: Problem = _table_problem(config, space)
    else:
        if config.space.kind != "architecture" and config.accuracy.method != "scratch":
            raise ConfigError("accuracy.method", f"space.{config.space.kind} trains each model itself: use 'scratch', not {config.accuracy.method!r}")
        if data is None:
            _check_data(config)
        if config.accuracy.supernet and config.accuracy.method != "supernet":
            raise ConfigError("accuracy.supernet", f"options of method 'supernet', but the method is {config.accuracy.method!r}")
        if config.accuracy.method == "supernet":
            _check_supernet(config)
        check_cache_dir(config)
        _check_network(space)
        catalog = catalog_for(config)
        model, device, clock = _hardware(config, catalog)
        bits = BitWidthSpace(weight_bits=config.space.weight_bits, act_bits=config.space.act_bits)
        problem = CodesignProblem(space, bits, model, device, clock, _accuracy_source(config, space, data))
    known = problem.metric_names
    for name, _ in config.objectives:
        if name not in known:
            raise ConfigError(f"objectives.{name}", f"unknown metric; known: {', '.join(known)}")
    for constraint in config.constraints:
        if constraint.metric not in known:
            raise ConfigError(f"constraints.{constraint.metric}", f"unknown metric; known: {', '.join(known)}")
        check_constraint_range(constraint)
    return problem


def build(config: ExperimentConfig) -> tuple[Problem, Strategy]:
    """Every name of ``config`` checked, its strategy first: the search problem and the strategy."""
    strategy = build_strategy(config)
    return build_problem(config), strategy

"""Experiment files: YAML validated into a frozen :class:`ExperimentConfig`.

Validation happens in two steps, both raising :class:`ConfigError` whose one-line message starts with the
key path (``hardware.device: unknown device 'xc7z999'; known: ...``):

1. shape and types (pydantic models with unknown keys forbidden; duplicate YAML keys are caught by the
   loader, which PyYAML alone would silently resolve to the last one);
2. names (space, hardware model, device, strategy, data set, metrics) against the registries, in
   :func:`codesign.search.build.check_names`.

Paths inside the file (``accuracy.data_dir``, ``hardware.device_files``) are relative to the file.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from codesign.core.errors import ConfigError
from search_spaces.options import shown

Direction = Literal["minimize", "maximize"]


def _not_bool(value: Any) -> Any:
    # pydantic reads true as 1: a boolean where a number belongs is a slip (trials: true), never a count
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()} (a boolean)")
    return value


def _path_text(value: Any) -> Any:
    if isinstance(value, str) and "\0" in value:
        raise ValueError("a path may not contain a NUL character")
    return value


PathText = Annotated[str, BeforeValidator(_path_text)]
"""A path as written in the file (relative to it); a NUL character, which no file system takes, is refused."""
Int = Annotated[int, BeforeValidator(_not_bool)]
"""An integer; a boolean is refused (pydantic alone would read ``true`` as 1)."""
Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
"""A finite number; a boolean, NaN and the infinities are refused."""

NAME_MAX = 100
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_YAML_CHARS = 1_000_000
"""The longest experiment file read (real ones are a few hundred characters)."""
MAX_YAML_NODES = 100_000
"""The most values an experiment file may hold once its aliases are expanded (a guard against alias
bombs, which are small on disk and enormous in memory)."""
MAX_YAML_DEPTH = 50
"""The deepest nesting of lists and mappings an experiment file may have (expanded)."""
SEED_MAX = 2**32 - 1
"""The largest seed: Optuna's samplers seed numpy generators that take 32-bit seeds."""


DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
"""The values of ``accuracy.device`` (whether the machine has that GPU is checked when the experiment is built)."""
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})*$")
_ATTRIBUTE = re.compile(rf"^{_IDENTIFIER}$")


def is_factory_spec(value: str) -> bool:
    """Whether ``accuracy.dataset`` names a factory (``module:function`` or ``file.py:function``) rather
    than a registered data set."""
    return ":" in value


def check_factory_spec(value: str) -> str:
    """``value`` if it has the form ``package.module:function`` or ``path/to/file.py:function``; otherwise
    ``ValueError`` saying what was expected."""
    target, _, attribute = value.rpartition(":")
    expected = "expected 'package.module:function' or 'path/to/file.py:function'"
    if not target or not _ATTRIBUTE.match(attribute):
        raise ValueError(f"{expected}, got {shown(value)} (the part after the last ':' must be a Python name)")
    if target.endswith(".py") or "/" in target or "\\" in target:
        if not target.endswith(".py"):
            raise ValueError(f"{expected}, got {shown(value)} (a file must end in .py)")
        return value
    if not _MODULE.match(target):
        raise ValueError(f"{expected}, got {shown(value)} ({shown(target)} is not a dotted module name)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SpaceConfig(_Strict):
    """Which architectures and which bit-widths per layer: a registered space (``architecture``, with its
    ``options``), the user's own model (``model: package.module:factory`` or ``file.py:factory``, a
    function of no arguments returning an ``nn.Module``, with ``input_shape`` and optionally ``weights``,
    the path of a state dict: then it is not trained), or a define-by-run space (``define:
    package.module:build``, a function ``build(trial)`` that asks ``trial.suggest_*`` and returns an
    ``nn.Module``, with ``input_shape``). Exactly one of ``architecture``, ``model`` and ``define``."""

    architecture: str | None = None
    model: str | None = None
    define: str | None = None
    input_shape: tuple[Int, ...] | None = None
    """One input's shape, ``[C, H, W]`` (or ``[F]``), for ``model`` and ``define``."""
    weights: PathText | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    weight_bits: tuple[Int, ...] = (2, 4, 8)
    act_bits: tuple[Int, ...] = (4, 8)

    @field_validator("model", "define")
    @classmethod
    def _spec(cls, value: str | None) -> str | None:
        return None if value is None else check_factory_spec(value)

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not 1 <= len(value) <= 3 or any(d < 1 for d in value)):
            raise ValueError(f"expected 1 to 3 positive integers, e.g. [1, 8, 8], got {list(value)}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> SpaceConfig:
        given = [k for k in ("architecture", "model", "define") if getattr(self, k) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise _PathError(("space",), f"needs exactly one of architecture, model and define; got {what}")
        kind = given[0]
        if kind == "architecture":
            for key in ("input_shape", "weights"):
                if getattr(self, key) is not None:
                    raise _PathError(("space", key), "only for space.model or space.define (a registered space has its own shapes)")
        else:
            if self.input_shape is None:
                raise _PathError(("space", "input_shape"), f"required with space.{kind}: one input's shape, e.g. [1, 8, 8]")
            if self.options:
                raise _PathError(("space", "options"), f"options belong to a registered space; space.{kind} takes none")
            if kind == "define" and self.weights is not None:
                raise _PathError(("space", "weights"), "only for space.model (a define-by-run space trains every candidate)")
        return self

    @property
    def kind(self) -> str:
        """``architecture``, ``model`` or ``define``."""
        return "model" if self.model is not None else "define" if self.define is not None else "architecture"

    @field_validator("weight_bits", "act_bits")
    @classmethod
    def _bits(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("needs at least one bit-width")
        bad = [b for b in value if not 1 <= b <= 32]
        if bad:
            raise ValueError(f"bit-width {bad[0]} outside 1..32")
        if len(set(value)) != len(value):
            raise ValueError(f"repeated bit-width in {list(value)}")
        return tuple(sorted(value))


class HardwareConfig(_Strict):
    """Which hardware model, on which device, at which clock (MHz; default: the device's own)."""

    model: str = "overlay"
    device: str | None = None
    clock_mhz: Number | None = None
    device_files: tuple[PathText, ...] = ()
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("clock_mhz")
    @classmethod
    def _clock(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be a positive number of MHz, got {value}")
        return value


class AccuracyConfig(_Strict):
    """How accuracy is obtained: ``scratch`` trains each candidate, ``supernet`` inherits weights from a
    trained weight-sharing supernet, ``table`` looks a tabular benchmark up."""

    method: Literal["scratch", "supernet", "table"] = "scratch"
    dataset: str = "digits"
    """A registered data set (``digits``, ``mnist``, ``folder``, ``npz``, or a plugin's name), or a factory
    ``package.module:function`` / ``path/to/file.py:function`` (a file relative to the experiment file)."""
    data_dir: PathText | None = None
    epochs: Int = Field(default=3, ge=1, le=1000)
    batch_size: Int = Field(default=64, ge=1, le=1_000_000)
    lr: Number = Field(default=3e-3, gt=0)
    train_subset: Int | None = Field(default=None, ge=10)
    qat_steps: Int = Field(default=0, ge=0, le=1_000_000)
    """Quantization-aware fine-tuning steps after calibration (0: post-training quantization only)."""
    metric: str | None = None
    cache_dir: PathText | None = None
    threads: Int = Field(default=1, ge=1, le=256)
    """torch intra-op threads while training and measuring (1 is fastest for small networks); ``codesign run``
    sets it for its process, Python API users call ``torch.set_num_threads`` themselves."""
    supernet: dict[str, Any] = Field(default_factory=dict)
    """Options of the supernet's training schedule (``method: supernet``), e.g. ``{steps: 1500}``."""
    device: str = "auto"
    """Where training, the supernet, Hessian traces and evaluation run: ``auto`` (the GPU when torch sees
    one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. A setting of the machine, not of the experiment;
    a GPU that is not there is refused when the experiment is built."""

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        # a registered name is looked up when the experiment is built; a factory's form is checked now
        return check_factory_spec(value) if is_factory_spec(value) else value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"expected auto, cpu, cuda or cuda:N (N a GPU index), got {shown(value)}")
        return value


class StrategyConfig(_Strict):
    name: str = "hao"
    options: dict[str, Any] = Field(default_factory=dict)


class BudgetConfig(_Strict):
    trials: Int = Field(default=50, ge=1)
    seed: Int = Field(default=0, ge=0, le=SEED_MAX)
    timeout_s: Number | None = Field(default=None, gt=0)


class OutputConfig(_Strict):
    dir: PathText | None = None


_CONSTRAINT = re.compile(r"^\s*(<=|>=)\s*([-+0-9.eE]+|inf)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``; :meth:`value` is <= 0 exactly when the constraint holds (Optuna's convention)."""

    metric: str
    op: str
    bound: float

    def value(self, metric_value: float) -> float:
        return metric_value - self.bound if self.op == "<=" else self.bound - metric_value

    def holds(self, metric_value: float) -> bool:
        return self.value(metric_value) <= 0.0

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(metric: str, text: object) -> Constraint:
    """``"<= 0.8"`` or ``">= 0.95"``; a bare number means ``<=``. The bound must be finite (not NaN or
    infinite); its range for the metric (accuracies are fractions in 0..1) is checked where the metric is
    known, by :func:`codesign.search.build.check_constraint_range`."""
    expected = f"expected '<= number' or '>= number', got {shown(text)}"
    if isinstance(text, bool):  # YAML reads yes/no/on/off as booleans
        raise ValueError(f"{expected} (a boolean)")
    number: str | float
    if isinstance(text, int | float):
        op, number = "<=", text
    elif isinstance(text, str) and (match := _CONSTRAINT.match(text)):
        op, number = match.group(1), match.group(2)
    else:
        raise ValueError(expected)
    try:
        bound = float(number)
    except ValueError:
        raise ValueError(expected) from None
    except OverflowError:  # an integer beyond any float
        bound = math.inf
    if not math.isfinite(bound):
        raise ValueError(f"bound must be a finite number, got {shown(text)}")
    return Constraint(metric, op, bound)


class _Experiment(_Strict):
    name: str
    """The study's name and its output folder's (``runs/NAME``): 1 to :data:`NAME_MAX` letters, digits,
    ``_``, ``.`` and ``-``, not only dots."""
    description: str = ""
    space: SpaceConfig
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    accuracy: AccuracyConfig = Field(default_factory=AccuracyConfig)
    objectives: dict[str, Direction]
    constraints: dict[str, Any] = Field(default_factory=dict)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not 1 <= len(value) <= NAME_MAX:
            raise ValueError(f"must be 1 to {NAME_MAX} characters, got {len(value)}")
        if not NAME_PATTERN.match(value) or set(value) == {"."}:
            raise ValueError(
                f"must match the pattern {NAME_PATTERN.pattern} (letters, digits, '_', '.', '-'; "
                f"not only dots), got {shown(value)}"
            )
        return value

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("needs at least one objective, e.g. {accuracy: maximize, latency_ms: minimize}")
        return value

    @model_validator(mode="after")
    def _constraints(self) -> _Experiment:
        for metric, text in self.constraints.items():
            try:
                parse_constraint(metric, text)
            except ValueError as exc:
                raise _PathError(("constraints", metric), str(exc)) from None
        return self


class _PathError(ValueError):
    def __init__(self, path: tuple[str, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment. ``source`` is the file it came from (paths inside are relative to it)."""

    name: str
    description: str
    space: SpaceConfig
    hardware: HardwareConfig
    accuracy: AccuracyConfig
    objectives: tuple[tuple[str, str], ...]
    constraints: tuple[Constraint, ...]
    strategy: StrategyConfig
    budget: BudgetConfig
    output: OutputConfig
    source: Path | None = None

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.objectives)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(direction for _, direction in self.objectives)

    def resolve(self, path: str | None) -> Path | None:
        """A path from the file, made absolute relative to the file's folder."""
        if path is None:
            return None
        p = Path(path).expanduser()
        if p.is_absolute() or self.source is None:
            return p
        return (self.source.parent / p).resolve()

    def with_cache_dir(self, cache_dir: str | Path | None) -> ExperimentConfig:
        """This experiment with ``accuracy.cache_dir`` replaced by a folder of this machine (unchanged for
        None); the experiment's identity does not change."""
        if cache_dir is None:
            return self
        local = self.accuracy.model_copy(update={"cache_dir": str(Path(cache_dir).resolve())})
        return dataclasses.replace(self, accuracy=local)

    def output_dir(self, override: str | Path | None = None) -> Path:
        if override is not None:
            return Path(override)
        return Path(self.output.dir) if self.output.dir else Path("runs") / self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "space": self.space.model_dump(exclude_none=True),
            "hardware": self.hardware.model_dump(),
            "accuracy": self.accuracy.model_dump(),
            "objectives": dict(self.objectives),
            "constraints": {c.metric: f"{c.op} {c.bound!r}" for c in self.constraints},
            "strategy": self.strategy.model_dump(),
            "budget": self.budget.model_dump(),
            "output": self.output.model_dump(),
        }


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_YAML_DEPTH` from the event stream (PyYAML's parser is
    iterative; its composer recurses, so the depth is checked before composing)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                raise ConfigError("", f"nested deeper than {MAX_YAML_DEPTH} levels at line {line}")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_tree(root: yaml.Node) -> None:
    """Reject a mapping that has the same key twice, naming the full key path (PyYAML keeps the last), and
    a document that aliases expand beyond :data:`MAX_YAML_NODES` values, :data:`MAX_YAML_DEPTH` levels or
    into a cycle. Each distinct node is visited once (aliases share nodes), so a billion-laughs document
    is refused after a few hundred steps instead of being walked."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    active: set[int] = set()

    def visit(node: yaml.Node, path: tuple[str, ...]) -> None:
        key = id(node)
        if key in size:
            return
        if key in active:
            raise ConfigError(".".join(path), "a YAML alias refers to a node that contains it (a cycle)")
        active.add(key)
        children: list[tuple[yaml.Node, tuple[str, ...]]] = []
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                full = str(key_node.value)
                name = full[:MAX_KEY_SHOWN]
                line = key_node.start_mark.line + 1
                if full in seen:
                    raise ConfigError(
                        ".".join((*path, name)), f"duplicate key (lines {seen[full]} and {line}); each key may appear once"
                    )
                seen[full] = line
                children += [(key_node, (*path, name)), (value_node, (*path, name))]
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*path, str(i))) for i, item in enumerate(node.value)]
        for child, child_path in children:
            visit(child, child_path)
        active.discard(key)
        size[key] = 1 + sum(size[id(child)] for child, _ in children)
        depth[key] = 1 + max((depth[id(child)] for child, _ in children), default=0)
        where = f"the value at {'.'.join(path)}" if path else "the document"
        if size[key] > MAX_YAML_NODES:
            raise ConfigError("", f"{where} holds more than {MAX_YAML_NODES:,} values once its YAML aliases are expanded")
        if depth[key] > MAX_YAML_DEPTH:
            raise ConfigError("", f"{where} nests deeper than {MAX_YAML_DEPTH} levels once its YAML aliases are expanded")

    visit(root, ())


MAX_KEY_SHOWN = 80
"""Characters of a key kept in a key path."""


def parse_yaml(text: str, *, origin: str = "<experiment>") -> Any:
    """One YAML document, checked before it is built: no duplicate keys, at most :data:`MAX_YAML_CHARS`
    characters, :data:`MAX_YAML_DEPTH` levels and :data:`MAX_YAML_NODES` values with aliases expanded;
    any failure is a one-line :class:`ConfigError`."""
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError("", f"{origin}: {len(text):,} characters; an experiment file may have at most {MAX_YAML_CHARS:,}")
    loader = yaml.SafeLoader(text)
    try:
        _check_depth(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node)
        return loader.construct_document(node)
    except ConfigError as exc:
        if exc.path:  # a key path names the place already
            raise
        raise ConfigError("", f"{origin}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        raise ConfigError("", f"{origin}: malformed YAML at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{origin}: malformed YAML: {exc}") from None
    except (RecursionError, ValueError, OverflowError) as exc:  # a scalar PyYAML cannot build (a 13th month)
        raise ConfigError("", f"{origin}: malformed YAML: {type(exc).__name__}: {shown(str(exc))}") from None
    finally:
        loader.dispose()


def _allowed_keys(path: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the mapping at ``path`` (for 'unknown key' messages)."""
    model: type[BaseModel] = _Experiment
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return []
    return sorted(model.model_fields)


def _format(error: Mapping[str, Any]) -> ConfigError:
    loc = tuple(str(p) for p in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return ConfigError(".".join(loc), f"unknown key; allowed here: {', '.join(allowed)}")
    if kind == "missing":
        return ConfigError(".".join(loc), "required key is missing")
    message = str(error["msg"]).removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    inner = ctx.get("error")
    if isinstance(inner, _PathError):
        return ConfigError(".".join(inner.path), str(inner))
    if kind not in ("value_error",) and "input" in error:
        message = f"{message} (got {shown(error['input'])})"
    return ConfigError(".".join(loc), message)


def config_from_mapping(data: Any, *, source: Path | None = None, name: str | None = None) -> ExperimentConfig:
    """Validate an already-parsed mapping (the shape check only; see :func:`codesign.search.build.check_names`)."""
    if not isinstance(data, dict):
        raise ConfigError("", f"an experiment must be a mapping of keys to values, got {type(data).__name__}")
    if "name" not in data and name is not None:
        data = {"name": name, **data}
    try:
        model = _Experiment.model_validate(data)
    except ValidationError as exc:
        raise _format(exc.errors()[0]) from None
    return ExperimentConfig(
        name=model.name,
        description=model.description,
        space=model.space,
        hardware=model.hardware,
        accuracy=model.accuracy,
        objectives=tuple(model.objectives.items()),
        constraints=tuple(parse_constraint(m, t) for m, t in model.constraints.items()),
        strategy=model.strategy,
        budget=model.budget,
        output=model.output,
        source=source,
    )


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and shape-check one experiment file (the study name defaults to the file's stem)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"experiment file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"cannot read experiment file {path}: {exc}") from None
    data = parse_yaml(text, origin=str(path))
    return config_from_mapping(data, source=path.resolve(), name=path.stem)


IDENTITY_KEYS = ("space", "hardware", "accuracy", "objectives", "constraints", "strategy")
"""The parts of an experiment that must not change under an existing study."""
MACHINE_LOCAL_ACCURACY = ("cache_dir", "data_dir", "threads", "device")
"""Settings of one machine, not of the experiment: workers elsewhere join the study with their own."""


def config_record(config: ExperimentConfig) -> dict[str, Any]:
    """What a study stores about its experiment: the whole config, where it came from, and its identity."""
    doc = config.to_dict()
    identity = {k: doc[k] for k in IDENTITY_KEYS}
    identity["accuracy"] = {k: v for k, v in identity["accuracy"].items() if k not in MACHINE_LOCAL_ACCURACY}
    return {**doc, "source": str(config.source) if config.source else None, "identity": identity}


def config_from_record(record: Mapping[str, Any]) -> ExperimentConfig:
    """The experiment a study was run with (see :func:`config_record`), to be rebuilt on this machine: its
    ``accuracy.device`` is this machine's choice (``auto``), not the one the study ran on, which may have
    had a GPU that this one lacks."""
    data = {k: v for k, v in record.items() if k not in ("source", "identity")}
    if isinstance(data.get("accuracy"), Mapping) and "device" in data["accuracy"]:
        data["accuracy"] = {k: v for k, v in data["accuracy"].items() if k != "device"}
    source = record.get("source")
    return config_from_mapping(data, source=Path(source) if source else None)

"""The user's own PyTorch model as a search space: one fixed architecture (:class:`ModelSpace`), or a
define-by-run space whose ``build(trial)`` asks ``trial.suggest_*`` for its choices (:class:`DefineByRunSpace`).

Both meet the :class:`search_spaces.base.ArchitectureSpace` contract and the
:class:`search_spaces.base.TrainableSpace` capability, so every strategy searches them as it searches the
built-in spaces: the per-layer bits and (``hao``) the trade-off point are the decisions of a
:class:`ModelSpace`; a :class:`DefineByRunSpace` adds its recorded ``arch.*`` choices. The hardware
models see the model through :func:`codesign.nn.trace.trace_network` of its quantizable copy
(:func:`quantizable`), whose weighted layers are the model's ``nn.Conv2d``/``nn.Linear`` modules in
registration order, the order :func:`codesign.quantization.fake.set_bits` follows.

Define-by-run choices: ``suggest_categorical(name, choices)``, ``suggest_int(name, low, high, step=1,
log=False)`` and ``suggest_float(name, low, high, step=None, log=False)`` as in Optuna. Every choice is
offered to the search as a list of values (what the guided sampler, the encodings and the caches need):
an integer range as its values (log: :data:`GRID_POINTS` log-spaced integers), a float range with a step
as its grid, a float range without one as :data:`GRID_POINTS` points, evenly spaced (log-evenly with
``log=True``). The choices are found by running ``build`` on a recorder :data:`PROBES` times (the first
value of every choice, then seeded random ones), so choices asked only under a condition are found too;
each name must always be asked with the same range. An architecture is the recorded ``{name: value}``
of the choices one build asked; its id is their JSON.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from codesign.core.errors import CodesignError
from codesign.core.values import Network
from codesign.nn.trace import trace_network
from codesign.quantization.fake import QuantConv2d, QuantLinear, quant_layers

MODEL_ARCH_ID = "model"
"""The id of a :class:`ModelSpace`'s one architecture."""
GRID_POINTS = 8
"""Values offered for a float range without a step, or a log-scaled range."""
PROBES = 32
"""Recorder runs of a define-by-run ``build`` that find its choices."""
MAX_GRID = 1000
"""The most values one define-by-run choice may offer."""


def _quant_conv(m: nn.Conv2d) -> QuantConv2d:
    q = QuantConv2d(
        m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
        groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode,
    )
    q.weight, q.bias = m.weight, m.bias
    return q


def _quant_linear(m: nn.Linear) -> QuantLinear:
    q = QuantLinear(m.in_features, m.out_features, bias=m.bias is not None)
    q.weight, q.bias = m.weight, m.bias
    return q


def quantizable(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.Conv2d``/``nn.Linear`` replaced by a
    :class:`QuantConv2d`/:class:`QuantLinear` with the same weights (8 bits, float mode: it computes what
    the model computes). Registration order, names, training mode and every other module are kept, so
    the copy's state dict holds the model's tensors under the same names (plus the activation
    quantizers' buffers). A subclass of ``nn.Conv2d``/``nn.Linear`` that is not one of the quantized
    layers is an error: its own forward could not be kept."""
    copied = copy.deepcopy(model)
    if isinstance(copied, nn.Conv2d | nn.Linear) and not isinstance(copied, QuantConv2d | QuantLinear):
        return _replaced(copied, "model")
    for parent_name, parent in list(copied.named_modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d | nn.Linear) and not isinstance(child, QuantConv2d | QuantLinear):
                where = f"{parent_name}.{child_name}" if parent_name else child_name
                setattr(parent, child_name, _replaced(child, where))
    return copied


def _replaced(module: nn.Module, where: str) -> nn.Module:
    if type(module) is nn.Conv2d:
        q: nn.Module = _quant_conv(module)
    elif type(module) is nn.Linear:
        q = _quant_linear(module)
    else:
        raise CodesignError(
            f"module {where!r} is a {type(module).__name__}, a subclass of nn.{type(module).__mro__[1].__name__} "
            "with a forward of its own; use nn.Conv2d/nn.Linear (or codesign's QuantConv2d/QuantLinear)"
        )
    q.train(module.training)
    return q


def _checked_model(model: Any, where: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise CodesignError(f"{where} must return a torch.nn.Module, got {type(model).__name__}")
    return model


def describe_model(
    model: nn.Module, input_shape: Sequence[int], *, name: str
) -> tuple[Network, int]:
    """``model``'s 8-bit network (traced) and its number of classes (the last axis of its output on one
    input), checked: the traced weighted layers must be its quantized layers one for one (a module
    called twice is an error), and the output must be ``(1, K)`` logits."""
    network = trace_network(model, tuple(input_shape), name=name)
    layers = quant_layers(model)
    if len(network.weighted_layers) != len(layers):
        raise CodesignError(
            f"{name}: the network has {len(network.weighted_layers)} weighted layers but the model "
            f"{len(layers)} conv/linear modules; a module called more than once cannot get bits of its own"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *input_shape)))
    except Exception as exc:  # noqa: BLE001 - the user's forward can raise anything
        raise CodesignError(f"{name}: the model fails on an input of shape {tuple(input_shape)}: {type(exc).__name__}: {exc}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CodesignError(f"{name}: the model must return logits of shape (N, classes), got {shape}")
    return network, int(out.shape[1])


def _digest_state(model: nn.Module) -> str:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return hashlib.sha256(repr(model).encode() + buffer.getvalue()).hexdigest()[:20]


def code_digest(function: Callable[..., Any], model: nn.Module | None = None) -> str:
    """A digest of the code behind ``function`` (the source of its module) and of ``model``'s structure,
    so cached measurements never outlive an edit of the user's model code."""
    try:
        module = inspect.getmodule(function)
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):  # built in, or defined where no source is kept (a notebook cell)
        source = getattr(function, "__qualname__", "")
    return hashlib.sha256((source + "\0" + (repr(model) if model is not None else "")).encode()).hexdigest()[:20]


def _input_shape(shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(shape)
    if not 1 <= len(dims) <= 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise CodesignError(f"input_shape must be 1 to 3 positive integers, e.g. [1, 8, 8], got {list(dims)}")
    return dims


@dataclass(frozen=True, eq=False)
class ModelSpace:
    """The user's model as a space of one architecture (id :data:`MODEL_ARCH_ID`): only the bits are
    searched. ``factory()`` returns a fresh ``nn.Module``; its initial weights are drawn from the torch
    seed the caller sets (:func:`codesign.nn.fitting.seeded_model`). ``pretrained``: the factory's
    weights are already trained (a state dict was loaded, or a trained object given), so the model is
    not trained again, only quantized. ``identity`` names what the model is for the caches (its spec,
    and a digest of a weights file or of an in-memory model's state)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    factory: Callable[[], nn.Module] = field(repr=False)
    spec: str = ""
    pretrained: bool = False
    identity: str = ""
    _networks: dict[tuple[Any, ...], Network] = field(default_factory=dict, repr=False)

    def cache_identity(self) -> dict[str, Any]:
        """What the measurement caches key this space on (instead of its fields)."""
        return {
            "kind": "model", "name": self.name, "spec": self.spec, "input_shape": list(self.input_shape),
            "num_classes": self.num_classes, "pretrained": self.pretrained, "identity": self.identity,
        }

    def sample(self, rng: np.random.Generator) -> str:
        return MODEL_ARCH_ID

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        return MODEL_ARCH_ID

    def choices(self) -> Mapping[str, Sequence[Any]]:
        return {}

    def from_choices(self, values: Mapping[str, Any]) -> str:
        return MODEL_ARCH_ID

    def arch_id(self, arch: Any) -> str:
        return self.from_id(arch)

    def from_id(self, arch_id: str) -> str:
        if arch_id != MODEL_ARCH_ID:
            raise CodesignError(f"space {self.name!r} has one architecture, {MODEL_ARCH_ID!r}; got {arch_id!r}")
        return MODEL_ARCH_ID

    def encode(self, arch: Any) -> np.ndarray:
        self.from_id(arch)
        return np.zeros(1)

    def network(
        self, arch: Any, weight_bits: Sequence[int] | None = None, act_bits: Sequence[int] | None = None
    ) -> Network:
        self.from_id(arch)
        key = (tuple(weight_bits) if weight_bits is not None else None, tuple(act_bits) if act_bits is not None else None)
        if key not in self._networks:  # tracing is pure: one per bit assignment
            self._networks[key] = trace_network(
                self.build_model(arch), self.input_shape, name=self.name, weight_bits=weight_bits, act_bits=act_bits
            )
        return self._networks[key]

    def build_model(self, arch: Any) -> nn.Module:
        """The quantizable copy of ``factory()`` (with the weights it was given)."""
        self.from_id(arch)
        return quantizable(_checked_model(self.factory(), f"model factory {self.spec or self.name!r}"))


def model_space(
    factory: Callable[[], nn.Module],
    input_shape: Sequence[int],
    *,
    name: str,
    spec: str = "",
    weights: Any = None,
    pretrained: bool = False,
    identity: str = "",
) -> ModelSpace:
    """A checked :class:`ModelSpace` of ``factory``: the model is built and traced once now, so a model
    the hardware models cannot cost, or one that fails on ``input_shape``, is a one-line
    :class:`CodesignError` here. ``weights``: a state dict (a mapping, or the path of a file
    ``torch.save`` wrote) loaded into every model the factory builds; the model is then not trained."""
    shape = _input_shape(input_shape)
    state: Mapping[str, torch.Tensor] | None = None
    if weights is not None:
        state = _state_dict(weights, name)
        identity = identity or hashlib.sha256(_state_bytes(state)).hexdigest()[:20]
        pretrained = True
    plain = factory

    def built() -> nn.Module:
        model = _checked_model(plain(), f"model factory {spec or name!r}")
        if state is not None:
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise CodesignError(f"{name}: the weights do not fit the model: {str(exc).splitlines()[0]}") from None
        return model

    plain_model = built()
    _, classes = describe_model(quantizable(plain_model), shape, name=name)
    return ModelSpace(
        name=name, input_shape=shape, num_classes=classes, factory=built, spec=spec, pretrained=pretrained,
        identity=f"{identity}-{code_digest(factory, plain_model)}" if identity else code_digest(factory, plain_model),
    )


def _state_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def _state_dict(weights: Any, name: str) -> Mapping[str, torch.Tensor]:
    if isinstance(weights, Mapping):
        return weights
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CodesignError(f"{name}: weights file not found: {weights}") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file raises many types
        raise CodesignError(f"{name}: cannot read the weights {weights}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CodesignError(f"{name}: {weights} holds no state dict (a mapping of names to tensors)")
    return state


def in_memory_space(model: nn.Module, input_shape: Sequence[int], *, name: str, pretrained: bool) -> ModelSpace:
    """A :class:`ModelSpace` of a model object: every build is a deep copy of it (its weights as they are
    now, drawn by the caller's torch seed when untrained; ``pretrained``: not trained again)."""
    snapshot = copy.deepcopy(_checked_model(model, "optimize_model's model"))
    spec = f"{type(model).__module__}:{type(model).__qualname__}"
    return model_space(
        lambda: copy.deepcopy(snapshot), input_shape, name=name, spec=spec, pretrained=pretrained,
        identity=_digest_state(snapshot),
    )


# -- define-by-run ----------------------------------------------------------------------------------


def _grid_int(name: str, low: int, high: int, step: int, log: bool) -> tuple[int, ...]:
    if isinstance(low, bool) or isinstance(high, bool) or not isinstance(low, int) or not isinstance(high, int) or low > high:
        raise CodesignError(f"suggest_int({name!r}): needs integers low <= high, got {low!r}, {high!r}")
    if log:
        if low < 1:
            raise CodesignError(f"suggest_int({name!r}, log=True): low must be at least 1, got {low}")
        points = np.geomspace(low, high, GRID_POINTS)
        return tuple(sorted({int(round(p)) for p in points}))
    if not isinstance(step, int) or step < 1:
        raise CodesignError(f"suggest_int({name!r}): step must be a positive integer, got {step!r}")
    return tuple(range(low, high + 1, step))


def _grid_float(name: str, low: float, high: float, step: float | None, log: bool) -> tuple[float, ...]:
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise CodesignError(f"suggest_float({name!r}): needs finite low <= high, got {low!r}, {high!r}")
    if step is not None:
        if log or not step > 0:
            raise CodesignError(f"suggest_float({name!r}): step must be positive and cannot go with log=True")
        count = int(math.floor((high - low) / step + 1e-9)) + 1
        if count > MAX_GRID:
            raise CodesignError(f"suggest_float({name!r}): {count} values; at most {MAX_GRID}")
        return tuple(float(round(low + i * step, 12)) for i in range(count))
    if log:
        if low <= 0:
            raise CodesignError(f"suggest_float({name!r}, log=True): low must be positive, got {low}")
        return tuple(float(v) for v in np.geomspace(low, high, GRID_POINTS))
    return tuple(float(v) for v in np.linspace(low, high, GRID_POINTS))


class Recorder:
    """An Optuna-like trial for a define-by-run ``build``: each ``suggest_*`` records its name and the
    values it offers and answers with ``pick(name, values)``."""

    def __init__(self, pick: Callable[[str, tuple[Any, ...]], Any]) -> None:
        self._pick = pick
        self.offered: dict[str, tuple[Any, ...]] = {}
        self.params: dict[str, Any] = {}

    def _ask(self, name: str, values: tuple[Any, ...]) -> Any:
        if not isinstance(name, str) or not name:
            raise CodesignError(f"a choice needs a non-empty name, got {name!r}")
        if not values:
            raise CodesignError(f"choice {name!r} offers no values")
        if len(values) > MAX_GRID:
            raise CodesignError(f"choice {name!r} offers {len(values)} values; at most {MAX_GRID}")
        if name in self.offered and self.offered[name] != values:
            raise CodesignError(f"choice {name!r} is asked twice with different values")
        self.offered[name] = values
        if name not in self.params:
            self.params[name] = self._pick(name, values)
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        values = tuple(choices)
        bad = [v for v in values if not (v is None or isinstance(v, bool | int | float | str))]
        if bad:
            raise CodesignError(f"suggest_categorical({name!r}): choices must be None, bool, int, float or str, got {bad[0]!r}")
        return self._ask(name, values)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self._ask(name, _grid_int(name, low, high, step, log)))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._ask(name, _grid_float(name, float(low), float(high), step, log)))


@dataclass(frozen=True)
class DefinedArch:
    """One architecture of a define-by-run space: the choices its build asked, ``(name, value)`` sorted."""

    params: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True, eq=False)
class DefineByRunSpace:
    """Architectures a user's ``build(trial) -> nn.Module`` defines (see the module docstring). Use
    :func:`define_by_run_space` to make one: it finds the choices. ``decisions`` maps each choice's name to
    the values it offers."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    build: Callable[[Any], nn.Module] = field(repr=False)
    decisions: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    spec: str = ""
    code: str = ""
    """A digest of ``build``'s module source (:func:`code_digest`)."""
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def cache_identity(self) -> dict[str, Any]:
        return {
            "kind": "define", "name": self.name, "spec": self.spec, "input_shape": list(self.input_shape),
            "num_classes": self.num_classes, "decisions": {k: list(v) for k, v in sorted(self.decisions.items())},
            "code": self.code,
        }

    def _run(self, pick: Callable[[str, tuple[Any, ...]], Any]) -> tuple[DefinedArch, nn.Module, Recorder]:
        recorder = Recorder(pick)
        try:
            model = self.build(recorder)
        except CodesignError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's build can raise anything
            raise CodesignError(f"{self.spec or self.name}: build(trial) raised {type(exc).__name__}: {exc}") from None
        model = _checked_model(model, f"{self.spec or self.name}: build(trial)")
        unknown = sorted(set(recorder.offered) - set(self.decisions)) if self.decisions else []
        if unknown:
            raise CodesignError(f"{self.spec or self.name}: build asked a choice not found while probing: {unknown[0]!r}")
        return DefinedArch(tuple(sorted(recorder.params.items()))), model, recorder

    def _fixed(self, values: Mapping[str, Any]) -> Callable[[str, tuple[Any, ...]], Any]:
        def pick(name: str, offered: tuple[Any, ...]) -> Any:
            if name not in values:
                return offered[0]
            value = values[name]
            if value not in offered:
                raise CodesignError(f"{self.name}: {value!r} is not a value of choice {name!r}; offered: {list(offered)}")
            return value

        return pick

    def sample(self, rng: np.random.Generator) -> DefinedArch:
        arch, _, _ = self._run(lambda _name, offered: offered[int(rng.integers(len(offered)))])
        return arch

    def mutate(self, arch: DefinedArch, rng: np.random.Generator) -> DefinedArch:
        values = arch.as_dict()
        movable = [n for n in sorted(values) if len(self.decisions.get(n, ())) > 1]
        if not movable:
            return arch
        name = movable[int(rng.integers(len(movable)))]
        others = [v for v in self.decisions[name] if v != values[name]]
        values[name] = others[int(rng.integers(len(others)))]
        return self.from_choices(values)

    def choices(self) -> Mapping[str, Sequence[Any]]:
        return {k: list(v) for k, v in sorted(self.decisions.items())}

    def from_choices(self, values: Mapping[str, Any]) -> DefinedArch:
        key = ("choices", json.dumps({k: values[k] for k in sorted(values)}, sort_keys=True))
        if key not in self._memo:
            self._memo[key] = self._run(self._fixed(values))[0]
        arch: DefinedArch = self._memo[key]
        return arch

    def arch_id(self, arch: DefinedArch) -> str:
        return json.dumps(arch.as_dict(), sort_keys=True, separators=(",", ":"))

    def from_id(self, arch_id: str) -> DefinedArch:
        try:
            values = json.loads(arch_id)
        except (TypeError, ValueError):
            values = None
        if not isinstance(values, dict):
            raise CodesignError(f"{self.name}: bad architecture id {arch_id!r}; expected the JSON of its choices")
        arch = self.from_choices(values)
        if arch.as_dict() != values:
            raise CodesignError(f"{self.name}: architecture id {arch_id!r} names choices its build does not ask")
        return arch

    def encode(self, arch: DefinedArch) -> np.ndarray:
        """Per choice (sorted by name): the value's position scaled to [0, 1], -1 where not asked."""
        values = arch.as_dict()
        out = []
        for name, offered in sorted(self.decisions.items()):
            out.append(-1.0 if name not in values else offered.index(values[name]) / max(1, len(offered) - 1))
        return np.asarray(out, dtype=float)

    def network(
        self, arch: DefinedArch, weight_bits: Sequence[int] | None = None, act_bits: Sequence[int] | None = None
    ) -> Network:
        key = ("network", arch, tuple(weight_bits) if weight_bits is not None else None, tuple(act_bits) if act_bits is not None else None)
        if key not in self._memo:
            self._memo[key] = trace_network(
                self.build_model(arch), self.input_shape, name=self.name, weight_bits=weight_bits, act_bits=act_bits
            )
        network: Network = self._memo[key]
        return network

    def build_model(self, arch: DefinedArch) -> nn.Module:
        """The quantizable model ``build`` returns for ``arch``'s choices."""
        _, model, _ = self._run(self._fixed(arch.as_dict()))
        return quantizable(model)


def define_by_run_space(
    build: Callable[[Any], nn.Module], input_shape: Sequence[int], *, name: str, spec: str = "", seed: int = 0
) -> DefineByRunSpace:
    """A :class:`DefineByRunSpace` of ``build``, its choices found by :data:`PROBES` recorder runs (seeded
    by ``seed``), and the first-choice model traced, so a build the hardware models cannot cost is a
    one-line :class:`CodesignError` now."""
    shape = _input_shape(input_shape)
    probe = DefineByRunSpace(name=name, input_shape=shape, num_classes=0, build=build, spec=spec)
    found: dict[str, tuple[Any, ...]] = {}

    def record(recorder: Recorder) -> None:
        for k, v in recorder.offered.items():
            if k in found and found[k] != v:
                raise CodesignError(f"{spec or name}: choice {k!r} is asked with different values in different builds")
            found[k] = v

    _, first_model, recorder = probe._run(lambda _n, offered: offered[0])
    record(recorder)
    rng = np.random.default_rng(seed)
    for _ in range(PROBES - 1):
        _, _, recorder = probe._run(lambda _n, offered: offered[int(rng.integers(len(offered)))])
        record(recorder)
    _, classes = describe_model(quantizable(first_model), shape, name=name)
    return DefineByRunSpace(
        name=name, input_shape=shape, num_classes=classes, build=build, decisions=found, spec=spec, code=code_digest(build)
    )

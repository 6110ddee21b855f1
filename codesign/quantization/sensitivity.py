"""Per-layer Hessian sensitivity (HAWQ-V2/V3) and the perturbation table the bit-allocation program uses.

The trace of each layer's Hessian block is estimated by Hutchinson's method: ``Tr(H_i) ~ mean v^T H_i v``
over Rademacher vectors ``v`` restricted to the layer's weights, with ``H_i v`` computed by double
back-propagation. Estimation stops when the running mean moves by less than a relative tolerance
(PyHessian: ``tol=1e-3``, at most 100 iterations). Without data, inputs are first distilled so that every
BatchNorm layer sees its running statistics (ZeroQ) and the model's own predictions serve as labels.

The perturbation of layer ``i`` at ``b`` bits is ``Omega_i(b) = Tr(H_i) / n_i * ||Q_b(W_i) - W_i||^2``
with ``n_i`` the layer's weight count and ``Q_b`` a symmetric per-output-channel quantizer.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.quantization.fake import MAX_BITS, MIN_BITS, fake_quant_weight

LossFn = Callable[[Tensor, Tensor], Tensor]
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class TraceSettings:
    """Hutchinson estimation: stop when ``|mean_k - mean_{k-1}| / (|mean_{k-1}| + 1e-6) < tol`` or after
    ``max_iter`` Rademacher vectors per layer; ``seed`` seeds the ``torch.Generator`` drawing them."""

    max_iter: int = 100
    tol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise CodesignError(f"trace settings: max_iter must be >= 1, got {self.max_iter}")
        if not self.tol >= 0:
            raise CodesignError(f"trace settings: tol must be >= 0, got {self.tol}")


@dataclass(frozen=True)
class DistillSettings:
    """ZeroQ input distillation: ``steps`` Adam steps at ``lr`` on ``batch_size`` inputs drawn from a
    standard normal with ``seed``."""

    batch_size: int = 32
    steps: int = 200
    lr: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.steps < 0 or not self.lr > 0:
            raise CodesignError(f"distill settings: need batch_size >= 2, steps >= 0, lr > 0; got {self}")


@dataclass(frozen=True)
class LayerTrace:
    """Estimated Hessian trace of one layer's weight block and the number of vectors it took."""

    name: str
    trace: float
    params: int
    iterations: int

    @property
    def trace_per_param(self) -> float:
        return self.trace / self.params


@dataclass(frozen=True)
class PerturbationTable:
    """``omega[i][k]``: perturbation of ``layers[i]`` quantized to ``bits[k]`` (others full precision)."""

    layers: tuple[str, ...]
    bits: tuple[int, ...]
    traces: tuple[float, ...]
    params: tuple[int, ...]
    omega: tuple[tuple[float, ...], ...]

    def omega_map(self) -> dict[str, dict[int, float]]:
        """``{layer: {bits: omega}}``, the shape :meth:`codesign.quantization.allocation.BitAllocationProblem.from_tables` takes."""
        return {
            name: dict(zip(self.bits, row, strict=True))
            for name, row in zip(self.layers, self.omega, strict=True)
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per (layer, bits) with ``layer, bits, omega, trace, params`` (the CSV layout of
        ``codesign allocate-bits``, to which cost columns are added)."""
        return [
            {"layer": name, "bits": b, "omega": w, "trace": trace, "params": n}
            for name, trace, n, row in zip(self.layers, self.traces, self.params, self.omega, strict=True)
            for b, w in zip(self.bits, row, strict=True)
        ]

    def write_csv(
        self, path: Path | str, costs: Mapping[str, Mapping[str, Mapping[int, float]]] | None = None
    ) -> None:
        """The LAYERS.csv of ``codesign allocate-bits``: one row per (layer, bits) with ``layer, bits,
        omega``, one column per entry of ``costs[column][layer][bits]`` (e.g.
        :func:`codesign.quantization.allocation.network_costs`), then ``trace`` and ``params``."""
        costs = costs or {}
        for column, per_layer in costs.items():
            missing = [f"{n}@{b}" for n in self.layers for b in self.bits if b not in per_layer.get(n, {})]
            if missing:
                raise CodesignError(f"cost column {column!r}: no value for {', '.join(missing[:5])}")
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["layer", "bits", "omega", *costs, "trace", "params"])
            for row in self.rows():
                extra = [repr(float(costs[c][row["layer"]][row["bits"]])) for c in costs]
                writer.writerow(
                    [row["layer"], row["bits"], repr(row["omega"]), *extra, repr(row["trace"]), row["params"]]
                )

    def renamed(self, names: Sequence[str]) -> PerturbationTable:
        """The same table under new layer names, in order (e.g. module names to the names of the space's
        :class:`codesign.core.values.Network`, whose weighted layers follow the model's registration order)."""
        if len(names) != len(self.layers) or len(set(names)) != len(names):
            raise CodesignError(
                f"perturbation table: need {len(self.layers)} distinct names, got {list(names)}"
            )
        return PerturbationTable(tuple(names), self.bits, self.traces, self.params, self.omega)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PerturbationTable:
        data = json.loads(text)
        return cls(
            layers=tuple(data["layers"]),
            bits=tuple(int(b) for b in data["bits"]),
            traces=tuple(float(t) for t in data["traces"]),
            params=tuple(int(n) for n in data["params"]),
            omega=tuple(tuple(float(w) for w in row) for row in data["omega"]),
        )


def weighted_layers(model: nn.Module, names: Sequence[str] | None = None) -> list[tuple[str, nn.Module]]:
    """The convolution and linear modules of ``model`` (all, or the named ones in the given order)."""
    found: list[tuple[str, nn.Module]] = [
        (name, m) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)
    ]
    if names is None:
        if not found:
            raise CodesignError(f"{type(model).__name__}: no convolution or linear layers to analyse")
        return found
    by_name = dict(found)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise CodesignError(
            f"no convolution or linear layer named {', '.join(unknown)}; known: {', '.join(by_name)}"
        )
    return [(n, by_name[n]) for n in names]


def _weight(module: nn.Module) -> Tensor:
    return cast(Tensor, module.weight)


def quantize_weight(weight: Tensor, bits: int) -> Tensor:
    """The de-quantized weights of :mod:`codesign.quantization.fake`'s symmetric per-output-channel ``bits``-bit grid
    (the grid the quantized models train and run on), detached."""
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise CodesignError(f"weight bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return fake_quant_weight(weight.detach(), bits).detach()


def hessian_traces(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[tuple[Tensor, Tensor]],
    *,
    layers: Sequence[str] | None = None,
    settings: TraceSettings = TraceSettings(),
) -> tuple[LayerTrace, ...]:
    """Hutchinson trace of each layer's Hessian block of the mean loss over ``batches``.

    The model is evaluated in eval mode (BatchNorm uses running statistics) and restored to its mode
    afterwards. The graph of every batch's gradient is kept for the duration, so memory grows with the
    number of batches; pass a few batches of a few hundred samples.
    """
    if not batches:
        raise CodesignError("hessian traces: no data batches given")
    selected = weighted_layers(model, layers)
    weights = [_weight(m) for _, m in selected]
    total = sum(len(x) for x, _ in batches)
    was_training = model.training
    model.eval()
    try:
        grads = []
        for x, y in batches:
            loss = loss_fn(model(x), y) * (len(x) / total)
            grads.append(torch.autograd.grad(loss, weights, create_graph=True))
        gen = torch.Generator().manual_seed(settings.seed)
        out = []
        for i, (name, _) in enumerate(selected):
            trace, steps = _layer_trace(weights[i], [g[i] for g in grads], gen, settings)
            out.append(LayerTrace(name, trace, weights[i].numel(), steps))
    finally:
        model.train(was_training)
    return tuple(out)


def _layer_trace(
    weight: Tensor, grads: list[Tensor], gen: torch.Generator, settings: TraceSettings
) -> tuple[float, int]:
    estimates: list[float] = []
    mean = 0.0
    for step in range(1, settings.max_iter + 1):
        v = torch.randint(0, 2, weight.shape, generator=gen, dtype=weight.dtype) * 2 - 1
        (hv,) = torch.autograd.grad(
            grads, weight, grad_outputs=[v] * len(grads), retain_graph=True, allow_unused=True
        )
        estimates.append(0.0 if hv is None else float((hv * v).sum()))
        new = sum(estimates) / len(estimates)
        if step > 1 and abs(new - mean) / (abs(mean) + 1e-6) < settings.tol:
            return new, step
        mean = new
    return mean, settings.max_iter


def distill_inputs(
    model: nn.Module, input_shape: Sequence[int], *, settings: DistillSettings = DistillSettings()
) -> Tensor:
    """ZeroQ's distilled data: inputs of shape ``(batch_size, *input_shape)`` optimised so that the batch
    mean and standard deviation entering every BatchNorm layer match its running statistics."""
    norms = [m for m in model.modules() if isinstance(m, _BATCHNORMS) and m.running_mean is not None]
    if not norms:
        raise CodesignError(
            f"{type(model).__name__}: data-free sensitivity needs BatchNorm layers with running statistics"
        )
    gen = torch.Generator().manual_seed(settings.seed)
    x = torch.randn((settings.batch_size, *input_shape), generator=gen).requires_grad_(True)
    captured: list[Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        captured.append(inputs[0])

    handles = [m.register_forward_pre_hook(hook) for m in norms]
    was_training = model.training
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        optimizer = torch.optim.Adam([x], lr=settings.lr)
        for _ in range(settings.steps):
            captured.clear()
            optimizer.zero_grad()
            model(x)
            loss = x.new_zeros(())
            for m, act in zip(norms, captured, strict=True):
                dims = [d for d in range(act.dim()) if d != 1]
                mean = act.mean(dim=dims)
                std = torch.sqrt(act.var(dim=dims, unbiased=False) + m.eps)
                running_mean = cast(Tensor, m.running_mean)
                running_var = cast(Tensor, m.running_var)
                loss = (
                    loss + torch.norm(mean - running_mean) + torch.norm(std - torch.sqrt(running_var + m.eps))
                )
            loss.backward()
            optimizer.step()
    finally:
        for h in handles:
            h.remove()
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    return x.detach()


def perturbation_table(
    model: nn.Module, traces: Sequence[LayerTrace], bits: Sequence[int]
) -> PerturbationTable:
    """``Omega_i(b) = trace_i / params_i * ||Q_b(W_i) - W_i||^2`` for every traced layer and bit-width."""
    if not bits:
        raise CodesignError("perturbation table: no bit-widths given")
    modules = dict(weighted_layers(model, [t.name for t in traces]))
    omega = []
    for t in traces:
        w = _weight(modules[t.name]).detach()
        omega.append(tuple(t.trace_per_param * float(((quantize_weight(w, b) - w) ** 2).sum()) for b in bits))
    return PerturbationTable(
        layers=tuple(t.name for t in traces),
        bits=tuple(int(b) for b in bits),
        traces=tuple(t.trace for t in traces),
        params=tuple(t.params for t in traces),
        omega=tuple(omega),
    )


def weight_perturbation(
    model: nn.Module, weight_bits: Sequence[int], trace_per_param: Sequence[float] | None = None
) -> float:
    """HAWQ's summed perturbation ``sum_i t_i * ||Q_{b_i}(W_i) - W_i||^2`` over the weighted layers of
    ``model`` in registration order, layer ``i`` quantized to ``weight_bits[i]``; ``t_i`` is the layer's
    Hessian trace per parameter, or ``1 / n_i`` (every trace taken as 1) when ``trace_per_param`` is
    ``None``."""
    layers = weighted_layers(model)
    if len(weight_bits) != len(layers) or (
        trace_per_param is not None and len(trace_per_param) != len(layers)
    ):
        raise CodesignError(
            f"weight perturbation: the model has {len(layers)} weighted layers; got {len(weight_bits)} "
            f"bit-widths and {'no' if trace_per_param is None else len(trace_per_param)} traces"
        )
    total = 0.0
    for i, ((_, module), bits) in enumerate(zip(layers, weight_bits, strict=True)):
        w = _weight(module).detach()
        scale = 1.0 / w.numel() if trace_per_param is None else float(trace_per_param[i])
        total += scale * float(((quantize_weight(w, int(bits)) - w) ** 2).sum())
    return total


def sensitivity_table(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[tuple[Tensor, Tensor]],
    *,
    bits: Sequence[int] = (2, 4, 8),
    layers: Sequence[str] | None = None,
    settings: TraceSettings = TraceSettings(),
    cache_dir: Path | str | None = None,
) -> PerturbationTable:
    """Traces and the perturbation table in one call, cached in ``cache_dir`` under a hash of the model's
    state, the data, the loss function's qualified name, the layers, the bit-widths and the settings."""
    key = _content_hash(
        model,
        [t for batch in batches for t in batch],
        ("data", _callable_name(loss_fn), layers, tuple(bits), asdict(settings)),
    )
    return _cached(
        cache_dir,
        key,
        lambda: perturbation_table(
            model, hessian_traces(model, loss_fn, batches, layers=layers, settings=settings), bits
        ),
    )


def data_free_sensitivity_table(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    bits: Sequence[int] = (2, 4, 8),
    layers: Sequence[str] | None = None,
    settings: TraceSettings = TraceSettings(),
    distill: DistillSettings = DistillSettings(),
    cache_dir: Path | str | None = None,
) -> PerturbationTable:
    """The perturbation table without data: distilled inputs (ZeroQ) labelled by the model's own
    predictions, cross-entropy loss. Cached like :func:`sensitivity_table`."""
    key = _content_hash(
        model, [], ("zeroq", tuple(input_shape), layers, tuple(bits), asdict(settings), asdict(distill))
    )

    def compute() -> PerturbationTable:
        x = distill_inputs(model, input_shape, settings=distill)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            labels = model(x).argmax(dim=1)
        model.train(was_training)
        traces = hessian_traces(
            model, nn.functional.cross_entropy, [(x, labels)], layers=layers, settings=settings
        )
        return perturbation_table(model, traces, bits)

    return _cached(cache_dir, key, compute)


def single_layer_drops(
    model: nn.Module, layers: Sequence[str], bits: int, evaluate: Callable[[nn.Module], float]
) -> dict[str, float]:
    """Measured sensitivity: ``evaluate(model)`` at full precision minus its value with one layer's
    weights quantized to ``bits`` (each layer in turn, weights restored afterwards)."""
    base = evaluate(model)
    drops = {}
    for name, module in weighted_layers(model, layers):
        weight = _weight(module)
        original = weight.detach().clone()
        with torch.no_grad():
            weight.copy_(quantize_weight(original, bits))
        try:
            drops[name] = base - evaluate(model)
        finally:
            with torch.no_grad():
                weight.copy_(original)
    return drops


def _callable_name(fn: Callable[..., Any]) -> str:
    if isinstance(fn, nn.Module):
        return f"{type(fn).__module__}.{type(fn).__qualname__}|{fn!r}"
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _content_hash(model: nn.Module, tensors: Iterable[Tensor], extra: Any) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        _update(digest, value)
    for value in tensors:
        _update(digest, value)
    digest.update(json.dumps(extra, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def _update(digest: Any, value: Tensor) -> None:
    flat = value.detach().cpu().contiguous().reshape(-1)
    digest.update(f"{flat.dtype}{tuple(value.shape)}".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes())


def _cached(
    cache_dir: Path | str | None, key: str, compute: Callable[[], PerturbationTable]
) -> PerturbationTable:
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / f"omega-{key[:32]}.json"
    if path.exists():
        return PerturbationTable.from_json(path.read_text())
    table = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(table.to_json())
    tmp.replace(path)
    return table

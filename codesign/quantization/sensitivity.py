"""Per-layer Hessian sensitivity (HAWQ-V2/V3) and the perturbation table the bit-allocation program uses.

The trace of each layer's Hessian block is estimated by Hutchinson's method: ``Tr(H_i) ~ mean v^T H_i v``
over Rademacher vectors ``v`` restricted to the layer's weights, with ``H_i v`` computed by double
back-propagation. Estimation stops when the running mean moves by less than a relative tolerance
(PyHessian: ``tol=1e-3``, at most 100 iterations). Without data, inputs are first distilled so that every
BatchNorm layer sees its running statistics (ZeroQ) and the model's own predictions serve as labels.

The perturbation of layer ``i`` at ``b`` bits is ``Omega_i(b) = |Tr(H_i)| / n_i * ||Q_b(W_i) - W_i||^2``
with ``n_i`` the layer's weight count and ``Q_b`` a symmetric per-output-channel quantizer. The trace
estimate can come out negative (a loss not convex in the layer's weights, few vectors); like HAWQ-V3 and
NNCF the magnitude is used, the raw estimate is kept (:attr:`LayerTrace.negative`,
:attr:`PerturbationTable.negative_traces`) and :meth:`PerturbationTable.notes` says so.

This is the public module; its parts live in private modules, re-exported here: the trace estimator
(``_hessian``: :class:`TraceSettings`, :class:`LayerTrace`, :func:`hessian_traces`,
:func:`weighted_layers`), ZeroQ distillation (``_distill``: :class:`DistillSettings`,
:func:`distill_inputs`) and the perturbations (``_perturbation``: :class:`PerturbationTable`,
:func:`perturbation_table`, :func:`quantize_weight`, :func:`weight_perturbation`,
:func:`single_layer_drops`). The one-call tables with data or without (:func:`sensitivity_table`,
:func:`data_free_sensitivity_table`) and their content-hash cache are defined here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from codesign.core.cachefile import discard, read_checked, write_checked
from codesign.core.errors import CodesignError
from codesign.quantization._distill import DistillSettings, distill_inputs
from codesign.quantization._hessian import (
    LayerTrace,
    LossFn,
    TraceSettings,
    hessian_traces,
    weighted_layers,
)
from codesign.quantization._notes import negative_trace_note
from codesign.quantization._perturbation import (
    PerturbationTable,
    perturbation_table,
    quantize_weight,
    single_layer_drops,
    weight_perturbation,
)

__all__ = [
    "DistillSettings",
    "LayerTrace",
    "LossFn",
    "PerturbationTable",
    "TraceSettings",
    "data_free_sensitivity_table",
    "distill_inputs",
    "hessian_traces",
    "negative_trace_note",
    "perturbation_table",
    "quantize_weight",
    "sensitivity_table",
    "single_layer_drops",
    "weight_perturbation",
    "weighted_layers",
]

_TRACE = TraceSettings()
_DISTILL = DistillSettings()
"""The default settings (module-level values, as the settings are frozen and shared)."""

_CACHE_FORMAT = 2
"""Part of every cache key: entries of format 1 hold Omega from the signed trace (negative for a
negative estimate) and must not be reused now that Omega uses its magnitude."""


def sensitivity_table(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[tuple[Tensor, Tensor]],
    *,
    bits: Sequence[int] = (2, 4, 8),
    layers: Sequence[str] | None = None,
    settings: TraceSettings = _TRACE,
    cache_dir: Path | str | None = None,
) -> PerturbationTable:
    """Traces and the perturbation table in one call, cached in ``cache_dir`` under a hash of the model's
    state, the data, the loss function's qualified name, the layers, the bit-widths and the settings."""
    key = _content_hash(
        model,
        [t for batch in batches for t in batch],
        ("data", _callable_name(loss_fn), layers, tuple(bits), asdict(settings), _CACHE_FORMAT),
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
    settings: TraceSettings = _TRACE,
    distill: DistillSettings = _DISTILL,
    cache_dir: Path | str | None = None,
) -> PerturbationTable:
    """The perturbation table without data: distilled inputs (ZeroQ) labelled by the model's own
    predictions, cross-entropy loss. Cached like :func:`sensitivity_table`."""
    key = _content_hash(
        model,
        [],
        ("zeroq", tuple(input_shape), layers, tuple(bits), asdict(settings), asdict(distill), _CACHE_FORMAT),
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
    data = read_checked(path)
    if data is not None:
        try:
            return PerturbationTable.from_json(data.decode())
        except (CodesignError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            discard(path, "is not a perturbation table")
    table = compute()
    write_checked(path, table.to_json().encode())
    return table

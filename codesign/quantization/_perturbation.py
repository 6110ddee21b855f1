"""Quantization perturbations: the table ``Omega_i(b) = |Tr(H_i)| / n_i * ||Q_b(W_i) - W_i||^2`` the
bit-allocation program reads (with its CSV and JSON forms), the weight quantizer ``Q_b``, HAWQ's summed
perturbation of one assignment, and measured single-layer drops.

Private: import these names from :mod:`codesign.quantization.sensitivity`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.quantization._hessian import LayerTrace, _weight, weighted_layers
from codesign.quantization._notes import negative_trace_note
from codesign.quantization.fake import MAX_BITS, MIN_BITS, fake_quant_weight


@dataclass(frozen=True)
class PerturbationTable:
    """``omega[i][k]``: perturbation of ``layers[i]`` quantized to ``bits[k]`` (others full precision).

    ``traces`` are the raw signed Hutchinson estimates; ``omega`` uses their magnitudes, and
    :attr:`negative_traces` / :meth:`notes` tell which layers' raw estimate was negative."""

    layers: tuple[str, ...]
    bits: tuple[int, ...]
    traces: tuple[float, ...]
    params: tuple[int, ...]
    omega: tuple[tuple[float, ...], ...]

    @property
    def negative_traces(self) -> dict[str, float]:
        """``{layer: raw trace}`` of the layers whose raw trace estimate was negative."""
        return {name: t for name, t in zip(self.layers, self.traces, strict=True) if t < 0}

    def notes(self) -> list[str]:
        """One line per layer with a negative raw trace, e.g. ``trace of layer fc was negative
        (-0.0012); its magnitude is used``."""
        return [negative_trace_note(name, t) for name, t in self.negative_traces.items()]

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


def quantize_weight(weight: Tensor, bits: int) -> Tensor:
    """The de-quantized weights of :mod:`codesign.quantization.fake`'s symmetric per-output-channel ``bits``-bit grid
    (the grid the quantized models train and run on), detached."""
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise CodesignError(f"weight bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return fake_quant_weight(weight.detach(), bits).detach()


def perturbation_table(
    model: nn.Module, traces: Sequence[LayerTrace], bits: Sequence[int]
) -> PerturbationTable:
    """``Omega_i(b) = |trace_i| / params_i * ||Q_b(W_i) - W_i||^2`` for every traced layer and bit-width
    (the magnitude of a negative raw estimate; the table keeps the raw traces)."""
    if not bits:
        raise CodesignError("perturbation table: no bit-widths given")
    modules = dict(weighted_layers(model, [t.name for t in traces]))
    omega = []
    for t in traces:
        w = _weight(modules[t.name]).detach()
        omega.append(
            tuple(t.sensitivity_per_param * float(((quantize_weight(w, b) - w) ** 2).sum()) for b in bits)
        )
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
    ``model`` in registration order, layer ``i`` quantized to ``weight_bits[i]``; ``t_i`` is the magnitude
    of the layer's Hessian trace per parameter (a negative raw estimate counts by its magnitude), or
    ``1 / n_i`` (every trace taken as 1) when ``trace_per_param`` is ``None``."""
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
        scale = 1.0 / w.numel() if trace_per_param is None else abs(float(trace_per_param[i]))
        total += scale * float(((quantize_weight(w, int(bits)) - w) ** 2).sum())
    return total


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

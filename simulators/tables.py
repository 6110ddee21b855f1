"""Per-layer cost tables over bit-width choices, for latency- and resource-budgeted bit allocation.

For a fixed accelerator, :func:`layer_latency_table` gives each weighted layer's latency (ms) at every
``(weight_bits, act_bits)`` choice, with the rest of the network left as it is, so a bit allocation can
budget ``sum_i lat_i(b_i)``. :func:`layer_resource_table` gives the resources each choice costs; how they
combine into a design is the model's ``resource_combine``:

- ``"sum"`` (dataflow): one engine per layer, the design uses the sum over layers (plus the memory
  controller, which the table leaves out);
- ``"max"`` (overlay): the shared array is sized by its widest layer, so the design's DSPs are exactly the
  maximum over layers of the table entries, and BRAM/LUT/FF at least that maximum (each entry is the whole
  array built for that layer alone).
"""

from __future__ import annotations

from collections.abc import Iterable

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Network, Resources
from simulators.base import HardwareModel

BitChoice = tuple[int, int]


def _model(accel: AcceleratorConfig, model: HardwareModel | None) -> HardwareModel:
    if model is not None:
        return model
    from simulators.registry import make_hardware_model

    return make_hardware_model(accel.template)


def _choices(bit_choices: Iterable[BitChoice]) -> tuple[BitChoice, ...]:
    choices = tuple((int(w), int(a)) for w, a in bit_choices)
    if not choices or any(w < 1 or a < 1 for w, a in choices):
        raise CodesignError(
            f"bit_choices must be non-empty (weight_bits, act_bits) pairs of positive ints, got {choices!r}"
        )
    return choices


def layer_latency_table(
    network: Network,
    accel: AcceleratorConfig,
    bit_choices: Iterable[BitChoice],
    *,
    model: HardwareModel | None = None,
) -> dict[str, dict[BitChoice, float]]:
    """``{layer name: {(w, a): latency in ms}}`` for every weighted layer of ``network`` on ``accel``.

    Each entry changes only that layer's bits. ``model`` defaults to the registered model of
    ``accel.template``.
    """
    model = _model(accel, model)
    choices = _choices(bit_choices)
    table: dict[str, dict[BitChoice, float]] = {}
    for index, layer in enumerate(network.layers):
        if not layer.has_weights:
            continue
        row: dict[BitChoice, float] = {}
        for w, a in choices:
            report = model.evaluate(network.with_bits({layer.name: w}, {layer.name: a}), accel)
            row[(w, a)] = report.per_layer[index].latency_ms
        table[layer.name] = row
    return table


def layer_resource_table(
    network: Network,
    accel: AcceleratorConfig,
    bit_choices: Iterable[BitChoice],
    *,
    model: HardwareModel | None = None,
) -> dict[str, dict[BitChoice, Resources]]:
    """``{layer name: {(w, a): Resources}}`` for every weighted layer; combine with the model's
    ``resource_combine`` (see the module docstring)."""
    model = _model(accel, model)
    choices = _choices(bit_choices)
    combine = model.resource_combine
    table: dict[str, dict[BitChoice, Resources]] = {}
    for index, layer in enumerate(network.layers):
        if not layer.has_weights:
            continue
        row: dict[BitChoice, Resources] = {}
        for w, a in choices:
            if combine == "max":
                alone = Network(network.name, (layer.with_bits(w, a),), network.input_shape)
                row[(w, a)] = model.evaluate(alone, accel).resources
            else:
                report = model.evaluate(network.with_bits({layer.name: w}, {layer.name: a}), accel)
                row[(w, a)] = report.per_layer[index].resources
        table[layer.name] = row
    return table

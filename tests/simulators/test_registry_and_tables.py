from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from codesign.core import plugins
from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Network, Resources
from simulators.dataflow import DataflowModel
from simulators.devices import DeviceCatalog
from simulators.overlay import OverlayModel
from simulators.registry import hardware_model_names, make_hardware_model
from simulators.tables import layer_latency_table, layer_resource_table

CHOICES = [(8, 8), (4, 8), (4, 4), (2, 2)]


def test_builtin_models_by_name() -> None:
    assert {"overlay", "dataflow"} <= set(hardware_model_names())
    assert isinstance(make_hardware_model("overlay"), OverlayModel)
    catalog = DeviceCatalog.load()
    built = make_hardware_model("dataflow", catalog=catalog)
    assert isinstance(built, DataflowModel) and built.catalog is catalog
    with pytest.raises(CodesignError, match="unknown hardware model 'asic'; known: .*dataflow.*overlay"):
        make_hardware_model("asic")
    with pytest.raises(CodesignError, match="bad options"):
        make_hardware_model("overlay", lanes=4)


def test_third_party_models_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    group = plugins.HARDWARE_MODELS.group
    plugin = EntryPoint("vendor", "simulators.dataflow:DataflowModel", group)
    broken = EntryPoint("broken", "simulators.dataflow:NoSuchModel", group)
    not_a_model = EntryPoint("odd", "simulators.devices:Device", group)
    takeover = EntryPoint("overlay", "simulators.dataflow:DataflowModel", group)
    real = plugins.entry_points
    monkeypatch.setattr(
        plugins,
        "entry_points",
        lambda group: [*real(group=group), plugin, broken, not_a_model, takeover]
        if group == plugins.HARDWARE_MODELS.group
        else real(group=group),
    )
    assert "vendor" in hardware_model_names()
    assert isinstance(make_hardware_model("vendor"), DataflowModel)
    with pytest.raises(CodesignError, match="cannot load"):
        make_hardware_model("broken")
    with pytest.raises(CodesignError, match="odd.*not a subclass"):
        make_hardware_model("odd")
    # a third-party package cannot take over a built-in name; the clash is reported
    assert isinstance(make_hardware_model("overlay"), OverlayModel)
    assert plugins.clashes(plugins.HARDWARE_MODELS) == ("overlay = simulators.dataflow:DataflowModel",)


def test_overlay_latency_table(stack20: Network) -> None:
    accel = AcceleratorConfig.make("overlay", "xczu3eg", 200, tm=32, tn=16, tr=16, tc=16)
    table = layer_latency_table(stack20, accel, CHOICES)
    assert list(table) == [layer.name for layer in stack20.weighted_layers]
    report = OverlayModel().evaluate(stack20, accel)
    by_name = {c.name: c.latency_ms for c in report.per_layer}
    for name, row in table.items():
        assert row[(8, 8)] == by_name[name]  # the network is all 8-bit already
        assert row[(4, 4)] <= row[(8, 8)]  # narrower layers pack more MACs per DSP
    assert table["conv15"][(4, 4)] < table["conv15"][(8, 8)]
    with pytest.raises(CodesignError, match="bit_choices"):
        layer_latency_table(stack20, accel, [])


def test_resource_tables_combine_as_documented(stack20: Network, tiny: Network) -> None:
    overlay = AcceleratorConfig.make("overlay", "xczu3eg", 200, tm=32, tn=16, tr=16, tc=16)
    table = layer_resource_table(stack20, overlay, CHOICES)
    assert all(
        row[(8, 8)].dsp == 256 and row[(4, 4)].dsp == 128 and row[(2, 2)].dsp == 0 for row in table.values()
    )
    mixed = stack20.with_bits({"conv3": 4, "fc": 4}, {"conv3": 4, "fc": 4})
    assert OverlayModel().evaluate(mixed, overlay).dsp == max(
        table[n][(4, 4) if n in ("conv3", "fc") else (8, 8)].dsp for n in table
    )

    n = len(tiny.layers)
    dataflow = AcceleratorConfig.make("dataflow", "xczu3eg", 200, pe=(2,) * n, simd=(1,) * n)
    rows = layer_resource_table(tiny, dataflow, CHOICES)
    report = DataflowModel().evaluate(tiny, dataflow)
    total = Resources()
    for c in report.per_layer:
        total = total + c.resources
    assert total == report.resources
    for layer in tiny.weighted_layers:
        assert rows[layer.name][(layer.weight_bits, layer.act_bits)] == next(
            c.resources for c in report.per_layer if c.name == layer.name
        )
        assert rows[layer.name][(2, 2)].dsp == 0

"""The NAS-Bench-201 space on the real table in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig
from search_spaces.base import ArchitectureSpace
from search_spaces.nb201 import (
    ACCURACY_COLUMNS,
    OPS,
    NB201Arch,
    NB201Space,
    NB201Table,
    live_edges,
    parse_arch_str,
    read_table,
)
from simulators.overlay import OverlayModel

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def table(nb201_table: Path) -> NB201Table:
    return NB201Table.load(nb201_table)


def test_space_implements_contract_and_round_trips() -> None:
    space = NB201Space()
    assert isinstance(space, ArchitectureSpace)
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        assert space.from_id(space.arch_id(arch)) == arch
        assert space.from_choices({k: op for k, op in zip(space.choices(), arch.ops, strict=True)}) == arch
        mutant = space.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.ops, mutant.ops, strict=True)) == 1
        code = space.encode(arch)
        assert code.shape == (30,) and code.sum() == 6
        assert [OPS[i] for i in code.reshape(6, 5).argmax(axis=1)] == list(arch.ops)
    assert len(space.choices()) == 6 and all(len(v) == 5 for v in space.choices().values())


def test_bad_ids_are_errors() -> None:
    for bad in ("", "|conv~0|+|", "|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|"):
        with pytest.raises(CodesignError, match="arch_str"):
            parse_arch_str(bad)


def test_all_conv_cell_network_shape() -> None:
    net = NB201Space().network(parse_arch_str(ALL_CONV))
    kinds = [layer.kind for layer in net.layers]
    # stem + 15 cells x (6 convs + 3 adds) + 2 reduction blocks x (2 convs, pool, 1x1 conv, add) + gap + fc
    assert kinds.count("conv") == 1 + 15 * 6 + 2 * 3
    assert kinds.count("add") == 15 * 3 + 2
    assert kinds.count("pool") == 2 + 1
    assert net.layers[0].out_channels == 16 and net.layers[-1].out_channels == 10
    assert net.layers[-2].kernel == 8 and net.layers[-2].in_channels == 64
    assert ("rb1_a", "rb1_short") in net.ties
    assert all(edge[1].endswith(("add1", "add2", "_add")) for edge in net.residuals)
    cell_conv = [layer for layer in net.layers if layer.name.startswith("s2c4_e")]
    assert {(layer.in_channels, layer.in_h) for layer in cell_conv} == {(64, 8)}


def test_dead_operations_are_dropped() -> None:
    # node 1 only gets `none`, so the conv 2<-1 reads zeros; node 3 ignores node 2, so conv 2<-0 is dead too
    arch = parse_arch_str("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|none~1|none~2|")
    assert live_edges(arch) == (False, False, False, True, False, False)
    kept = NB201Space().network(arch)
    cell = [layer.name for layer in kept.layers if layer.name.startswith("s0c0")]
    assert cell == ["s0c0_e30_conv1"]
    every = NB201Space(prune=False).network(arch)
    assert len([n for n in every.layers if n.name.startswith("s0c0")]) == 3 + 1  # 3 ops and the node-2 sum
    empty = NB201Space().network(NB201Arch(("none",) * 6))
    assert [layer.name for layer in empty.layers if layer.name.startswith(("s0c", "s1c", "s2c"))] == []


def test_kept_dead_operations_are_listed_as_dead() -> None:
    arch = parse_arch_str("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|none~1|none~2|")
    every = NB201Space(prune=False).network(arch)
    cell = {layer.name for layer in every.layers if layer.name.startswith("s0c0")}
    # both convs into node 2 and their sum are dead; the 1x1 conv into the output is not
    assert cell & set(every.dead) == {"s0c0_e20_conv3", "s0c0_e21_conv3", "s0c0_n2_add1"}
    assert len(every.dead) == 15 * 3
    assert NB201Space().network(arch).dead == ()
    # a cell whose every operation reaches the output has nothing dead
    assert NB201Space(prune=False).network(parse_arch_str(EXAMPLE)).dead == ()
    # the live layers of the full network are the layers of the pruned one, convolutions and pools alike
    for arch_id in ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|", EXAMPLE):
        full, pruned = (NB201Space(prune=p).network(parse_arch_str(arch_id)) for p in (False, True))
        live = [layer.name for layer in full.layers if layer.name not in full.dead and layer.kind != "add"]
        assert live == [layer.name for layer in pruned.layers if layer.kind != "add"]


def test_bits_follow_weighted_layers() -> None:
    space = NB201Space()
    arch = parse_arch_str(EXAMPLE)
    n = space.n_weighted(arch)
    net = space.network(arch, weight_bits=[4] * n, act_bits=[6] * n)
    assert all(layer.weight_bits == 4 and layer.act_bits == 6 for layer in net.weighted_layers)
    with pytest.raises(CodesignError, match="weight_bits needs"):
        space.network(arch, weight_bits=[4])


def test_table_lookup_and_validation(table: NB201Table, tmp_path: Path) -> None:
    assert len(table) == 15625
    row = NB201Space(table).lookup(parse_arch_str(EXAMPLE))
    assert row["nb201_index"] == 1 and row["cifar10_test_acc"] == pytest.approx(0.9366)  # a fraction: the file says 93.66 %
    assert row["lat_ms_fpga"] == pytest.approx(5.3154)
    assert set(row) >= {"cifar100_test_acc", "cifar10_ptq_int8_acc", "lat_ms_eyeriss", "lat_ms_pixel3"}
    assert table.column("lat_ms_fpga").shape == (15625,)
    with pytest.raises(CodesignError, match="not found"):
        NB201Table.load(tmp_path / "absent.csv.gz")
    bad = tmp_path / "bad.csv"
    bad.write_text("nb201_index,arch_str\n0,x\n")
    with pytest.raises(CodesignError, match="missing column.*cifar10_test_acc"):
        NB201Table.load(bad)
    accuracies = [table.column(c) for c in ACCURACY_COLUMNS]
    assert all(a.min() >= 0.0 and a.max() <= 1.0 for a in accuracies)
    assert table.column("cifar10_test_acc").max() > 0.9  # fractions, not percent divided twice
    percent = tmp_path / "percent.csv"
    percent.write_text("nb201_index,arch_str,cifar10_test_acc,other_acc\n0,x,101.0,50\n")
    with pytest.raises(CodesignError, match="cifar10_test_acc must hold accuracies in percent, 0..100"):
        NB201Table.load(percent)
    percent.write_text("nb201_index,arch_str,cifar10_test_acc,other_acc,lat_ms_x\n0,x,50.0,25,7\n")
    frame = read_table(percent)
    assert (frame.cifar10_test_acc[0], frame.other_acc[0], frame.lat_ms_x[0]) == (0.5, 0.25, 7)
    with pytest.raises(CodesignError, match="no table loaded"):
        NB201Space().lookup(parse_arch_str(EXAMPLE))


def test_every_table_cell_parses_and_maps(table: NB201Table) -> None:
    space = NB201Space(table)
    ids = table.arch_strs()
    assert all(space.arch_id(space.from_id(a)) == a for a in ids)
    rng = np.random.default_rng(1)
    model = OverlayModel()
    accel = AcceleratorConfig.make("overlay", "xczu3eg", 200, tm=16, tn=4, tr=16, tc=16)
    picks = [ids[i] for i in rng.choice(len(ids), 300, replace=False)]
    space_all = NB201Space(table, prune=False)
    simulated = [model.evaluate(space_all.network(space_all.from_id(a)), accel).latency_ms for a in picks]
    measured = [table.lookup(a)["lat_ms_fpga"] for a in picks]
    assert spearmanr(simulated, measured)[0] > 0.9

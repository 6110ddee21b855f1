"""Bit-width decisions honour ties; the registry builds presets and rejects unknown names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from search_spaces.bitwidth import BitWidthSpace, tie_groups
from search_spaces.mbconv import MBConvSpace
from search_spaces.registry import make_space, space_names


def test_tie_groups_merge_layers_that_read_one_activation():
    space = make_space("resnet_digits")
    net = space.network(space.from_id("8x1_16x1_32x1"))
    names = [lyr.name for lyr in net.weighted_layers]
    groups = [[names[i] for i in g] for g in tie_groups(net)]
    assert ["s1b0_conv1", "s1b0_shortcut"] in groups
    assert sum(len(g) for g in groups) == len(names)


def test_sample_and_expand_honour_ties():
    space = make_space("resnet_mnist")
    net = space.network(space.largest())
    bits = BitWidthSpace()
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(20):
        w, a = bits.sample(rng, net)
        bits.validate(net, w, a)
        seen.update(w)
        for group in tie_groups(net):
            assert len({(w[i], a[i]) for i in group}) == 1
    assert seen == {2, 4, 8}
    decisions = bits.choices(net)
    assert len(decisions) == 2 * len(tie_groups(net)) < 2 * len(net.weighted_layers)
    w, a = bits.expand({key: options[-1] for key, options in decisions.items()}, net)
    assert set(w) == {8} and set(a) == {8}


def test_expand_rejects_missing_and_out_of_space_values():
    net = make_space("mbconv_digits").network(make_space("mbconv_digits").smallest())
    bits = BitWidthSpace(weight_bits=(4, 8), act_bits=(8,))
    decisions = {key: options[0] for key, options in bits.choices(net).items()}
    with pytest.raises(CodesignError, match="not in"):
        bits.expand({**decisions, next(iter(decisions)): 2}, net)
    with pytest.raises(CodesignError, match="missing decision"):
        bits.expand({}, net)
    resnet = make_space("resnet_digits")
    net = resnet.network(resnet.from_id("8x1_16x1_32x1"))
    w, a = bits.uniform(net, 4, 8)
    bits.validate(net, w, a)
    tied = next(g for g in tie_groups(net) if len(g) > 1)
    broken = list(w)
    broken[tied[0]] = 8
    with pytest.raises(CodesignError, match="need equal bits"):
        bits.validate(net, tuple(broken), a)


def test_registry_presets_and_overrides():
    names = space_names()
    for name in ("mbconv_digits", "mbconv_mnist", "resnet_digits", "resnet_mnist"):
        assert name in names
    assert make_space("mbconv_mnist").input_shape == (1, 28, 28)
    space = make_space("mbconv_digits", depths=[1, 2, 3], kernels=[3])
    assert isinstance(space, MBConvSpace) and space.depths == (1, 2, 3) and space.kernels == (3,)
    with pytest.raises(CodesignError, match="unknown search space 'nope'; known: .*mbconv_digits"):
        make_space("nope")
    with pytest.raises(CodesignError, match="unknown option"):
        make_space("mbconv_digits", widths=[1])


def test_nb201_is_registered_lazily_and_loads_its_table_by_path(nb201_table: Path) -> None:
    assert "nb201" in space_names()
    space = make_space("nb201", table=str(nb201_table))
    assert space.name == "nb201" and space.table is not None
    assert make_space("nb201").table is None

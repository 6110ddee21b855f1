"""MBConv and ResNet spaces: the four views agree, ids round-trip, ties and shapes are right."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codesign.core.errors import CodesignError
from codesign.nn.models import build_model
from codesign.quantization.fake import quant_layers
from search_spaces.base import ArchitectureSpace
from search_spaces.mbconv import MBConvArch, MBConvSpace
from search_spaces.registry import make_space

SPACES = ["mbconv_digits", "mbconv_mnist", "resnet_digits", "resnet_mnist"]


def archs(space, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(n))]


@pytest.mark.parametrize("name", SPACES)
def test_space_satisfies_contract_and_ids_round_trip(name):
    space = make_space(name)
    assert isinstance(space, ArchitectureSpace)
    lengths = set()
    for arch in archs(space, 20):
        assert space.from_id(space.arch_id(arch)) == arch
        lengths.add(space.encode(arch).shape)
        assert space.from_choices(space.to_choices(arch)) == arch
    assert len(lengths) == 1


@pytest.mark.parametrize("name", SPACES)
def test_sampling_is_seeded_and_mutation_changes_one_choice(name):
    space = make_space(name)
    a = [space.arch_id(space.sample(np.random.default_rng(7))) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(1)
    for arch in archs(space, 10):
        child = space.mutate(arch, rng)
        assert child != arch
        before, after = space.to_choices(arch), space.to_choices(child)
        changed = [k for k in before if before[k] != after[k]]
        assert len(changed) >= 1
        # only a depth change may alter more than one (then: grown slots take default settings)
        assert len(changed) == 1 or any(k.endswith("_depth") for k in changed)


@pytest.mark.parametrize("name", SPACES)
def test_bad_ids_name_the_id(name):
    space = make_space(name)
    for bad in ["", "nonsense", "999-k3e1_16-k3e1_24-k3e1", "8x9_16x1_32x1", "8-k4e1_16-k3e1_24-k3e1"]:
        with pytest.raises(CodesignError, match="bad architecture id"):
            space.from_id(bad)


def test_inactive_choices_are_ignored():
    space = make_space("mbconv_digits")
    values = space.to_choices(space.smallest())
    other = dict(values, s0_b1_kernel=5, s0_b1_expand=6)  # block 1 of stage 0 is beyond depth 1
    assert space.from_choices(other) == space.from_choices(values)
    assert np.array_equal(space.encode(space.from_choices(other)), space.encode(space.smallest()))


@pytest.mark.parametrize("name", SPACES)
def test_network_shapes_match_the_torch_model(name):
    space = make_space(name)
    for arch in archs(space, 4):
        net = space.network(arch)
        model = build_model(space, arch).eval()
        shapes: list[tuple[int, ...]] = []
        for layer in quant_layers(model):
            layer.register_forward_hook(lambda _m, _i, out, acc=shapes: acc.append(tuple(out.shape[1:])))
        model(torch.zeros(2, *space.input_shape))
        expected = [
            (layer.out_channels, layer.out_h, layer.out_w) if layer.kind == "conv" else (layer.out_channels,)
            for layer in net.weighted_layers
        ]
        assert shapes == expected
        params = sum(
            q.weight.numel() + (q.bias.numel() if q.bias is not None else 0) for q in quant_layers(model)
        )
        assert params == net.params


def test_mbconv_block_structure_residuals_and_ties():
    space = MBConvSpace(
        input_shape=(1, 8, 8), stage_widths=((8,), (16,)), stage_strides=(1, 2), stem_channels=8
    )
    arch = MBConvArch(widths=(8, 16), kernels=((3, 5), (3,)), expansions=((1, 3), (6,)))
    net = space.network(arch)
    names = [layer.name for layer in net.layers]
    assert names == [
        "stem",
        "s0b0_dw", "s0b0_project", "s0b0_add",
        "s0b1_expand", "s0b1_dw", "s0b1_project", "s0b1_add",
        "s1b0_expand", "s1b0_dw", "s1b0_project",
        "pool", "fc",
    ]  # fmt: skip
    assert net.residuals == (("stem", "s0b0_add"), ("s0b0_add", "s0b1_add"))
    assert net.ties == (("s0b0_dw", "s0b0_add"), ("s0b1_expand", "s0b1_add"))
    layer = {lyr.name: lyr for lyr in net.layers}
    assert layer["s0b1_dw"].groups == 24 and layer["s0b1_dw"].kernel == 5 and layer["s0b1_dw"].is_depthwise
    assert (layer["s1b0_dw"].out_h, layer["s1b0_dw"].stride) == (4, 2)
    assert layer["pool"].kernel == 4 and layer["fc"].in_channels == 16


def test_resnet_shortcut_is_tied_to_the_first_conv():
    space = make_space("resnet_digits")
    arch = space.from_id("8x2_16x1_32x1")
    net = space.network(arch)
    names = [layer.name for layer in net.weighted_layers]
    assert names[:4] == ["stem", "s0b0_conv1", "s0b0_conv2", "s0b1_conv1"]  # width 8 == stem: no shortcut
    assert ("s1b0_conv1", "s1b0_shortcut") in net.ties
    assert ("s0b0_conv1", "s0b0_add") in net.ties
    assert ("s1b0_shortcut", "s1b0_add") in net.residuals
    shortcut = next(lyr for lyr in net.layers if lyr.name == "s1b0_shortcut")
    assert (shortcut.kernel, shortcut.stride, shortcut.in_channels, shortcut.out_channels) == (1, 2, 8, 16)


def test_bits_follow_weighted_layers_and_wrong_lengths_fail():
    space = make_space("mbconv_digits")
    arch = space.smallest()
    n = len(space.network(arch).weighted_layers)
    w = tuple(2 + 2 * (i % 2) for i in range(n))
    net = space.network(arch, w, (8,) * n)
    assert tuple(lyr.weight_bits for lyr in net.weighted_layers) == w
    with pytest.raises(CodesignError, match="weight_bits has"):
        space.network(arch, w[:-1], (8,) * n)


def test_space_options_are_validated():
    with pytest.raises(CodesignError, match="kernel sizes must be odd"):
        MBConvSpace(kernels=(3, 4))
    with pytest.raises(CodesignError, match="one stride per stage"):
        MBConvSpace(stage_strides=(1, 2))

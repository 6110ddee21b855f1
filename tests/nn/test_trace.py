"""trace_network: the built-in models trace to their spaces' hand-built networks, standard architectures
(codesign.nn.zoo) trace with the layers and MACs counted by hand, every layer kind maps as documented,
anything else is a one-line error naming the node, and the hardware models cost every traced network."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.core.values import AcceleratorConfig, Layer, Network
from codesign.nn.models import build_model
from codesign.nn.trace import trace_network
from codesign.nn.zoo import MOBILENET_V2_BLOCKS, ZOO, mobilenet_v2, resnet20, shufflenet_v2_stage, zoo_model
from codesign.quantization.fake import quant_layers, set_bits, set_quant_mode
from search_spaces.registry import make_space
from simulators.base import HardwareModel
from simulators.dataflow import DataflowModel
from simulators.overlay import OverlayModel
from simulators.pipeline import PipelineModel

BUILT_IN = ("mbconv_digits", "resnet_digits", "mbconv_mnist", "resnet_mnist")


def renamed(network: Network, names: list[str]) -> Network:
    """``network`` with its layers renamed position by position (edges, ties and dead names follow)."""
    to = dict(zip((layer.name for layer in network.layers), names, strict=True)) | {"input": "input"}
    return dataclasses.replace(
        network,
        layers=tuple(dataclasses.replace(layer, name=to[layer.name]) for layer in network.layers),
        residuals=tuple((to[a], to[b]) for a, b in network.residuals),
        ties=tuple(tuple(to[n] for n in group) for group in network.ties),
        dead=tuple(to[n] for n in network.dead),
    )


def kinds(network: Network) -> dict[str, int]:
    out: dict[str, int] = {}
    for layer in network.layers:
        out[layer.kind] = out.get(layer.kind, 0) + 1
    return out


# ----- the built-in spaces ----------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", BUILT_IN)
def test_built_in_models_trace_to_the_hand_built_networks(space_name: str) -> None:
    """Layer for layer, every field, residual edges, ties and dead layers: the traced network is the
    space's network once its layers take the hand-built names; the bits are given or read off the model."""
    space = make_space(space_name)
    rng = np.random.default_rng(7)
    archs = [space.smallest(), space.largest(), *(space.sample(rng) for _ in range(4))]  # type: ignore[attr-defined]
    for arch in archs:
        n = space.n_weighted(arch)  # type: ignore[attr-defined]
        wb = tuple(int(b) for b in rng.choice([2, 3, 4, 6, 8], n))
        ab = tuple(int(b) for b in rng.choice([2, 4, 5, 8], n))
        expected = space.network(arch, wb, ab)
        model = build_model(space, arch)
        traced = trace_network(model, space.input_shape, name=expected.name, weight_bits=wb, act_bits=ab)  # type: ignore[attr-defined]
        assert renamed(traced, [layer.name for layer in expected.layers]) == expected
        # the weighted layers come in the registration order of the quantized modules (set_bits' order)
        paths = {id(m): p.replace(".", "_") for p, m in model.named_modules()}
        assert [layer.name for layer in traced.weighted_layers] == [paths[id(m)] for m in quant_layers(model)]
        set_bits(model, wb, ab)
        assert trace_network(model, space.input_shape, name=expected.name) == traced  # type: ignore[attr-defined]


def test_tracing_leaves_the_model_as_it_was() -> None:
    """Training mode, BatchNorm statistics and calibration observers are untouched."""
    space = make_space("resnet_digits")
    model = build_model(space, space.largest())  # type: ignore[attr-defined]
    set_quant_mode(model, "observe")
    model.train()
    before = copy.deepcopy(model.state_dict())
    trace_network(model, torch.randn(4, 1, 8, 8), name="r")
    after = model.state_dict()
    assert model.training and before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ----- standard architectures -------------------------------------------------------------------------
def conv_macs(cin: int, cout: int, kernel: int, out_px: int, groups: int = 1) -> int:
    return cout * (cin // groups) * kernel * kernel * out_px


def test_resnet20() -> None:
    net = trace_network(resnet20(), (3, 32, 32), name="resnet20")
    assert kinds(net) == {"conv": 21, "add": 9, "pool": 1, "linear": 1}  # 19 3x3 convs + 2 shortcuts
    layers = {layer.name: layer for layer in net.layers}
    stem = layers["stem_0"]
    assert (stem.in_channels, stem.out_channels, stem.kernel, stem.in_h, stem.out_h) == (3, 16, 3, 32, 32)
    assert stem.macs == 3 * 16 * 9 * 32 * 32
    shortcut = layers["layers_3_shortcut_0"]
    assert (shortcut.kernel, shortcut.stride, shortcut.in_h, shortcut.out_h) == (1, 2, 32, 16)
    assert shortcut.macs == 16 * 32 * 16 * 16
    hand = (
        conv_macs(3, 16, 3, 32 * 32)
        + 6 * conv_macs(16, 16, 3, 32 * 32)
        + conv_macs(16, 32, 3, 16 * 16) + 5 * conv_macs(32, 32, 3, 16 * 16) + conv_macs(16, 32, 1, 16 * 16)
        + conv_macs(32, 64, 3, 8 * 8) + 5 * conv_macs(64, 64, 3, 8 * 8) + conv_macs(32, 64, 1, 8 * 8)
        + 64 * 10
    )  # fmt: skip
    assert net.macs == hand == 40_813_184
    assert net.layers[-2] == Layer("pool", "pool", 64, 64, 8, 8, 8, 8, mode="avg")
    assert net.layers[-1].kind == "linear" and net.layers[-1].in_channels == 64
    assert len(net.residuals) == 9 and all(layers[dst].kind == "add" for _, dst in net.residuals)
    # an identity block's add reads the block input; a downsampling block's reads its shortcut conv
    assert ("layers_0_add", "layers_1_add") in net.residuals
    assert ("layers_3_conv2", "layers_3_add") in net.residuals  # shortcut registered after conv2 here
    assert net.dead == ()


def mobilenet_v2_hand_macs(num_classes: int = 10) -> int:
    """MobileNetV2 at width 1 on 32x32 inputs (stem and second stage stride 1), counted from the table."""
    size, cin = 32, 32
    total = conv_macs(3, 32, 3, size * size)
    for i, (t, c, n, s) in enumerate(MOBILENET_V2_BLOCKS):
        for b in range(n):
            stride = (1 if i == 1 else s) if b == 0 else 1
            hidden = cin * t
            if t != 1:
                total += conv_macs(cin, hidden, 1, size * size)
            size //= stride
            total += conv_macs(hidden, hidden, 3, size * size, groups=hidden)
            total += conv_macs(hidden, c, 1, size * size)
            cin = c
    return total + conv_macs(cin, 1280, 1, size * size) + 1280 * num_classes


def test_mobilenet_v2() -> None:
    net = trace_network(mobilenet_v2(), (3, 32, 32), name="mobilenet_v2")
    assert kinds(net) == {"conv": 52, "add": 10, "pool": 1, "linear": 1}  # ReLU6, BN, dropout: no layers
    assert sum(layer.is_depthwise for layer in net.layers) == 17
    dw = {layer.name: layer for layer in net.layers}["features_4_conv_3"]  # first t=6 block: 16 -> 24
    assert (dw.in_channels, dw.groups, dw.kernel, dw.stride, dw.in_h) == (96, 96, 3, 1, 32)
    assert dw.macs == 96 * 9 * 32 * 32
    assert net.macs == mobilenet_v2_hand_macs()
    assert len(net.residuals) == 10
    assert net.layers[-1] == Layer("classifier_1", "linear", 1280, 10, bias=True)


def test_shufflenet_stage() -> None:
    """Channel split (chunk), concat and channel shuffle (view, transpose, reshape): the split and the
    shuffle are relabellings, each unit's concat is a layer joined to the unit input by a residual edge."""
    net = trace_network(shufflenet_v2_stage(), (3, 32, 32), name="shufflenet")
    assert kinds(net) == {"conv": 13, "concat": 3, "pool": 2, "linear": 1}
    layers = {layer.name: layer for layer in net.layers}
    for unit in (0, 1, 2):
        cat = layers[f"stage_{unit}_cat"]
        assert (cat.in_channels, cat.out_channels, cat.in_h, cat.macs) == (48, 48, 8, 0)
        assert cat.ops == 48 * 8 * 8
    # a stride-1 unit transforms half the channels (the chunk), then joins the untouched half
    first = layers["stage_1_branch2_0"]
    assert (first.in_channels, first.out_channels, first.in_h) == (24, 24, 8)
    dw = layers["stage_1_branch2_3"]
    assert dw.is_depthwise and dw.macs == 24 * 9 * 8 * 8
    assert ("stage_0_cat", "stage_1_cat") in net.residuals and ("stage_1_cat", "stage_2_cat") in net.residuals
    assert ("stage_1_branch2_0", "stage_1_cat") in net.ties  # both read the previous unit's output
    assert layers["mean"] == Layer("mean", "pool", 128, 128, 8, 8, 8, 8, mode="avg")
    assert layers["stem_3"] == Layer("stem_3", "pool", 24, 24, 32, 32, 3, 2, 1, mode="max")
    shuffled = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ChannelShuffle(2), nn.Conv2d(8, 8, 1))
    assert [layer.kind for layer in trace_network(shuffled, (3, 8, 8), name="s").layers] == ["conv", "conv"]


def test_zoo_names() -> None:
    assert [entry.name for entry in ZOO] == ["resnet20", "mobilenet_v2", "shufflenet_v2_stage"]
    with pytest.raises(CodesignError, match="known: resnet20"):
        zoo_model("vgg")


# ----- what maps to what --------------------------------------------------------------------------------
class Apply(nn.Module):
    """A 3->8 conv, then ``fn``."""

    def __init__(self, fn: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.conv(x))  # type: ignore[operator]


def traced(fn: object, shape: tuple[int, ...] = (3, 8, 8)) -> Network:
    return trace_network(Apply(fn), shape, name="t")


def test_dilated_conv_is_costed_on_its_window() -> None:
    plain = trace_network(nn.Conv2d(8, 8, 3, padding=1), (8, 16, 16), name="p").layers[0]
    dilated = trace_network(nn.Conv2d(8, 8, 3, padding=2, dilation=2), (8, 16, 16), name="d").layers[0]
    assert (dilated.dilation, dilated.effective_kernel, dilated.out_h, dilated.macs) == (2, 5, 16, plain.macs)
    same = trace_network(nn.Conv2d(8, 8, 5, padding="same", dilation=3), (8, 16, 16), name="s").layers[0]
    assert (same.padding, same.out_h) == (6, 16)
    assert dilated.to_dict()["dilation"] == 2 and "dilation" not in plain.to_dict()
    assert Layer.from_dict(dilated.to_dict()) == dilated
    # same MACs, but the window spans 5 pixels: the overlay loads bigger input tiles, the dataflow
    # engine keeps 5 rows in its line buffer
    overlay = OverlayModel()
    accel = overlay.best_accelerator(Network("p", (plain,), (8, 16, 16)), "xczu3eg")[0]
    costs = [
        overlay.evaluate(Network("n", (layer,), (8, 16, 16)), accel).per_layer[0]
        for layer in (plain, dilated)
    ]
    assert costs[0].cycles <= costs[1].cycles and costs[0].offchip_bytes < costs[1].offchip_bytes
    wide = [dataclasses.replace(layer, in_channels=32, in_h=64, in_w=64) for layer in (plain, dilated)]
    design = AcceleratorConfig.make("dataflow", "xczu3eg", 200, pe=(1,), simd=(1,))
    brams = [DataflowModel().evaluate(Network("n", (layer,), (32, 64, 64)), design).bram18 for layer in wide]
    assert brams[0] < brams[1]


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (nn.MaxPool2d(2), Layer("fn", "pool", 8, 8, 8, 8, 2, 2, mode="max")),
        (nn.AvgPool2d(3, 1, 1), Layer("fn", "pool", 8, 8, 8, 8, 3, 1, 1, mode="avg")),
        (lambda x: F.max_pool2d(x, 3, 2, 1), Layer("max_pool2d", "pool", 8, 8, 8, 8, 3, 2, 1, mode="max")),
        (nn.AdaptiveAvgPool2d(1), Layer("fn", "pool", 8, 8, 8, 8, 8, 8, mode="avg")),
        (nn.AdaptiveMaxPool2d(2), Layer("fn", "pool", 8, 8, 8, 8, 4, 4, mode="max")),
        (lambda x: x.mean((2, 3)), Layer("mean", "pool", 8, 8, 8, 8, 8, 8, mode="avg")),
        (
            lambda x: torch.amax(x, (-1, -2), keepdim=True),
            Layer("amax", "pool", 8, 8, 8, 8, 8, 8, mode="max"),
        ),
        (nn.Upsample(scale_factor=2), Layer("fn", "upsample", 8, 8, 8, 8, 1, 2, mode="nearest")),
        (
            lambda x: F.interpolate(x, scale_factor=3, mode="bilinear", align_corners=False),
            Layer("interpolate", "upsample", 8, 8, 8, 8, 2, 3, mode="bilinear"),
        ),
        (lambda x: torch.cat([x, x[:, :4]], dim=1), Layer("cat", "concat", 12, 12, 8, 8)),
    ],
)
def test_layer_kinds(fn: object, expected: Layer) -> None:
    net = traced(fn)
    assert [layer.name for layer in net.layers] == ["conv", expected.name]
    assert net.layers[1] == expected


@pytest.mark.parametrize(
    "fn",
    [
        nn.ReLU6(), nn.SiLU(), nn.GELU(), nn.Hardswish(), nn.Sigmoid(), nn.LeakyReLU(), nn.Dropout(0.5),
        nn.BatchNorm2d(8), lambda x: torch.clamp(x, 0, 6), lambda x: x * 0.5 + 1, lambda x: x.view(1, 2, 4, 8, 8),
        lambda x: x.view(1, 2, 4, 8, 8).transpose(1, 2).reshape(1, 8, 8, 8), lambda x: torch.channel_shuffle(x, 2),
        lambda x: x.chunk(2, dim=1)[1], lambda x: x[:, 2:6], nn.Flatten(), lambda x: F.log_softmax(x.flatten(1), 1),
    ],
)  # fmt: skip
def test_folded_and_relabelled_operations_add_no_layer(fn: object) -> None:
    assert [layer.name for layer in traced(fn).layers] == ["conv"]


def test_linear_layers() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 10))
    net = trace_network(mlp, (3, 4, 4), name="mlp")
    assert net.layers == (Layer("1", "linear", 48, 16, bias=True), Layer("3", "linear", 16, 10, bias=True))
    # one matrix at each of 5 positions: a pointwise convolution over a 5 x 1 map
    tokens = trace_network(nn.Linear(8, 16), torch.randn(2, 5, 8), name="tokens")
    assert tokens.layers == (Layer("linear", "conv", 8, 16, 5, 1, bias=True),)
    assert tokens.input_shape == (5, 8, 1)


class TwoBranch(nn.Module):
    """Two branches of the input joined twice: an add and a concat, plus a dead branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 1)
        self.unused = nn.Conv2d(3, 8, 1)

    def forward(self, x: Tensor) -> Tensor:
        self.unused(x)
        a, b = self.a(x), self.b(x)
        return torch.cat([a + b, b], dim=1)


def test_edges_ties_and_dead_layers() -> None:
    net = trace_network(TwoBranch(), (3, 8, 8), name="two", act_bits=(5, 6, 7))
    assert [layer.name for layer in net.layers] == ["a", "b", "unused", "add", "cat"]
    assert net.residuals == (("a", "add"), ("b", "add"), ("b", "cat"))
    assert net.ties == (("a", "b", "unused"), ("add", "cat"))
    assert net.dead == ("unused",)
    # the add and the concat fork from the input, whose first weighted reader is "a"
    assert [layer.act_bits for layer in net.layers] == [5, 6, 7, 5, 5]


# ----- errors -----------------------------------------------------------------------------------------
def sign_op(x: Tensor) -> Tensor:
    return x.sign()


torch.fx.wrap("sign_op")


class CallsWrapped(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return sign_op(x)


class BinarizeSTE(torch.autograd.Function):
    """Sign with a straight-through gradient (a custom autograd function)."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        return x.sign()

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        return grad


class Branchy(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x if x.sum() > 0 else -x


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (Apply(lambda x: torch.fft.fft2(x).real), r"cannot cost node 'fft_fft2' \(call_function torch\._C\._fft\.fft_fft2\): no layer kind"),
        (Apply(BinarizeSTE.apply), r"cannot cost node 'sign' \(call_method Tensor\.sign\): no layer kind"),
        (nn.Sequential(nn.Conv2d(3, 8, 3), CallsWrapped()), r"cannot cost node 'sign_op' \(call_function [\w.]*test_trace\.sign_op\): no layer kind"),
        (Apply(lambda x: x * torch.sigmoid(x)), r"node 'mul' \(call_function operator\.mul\): an elementwise product"),
        (Apply(lambda x: torch.cat([x, x], dim=2)), r"node 'cat' .*a concat joins channels"),
        (Apply(lambda x: x.permute(0, 2, 3, 1)), r"node 'permute' \(call_method Tensor\.permute\): it moves the batch, height or width"),
        (Apply(lambda x: F.pad(x, (1, 1))), r"node 'pad' \(call_function torch\.nn\.functional\.pad\)"),
        (Apply(lambda x: x + x.mean((2, 3), keepdim=True)), r"node 'add' .*an add layer needs one shape"),
        (Apply(lambda x: F.softmax(x, 1) * 2), r"node 'softmax' .*only on the network output"),
        (Apply(lambda x: F.interpolate(x, scale_factor=2, mode="bicubic")), r"node 'interpolate' .*'bicubic'"),
        (Apply(nn.AdaptiveAvgPool2d(3)), r"node 'fn' \(call_module fn: AdaptiveAvgPool2d\): .*uneven windows"),
        (nn.Conv2d(3, 8, (1, 7)), r"node 'conv2d' \(call_module conv2d: Conv2d\): kernel \(1, 7\) differs"),
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(8, 8, 2)), r"node '_1' \(call_module 1: ConvTranspose2d\): no layer kind"),
        (Branchy(), r"cannot trace 'm': torch\.fx cannot follow its forward .*torch\.fx\.wrap"),
        (nn.Sequential(nn.Conv2d(4, 8, 3)), r"cannot trace 'm': node '_0' \(call_module 0: Conv2d\) fails on the example input"),
    ],
)  # fmt: skip
def test_what_cannot_be_costed_is_a_one_line_error_naming_the_node(model: nn.Module, message: str) -> None:
    with pytest.raises(CodesignError, match=message) as caught:
        trace_network(model, (3, 8, 8), name="m")
    assert "\n" not in str(caught.value)


def test_bad_arguments() -> None:
    with pytest.raises(CodesignError, match="weight_bits has 2 entries; the network has 1 weighted layers"):
        trace_network(nn.Conv2d(3, 8, 3), (3, 8, 8), name="m", weight_bits=(8, 8))
    with pytest.raises(CodesignError, match="positive integers"):
        trace_network(nn.Conv2d(3, 8, 3), (3, 0, 8), name="m")
    with pytest.raises(CodesignError, match="no layer the hardware models cost"):
        trace_network(nn.ReLU(), (3, 8, 8), name="m")


# ----- the hardware models cost every traced network ----------------------------------------------------
class TinyUNet(nn.Module):
    """An encoder level, a dilated bottleneck, nearest and bilinear upsampling and a skip concat."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.mid = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=2, dilation=2), nn.ReLU())
        self.dec = nn.Conv2d(24, 8, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.enc(x)
        up = F.interpolate(self.mid(skip), scale_factor=2)
        y = self.dec(torch.cat([skip, up], dim=1))
        return self.head(F.interpolate(F.avg_pool2d(y, 2), scale_factor=2, mode="bilinear"))


def test_tiny_unet() -> None:
    net = trace_network(TinyUNet(), (3, 16, 16), name="unet")
    assert [(layer.name, layer.kind) for layer in net.layers] == [
        ("enc_0", "conv"), ("mid_0", "pool"), ("mid_1", "conv"), ("interpolate", "upsample"), ("cat", "concat"),
        ("dec", "conv"), ("avg_pool2d", "pool"), ("interpolate_1", "upsample"), ("head", "conv"),
    ]  # fmt: skip
    layers = {layer.name: layer for layer in net.layers}
    assert layers["cat"] == Layer("cat", "concat", 24, 24, 16, 16)
    assert layers["interpolate_1"] == Layer("interpolate_1", "upsample", 8, 8, 8, 8, 2, 2, mode="bilinear")
    assert layers["mid_1"].dilation == 2 and layers["mid_1"].macs == 16 * 8 * 9 * 8 * 8
    assert net.residuals == (("enc_0", "cat"),)


def traced_networks() -> list[Network]:
    space = make_space("mbconv_digits")
    built_in = trace_network(build_model(space, space.largest()), space.input_shape, name="mbconv")  # type: ignore[attr-defined]
    unet = trace_network(TinyUNet(), (3, 16, 16), name="unet")
    return [built_in, unet, *(trace_network(z.build(), z.input_shape, name=z.name) for z in ZOO)]


@pytest.fixture(scope="module")
def networks() -> list[Network]:
    return traced_networks()


@pytest.mark.parametrize("model", [OverlayModel(), DataflowModel(), PipelineModel()], ids=lambda m: m.name)
def test_hardware_models_cost_every_traced_network(model: HardwareModel, networks: list[Network]) -> None:
    for network in networks:
        accel, report = model.best_accelerator(network, "xczu9eg")
        assert accel is not None and report.feasible, (network.name, report.violations)
        again = model.evaluate(network, accel)
        assert [c.name for c in again.per_layer] == [layer.name for layer in network.layers]
        assert all(c.latency_ms > 0 for c in again.per_layer)
        assert math.isclose(again.latency_ms, report.latency_ms)

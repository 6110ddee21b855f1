"""Standard architectures written as plain PyTorch models, for tracing into networks
(:func:`codesign.nn.trace.trace_network`), for tests, benchmarks and experiments.

- :func:`resnet20`: the CIFAR ResNet-20 of He et al. (CVPR 2016, section 4.2): a 3x3 stem conv, three
  stages of three basic blocks (16, 32, 64 channels, stride 2 at the start of the second and third),
  global average pooling and a linear classifier, 32x32 inputs. Where a block changes shape its shortcut is
  a 1x1 conv with BatchNorm (the paper's option B; option A pads the shortcut with zero channels, which is
  no layer a hardware model costs).
- :func:`mobilenet_v2`: MobileNetV2 (Sandler et al., CVPR 2018): inverted residual blocks (1x1 expand,
  3x3 depthwise, linear 1x1 project, ReLU6, a residual add where stride 1 keeps the width) with the
  paper's ``(t, c, n, s)`` table, a 1x1 head conv, global pooling, dropout and a classifier. ``cifar``
  makes the stem and the second stage stride 1, as is usual for 32x32 inputs; ``width`` scales the
  channels (rounded to multiples of 8, as the paper does).
- :func:`shufflenet_v2_stage`: a ShuffleNetV2-style network (Ma et al., ECCV 2018): a stem conv and max
  pooling, one stage of ShuffleNetV2 units (a stride-2 unit with two branches, then stride-1 units that
  split the channels in half, transform one half and concatenate them), a channel shuffle after every
  unit (``view`` + ``transpose`` + ``reshape``), a 1x1 conv, global pooling by ``mean`` and a classifier.

:data:`ZOO` names them with their input shapes (``(C, H, W)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codesign.core.errors import CodesignError


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]


# ----- ResNet-20 ------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs and a residual; a 1x1 conv-BN shortcut where the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = (
            nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride))
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(
        self, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64), blocks: int = 3
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, widths[0], 3), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        in_ch = widths[0]
        for s, width in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(in_ch, width, 2 if s > 0 and b == 0 else 1))
                in_ch = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def resnet20(num_classes: int = 10) -> ResNet20:
    """ResNet-20 for 3x32x32 inputs (about 0.27 M parameters, 41 M MACs)."""
    return ResNet20(num_classes)


# ----- MobileNetV2 ----------------------------------------------------------------------------------
MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""The paper's table: expansion ``t``, output channels ``c``, repeats ``n``, first stride ``s``."""


def _round8(channels: float) -> int:
    """The paper's channel rounding: to a multiple of 8, never more than 10% below."""
    rounded = max(8, int(channels + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * channels else rounded


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [*_conv_bn(in_ch, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, out_ch, 1)
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 10, *, width: float = 1.0, cifar: bool = True) -> None:
        super().__init__()
        in_ch = _round8(32 * width)
        self.head_channels = _round8(1280 * max(1.0, width))
        layers: list[nn.Module] = [*_conv_bn(3, in_ch, 3, 1 if cifar else 2), nn.ReLU6(inplace=True)]
        for i, (t, c, n, s) in enumerate(MOBILENET_V2_BLOCKS):
            out_ch = _round8(c * width)
            for b in range(n):
                stride = (1 if cifar and i == 1 else s) if b == 0 else 1
                layers.append(InvertedResidual(in_ch, out_ch, stride, t))
                in_ch = out_ch
        layers += [*_conv_bn(in_ch, self.head_channels, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.head_channels, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        y = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(y, 1))


def mobilenet_v2(num_classes: int = 10, *, width: float = 1.0, cifar: bool = True) -> MobileNetV2:
    """MobileNetV2 (``cifar``: for 3x32x32 inputs, else the ImageNet strides for 3x224x224)."""
    return MobileNetV2(num_classes, width=width, cifar=cifar)


# ----- ShuffleNetV2 ---------------------------------------------------------------------------------
def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle: ``groups`` interleaved (view, transpose, reshape)."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().reshape(n, -1, h, w)


class ShuffleUnit(nn.Module):
    """A ShuffleNetV2 unit. Stride 1: split the channels in half, keep one half, transform the other
    (1x1, depthwise 3x3, 1x1), concatenate, shuffle. Stride 2: both branches see the whole input (branch 1:
    depthwise 3x3 and 1x1; branch 2 as above, strided), concatenate, shuffle."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if stride == 1 and in_ch != out_ch:
            raise CodesignError(f"a stride-1 ShuffleNet unit keeps its width, got {in_ch} -> {out_ch}")
        half = out_ch // 2
        self.stride = stride
        self.branch1 = (
            nn.Sequential(
                *_conv_bn(in_ch, in_ch, 3, stride, groups=in_ch), *_conv_bn(in_ch, half, 1), nn.ReLU()
            )
            if stride > 1
            else None
        )
        branch_in = in_ch if stride > 1 else half
        self.branch2 = nn.Sequential(
            *_conv_bn(branch_in, half, 1), nn.ReLU(),
            *_conv_bn(half, half, 3, stride, groups=half),
            *_conv_bn(half, half, 1), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        if self.branch1 is None:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2Stage(nn.Module):
    def __init__(
        self, num_classes: int = 10, *, stem: int = 24, channels: int = 48, units: int = 3, head: int = 128
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, stem, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.stage = nn.Sequential(
            ShuffleUnit(stem, channels, 2), *(ShuffleUnit(channels, channels, 1) for _ in range(units - 1))
        )
        self.conv = nn.Sequential(*_conv_bn(channels, head, 1), nn.ReLU())
        self.fc = nn.Linear(head, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(self.stage(self.stem(x))).mean([2, 3]))


def shufflenet_v2_stage(num_classes: int = 10, *, channels: int = 48, units: int = 3) -> ShuffleNetV2Stage:
    """A stem, one ShuffleNetV2 stage of ``units`` units (``channels`` wide) and a head, for 3x32x32."""
    return ShuffleNetV2Stage(num_classes, channels=channels, units=units)


# ----- the catalogue --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ZooModel:
    """A named architecture: ``build()`` makes a fresh model for inputs of ``input_shape`` (C, H, W)."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]


ZOO: tuple[ZooModel, ...] = (
    ZooModel("resnet20", resnet20, (3, 32, 32)),
    ZooModel("mobilenet_v2", mobilenet_v2, (3, 32, 32)),
    ZooModel("shufflenet_v2_stage", shufflenet_v2_stage, (3, 32, 32)),
)


def zoo_model(name: str) -> ZooModel:
    """The :data:`ZOO` entry ``name``; an unknown name is an error listing the known ones."""
    for entry in ZOO:
        if entry.name == name:
            return entry
    raise CodesignError(f"unknown zoo model {name!r}; known: {', '.join(e.name for e in ZOO)}")

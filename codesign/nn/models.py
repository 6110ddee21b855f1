"""Quantizable torch models of the search spaces: the torch side of the (torch-free) built-in spaces.

Every model registers its quantized layers in the order of the space's network's weighted layers, so
``codesign.quantization.fake.set_bits(model, weight_bits, act_bits)`` takes the same bit tuples as ``space.network``.
BatchNorm follows every conv (it folds into the conv's scale on hardware, so it is not a network layer).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.quantization.fake import QuantConv2d, QuantLinear
from search_spaces.base import TrainableSpace
from search_spaces.mbconv import MBConvArch, MBConvSpace
from search_spaces.resnet import ResNetArch, ResNetSpace


class ConvBN(nn.Module):
    """Quantized conv, BatchNorm and (optionally) ReLU."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, *, relu: bool = True
    ) -> None:
        super().__init__()
        self.conv = QuantConv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y) if self.relu else y


class MBBlock(nn.Module):
    """Inverted residual: expand 1x1 (skipped at expansion 1), depthwise kxk, linear project 1x1."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.expand = ConvBN(in_ch, hidden, 1) if expansion != 1 else None
        self.dw = ConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBN(hidden, out_ch, 1, relu=False)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.dw(y))
        return x + y if self.residual else y


class MBConvNet(nn.Module):
    def __init__(self, space: MBConvSpace, arch: MBConvArch) -> None:
        super().__init__()
        self.stem = ConvBN(space.input_shape[0], space.stem_channels, 3, space.stem_stride)
        blocks: list[nn.Module] = []
        in_ch = space.stem_channels
        for s, (width, ks, es) in enumerate(zip(arch.widths, arch.kernels, arch.expansions, strict=True)):
            for b, (k, e) in enumerate(zip(ks, es, strict=True)):
                blocks.append(MBBlock(in_ch, width, k, e, space.stage_strides[s] if b == 0 else 1))
                in_ch = width
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(in_ch, space.head_channels, 1) if space.head_channels else None
        self.fc = QuantLinear(space.head_channels or in_ch, space.num_classes)

    def features(self, x: Tensor) -> Tensor:
        y = self.blocks(self.stem(x))
        return self.head(y) if self.head is not None else y

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 shortcut conv when the block downsamples or changes width."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_ch, out_ch, 3, stride)
        # registered between conv1 and conv2: the network lists the shortcut right after conv1
        self.shortcut = (
            ConvBN(in_ch, out_ch, 1, stride, relu=False) if stride != 1 or in_ch != out_ch else None
        )
        self.conv2 = ConvBN(out_ch, out_ch, 3, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNetNet(nn.Module):
    def __init__(self, space: ResNetSpace, arch: ResNetArch) -> None:
        super().__init__()
        self.stem = ConvBN(space.input_shape[0], space.stem_channels, 3, space.stem_stride)
        blocks: list[nn.Module] = []
        in_ch = space.stem_channels
        for s, (width, depth) in enumerate(zip(arch.widths, arch.depths, strict=True)):
            for b in range(depth):
                blocks.append(BasicBlock(in_ch, width, space.stage_strides[s] if b == 0 else 1))
                in_ch = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = QuantLinear(in_ch, space.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


def build_model(space: Any, arch: Any) -> nn.Module:
    """A fresh (untrained) quantizable torch model of ``arch`` from ``space``.

    The built-in MBConv and ResNet spaces are built here; any other space builds its own model through the
    :class:`search_spaces.base.TrainableSpace` capability. A space with neither is an error naming it.
    """
    if isinstance(space, MBConvSpace):
        space.validate(arch)
        return MBConvNet(space, arch)
    if isinstance(space, ResNetSpace):
        space.validate(arch)
        return ResNetNet(space, arch)
    if isinstance(space, TrainableSpace):
        return space.build_model(arch)
    raise CodesignError(f"search space {getattr(space, 'name', space)!r} cannot build torch models (no build_model)")

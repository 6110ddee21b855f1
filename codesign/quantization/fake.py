"""Fake quantization for training and measuring quantized networks.

Weights are quantized symmetrically per output channel (signed, narrow range ``[-(2^(b-1)-1), 2^(b-1)-1]``),
activations asymmetrically per tensor (unsigned ``[0, 2^b-1]`` with an integer zero point). Both use the
straight-through estimator, so the same modules serve post-training calibration and quantization-aware
fine-tuning. :func:`integer_conv2d` is the integer-arithmetic reference the fake-quantized conv must match:
integer inputs and weights, int32 accumulation, one rescale per output channel.

Each quantized module carries its own ``weight_bits``/``act_bits`` and reads its input through an
:class:`ActQuantizer`. A model's quantized layers, in registration order, are its weighted layers in the
order of the space's :class:`codesign.core.values.Network`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codesign.core.errors import CodesignError

QuantMode = Literal["float", "observe", "quant"]
"""``float``: no quantization; ``observe``: activations pass unchanged while observers record their range
(calibration); ``quant``: weights and activations are fake-quantized."""

MIN_BITS = 2
MAX_BITS = 16


def _check_bits(bits: int, what: str) -> int:
    if not isinstance(bits, int | np.integer) or not MIN_BITS <= int(bits) <= MAX_BITS:
        raise CodesignError(f"{what} must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return int(bits)


def weight_scale(weight: Tensor, bits: int) -> Tensor:
    """Per-output-channel scale of symmetric ``bits``-bit weights (shape ``(out_channels,)``)."""
    qmax = 2 ** (bits - 1) - 1
    max_abs = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1)
    return torch.clamp(max_abs, min=1e-8) / qmax


def quantize_weight(weight: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Integer weights (int32, same shape) and their per-channel scales."""
    qmax = 2 ** (bits - 1) - 1
    scale = weight_scale(weight, bits)
    view = (-1,) + (1,) * (weight.dim() - 1)
    q = torch.clamp(torch.round(weight.detach() / scale.view(view)), -qmax, qmax)
    return q.to(torch.int32), scale


def fake_quant_weight(weight: Tensor, bits: int) -> Tensor:
    """Weights rounded to the per-channel ``bits``-bit grid; the gradient passes straight through."""
    qmax = 2 ** (bits - 1) - 1
    scale = weight_scale(weight, bits)
    view = (-1,) + (1,) * (weight.dim() - 1)
    s = scale.view(view)
    q = torch.clamp(torch.round(weight / s), -qmax, qmax) * s
    return weight + (q - weight).detach()


def act_qparams(min_val: float, max_val: float, bits: int) -> tuple[float, int]:
    """Scale and zero point of an asymmetric ``bits``-bit grid covering ``[min_val, max_val]`` (and 0, so
    zero padding is exact)."""
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)
    levels = 2**bits - 1
    scale = max(hi - lo, 1e-8) / levels
    zero_point = int(np.clip(round(-lo / scale), 0, levels))
    return scale, zero_point


def fake_quant_act(x: Tensor, scale: float, zero_point: int, bits: int) -> Tensor:
    """Activations rounded to the asymmetric grid; straight-through inside the range, zero gradient outside
    (one fused kernel)."""
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 2**bits - 1)


class ActQuantizer(nn.Module):
    """Per-tensor asymmetric activation quantizer with a min/max observer.

    In ``observe`` mode the running minimum and maximum over all batches seen are recorded (post-training
    calibration). In ``quant`` mode while training, the range follows an exponential moving average of the
    batch ranges (``momentum``), as quantization-aware training does.
    """

    min_val: Tensor
    max_val: Tensor
    observed: Tensor

    def __init__(self, bits: int = 8, *, momentum: float = 0.05) -> None:
        super().__init__()
        self.bits = _check_bits(bits, "act_bits")
        self.mode: QuantMode = "float"
        self.momentum = momentum
        self.register_buffer("min_val", torch.zeros(()))
        self.register_buffer("max_val", torch.zeros(()))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))

    def reset(self) -> None:
        self.min_val.zero_()
        self.max_val.zero_()
        self.observed.fill_(False)

    def qparams(self) -> tuple[float, int]:
        if not bool(self.observed):
            raise CodesignError(
                "activation quantizer has no range yet: calibrate the model before quantizing"
            )
        return act_qparams(float(self.min_val), float(self.max_val), self.bits)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "float" or (self.mode == "quant" and not self.training):
            return x if self.mode == "float" else fake_quant_act(x, *self.qparams(), self.bits)
        lo, hi = torch.aminmax(x.detach())
        if not bool(self.observed):
            self.min_val.copy_(lo)
            self.max_val.copy_(hi)
            self.observed.fill_(True)
        elif self.mode == "observe":
            self.min_val.copy_(torch.minimum(self.min_val, lo))
            self.max_val.copy_(torch.maximum(self.max_val, hi))
        else:  # quantization-aware training: follow the batch ranges
            self.min_val.lerp_(lo, self.momentum)
            self.max_val.lerp_(hi, self.momentum)
        if self.mode == "observe":
            return x
        return fake_quant_act(x, *self.qparams(), self.bits)


class _QuantMixin:
    """Bits and mode shared by the quantized layer types."""

    act_quant: ActQuantizer
    _weight_bits: int
    quant_weights: bool

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @weight_bits.setter
    def weight_bits(self, bits: int) -> None:
        self._weight_bits = _check_bits(bits, "weight_bits")

    @property
    def act_bits(self) -> int:
        return self.act_quant.bits

    @act_bits.setter
    def act_bits(self, bits: int) -> None:
        self.act_quant.bits = _check_bits(bits, "act_bits")

    def _weight(self, weight: Tensor) -> Tensor:
        return fake_quant_weight(weight, self._weight_bits) if self.quant_weights else weight


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """A conv layer that fake-quantizes its input activation and its weights."""

    def __init__(self, *args: object, weight_bits: int = 8, act_bits: int = 8, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.weight_bits = weight_bits
        self.act_quant = ActQuantizer(act_bits)
        self.quant_weights = False

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.act_quant(x), self._weight(self.weight), self.bias)


class QuantLinear(_QuantMixin, nn.Linear):
    """A linear layer that fake-quantizes its input activation and its weights."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        weight_bits: int = 8,
        act_bits: int = 8,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.weight_bits = weight_bits
        self.act_quant = ActQuantizer(act_bits)
        self.quant_weights = False

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.act_quant(x), self._weight(self.weight), self.bias)


QuantLayer = QuantConv2d | QuantLinear


def quant_layers(model: nn.Module) -> list[QuantLayer]:
    """The model's quantized layers in registration order (= the network's weighted-layer order)."""
    return [m for m in model.modules() if isinstance(m, QuantConv2d | QuantLinear)]


def set_bits(model: nn.Module, weight_bits: Sequence[int], act_bits: Sequence[int]) -> None:
    """Give every quantized layer its bits; the sequences follow the network's weighted layers."""
    layers = quant_layers(model)
    if len(weight_bits) != len(layers) or len(act_bits) != len(layers):
        raise CodesignError(
            f"set_bits: the model has {len(layers)} quantized layers, got {len(weight_bits)} weight_bits "
            f"and {len(act_bits)} act_bits"
        )
    for layer, w, a in zip(layers, weight_bits, act_bits, strict=True):
        layer.weight_bits = int(w)
        layer.act_bits = int(a)


def get_bits(model: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    layers = quant_layers(model)
    return tuple(m.weight_bits for m in layers), tuple(m.act_bits for m in layers)


def set_quant_mode(model: nn.Module, mode: QuantMode) -> None:
    """Switch every quantized layer of ``model`` to ``mode``; weights are quantized only in ``quant``."""
    if mode not in ("float", "observe", "quant"):
        raise CodesignError(f"quantization mode must be float, observe or quant, got {mode!r}")
    for layer in quant_layers(model):
        layer.act_quant.mode = mode
        layer.quant_weights = mode == "quant"


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[Tensor]) -> None:
    """Post-training calibration: record activation ranges over ``batches`` (BatchNorm in eval mode), then
    leave the model in ``quant`` mode and eval mode."""
    model.eval()
    for layer in quant_layers(model):
        layer.act_quant.reset()
    set_quant_mode(model, "observe")
    seen = 0
    for x in batches:
        model(x)
        seen += 1
    if seen == 0:
        raise CodesignError("calibrate: no calibration batches given")
    set_quant_mode(model, "quant")


@torch.no_grad()
def integer_conv2d(x: Tensor, layer: QuantConv2d) -> Tensor:
    """The calibrated ``layer`` computed in integer arithmetic: ``x`` is quantized to unsigned
    ``act_bits`` integers, weights to signed ``weight_bits`` integers, products accumulate in int32 (input
    padding uses the zero point, i.e. real zero) and each output channel is rescaled once by
    ``scale_x * scale_w[c]`` (plus the float bias). Input ``(N, C, H, W)`` float; output float."""
    scale_x, zero_point = layer.act_quant.qparams()
    levels = 2**layer.act_bits - 1
    qx = torch.clamp(torch.round(x / scale_x) + zero_point, 0, levels).to(torch.int32).numpy()
    qw_t, scale_w = quantize_weight(layer.weight, layer.weight_bits)
    qw = qw_t.numpy()
    ph, pw = (int(p) for p in layer.padding)
    sh, sw = layer.stride
    kh, kw = layer.kernel_size
    groups = layer.groups
    qx = qx - np.int32(zero_point)  # padding with 0 after this shift is padding with real zero
    qx = np.pad(qx, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(qx, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, c_in, oh, ow = windows.shape[:4]
    c_out = qw.shape[0]
    cin_g, cout_g = c_in // groups, c_out // groups
    acc = np.empty((n, c_out, oh, ow), dtype=np.int32)
    for g in range(groups):
        cols = windows[:, g * cin_g : (g + 1) * cin_g].transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, -1)
        wg = qw[g * cout_g : (g + 1) * cout_g].reshape(cout_g, -1)
        acc[:, g * cout_g : (g + 1) * cout_g] = np.einsum("nhwk,ok->nohw", cols, wg, dtype=np.int32)
    out = torch.from_numpy(acc.astype(np.float64)) * (scale_x * scale_w.double()).view(1, -1, 1, 1)
    if layer.bias is not None:
        out = out + layer.bias.detach().double().view(1, -1, 1, 1)
    return out.float()

"""A weight-sharing supernet over an MBConv space (Once-for-All / APQ style).

The supernet is the space's largest model. A subnet uses the first ``depth`` blocks of each stage, the
first channels of every conv (elastic width and expansion) and the centre ``k x k`` of every depthwise
kernel (elastic kernel). Training follows the sandwich rule: each step trains the largest subnet, the
smallest and ``n_random`` random ones; the smaller ones also learn from the largest one's predictions
(in-place distillation), and with probability ``quant_prob`` a subnet runs with random per-layer
bit-widths (fake quantization with per-batch activation ranges), so the shared weights tolerate
quantization. The trained supernet is cached on disk by content hash.

Measuring a candidate (:class:`SupernetEvaluator`) copies its slice of the weights into a standalone
model of the space, recalibrates BatchNorm statistics on a few training batches, then quantizes and
scores it exactly as the from-scratch path does. Training, extraction, recalibration and measurement run
on the evaluator's ``device``; the cached supernet is stored from the CPU.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codesign.core.errors import CodesignError
from codesign.nn.cache import DiskCache, content_key
from codesign.nn.data import DataSplits
from codesign.nn.device import module_device, resolve_device
from codesign.nn.models import ConvBN, MBConvNet
from codesign.nn.training import CachedEvaluator, TrainSchedule, batches, seeded_model
from codesign.quantization.fake import act_qparams, fake_quant_act, fake_quant_weight, set_quant_mode
from codesign.quantization.sensitivity import TraceSettings, hessian_traces
from search_spaces.mbconv import MBConvArch, MBConvSpace

LAYER_TRACE_SETTINGS = TraceSettings(max_iter=30, tol=1e-2)
"""Hutchinson settings of :meth:`SupernetEvaluator.layer_traces`: a ranking feature needs the traces to
about 1 %, not PyHessian's 0.1 %."""


@dataclass(frozen=True, kw_only=True)
class SupernetSchedule:
    """How the supernet is trained; ``lr`` decays with a cosine to zero over ``steps``."""

    steps: int = 1500
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-5
    n_random: int = 2
    """Random subnets per step besides the largest and the smallest (sandwich rule)."""
    distill: float = 0.5
    """Weight of the distillation loss from the largest subnet (the rest is cross-entropy)."""
    quant_prob: float = 0.25
    """Probability that a non-largest subnet trains with random per-layer bit-widths."""
    weight_bits: tuple[int, ...] = (4, 8)
    act_bits: tuple[int, ...] = (4, 8)
    bn_batches: int = 8
    """Training batches used to recalibrate an extracted subnet's BatchNorm statistics."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.n_random < 0 or self.bn_batches < 1:
            raise CodesignError(
                "supernet schedule: steps, batch_size and bn_batches must be >= 1, n_random >= 0"
            )
        if not 0.0 <= self.quant_prob <= 1.0 or not 0.0 <= self.distill <= 1.0:
            raise CodesignError("supernet schedule: quant_prob and distill must be in [0, 1]")


def _conv(
    unit: ConvBN,
    x: Tensor,
    out_ch: int,
    in_ch: int,
    kernel: int,
    bits: tuple[int, int] | None,
    *,
    depthwise: bool = False,
) -> Tensor:
    """One ConvBN unit of the supernet restricted to ``out_ch`` outputs, ``in_ch`` inputs and the centre
    ``kernel`` of its kernel; BatchNorm uses batch statistics (they are recalibrated per subnet later)."""
    conv = unit.conv
    weight = conv.weight[:out_ch] if depthwise else conv.weight[:out_ch, :in_ch]
    full = weight.shape[-1]
    if kernel != full:
        lo = (full - kernel) // 2
        weight = weight[:, :, lo : lo + kernel, lo : lo + kernel]
    if bits is not None:
        x = _fake_quant_batch(x, bits[1])
        weight = fake_quant_weight(weight, bits[0])
    y = F.conv2d(x, weight, None, conv.stride, kernel // 2, 1, out_ch if depthwise else 1)
    y = F.batch_norm(y, None, None, unit.bn.weight[:out_ch], unit.bn.bias[:out_ch], training=True)
    return F.relu(y) if unit.relu else y


def _fake_quant_batch(x: Tensor, bits: int) -> Tensor:
    scale, zero_point = act_qparams(float(x.detach().min()), float(x.detach().max()), bits)
    return fake_quant_act(x, scale, zero_point, bits)


class Supernet:
    """The largest model of ``space`` plus the slicing that runs and extracts any subnet."""

    def __init__(self, space: MBConvSpace, *, seed: int = 0, device: torch.device | str = "cpu") -> None:
        if not isinstance(space, MBConvSpace):
            raise CodesignError(f"the supernet needs an MBConv space, got {type(space).__name__}")
        self.space = space
        self.device = resolve_device(device)
        self.net: MBConvNet = seeded_model(space, space.largest(), seed).to(self.device)  # type: ignore[assignment]
        self.max_depth = max(space.depths)
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        """Wall and process CPU time of training (CPU time shows the cost apart from other load)."""
        self.cached = False

    def _block(self, stage: int, index: int) -> Any:
        return self.net.blocks[stage * self.max_depth + index]

    def forward(self, arch: MBConvArch, x: Tensor, bits: list[tuple[int, int]] | None = None) -> Tensor:
        """Logits of subnet ``arch``; ``bits`` gives (weight, act) bits per weighted layer (None: float)."""
        space = self.space
        queue = iter(bits) if bits is not None else None

        def nxt() -> tuple[int, int] | None:
            return next(queue) if queue is not None else None

        stem = self.net.stem
        y = _conv(stem, x, space.stem_channels, space.input_shape[0], stem.conv.kernel_size[0], nxt())
        in_ch = space.stem_channels
        for s, (width, ks, es) in enumerate(zip(arch.widths, arch.kernels, arch.expansions, strict=True)):
            for b, (k, e) in enumerate(zip(ks, es, strict=True)):
                block = self._block(s, b)
                hidden = in_ch * e
                h = _conv(block.expand, y, hidden, in_ch, 1, nxt()) if e != 1 else y
                h = _conv(block.dw, h, hidden, hidden, k, nxt(), depthwise=True)
                h = _conv(block.project, h, width, hidden, 1, nxt())
                stride = space.stage_strides[s] if b == 0 else 1
                y = y + h if stride == 1 and in_ch == width else h
                in_ch = width
        if self.net.head is not None:
            y = _conv(self.net.head, y, space.head_channels, in_ch, 1, nxt())
            in_ch = space.head_channels
        feat = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        fc = self.net.fc
        weight, fc_bits = fc.weight[:, :in_ch], nxt()
        if fc_bits is not None:
            feat, weight = _fake_quant_batch(feat, fc_bits[1]), fake_quant_weight(weight, fc_bits[0])
        return F.linear(feat, weight, fc.bias)

    def extract(self, arch: MBConvArch, *, seed: int = 0) -> MBConvNet:
        """A standalone model of ``arch`` holding its slice of the supernet's weights, on the supernet's
        device (BatchNorm running statistics are reset: recalibrate them before use)."""
        model: MBConvNet = seeded_model(self.space, arch, seed).to(self.device)  # type: ignore[assignment]
        pairs: list[tuple[ConvBN, ConvBN]] = [(model.stem, self.net.stem)]
        flat: list[Any] = list(model.blocks)
        for s, ks in enumerate(arch.kernels):
            for b in range(len(ks)):
                small, big = flat.pop(0), self._block(s, b)
                if small.expand is not None:
                    pairs.append((small.expand, big.expand))
                pairs += [(small.dw, big.dw), (small.project, big.project)]
        if model.head is not None and self.net.head is not None:
            pairs.append((model.head, self.net.head))
        with torch.no_grad():
            for small, big in pairs:
                w, full = small.conv.weight, big.conv.weight
                lo = (full.shape[-1] - w.shape[-1]) // 2
                w.copy_(full[: w.shape[0], : w.shape[1], lo : lo + w.shape[2], lo : lo + w.shape[3]])
                small.bn.weight.copy_(big.bn.weight[: w.shape[0]])
                small.bn.bias.copy_(big.bn.bias[: w.shape[0]])
            model.fc.weight.copy_(self.net.fc.weight[:, : model.fc.in_features])
            model.fc.bias.copy_(self.net.fc.bias)
        return model

    def layer_names(self, arch: MBConvArch) -> tuple[str, ...]:
        """The names in :attr:`net` of the modules that the weighted layers of subnet ``arch`` are sliced
        from, in the subnet's weighted-layer order (a per-layer statistic of the largest network, such as
        a Hessian trace, applies to a subnet through them)."""
        names = ["stem.conv"]
        for s, es in enumerate(arch.expansions):
            for b, e in enumerate(es):
                prefix = f"blocks.{s * self.max_depth + b}"
                names += [f"{prefix}.expand.conv"] if e != 1 else []
                names += [f"{prefix}.dw.conv", f"{prefix}.project.conv"]
        if self.net.head is not None:
            names.append("head.conv")
        return (*names, "fc")

    def state_dict(self) -> dict[str, Tensor]:
        return self.net.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.net.load_state_dict(state)


def _random_bits(n: int, schedule: SupernetSchedule, rng: np.random.Generator) -> list[tuple[int, int]]:
    return [(int(rng.choice(schedule.weight_bits)), int(rng.choice(schedule.act_bits))) for _ in range(n)]


def train_supernet(
    space: MBConvSpace,
    data: DataSplits,
    schedule: SupernetSchedule,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Supernet:
    """Train a supernet from scratch (seeded) with the sandwich rule on ``device``; ``train_seconds`` is
    set."""
    start, cpu_start = time.perf_counter(), time.process_time()
    supernet = Supernet(space, seed=seed, device=device)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    params = list(supernet.net.parameters())
    opt = torch.optim.Adam(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + np.cos(np.pi * min(i, schedule.steps) / schedule.steps))
    )
    largest, smallest = space.largest(), space.smallest()
    supernet.net.train()
    step = 0
    while step < schedule.steps:
        for xb, yb in batches(data.train_x, data.train_y, schedule.batch_size, gen, supernet.device):
            opt.zero_grad(set_to_none=True)
            logits = supernet.forward(largest, xb)
            F.cross_entropy(logits, yb).backward()
            soft = F.softmax(logits.detach(), dim=1)
            for arch in [smallest, *(space.sample(rng) for _ in range(schedule.n_random))]:
                bits = None
                if rng.random() < schedule.quant_prob:
                    bits = _random_bits(space.n_weighted(arch), schedule, rng)
                out = supernet.forward(arch, xb, bits)
                ce = F.cross_entropy(out, yb)
                kd = -(soft * F.log_softmax(out, dim=1)).sum(1).mean()
                ((1 - schedule.distill) * ce + schedule.distill * kd).backward()
            opt.step()
            sched.step()
            step += 1
            if step == schedule.steps:
                break
    supernet.net.eval()
    supernet.train_seconds = time.perf_counter() - start
    supernet.train_cpu_seconds = time.process_time() - cpu_start
    return supernet


@torch.no_grad()
def recalibrate_bn(model: nn.Module, data: DataSplits, n_batches: int, batch_size: int, *, seed: int) -> None:
    """Replace every BatchNorm's running statistics by their exact average over ``n_batches`` seeded
    training batches (full precision), on the model's device."""
    set_quant_mode(model, "float")
    device = module_device(model)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    gen = torch.Generator().manual_seed(seed + 2)
    for _, (xb, _) in zip(
        range(n_batches), batches(data.train_x, data.train_y, batch_size, gen, device), strict=False
    ):
        model(xb)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    model.eval()


class SupernetEvaluator(CachedEvaluator):
    """Measures candidates with weights inherited from the supernet of ``space`` (same interface as
    :class:`codesign.nn.training.ScratchEvaluator`; ``schedule`` controls calibration and fine-tuning).

    The constructor loads the supernet for (space, data, supernet schedule, seed) from the cache, or
    trains and caches it first; :attr:`supernet` holds it (with its training time)."""

    method = "supernet"

    def __init__(
        self,
        space: MBConvSpace,
        data: DataSplits,
        *,
        schedule: TrainSchedule | None = None,
        supernet_schedule: SupernetSchedule | None = None,
        cache: DiskCache | str | Path | None = None,
        seed: int = 0,
        val_limit: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if not isinstance(space, MBConvSpace):
            raise CodesignError(f"the supernet needs an MBConv space, got {type(space).__name__}")
        super().__init__(
            space, data, schedule=schedule or TrainSchedule(), cache=cache, seed=seed, device=device
        )
        self.val_limit = val_limit
        self.supernet_schedule = supernet_schedule or SupernetSchedule()
        self.supernet_key = content_key(
            {
                "kind": "supernet",
                "space": asdict(space),
                "data": data.describe(),
                "schedule": asdict(self.supernet_schedule),
                "seed": seed,
            }
        )
        self.supernet = self._load_or_train(space)

    @classmethod
    def create(cls, space: MBConvSpace, data: DataSplits, **options: Any) -> SupernetEvaluator:
        """Same as the constructor."""
        return cls(space, data, **options)

    def _load_or_train(self, space: MBConvSpace) -> Supernet:
        key = self.supernet_key
        state, record = self.cache.get_state(key), self.cache.get_json(key)
        if state is not None and record is not None:
            supernet = Supernet(space, seed=self.seed, device=self.device)
            supernet.load_state_dict(state)
            supernet.train_seconds, supernet.cached = float(record["train_seconds"]), True
            supernet.train_cpu_seconds = float(record.get("train_cpu_seconds", 0.0))
            return supernet
        supernet = train_supernet(space, self.data, self.supernet_schedule, seed=self.seed, device=self.device)
        self.cache.put_state(key, supernet.state_dict())
        self.cache.put_json(
            key, {"train_seconds": supernet.train_seconds, "train_cpu_seconds": supernet.train_cpu_seconds}
        )
        return supernet

    def layer_traces(
        self, *, images: int = 256, settings: TraceSettings = LAYER_TRACE_SETTINGS
    ) -> dict[str, float]:
        """Hessian trace per parameter (``Tr(H_i) / n_i``) of every weighted layer of the largest subnet
        (weights inherited, BatchNorm recalibrated), keyed by the supernet's module names
        (:meth:`Supernet.layer_names` maps a subnet's layers to them). Hutchinson's estimate of the mean
        cross-entropy over the first ``images`` training images; cached with the supernet."""
        if images < 1:
            raise CodesignError(f"layer traces: images must be >= 1, got {images}")
        key = content_key(
            {
                "kind": "supernet-traces",
                **self._float_key_parts(),
                "images": images,
                "settings": asdict(settings),
            }
        )
        record = self.cache.get_json(key)
        if record is None:
            model = self.trained_model(self.space.largest())
            set_quant_mode(model, "float")
            x, y = self.data.train_x[:images], self.data.train_y[:images]
            traces = hessian_traces(model, F.cross_entropy, [(x, y)], settings=settings)
            record = {t.name: t.trace_per_param for t in traces}
            self.cache.put_json(key, record)
        return {name: float(value) for name, value in record.items()}

    def _float_key_parts(self) -> dict[str, Any]:
        return {"supernet": self.supernet_key, "bn_batches": self.supernet_schedule.bn_batches}

    def _make_float_model(self, arch: Any) -> nn.Module:
        model = self.supernet.extract(arch, seed=self.seed)
        recalibrate_bn(
            model,
            self.data,
            self.supernet_schedule.bn_batches,
            self.supernet_schedule.batch_size,
            seed=self.seed,
        )
        return model

"""Where training and measurement run: the experiment's ``accuracy.device`` turned into a ``torch.device``.

``auto`` is the first GPU when torch sees one (``torch.cuda.is_available()``), else the CPU; ``cpu``,
``cuda`` and ``cuda:N`` name one. A GPU that is not there is a one-line :class:`CodesignError` naming it,
raised when the experiment is built, never a silent fall-back to the CPU.

The device is a setting of the machine, not of the experiment (``accuracy.device`` is in
:data:`codesign.config.experiment.MACHINE_LOCAL_ACCURACY`): models and batches move to it, cached weights are
always stored from the CPU, and cache keys do not name it. A GPU's kernels sum in other orders than the
CPU's, so its accuracies can differ from the CPU's in the last digits, as they can between two CPUs.
"""

from __future__ import annotations

import torch
from torch import nn

from codesign.config.experiment import DEVICE_PATTERN
from codesign.core.errors import CodesignError


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The device ``spec`` names (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``); a CUDA
    device this machine lacks raises :class:`CodesignError` naming it and the devices there are."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if not DEVICE_PATTERN.match(text):
        raise CodesignError(f"unknown device {spec!r}; expected auto, cpu, cuda or cuda:N")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise CodesignError(
            f"device {text!r} asked for, but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use cpu or auto"
        )
    index = int(text.split(":")[1]) if ":" in text else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise CodesignError(
            f"device {text!r} asked for, but this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
            f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}); use one of them, cpu or auto"
        )
    return torch.device("cuda", index)


def module_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model without either."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")

""":func:`optimize_model`: the user's own model, quantized per layer and paired with its latency-optimal
accelerator (HAWQ-V3 + HAO on a fixed architecture), from Python.

It builds the experiment an own-model YAML file would hold (``space: {model: ..., input_shape: ...}``)
in memory and runs it through :func:`codesign.experiment.run_experiment`: the one code path of ``codesign
run``, with the model object and the data handed over instead of named.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codesign.config.experiment import config_from_mapping
from codesign.core.errors import CodesignError

if TYPE_CHECKING:
    from torch import nn

    from codesign.results.front import ParetoFront


def optimize_model(
    model: nn.Module,
    data: Any,
    *,
    hardware: str = "overlay",
    device: str = "xczu3eg",
    clock_mhz: float | None = None,
    weight_bits: Sequence[int] = (4, 8),
    act_bits: Sequence[int] = (4, 8),
    trials: int = 12,
    seed: int = 0,
    input_shape: Sequence[int] | None = None,
    pretrained: bool = False,
    epochs: int = 3,
    qat_steps: int = 30,
    alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    constraints: dict[str, str] | None = None,
    name: str = "own_model",
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> ParetoFront:
    """The accuracy-latency front of ``model`` over per-layer bits and accelerators (strategy ``hao``).

    ``model``: an ``nn.Module`` of ``nn.Conv2d``/``nn.Linear`` layers and what
    :func:`codesign.nn.trace.trace_network` maps; it is copied, never changed. It is trained on ``data``
    from its current weights (``epochs``) unless ``pretrained``, then at each trade-off point its
    Hessian-trace sensitivities give the exact bit allocation, the hardware model the latency-optimal
    accelerator, and calibration plus ``qat_steps`` of quantization-aware fine-tuning the accuracy.
    ``data``: a data-set name (``"digits"``, ``"mnist"``), a factory spec (``"pkg.mod:load"``) or what a
    factory returns (``(x, y)``, a torch ``Dataset``, ``(train, val, test)``, a mapping; see
    :mod:`codesign.nn.user_data`). ``input_shape`` (one input, e.g. ``(1, 8, 8)``) defaults to the data's.
    The front's pairs are measured on the test split (``verify``). ``out_dir`` keeps the study and the
    front files (default: a temporary folder, removed); ``cache_dir`` the measurement cache (default:
    codesign's cache folder). Bad arguments are a one-line :class:`CodesignError`.
    """
    from codesign.experiment.run import run_experiment
    from codesign.nn.own_model import in_memory_space
    from codesign.nn.user_data import MemoryDataset

    named = isinstance(data, str)
    source = None if named else MemoryDataset(value=data, label="optimize_model's data")
    shape = tuple(input_shape) if input_shape is not None else _data_shape(data, source, seed)
    document: dict[str, Any] = {
        "name": name,
        "description": f"optimize_model of {type(model).__name__}",
        "space": {
            "model": f"{type(model).__module__}:{type(model).__name__}",
            "input_shape": list(shape),
            "weight_bits": list(weight_bits),
            "act_bits": list(act_bits),
        },
        "hardware": {"model": hardware, "device": device, **({"clock_mhz": clock_mhz} if clock_mhz else {})},
        "accuracy": {
            "method": "scratch",
            "dataset": data if named else "digits",  # a placeholder: the data are handed over below
            "epochs": epochs,
            "qat_steps": qat_steps,
            **({"cache_dir": str(cache_dir)} if cache_dir is not None else {}),
        },
        "objectives": {"accuracy": "maximize", "latency_ms": "minimize"},
        "constraints": dict(constraints or {}),
        "strategy": {"name": "hao", "options": {"alphas": [float(a) for a in alphas]}},
        "budget": {"trials": trials, "seed": seed},
    }
    config = config_from_mapping(document)
    space = in_memory_space(model, shape, name=name, pretrained=pretrained)
    if out_dir is not None:
        return run_experiment(config, out_dir=out_dir, space=space, data=source, verify=verify).front
    with tempfile.TemporaryDirectory(prefix="codesign-optimize-") as tmp:
        return run_experiment(config, out_dir=tmp, space=space, data=source, verify=verify).front


def _data_shape(data: Any, source: Any, seed: int) -> tuple[int, ...]:
    from codesign.nn.user_data import dataset_source

    loader = source if source is not None else dataset_source(str(data))
    try:
        return tuple(loader.load(seed=seed).input_shape)
    except CodesignError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin data set can raise anything
        raise CodesignError(f"optimize_model: cannot read the data's input shape ({type(exc).__name__}: {exc}); pass input_shape") from None

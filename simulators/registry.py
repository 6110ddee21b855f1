"""Hardware models by name: the built-in templates plus third-party classes registered in the
``codesign.hardware_models`` entry-point group (``name = package.module:Class``).

A third-party package declares, e.g. in its setup.cfg::

    [options.entry_points]
    codesign.hardware_models =
        my_asic = my_package.models:MyAsicModel

and ``make_hardware_model("my_asic", **options)`` then builds ``MyAsicModel(**options)``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from codesign.core.errors import CodesignError
from simulators.base import HardwareModel

GROUP = "codesign.hardware_models"
_BUILTIN = {
    "overlay": "simulators.overlay:OverlayModel",
    "dataflow": "simulators.dataflow:DataflowModel",
    "pipeline": "simulators.pipeline:PipelineModel",
}


def _targets() -> dict[str, str]:
    """Name -> ``module:attribute`` for every known model; a built-in name cannot be taken over."""
    targets = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    targets.update(_BUILTIN)
    return targets


def hardware_model_names() -> tuple[str, ...]:
    """Every model name that :func:`make_hardware_model` accepts, sorted."""
    return tuple(sorted(_targets()))


def _load(target: str, name: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = __import__(module_name, fromlist=[attr or "_"])
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CodesignError(f"hardware model {name!r}: cannot load {target!r} ({exc})") from exc
    return obj


def make_hardware_model(name: str, **options: Any) -> HardwareModel:
    """Build the model registered as ``name`` with keyword-only ``options``.

    Raises CodesignError listing the known names for an unknown one, and naming the class when the
    built object does not satisfy the :class:`simulators.base.HardwareModel` contract.
    """
    targets = _targets()
    if name not in targets:
        raise CodesignError(f"unknown hardware model {name!r}; known: {', '.join(sorted(targets))}")
    cls = _load(targets[name], name)
    try:
        model = cls(**options)
    except TypeError as exc:
        raise CodesignError(f"hardware model {name!r}: bad options {sorted(options)} ({exc})") from exc
    if not isinstance(model, HardwareModel):
        raise CodesignError(f"hardware model {name!r}: {targets[name]} lacks a name and an evaluate method")
    return model

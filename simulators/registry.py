"""Hardware models by name, from the ``codesign.hardware_models`` entry-point group (the built-in
templates are registered there too, in this project's ``setup.cfg``).

A third-party package declares, e.g. in its setup.cfg::

    [options.entry_points]
    codesign.hardware_models =
        my_asic = my_package.models:MyAsicModel

and ``make_hardware_model("my_asic", catalog=catalog, **options)`` then builds
``MyAsicModel(catalog=catalog, **options)``: a subclass of :class:`simulators.base.HardwareModel`.
"""

from __future__ import annotations

import inspect
from typing import Any

from codesign.core.errors import CodesignError
from codesign.core.plugins import HARDWARE_MODELS, load_plugin, plugin_names
from simulators.base import HardwareModel
from simulators.devices import DeviceCatalog


def hardware_model_names() -> tuple[str, ...]:
    """Every model name that :func:`make_hardware_model` accepts, sorted."""
    return plugin_names(HARDWARE_MODELS)


def make_hardware_model(name: str, *, catalog: DeviceCatalog | None = None, **options: Any) -> HardwareModel:
    """Build the model registered as ``name`` with ``catalog`` and keyword-only ``options``.

    Raises CodesignError listing the known names for an unknown one, and naming the entry point when the
    registered object is not a :class:`simulators.base.HardwareModel` subclass or rejects the options.
    """
    cls = load_plugin(HARDWARE_MODELS, name)
    if not (inspect.isclass(cls) and issubclass(cls, HardwareModel)):
        raise CodesignError(
            f"hardware model {name!r}: {cls!r} is not a subclass of simulators.base.HardwareModel"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise CodesignError(f"hardware model {name!r}: {cls.__qualname__} does not implement {missing}")
    try:
        return cls(catalog=catalog, **options)
    except (TypeError, ValueError) as exc:  # the constructor's own complaint about its options
        raise CodesignError(f"hardware model {name!r}: bad options {sorted(options)} ({exc})") from None

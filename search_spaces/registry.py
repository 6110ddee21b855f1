"""Named search-space presets: the one place where a space name becomes an object.

``make_space(name, **options)`` builds a preset; options override the preset's fields (lists from YAML
become tuples). The NAS-Bench-201 space is registered by import path and loaded only when asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from codesign.core.errors import CodesignError
from search_spaces.mbconv import MBConvSpace
from search_spaces.resnet import ResNetSpace


def _mbconv_digits() -> MBConvSpace:
    # 8x8 inputs: no stem downsampling, two stride-2 stages -> 8, 4, 2 pixels
    return MBConvSpace(
        name="mbconv_digits",
        input_shape=(1, 8, 8),
        stem_channels=8,
        stage_widths=((8, 12), (12, 16, 24), (16, 24, 32)),
        stage_strides=(1, 2, 2),
        depths=(1, 2),
        kernels=(3, 5),
        expansions=(1, 2, 4),
    )


def _mbconv_mnist() -> MBConvSpace:
    # 28x28 inputs: stem and first stage both downsample (depthwise convs are slow on CPU) -> 14, 7, 7, 4
    return MBConvSpace(
        name="mbconv_mnist",
        input_shape=(1, 28, 28),
        stem_channels=12,
        stem_stride=2,
        stage_widths=((12, 16), (16, 24, 32), (32, 48)),
        stage_strides=(2, 1, 2),
        depths=(1, 2),
        kernels=(3, 5),
        expansions=(2, 3, 4),
    )


def _resnet_digits() -> ResNetSpace:
    return ResNetSpace(name="resnet_digits", input_shape=(1, 8, 8))


def _resnet_mnist() -> ResNetSpace:
    return ResNetSpace(
        name="resnet_mnist",
        input_shape=(1, 28, 28),
        stem_channels=16,
        stem_stride=2,
        stage_widths=((16, 24), (24, 32, 48), (48, 64)),
        stage_strides=(1, 2, 2),
        depths=(1, 2),
    )


def _nb201() -> Any:
    return importlib.import_module("search_spaces.nb201").NB201Space()


_PRESETS: dict[str, Callable[[], Any]] = {
    "mbconv_digits": _mbconv_digits,
    "mbconv_mnist": _mbconv_mnist,
    "resnet_digits": _resnet_digits,
    "resnet_mnist": _resnet_mnist,
}
_LAZY: dict[str, tuple[str, Callable[[], Any]]] = {"nb201": ("search_spaces.nb201", _nb201)}


def space_names() -> tuple[str, ...]:
    """Every preset name whose implementation is installed."""
    lazy = tuple(name for name, (module, _) in _LAZY.items() if importlib.util.find_spec(module) is not None)
    return tuple(sorted((*_PRESETS, *lazy)))


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def make_space(name: str, **options: Any) -> Any:
    """The preset ``name`` with ``options`` overriding its fields (e.g. ``depths=[1, 2, 3]``); for
    ``nb201``, ``table`` may be the path of the NAS-Bench-201 table file."""
    if name in _PRESETS:
        space = _PRESETS[name]()
    elif name in _LAZY and name in space_names():
        space = _LAZY[name][1]()
    else:
        raise CodesignError(f"unknown search space {name!r}; known: {', '.join(space_names())}")
    if not options:
        return space
    if name == "nb201" and isinstance(options.get("table"), str | Path):
        # a table given by path (e.g. from YAML) is loaded here, where names become objects
        options["table"] = importlib.import_module("search_spaces.nb201").NB201Table.load(options["table"])
    known = {f.name for f in fields(space)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise CodesignError(
            f"search space {name!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return replace(space, **{key: _freeze(value) for key, value in options.items()})

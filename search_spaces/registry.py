"""Named search spaces, from the ``codesign.search_spaces`` entry-point group: the one place where a space
name becomes an object.

An entry point names a factory ``(**options) -> space`` (a class works too); the space must satisfy
:class:`search_spaces.base.ArchitectureSpace`. The built-in presets below are registered in this
project's ``setup.cfg`` exactly as a third-party space is in its own::

    [options.entry_points]
    codesign.search_spaces =
        my_space = my_package.spaces:make_my_space

A preset's options override its fields (lists from YAML become tuples), each checked against its
field's type (:func:`search_spaces.options.dataclass_options`); an unknown or wrongly typed option is an
:class:`search_spaces.options.OptionError` naming it.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

from codesign.core.errors import CodesignError
from codesign.core.plugins import SEARCH_SPACES, load_plugin, plugin_names
from search_spaces.base import ArchitectureSpace
from search_spaces.mbconv import MBConvSpace
from search_spaces.options import dataclass_options
from search_spaces.resnet import ResNetSpace

FIXED_OPTIONS = {"name": "a space is named by its registry entry; the name cannot be set as an option"}


def with_options(space: Any, options: dict[str, Any]) -> Any:
    """``space`` (a frozen dataclass) with ``options`` overriding its fields; an unknown or wrongly typed
    option is an :class:`~search_spaces.options.OptionError` naming it."""
    if not options:
        return space
    owner = f"search space {space.name!r}"
    values = dataclass_options(type(space), options, owner=owner, fixed=FIXED_OPTIONS)
    return replace(space, **values)


def mbconv_digits(**options: Any) -> MBConvSpace:
    # 8x8 inputs: no stem downsampling, two stride-2 stages -> 8, 4, 2 pixels
    space = MBConvSpace(
        name="mbconv_digits",
        input_shape=(1, 8, 8),
        stem_channels=8,
        stage_widths=((8, 12), (12, 16, 24), (16, 24, 32)),
        stage_strides=(1, 2, 2),
        depths=(1, 2),
        kernels=(3, 5),
        expansions=(1, 2, 4),
    )
    return with_options(space, options)


def mbconv_mnist(**options: Any) -> MBConvSpace:
    # 28x28 inputs: stem and first stage both downsample (depthwise convs are slow on CPU) -> 14, 7, 7, 4
    space = MBConvSpace(
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
    return with_options(space, options)


def resnet_digits(**options: Any) -> ResNetSpace:
    space = ResNetSpace(name="resnet_digits", input_shape=(1, 8, 8))
    return with_options(space, options)


def resnet_mnist(**options: Any) -> ResNetSpace:
    space = ResNetSpace(
        name="resnet_mnist",
        input_shape=(1, 28, 28),
        stem_channels=16,
        stem_stride=2,
        stage_widths=((16, 24), (24, 32, 48), (48, 64)),
        stage_strides=(1, 2, 2),
        depths=(1, 2),
    )
    return with_options(space, options)


def nb201(**options: Any) -> Any:
    """The NAS-Bench-201 cell space; ``table`` may be the path of the NAS-Bench-201 table file."""
    from search_spaces.nb201 import NB201Space, NB201Table

    if isinstance(options.get("table"), str | Path):
        # a table given by path (e.g. from YAML) is loaded here, where names become objects
        options = {**options, "table": NB201Table.load(options["table"])}
    return with_options(NB201Space(), options)


def space_names() -> tuple[str, ...]:
    """Every registered search-space name."""
    return plugin_names(SEARCH_SPACES)


def make_space(name: str, /, **options: Any) -> ArchitectureSpace:
    """The space registered as ``name`` built with ``options`` (e.g. ``depths=[1, 2, 3]``); a bad option
    is a :class:`CodesignError` (an :class:`~search_spaces.options.OptionError` where one option is to
    blame)."""
    factory = load_plugin(SEARCH_SPACES, name)
    if not callable(factory):
        raise CodesignError(f"search space {name!r}: {factory!r} is not a factory")
    try:
        space = factory(**options)
    except (TypeError, ValueError) as exc:  # a third-party factory's own complaint about its options
        raise CodesignError(f"search space {name!r}: bad options {sorted(options)} ({exc})") from None
    if inspect.isclass(space) or not isinstance(space, ArchitectureSpace):
        raise CodesignError(f"search space {name!r}: {space!r} lacks the ArchitectureSpace methods")
    return space

"""Plugin kinds and their entry-point groups: where a name in an experiment file finds its implementation.

Every kind of plugin is an entry-point group; the built-ins are registered in this project's own
``setup.cfg`` exactly as a third-party package registers its own::

    [options.entry_points]
    codesign.hardware_models =
        my_asic = my_package.models:MyAsicModel
    codesign.search_spaces =
        my_space = my_package.spaces:make_space
    codesign.datasets =
        my_data = my_package.data:MyDataset
    codesign.strategies =
        my_search = my_package.search:MyStrategy

A built-in name cannot be taken over by another package: the project's own entry point wins, and the
clash is reported by :func:`clashes`. Loading imports only the module that a name points at.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from codesign.core.errors import CodesignError

DISTRIBUTION = "codesign"
"""The distribution whose entry points are the built-ins."""


@dataclass(frozen=True)
class PluginKind:
    """One kind of plugin: its entry-point ``group`` and the ``label`` used in messages."""

    group: str
    label: str


HARDWARE_MODELS = PluginKind("codesign.hardware_models", "hardware model")
SEARCH_SPACES = PluginKind("codesign.search_spaces", "search space")
DATASETS = PluginKind("codesign.datasets", "data set")
STRATEGIES = PluginKind("codesign.strategies", "strategy")
KINDS = (HARDWARE_MODELS, SEARCH_SPACES, DATASETS, STRATEGIES)


def _is_builtin(ep: EntryPoint) -> bool:
    dist = ep.dist
    return dist is not None and dist.name == DISTRIBUTION


def _registered(kind: PluginKind) -> dict[str, EntryPoint]:
    """Name -> entry point; a built-in keeps its name against a third-party one."""
    found: dict[str, EntryPoint] = {}
    for ep in sorted(entry_points(group=kind.group), key=lambda e: (_is_builtin(e), e.name, e.value)):
        found[ep.name] = ep  # built-ins sort last, so they overwrite
    return found


def plugin_names(kind: PluginKind) -> tuple[str, ...]:
    """Every registered name of ``kind``, sorted."""
    return tuple(sorted(_registered(kind)))


def clashes(kind: PluginKind) -> tuple[str, ...]:
    """Third-party entry points that try to take over a built-in name (they are ignored)."""
    builtin = {ep.name for ep in entry_points(group=kind.group) if _is_builtin(ep)}
    return tuple(
        f"{ep.name} = {ep.value}" for ep in entry_points(group=kind.group) if ep.name in builtin and not _is_builtin(ep)
    )


def load_plugin(kind: PluginKind, name: str) -> Any:
    """The object registered as ``name`` (a class or a factory). Raises :class:`CodesignError` listing the
    known names for an unknown one, and naming the entry point when it cannot be imported."""
    registered = _registered(kind)
    ep = registered.get(name)
    if ep is None:
        known = ", ".join(sorted(registered)) or "none"
        raise CodesignError(f"unknown {kind.label} {name!r}; known: {known}")
    try:
        return ep.load()
    except (ImportError, AttributeError) as exc:
        raise CodesignError(f"{kind.label} {name!r}: cannot load {ep.value!r} ({exc})") from None

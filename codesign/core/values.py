"""Core immutable values shared by every package: layers, networks, accelerator configurations,
hardware reports, candidates and their evaluations.

Units are written in field names (``latency_ms``, ``energy_mj``, ``clock_mhz``). Sizes are in elements
unless a name says bytes or bits. Every value here is a frozen dataclass, hashable and safe to share.

This is the public module; the values live in three modules by what they describe, re-exported here so
that ``from codesign.core.values import ...`` stays the one import path:

- :mod:`codesign.core.network`: :class:`Layer`, :class:`Network`, :data:`LAYER_KINDS`;
- :mod:`codesign.core.hardware`: :class:`AcceleratorConfig`, :class:`Resources`, :class:`LayerCost`,
  :class:`HardwareReport`, :data:`RESOURCE_NAMES`, ``ParamValue``;
- :mod:`codesign.core.candidate`: :class:`Candidate`, :class:`Evaluation`, :class:`LayerRecord`, :class:`Fidelity`.
"""

from __future__ import annotations

from codesign.core.candidate import Candidate, Evaluation, Fidelity, LayerRecord, layer_records
from codesign.core.hardware import (
    RESOURCE_NAMES,
    AcceleratorConfig,
    HardwareReport,
    LayerCost,
    ParamValue,
    Resources,
)
from codesign.core.network import LAYER_KINDS, Layer, Network

__all__ = [
    "LAYER_KINDS",
    "RESOURCE_NAMES",
    "AcceleratorConfig",
    "Candidate",
    "Evaluation",
    "Fidelity",
    "HardwareReport",
    "Layer",
    "LayerCost",
    "LayerRecord",
    "Network",
    "ParamValue",
    "Resources",
    "layer_records",
]

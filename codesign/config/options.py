"""Typed option mappings of plugins (a strategy's ``strategy.options``, a sampler's options).

A plugin declares what each of its options accepts as an :class:`OptionRule`; :func:`check_options`
checks a mapping from an experiment file against the rules and raises :class:`ConfigError` at the
option's key path (``strategy.options.n_startup_trials: ...``) for an unknown name or a bad value. A
boolean is never a number, numbers are finite, and options that take Python objects (a callable, a
sampler) cannot come from YAML but may be given through the Python API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from codesign.core.errors import ConfigError
from search_spaces.options import shown

Kind = Literal["bool", "int", "number", "callable", "object"]


@dataclass(frozen=True)
class OptionRule:
    """What one option accepts: a ``bool``, an ``int`` or a finite ``number`` in ``[low, high]``, a
    ``callable``, or an ``object`` (an instance of ``cls``); ``nullable`` allows ``null``."""

    kind: Kind
    low: float = -math.inf
    high: float = math.inf
    nullable: bool = False
    cls: type | None = None

    def expected(self) -> str:
        if self.kind == "bool":
            text = "true or false"
        elif self.kind in ("int", "number"):
            noun = "an integer" if self.kind == "int" else "a finite number"
            text = noun + _range(self.low, self.high)
        elif self.kind == "callable":
            text = "a Python callable (given through the Python API, not an experiment file)"
        else:
            name = self.cls.__name__ if self.cls is not None else "object"
            text = f"a {name} instance (given through the Python API, not an experiment file)"
        return f"{text} or null" if self.nullable else text

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "callable":
            return callable(value)
        if self.kind == "object":
            return self.cls is None or isinstance(value, self.cls)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        number = as_float(value)
        return math.isfinite(number) and self.low <= number <= self.high


def _range(low: float, high: float) -> str:
    if low == -math.inf and high == math.inf:
        return ""
    if high == math.inf:
        return f" >= {_number(low)}"
    if low == -math.inf:
        return f" <= {_number(high)}"
    return f" in [{_number(low)}, {_number(high)}]"


def _number(x: float) -> str:
    return f"{int(x):,}" if x == int(x) and abs(x) >= 1 else f"{x:g}"


def as_float(value: float) -> float:
    """``float(value)``, or NaN for an integer too large for a float (so every range check fails)."""
    try:
        return float(value)
    except OverflowError:
        return math.nan


def check_options(rules: Mapping[str, OptionRule], options: Any, *, path: str, owner: str) -> dict[str, Any]:
    """``options`` (a mapping) as a dict, every key known to ``rules`` and every value accepted by its
    rule; else :class:`ConfigError` at ``path`` (not a mapping) or ``path.KEY`` (a bad option), its
    message naming ``owner`` (``"strategy 'tpe'"``), the bad value and what was expected."""
    if not isinstance(options, Mapping):
        raise ConfigError(path, f"{owner}: options must be a mapping of names to values, got {shown(options)}")
    out: dict[str, Any] = {}
    for key, value in options.items():
        rule = rules.get(key) if isinstance(key, str) else None
        if rule is None:
            known = ", ".join(sorted(rules)) or "none"
            raise ConfigError(f"{path}.{key}", f"unknown option of {owner}; known: {known}")
        if not rule.accepts(value):
            raise ConfigError(f"{path}.{key}", f"{owner}: expected {rule.expected()}, got {shown(value)}")
        out[key] = value
    return out

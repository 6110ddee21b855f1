"""Option values from an experiment file checked against the fields of a frozen dataclass.

YAML gives ints, floats, booleans, strings, lists and mappings; a space's fields are typed (``int``,
``tuple[int, ...]``, ``tuple[tuple[int, ...], ...]``, ``bool``, ...). :func:`dataclass_options` checks
each option against its field's type hint and returns the values ready for ``dataclasses.replace``
(lists become tuples). A boolean is never a number, a number must be finite, and a scalar is never a
list: each mismatch is an :class:`OptionError` naming the option, what was expected and what was given.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from codesign.core.errors import CodesignError

MAX_SHOWN = 60
"""Characters of a bad value's ``repr`` kept in a message (a huge value is cut, so the message stays one
short line)."""


class OptionError(CodesignError):
    """One bad option: ``key`` is the option's name, ``detail`` what is wrong with its value."""

    def __init__(self, owner: str, key: str, detail: str) -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"{owner}: option {key}: {detail}")


def shown(value: object) -> str:
    """``repr(value)``, cut to :data:`MAX_SHOWN` characters."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}... ({len(text)} characters)"


def describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like, in words (``"a list of integers"``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if hint is type(None):
        return "null"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(describe(args[0]))}"
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(describe(args[0]))}"
        return f"a list ({', '.join(describe(a) for a in args)})"
    names = {bool: "a boolean (true or false)", int: "an integer", float: "a finite number", str: "a string"}
    if hint in names:
        return names[hint]
    return f"a {getattr(hint, '__name__', str(hint))}"


def _plural(phrase: str) -> str:
    for article in ("an ", "a "):
        if phrase.startswith(article):
            phrase = phrase[len(article) :]
            break
    head, sep, tail = phrase.partition(" ")
    return f"{head}s{sep}{tail}" if not head.endswith("s") else phrase


def convert(value: Any, hint: Any) -> Any:
    """``value`` as a value of type ``hint`` (lists become tuples); raises ``ValueError`` when it is not
    one. Hints this module does not know (``Any``, a protocol) accept every value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            try:
                return convert(value, arm)
            except ValueError:
                continue
        raise ValueError(describe(hint))
    if hint is type(None):
        if value is not None:
            raise ValueError(describe(hint))
        return None
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise ValueError(describe(hint))
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(describe(hint))
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(describe(hint))
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            raise ValueError(describe(hint)) from None
        if not math.isfinite(number):
            raise ValueError(describe(hint))
        return number
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(describe(hint))
        if len(args) == 2 and args[1] is Ellipsis:
            items = [convert(v, args[0]) for v in value]
        elif len(value) != len(args):
            raise ValueError(describe(hint))
        else:
            items = [convert(v, a) for v, a in zip(value, args, strict=True)]
        return tuple(items)
    if isinstance(hint, type) and not getattr(hint, "_is_protocol", False):
        if not isinstance(value, hint):
            raise ValueError(describe(hint))
        return value
    return value


def dataclass_options(
    cls: type, options: Mapping[str, Any], *, owner: str, fixed: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``options`` checked against the fields of dataclass ``cls`` and converted (lists to tuples).

    An unknown name, or one in ``fixed`` (option name -> why it cannot be set), raises
    :class:`OptionError` naming it; so does a value of the wrong type. ``owner`` starts each message."""
    fixed = dict(fixed or {})
    hints = typing.get_type_hints(cls)
    known = sorted(f.name for f in fields(cls) if f.name not in fixed)
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in fixed:
            raise OptionError(owner, str(key), fixed[key])
        if key not in known:
            raise OptionError(owner, str(key), f"unknown option; known: {', '.join(known)}")
        try:
            out[key] = convert(value, hints[key])
        except ValueError:
            raise OptionError(owner, key, f"expected {describe(hints[key])}, got {shown(value)}") from None
        except RecursionError:
            raise OptionError(owner, key, "the value is nested too deeply") from None
    return out

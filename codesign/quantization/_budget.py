"""Budgets of the bit-allocation program: an upper bound on one summed cost column, absolute or as a
fraction ``alpha`` of the column's range, and its ``COLUMN<=VALUE`` / ``COLUMN<=alpha:FRACTION`` text form.

Private: import :class:`Budget` from :mod:`codesign.quantization.allocation`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from codesign.core.errors import CodesignError

MAX_LIMIT = 1e200
"""The largest absolute limit a budget may give (cost values are at most 1e100, so a limit beyond this
can bind nothing, and dividing it by a column's scale would overflow)."""
_BUDGET_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*<=\s*(alpha\s*:)?\s*(\S+)\s*$")


@dataclass(frozen=True)
class Budget:
    """An upper bound on the summed cost column ``column``.

    Exactly one of ``limit`` (absolute, in the column's unit) and ``alpha`` (a fraction between the
    all-lowest and the all-highest network, ``B_low + alpha * (B_high - B_low)``) is given.
    """

    column: str
    limit: float | None = None
    alpha: float | None = None

    def __post_init__(self) -> None:
        if (self.limit is None) == (self.alpha is None):
            raise CodesignError(f"budget on {self.column!r}: give exactly one of limit and alpha")
        value = self.limit if self.limit is not None else self.alpha
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise CodesignError(f"budget on {self.column!r}: expected a finite number, got {value!r}")
        if self.limit is not None and abs(self.limit) > MAX_LIMIT:
            raise CodesignError(
                f"budget on {self.column!r}: the limit must lie within +-{MAX_LIMIT:g}, got {self.limit!r}"
            )
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise CodesignError(f"budget on {self.column!r}: alpha must lie in [0, 1], got {self.alpha}")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"latency_ms<=3.5"`` (absolute) or ``"size_mb<=alpha:0.5"`` (fraction of the range)."""
        match = _BUDGET_RE.match(text)
        if match is None:
            raise CodesignError(f"budget {text!r}: expected COLUMN<=VALUE or COLUMN<=alpha:FRACTION")
        column, is_alpha, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise CodesignError(f"budget {text!r}: {raw!r} is not a number") from None
        return cls(column, alpha=value) if is_alpha else cls(column, limit=value)

    def __str__(self) -> str:
        return (
            f"{self.column}<=alpha:{self.alpha:g}"
            if self.alpha is not None
            else f"{self.column}<={self.limit:g}"
        )

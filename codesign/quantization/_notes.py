"""The note shown wherever a sensitivity derived from a negative raw Hessian trace estimate is printed
(torch-free, so the ``allocate-bits`` command can show it for a table's ``trace`` column).

Private: import :func:`negative_trace_note` from :mod:`codesign.quantization.sensitivity` or
:mod:`codesign.quantization.allocation`.
"""

from __future__ import annotations


def negative_trace_note(name: str, trace: float) -> str:
    """``trace of layer NAME was negative (-0.0012); its magnitude is used``."""
    return f"trace of layer {name} was negative ({trace:.3g}); its magnitude is used"

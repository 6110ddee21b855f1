"""``--where`` filters are parsed (METRIC OP NUMBER), never evaluated: code and attribute access are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from codesign.results.front import Filter, parse_filters


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch {sentinel}')",
        "latency_ms.__class__<5",
        "latency_ms<(1).__class__",
        "latency_ms<5 or __import__('os')",
        "latency_ms<1e3; import os",
        "exec('x')",
        "latency_ms<1-2",
        "latency_ms<1e3e3",
    ],
)
def test_code_is_refused_and_never_runs(text: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    with pytest.raises(CodesignError, match="expected METRIC OP NUMBER"):
        parse_filters([text.format(sentinel=sentinel)])
    assert not sentinel.exists()


def test_filters_compare_a_metric_with_a_number() -> None:
    (f,) = parse_filters(["latency_ms<=2.5"])
    assert f == Filter("latency_ms", "<=", 2.5)
    assert f.mask([1.0, 2.5, 3.0]).tolist() == [True, True, False]
    assert [g.metric for g in parse_filters(["lut<1e4, accuracy>0.9"])] == ["lut", "accuracy"]
    assert not Filter("accuracy", ">", 0.5).mask(np.array([np.nan])).any()

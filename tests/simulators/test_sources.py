"""Every figure of the hardware models names where it comes from (STYLE.md: "Every constant of a hardware
model says where it comes from").

Module constants: every top-level UPPER_CASE name of a ``simulators`` module whose value holds a number (a
number, a tuple, mapping or array of numbers) and every numeric default of a dataclass defined there needs
an entry in that module's ``SOURCES`` mapping (``"NAME"`` or ``"Class.field"`` -> citation). Device files:
every numeric field (and ``dsp_kind``) needs an entry under ``sources:``, and a bandwidth citation that shows
its arithmetic (``bus bits x MT/s / 8 = MB/s``) must add up to the figure in the file.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import math
import pkgutil
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

import simulators
from codesign.core.errors import CodesignError
from simulators.devices import (
    BUILTIN_DIR,
    SOURCED_FIELDS,
    DeviceCatalog,
    UnsourcedDeviceWarning,
    device_from_dict,
    load_device_file,
)

CONSTANT = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
MARKED = re.compile(r"^(estimate|design choice|derived|unit conversion)\b", re.IGNORECASE)


def modules() -> list[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(simulators.__path__))
    return [importlib.import_module(f"simulators.{name}") for name in names]


def holds_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iuf"
    if isinstance(value, Mapping):
        return any(holds_number(v) for v in value.values())
    if isinstance(value, tuple | list | frozenset | set):
        return any(holds_number(v) for v in value)
    return False


def numeric_constants(module: ModuleType) -> Iterator[str]:
    """Names given a numeric value at the top level of the module's own source (imports are not
    definitions), and ``Class.field`` for numeric dataclass defaults of classes defined there."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            named = isinstance(target, ast.Name) and CONSTANT.match(target.id) and target.id != "SOURCES"
            if named and holds_number(getattr(module, target.id)):
                yield target.id  # type: ignore[union-attr]
        if isinstance(node, ast.ClassDef):
            cls = getattr(module, node.name)
            if dataclasses.is_dataclass(cls):
                for field in dataclasses.fields(cls):
                    if holds_number(field.default):
                        yield f"{node.name}.{field.name}"


def check_citation(where: str, citation: object) -> str | None:
    """A problem with one citation, or None."""
    if not isinstance(citation, str) or len(citation.strip()) < 12:
        return f"{where}: citation {citation!r} is empty or too short to name a document"
    marked = MARKED.match(citation.strip())
    if marked and not re.match(rf"^{marked.group(1)}[^:]*:\s*\S", citation.strip(), re.IGNORECASE):
        return f"{where}: {marked.group(1)!r} must be followed by ': <how it was chosen>'"
    return None


def test_every_numeric_module_constant_has_a_source() -> None:
    problems = []
    for module in modules():
        sources = getattr(module, "SOURCES", {})
        found = set(numeric_constants(module))
        for name in sorted(found - set(sources)):
            problems.append(f"{module.__name__}.{name}: no entry in {module.__name__}.SOURCES")
        for name in sorted(set(sources) - found):
            problems.append(f"{module.__name__}.SOURCES[{name!r}] names no numeric constant of the module")
        for name in sorted(found & set(sources)):
            problem = check_citation(f"{module.__name__}.{name}", sources[name])
            if problem:
                problems.append(problem)
    assert not problems, "\n".join(problems)


def test_the_walk_sees_the_known_constants() -> None:
    """Guards the walk itself: constants named in the issue are found where they live."""
    from simulators import costs, overlay, pipeline

    assert {"LUTRAM_MAX_DEPTH", "LUT_MULT_MAX_BITS", "UNIT_LUT_OVERHEAD", "ACC_BITS", "BRAM18_SHAPES"} <= set(
        numeric_constants(costs)
    )
    assert "EnergyTable.mult_8x8_pj" in set(numeric_constants(costs))
    assert {"TM_CHOICES", "TN_CHOICES", "_CONTROL_UNITS"} <= set(numeric_constants(overlay))
    assert "ACC_BITS" not in set(numeric_constants(overlay))  # imported, sourced where it is defined
    assert set(numeric_constants(pipeline)) == {"WEIGHT_TILE_COPIES"}


def builtin_files() -> list[Path]:
    return sorted(BUILTIN_DIR.glob("*.yaml"))


def numeric_fields(data: Mapping[str, Any]) -> set[str]:
    return {k for k, v in data.items() if k != "sources" and holds_number(v)}


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.stem)
def test_every_numeric_device_field_has_a_source(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    sources = data.get("sources", {})
    missing = sorted((numeric_fields(data) | {"dsp_kind"}) - set(sources))
    assert not missing, f"{path.name} ({data['name']}): no source for {', '.join(missing)}"
    problems = [check_citation(f"{path.name}: sources.{k}", v) for k, v in sources.items()]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


BANDWIDTH = re.compile(r"((?:\d+ x )+[\d,]+) / 8 = ([\d,]+) MB/s")


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.stem)
def test_bandwidth_citation_adds_up_to_the_figure(path: Path) -> None:
    """``bits x MT/s / 8`` is the MB/s the citation states, and the file's GB/s is that within rounding."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    citation = data["sources"]["offchip_gb_per_s"]
    match = BANDWIDTH.search(citation)
    assert match, f"{path.name}: the bandwidth source shows no 'bits x MT/s / 8 = MB/s' arithmetic"
    product = math.prod(int(f.replace(",", "")) for f in match.group(1).split(" x "))
    mb_per_s = int(match.group(2).replace(",", ""))
    assert product / 8 == mb_per_s, f"{path.name}: {match.group(0)} is wrong ({product / 8:g} MB/s)"
    assert math.isclose(data["offchip_gb_per_s"], mb_per_s / 1000, rel_tol=0.005), (
        f"{path.name}: offchip_gb_per_s {data['offchip_gb_per_s']} is not {mb_per_s / 1000:g} GB/s"
    )


def test_xc7z020_bandwidth_is_a_16_bit_ddr3_at_1050_mt_s() -> None:
    assert DeviceCatalog.load().get("xc7z020").offchip_gb_per_s == pytest.approx(16 * 1050 / 8 / 1000)


def test_builtin_devices_carry_their_sources() -> None:
    for device in DeviceCatalog.load().devices:
        assert tuple(f for f, _ in device.sources) == SOURCED_FIELDS, device.name
        assert device.to_dict()["sources"]["resources"]


def builtin_data(name: str = "xczu3eg") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    return data


def test_builtin_file_without_a_source_is_an_error_naming_device_and_field() -> None:
    data = builtin_data()
    del data["sources"]["offchip_gb_per_s"]
    with pytest.raises(CodesignError, match="device 'xczu3eg' gives no source for offchip_gb_per_s"):
        device_from_dict(data, "xczu3eg.yaml", require_sources=True)


def test_user_file_without_sources_loads_with_a_warning(tmp_path: Path) -> None:
    data = builtin_data()
    data["name"] = "mine"
    del data["sources"]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.warns(UnsourcedDeviceWarning, match="device 'mine' gives no source for resources, "):
        device = load_device_file(path)
    assert device.sources == () and device.usable.dsp == 288


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(colour="red"), "sources: unknown field.*colour"),
        (lambda s: s.update(resources=" "), "sources.resources must be a non-empty citation"),
    ],
)
def test_bad_sources_are_errors_in_user_files_too(tmp_path: Path, change: Any, message: str) -> None:
    data = builtin_data()
    change(data["sources"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CodesignError, match=message):
        load_device_file(path)

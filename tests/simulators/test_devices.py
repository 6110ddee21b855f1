from __future__ import annotations

from pathlib import Path

import pytest

from codesign.core.errors import CodesignError
from codesign.core.values import Resources
from simulators.devices import DeviceCatalog, load_device_file
from tests.helpers import USER_DEVICE as GOOD


def write(tmp_path: Path, text: str, name: str = "dev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_catalog_has_the_six_devices_with_design_totals() -> None:
    catalog = DeviceCatalog.load()
    assert catalog.names() == ("u250", "xc7z020", "xc7z045", "xczu3eg", "xczu7ev", "xczu9eg")
    zu3 = catalog.get("xczu3eg")
    assert zu3.resources == Resources(lut=70560, ff=141120, bram18=432, uram=0, dsp=360)
    assert zu3.usable == Resources(lut=49392, ff=70560, bram18=345, uram=0, dsp=288)
    assert catalog.get("u250").ddr_overhead == Resources(lut=33256, ff=44889, bram18=199, uram=0, dsp=3)
    assert catalog.get("xczu7ev").resources.uram == 96
    assert zu3.to_dict()["usable"]["dsp"] == 288
    z45 = catalog.get("xc7z045")
    assert z45.resources == Resources(lut=218600, ff=437200, bram18=1090, uram=0, dsp=900)
    assert z45.dsp_kind == "dsp48e1" and z45.usable.dsp == 720


def test_unknown_device_lists_known_names() -> None:
    with pytest.raises(CodesignError, match="unknown device 'nope'.*xczu3eg"):
        DeviceCatalog.load().get("nope")


def test_user_device_file_extends_catalog(tmp_path: Path) -> None:
    catalog = DeviceCatalog.load([write(tmp_path, GOOD)])
    device = catalog.get("mydev")
    assert device.usable == Resources(lut=500, ff=1000, bram18=5, uram=0, dsp=10)
    assert "xczu3eg" in catalog
    folder = DeviceCatalog.load([tmp_path], include_builtin=False)
    assert folder.names() == ("mydev",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "colour: red\n", "unknown key.*colour"),
        (GOOD.replace("static_power_w: 0.1\n", ""), "missing key.*static_power_w"),
        (GOOD + "board: Again\n", "duplicate key 'board'"),
        (GOOD.replace("dsp: 20}", "dsp: -1}"), "resources.dsp must be a non-negative integer"),
        (GOOD.replace("dsp: 0.5}", "dsp: 1.5}"), r"usable_fractions.dsp must be a fraction"),
        (GOOD.replace("dsp48e2", "dsp99"), "dsp_kind must be one of"),
        (GOOD.replace("default_clock_mhz: 100", "default_clock_mhz: 400"), "exceeds max_clock_mhz"),
        (
            GOOD.replace("offchip_gb_per_s: 2.0", "offchip_gb_per_s: fast"),
            "offchip_gb_per_s must be a number",
        ),
        (GOOD.replace("uram: 0, dsp: 20}", "dsp: 20}"), "resources: missing uram"),
    ],
)
def test_bad_device_files_name_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CodesignError, match=message) as info:
        load_device_file(path)
    assert str(path) in str(info.value)


def test_missing_file_and_duplicate_device(tmp_path: Path) -> None:
    with pytest.raises(CodesignError, match="no such file"):
        DeviceCatalog.load([tmp_path / "absent.yaml"])
    clash = write(tmp_path, GOOD.replace("name: mydev", "name: xczu3eg"))
    with pytest.raises(CodesignError, match="'xczu3eg' is defined twice"):
        DeviceCatalog.load([clash])

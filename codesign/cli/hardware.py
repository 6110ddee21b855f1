"""``codesign hardware list | show DEVICE | import TABLE``: the device catalog, the hardware models, and
models learned from a user's own measurements."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    from codesign.cli import hardware_import

    p = sub.add_parser("hardware", help="devices, hardware models, and importing measured latencies", description=__doc__)
    hw = p.add_subparsers(dest="hardware_command", required=True, metavar="ACTION")
    lst = hw.add_parser("list", help="list devices and hardware models")
    lst.add_argument("--device-file", action="append", default=[], help="extra device YAML file or folder (repeatable)")
    lst.set_defaults(handler=handle_list)
    show = hw.add_parser("show", help="show one device")
    show.add_argument("device")
    show.add_argument("--device-file", action="append", default=[], help="extra device YAML file or folder (repeatable)")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(handler=handle_show)
    hardware_import.register(hw)


def handle_list(args: argparse.Namespace) -> int:
    from codesign.cli.format import table
    from simulators.devices import DeviceCatalog
    from simulators.registry import hardware_model_names

    catalog = DeviceCatalog.load(args.device_file)
    rows = []
    for name in catalog.names():
        d = catalog.get(name).to_dict()
        res = d.get("resources", {})
        rows.append({"device": name, "board": d.get("board", ""), **{k: res.get(k) for k in ("lut", "ff", "bram18", "uram", "dsp")},
                     "max_clock_mhz": d.get("max_clock_mhz")})
    print("devices:")
    print(table(rows))
    print("\nhardware models: " + ", ".join(hardware_model_names()))
    from codesign.core.plugins import HARDWARE_MODELS, clashes

    for clash in clashes(HARDWARE_MODELS):
        print(f"ignored (takes a built-in name): {clash}", file=sys.stderr)
    return 0


def handle_show(args: argparse.Namespace) -> int:
    from simulators.devices import DeviceCatalog

    catalog = DeviceCatalog.load(args.device_file)
    device = catalog.get(args.device).to_dict()
    if args.format == "json":
        print(json.dumps(device, indent=2))
        return 0
    for key, value in device.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0

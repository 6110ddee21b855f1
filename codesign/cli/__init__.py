"""The ``codesign`` command. Each subcommand module adds its parser with ``register(subparsers)`` and sets
``handler(args) -> int``. Bad input (any :class:`CodesignError`) becomes one line on stderr and exit code 2;
no traceback reaches the user."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from codesign.core.errors import CodesignError


def build_parser() -> argparse.ArgumentParser:
    from codesign.cli import allocate, export, hardware, pareto, run

    parser = argparse.ArgumentParser(
        prog="codesign",
        description="Joint search of neural-network architectures, per-layer bit-widths and FPGA accelerators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run, pareto, hardware, allocate, export):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar counts failed trials and shows the last error
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except CodesignError as exc:
        print(f"codesign: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codesign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

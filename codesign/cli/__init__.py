"""The ``codesign`` command. Each subcommand module adds its parser with ``register(subparsers)`` and sets
``handler(args) -> int``. Bad input (any :class:`CodesignError`) becomes one line on stderr and exit code 2;
no traceback reaches the user.

Start-up is lazy: only the module of the command being run is imported (``codesign --help`` imports none),
and those modules import their heavy libraries (torch, optuna, pandas) inside the handlers that need them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("codesign.cli.run", "run (or resume) a search experiment"),
    "worker": ("codesign.cli.worker", "join a shared study (PostgreSQL) as one more worker"),
    "pareto": ("codesign.cli.pareto", "query, filter, export, plot and compare stored fronts"),
    "hardware": ("codesign.cli.hardware", "devices, hardware models, and importing measured latencies"),
    "allocate-bits": ("codesign.cli.allocate", "optimal per-layer bit-widths under budgets (integer program)"),
    "show": ("codesign.cli.show", "one pair in full, with its per-layer breakdown"),
    "export": ("codesign.cli.export", "export a pair for FINN (QONNX), hls4ml and PyTorch"),
    "report": ("codesign.cli.report", "a self-contained HTML report of one or more studies"),
}
"""Command -> (module, one-line help); the module's ``register(subparsers)`` adds the full parser."""

USES_OPTUNA = ("run", "worker", "pareto", "show", "export", "report")
"""Commands that read or write a study: Optuna's log is quieted before they run."""


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``codesign`` parser with the full parsers of ``commands`` (default: all); the other commands are
    listed with their one-line help only, without importing their modules."""
    full = set(COMMANDS) if commands is None else set(commands)
    parser = argparse.ArgumentParser(
        prog="codesign",
        description="Joint search of neural-network architectures, per-layer bit-widths and FPGA accelerators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if name in full:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if it is one."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar counts failed trials and shows the last error


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    from codesign.core.errors import CodesignWarning

    if issubclass(category, CodesignWarning):
        print(f"codesign: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), file=sys.stderr, end="")


def main(argv: Sequence[str] | None = None) -> int:
    from codesign.core.errors import CodesignError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser([command] if command else [])
    args = parser.parse_args(argv)
    try:
        if args.command in USES_OPTUNA:
            _quiet_optuna()
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # the command's own warnings as one line each
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

"""Checks of a journal file before Optuna reads it or appends to it.

Optuna's journal is one JSON record per line. A process killed mid-write, or a full disk, leaves a last line
without its newline (sometimes a block of NUL bytes); Optuna skips it when reading but appends the next
record right after it, which fuses the two into one garbled line and makes the whole journal unreadable. So
before a journal is opened for writing, a partial last line is moved to ``<journal>.partial`` and the file
cut back to its last complete record; a garbled complete line anywhere is an error naming its line number,
and nothing is written.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock
from optuna.storages.journal._storage import JournalOperation

from codesign.core.errors import CodesignError, CodesignWarning

_OP_CODES = frozenset(int(op) for op in JournalOperation)
"""The operation codes of Optuna's journal record format (private to optuna 5; setup.cfg pins optuna<6)."""


def _problem(line: bytes) -> str | None:
    """Why a complete line is not a journal record, or ``None`` when it is one."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "not valid JSON" if b"\x00" not in line else "NUL bytes"
    if not isinstance(record, dict) or record.get("op_code") not in _OP_CODES:
        return f"unknown operation {record.get('op_code')!r}" if isinstance(record, dict) else "not a record"
    return None


def check_journal(path: str | Path, *, repair: bool) -> int:
    """Validate every line of the journal at ``path`` and return its number of complete records.

    A partial last line is moved aside to ``<path>.partial`` when ``repair`` (before writing), with a
    :class:`CodesignWarning` either way; a bad complete line raises :class:`CodesignError` naming it."""
    path = Path(path)
    if not repair:
        return _check(path, repair=False)
    # Optuna's own writer lock: another worker appending now is never cut short
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        return _check(path, repair=True)
    finally:
        lock.release()


def _check(path: Path, *, repair: bool) -> int:
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # the bytes after the last newline: empty for an intact journal
    for number, line in enumerate(lines, start=1):
        problem = _problem(line)
        if problem is not None:
            raise CodesignError(
                f"{path}: line {number} is not a journal record ({problem}); the {number - 1} records before it "
                f"are intact and nothing was written: keep them with  head -n {number - 1} {path} > repaired.journal"
            )
    if tail:
        kept = f"moved to {path}.partial" if repair else "ignored"
        warnings.warn(
            CodesignWarning(f"{path}: the last record is incomplete ({len(tail)} bytes, an interrupted write); {kept}, "
                            f"the {len(lines)} records before it are intact"),  # fmt: skip
            stacklevel=3,
        )
        if repair:
            with open(f"{path}.partial", "ab") as aside:
                aside.write(tail + b"\n")
            with open(path, "r+b") as journal:
                journal.truncate(len(data) - len(tail))
    return len(lines)

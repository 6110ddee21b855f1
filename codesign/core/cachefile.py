"""Cache files that know when they are corrupt: a header line with the SHA-256 of the content, written
atomically (temporary file + rename, so concurrent workers sharing a folder never read half a file).

A file whose header is missing or whose content does not match its checksum (truncated by a full disk,
overwritten, edited by hand) is reported once as a :class:`CodesignWarning` naming the file, removed, and
read as absent, so the caller recomputes it: a corrupt entry is never used and never stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
from pathlib import Path

from codesign.core.errors import CodesignWarning

MAGIC = b"codesign-cache 1 sha256:"


def write_checked(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a checksum header, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n")
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checked(path: Path) -> bytes | None:
    """The content of ``path``; None when it is absent, or corrupt (then it is reported and removed)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        discard(path, "is a folder")
        return None
    header, newline, data = raw.partition(b"\n")
    if not newline or not header.startswith(MAGIC):
        discard(path, "has no checksum header")
        return None
    if hashlib.sha256(data).hexdigest().encode() != header[len(MAGIC):]:
        discard(path, "does not match its checksum (truncated or edited)")
        return None
    return data


def discard(path: Path, why: str) -> None:
    """Report a corrupt cache entry and remove it, so it is recomputed."""
    warnings.warn(f"cache entry {path} {why}; recomputing it", CodesignWarning, stacklevel=3)
    with contextlib.suppress(IsADirectoryError, FileNotFoundError):  # a folder stays; another worker may have removed it
        path.unlink()

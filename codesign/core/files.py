"""Writing the files a command produces: missing folders are created, and a failure is one line naming
what was being written."""

from __future__ import annotations

from pathlib import Path

from codesign.core.errors import CodesignError


def write_text(path: str | Path, text: str, what: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, creating its missing folders; any failure is a one-line
    :class:`CodesignError` starting with ``what`` (e.g. ``"--out report.html"``)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CodesignError(f"{what}: cannot write ({exc.strerror or exc})") from None
    return target

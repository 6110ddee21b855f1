"""A content-addressed disk cache for measurements and trained weights.

Keys are hashes of everything that determines a result (space, architecture id, bits, data set and seed,
schedule, :data:`CODE_VERSION`), so a cached value is reused exactly when it would be recomputed
identically, and never otherwise. Values are JSON documents and torch state dicts; writes are atomic
(temporary file + rename), so concurrent workers sharing one cache folder never read half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

CODE_VERSION = "training-1"
"""Changes whenever training, quantization or measurement semantics change, invalidating old entries."""


def content_key(parts: Mapping[str, Any]) -> str:
    """A stable hex digest of ``parts`` (JSON-serialisable; key order does not matter)."""
    text = json.dumps(
        {"code_version": CODE_VERSION, **parts}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class DiskCache:
    """JSON values and state dicts under ``root``, in ``<root>/<key[:2]>/<key>.{json,pt}``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def _write(self, path: Path, write: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_json(self, key: str) -> dict[str, Any] | None:
        path = self._path(key, ".json")
        if not path.is_file():
            return None
        value = json.loads(path.read_text())
        return value if isinstance(value, dict) else None

    def put_json(self, key: str, value: Mapping[str, Any]) -> None:
        data = json.dumps(dict(value), sort_keys=True).encode()
        self._write(self._path(key, ".json"), lambda fh: fh.write(data))

    def get_state(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(key, ".pt")
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state if isinstance(state, dict) else None

    def put_state(self, key: str, state: Mapping[str, torch.Tensor]) -> None:
        self._write(self._path(key, ".pt"), lambda fh: torch.save(dict(state), fh))

    def __contains__(self, key: str) -> bool:
        return self._path(key, ".json").is_file() or self._path(key, ".pt").is_file()


class MemoryCache(DiskCache):
    """The same interface kept in memory (for runs without a cache folder)."""

    def __init__(self) -> None:
        super().__init__(Path("."))
        self._json: dict[str, dict[str, Any]] = {}
        self._state: dict[str, dict[str, torch.Tensor]] = {}

    def get_json(self, key: str) -> dict[str, Any] | None:
        value = self._json.get(key)
        return None if value is None else json.loads(json.dumps(value))

    def put_json(self, key: str, value: Mapping[str, Any]) -> None:
        self._json[key] = json.loads(json.dumps(dict(value)))

    def get_state(self, key: str) -> dict[str, torch.Tensor] | None:
        state = self._state.get(key)
        return None if state is None else {k: v.clone() for k, v in state.items()}

    def put_state(self, key: str, state: Mapping[str, torch.Tensor]) -> None:
        self._state[key] = {k: v.detach().clone() for k, v in state.items()}

    def __contains__(self, key: str) -> bool:
        return key in self._json or key in self._state

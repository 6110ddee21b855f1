"""A content-addressed disk cache for measurements and trained weights.

Keys are hashes of everything that determines a result (space, architecture id, bits, data set and seed,
schedule, :data:`CODE_VERSION`), so a cached value is reused exactly when it would be recomputed
identically, and never otherwise. Values are JSON documents and torch state dicts behind a checksum of
their content; writes are atomic (temporary file + rename), so concurrent workers sharing one cache folder
never read half a file, and a corrupt or edited entry is recomputed, never used. A cache folder is local
to its machine: workers elsewhere recompute the same numbers from the same keys.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from codesign.core.cachefile import discard, read_checked, write_checked

CODE_VERSION = "training-2"
"""Changes whenever training, quantization or measurement semantics change, invalidating old entries."""


def content_key(parts: Mapping[str, Any]) -> str:
    """A stable hex digest of ``parts`` (JSON-serialisable; key order does not matter)."""
    text = json.dumps(
        {"code_version": CODE_VERSION, **parts}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class DiskCache:
    """JSON values and state dicts under ``root``, in ``<root>/<key[:2]>/<key>.{json,pt}``, each behind a
    checksum (:mod:`codesign.core.cachefile`): a corrupt or edited entry is reported, removed and read as
    absent, so it is recomputed. A JSON value that parses but is not an object counts as corrupt too."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def get_json(self, key: str) -> dict[str, Any] | None:
        path = self._path(key, ".json")
        data = read_checked(path)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            discard(path, "is not JSON")
            return None
        if isinstance(value, dict):
            return value
        discard(path, "is not a JSON object")
        return None

    def put_json(self, key: str, value: Mapping[str, Any]) -> None:
        write_checked(self._path(key, ".json"), json.dumps(dict(value), sort_keys=True).encode())

    def get_state(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(key, ".pt")
        data = read_checked(path)
        if data is None:
            return None
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception:  # torch raises several types for bytes that are not a state dict
            discard(path, "is not a torch state dict")
            return None
        if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
            discard(path, "is not a torch state dict")
            return None
        return state

    def put_state(self, key: str, state: Mapping[str, torch.Tensor]) -> None:
        """Store ``state`` from the CPU, whatever device its tensors are on (the cache is device-free)."""
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
        write_checked(self._path(key, ".pt"), buffer.getvalue())

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
        self._state[key] = {k: v.detach().cpu().clone() for k, v in state.items()}

    def __contains__(self, key: str) -> bool:
        return key in self._json or key in self._state

"""Saving predictors: one folder per predictor holding ``predictor.json`` (format version, kind, feature
schema and the predictor's own settings) beside the model files (XGBoost's JSON model format; pickle only
for scikit-learn estimators)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codesign.core.errors import CodesignError
from codesign.predictors.features import FeatureSchema

FORMAT_VERSION = 1
"""Version of the folder layout and metadata; a folder written by another version is refused."""
META_FILE = "predictor.json"


def write_meta(folder: str | Path, kind: str, schema: FeatureSchema, payload: Mapping[str, Any]) -> Path:
    """Create ``folder`` (and parents) and write its metadata; returns the folder."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "schema": schema.to_dict(), **payload}
    (path / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return path


def read_meta(folder: str | Path, kind: str) -> tuple[dict[str, Any], FeatureSchema]:
    """The metadata and schema of a saved ``kind`` predictor; raises :class:`CodesignError` when the folder
    is missing, is another kind, or was written by another format version."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise CodesignError(f"no saved predictor at {folder}: {META_FILE} not found")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CodesignError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(meta, dict):
        raise CodesignError(f"{path}: expected a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CodesignError(f"{path}: predictor format version {version!r}, this version of codesign reads {FORMAT_VERSION}")
    if meta.get("kind") != kind:
        raise CodesignError(f"{path}: holds a {meta.get('kind')!r} predictor, expected {kind!r}")
    return meta, FeatureSchema.from_dict(meta.get("schema", {}))

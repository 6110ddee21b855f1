"""Deployable pairs: a front's quantized model as QONNX (for FINN) and as a torch program, its integer
weights, its hls4ml configuration and everything known about it, written to a folder that needs neither
the study nor codesign to load, and checked by executing the QONNX graph with ``qonnx``."""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codesign.config.experiment import config_from_record
from codesign.core.errors import CodesignError, CodesignWarning
from codesign.results.deploy import DeployGraph
from codesign.results.qonnx_export import ExecutionCheck
from codesign.search.storage import load_experiment

PAIR_JSON = "pair.json"
QONNX = "model.onnx"
TORCH = "model.pt2"
INTEGERS = "integers.npz"
HLS4ML = "hls4ml.yaml"
LOADER = "load_model.py"
FILES = (QONNX, TORCH, INTEGERS, HLS4ML, PAIR_JSON, LOADER)
"""What an exported pair's folder holds."""

_LOADER_TEXT = '''"""Load this exported pair with torch alone (no codesign needed).

``load()`` returns the quantized model: raw input (see pair.json "input") in, logits out, the
preprocessing included. ``python load_model.py`` prints the pair and runs the model on zeros.
The same network as QONNX (for FINN) is model.onnx; the integer weights, scales and zero points are in
integers.npz; the hls4ml configuration is hls4ml.yaml.
"""

import json
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def load():
    return torch.export.load(HERE / "model.pt2").module()


if __name__ == "__main__":
    pair = json.loads((HERE / "pair.json").read_text(encoding="utf-8"))
    print(f"study {pair['study']}, trial {pair['trial']}: {pair['summary']}")
    print("input:", pair["input"]["raw"], "shape", pair["input"]["shape"])
    logits = load()(torch.zeros(1, *pair["input"]["shape"]))
    print("logits on zeros:", [round(v, 4) for v in logits[0].tolist()])
'''


def check_export_target(out_dir: str | Path, *, force: bool = False) -> Path:
    """Refuse, before any work, a folder ``out_dir`` that an export cannot write without losing a file:
    one whose path has a file where a folder belongs, or (without ``force``) an existing file, or a folder
    already holding an exported pair's files. ``force`` lets the export replace them."""
    out = Path(out_dir)
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CodesignError(f"cannot export to {out}: {parent} is a file, not a folder")
            break
    if out.exists() and not out.is_dir():
        if not force:
            raise CodesignError(
                f"cannot export to {out}: it is a file (a pair is a folder of {', '.join(FILES)}); "
                "pass --force to replace the file"
            )
    elif out.is_dir():
        held = [name for name in (*FILES, *_OLD_FILES) if (out / name).exists()]
        blocked = [name for name in held if (out / name).is_dir()]
        if blocked:
            raise CodesignError(f"cannot export to {out}: {', '.join(blocked)} in it is a folder")
        if held and not force:
            raise CodesignError(
                f"cannot export to {out}: it already holds an exported pair ({', '.join(held)}); pass --force to overwrite it"
            )
    return out


_OLD_FILES = ("model.pt",)
"""Files of an older export layout that an export into the same folder also counts as a pair."""


def _write_pair(out: Path, files: Mapping[str, Callable[[Path], object]]) -> None:
    """Write every file (name -> writer of that path) into a fresh folder beside ``out``, then move them
    into place: a failed write (a full disk, say) leaves ``out`` as it was, and a file that ``out``
    replaces goes only once the new files exist."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
        staging.mkdir()  # not mkdtemp: the folder keeps the user's usual permissions when it becomes ``out``
    except OSError as exc:
        raise CodesignError(f"cannot export to {out}: {exc.strerror or exc}") from None
    try:
        for name, write in files.items():
            write(staging / name)
        if out.is_dir():
            for name in files:
                os.replace(staging / name, out / name)
            for name in _OLD_FILES:
                (out / name).unlink(missing_ok=True)
        else:
            if out.exists():
                out.unlink()  # a file, which check_export_target let go only with force
            staging.rename(out)
    except OSError as exc:
        raise CodesignError(f"cannot export to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class ExportResult:
    """Where a pair went and what checking it by execution found."""

    folder: Path
    qonnx: ExecutionCheck
    torch_max_abs_logit_diff: float
    trained_now: bool
    """The model was not in the cache and was trained again (from the experiment's seed) for the export."""
    hls4ml_unsupported: str = ""
    """Why hls4ml cannot convert this network (its ``hls4ml.yaml`` then lists the bits and reuse factors
    only); empty when it can."""


def export_pair(
    storage: str | Path,
    trial_number: int,
    out_dir: str | Path,
    *,
    study: str | None = None,
    force: bool = False,
    cache_dir: str | Path | None = None,
) -> ExportResult:
    """Write trial ``trial_number``'s pair to ``out_dir`` (:data:`FILES`): the quantized network as QONNX
    (``model.onnx``, for FINN) and as a torch program (``model.pt2``, loadable with torch alone), both
    taking the raw input with the data set's preprocessing inside; the integer weights with their scales
    and zero points (``integers.npz``); the hls4ml configuration (``hls4ml.yaml``); and ``pair.json``:
    space, architecture, per-layer bits and hardware costs, accelerator, the searched numbers and the
    test-split numbers labelled as such, the preprocessing, and the export's own check.

    The check runs the QONNX graph with ``qonnx`` on the test split beside the PyTorch quantized model the
    numbers were measured on (same predictions on every sample is the expectation; the figures are
    recorded either way, and a mismatch is warned about). A model missing from the cache is trained again
    from the experiment's seed, with a warning (``cache_dir`` names this machine's cache folder when the run
    used another than its experiment file's, as ``codesign run --cache`` does). An existing file at ``out_dir``, or a pair already exported
    there, is replaced only with ``force`` (:func:`check_export_target`, checked before the study is read)."""
    import numpy as np
    import onnx

    from codesign.results.deploy import DeployedModule, deploy_graph
    from codesign.results.hls4ml_export import Hls4mlUnsupported, hls4ml_config, hls4ml_yaml
    from codesign.results.pair import load_pair
    from codesign.results.qonnx_export import check_by_execution, to_qonnx
    from codesign.search.build import build_problem
    from codesign.search.problem import CodesignProblem

    out = check_export_target(out_dir, force=force)
    loaded, pair = load_pair(storage, trial_number, study=study)
    config = config_from_record(load_experiment(loaded)).with_cache_dir(cache_dir)
    problem = build_problem(config)
    if not isinstance(problem, CodesignProblem):
        raise CodesignError(f"study {pair.study!r} searches a table ({config.space.architecture}); it has no model to export")
    candidate = pair.candidate
    arch = problem.space.from_id(candidate.arch_id)
    network = problem.space.network(arch, candidate.weight_bits, candidate.act_bits)
    accuracy = problem.accuracy
    trained_now = not accuracy.is_cached(arch, candidate.weight_bits, candidate.act_bits)  # type: ignore[attr-defined]
    if trained_now:
        warnings.warn(CodesignWarning(
            f"trial {trial_number}'s model is not in the cache {_cache_name(config)}; training it again from the "
            "experiment's seed (the same schedule gives the same weights; --cache names the run's cache folder)"
        ), stacklevel=2)
    model = accuracy.trained_model(arch, candidate.weight_bits, candidate.act_bits)  # type: ignore[attr-defined]
    data = accuracy.data  # type: ignore[attr-defined]
    graph = deploy_graph(model, network, data.input_shape, data.preprocess)
    proto = to_qonnx(graph, name=f"{pair.study}_trial{trial_number}", num_classes=data.num_classes)
    x, y = data.split("test")
    raw = data.preprocess.invert(x)
    check = check_by_execution(proto, model, x, raw, y)
    deployed = DeployedModule(graph).eval()
    with torch.no_grad():
        torch_diff = float((deployed(raw) - model(x)).abs().max())
    program = torch.export.export(deployed, (raw[:2],), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    if not check.all_same:
        warnings.warn(CodesignWarning(
            f"trial {trial_number}: the QONNX graph run by qonnx predicts differently from the PyTorch model on "
            f"{check.samples - check.same_predictions} of {check.samples} test samples (recorded in {PAIR_JSON})"
        ), stacklevel=2)
    try:
        hls4ml_config(graph, candidate, network)
        hls4ml_note = ""
    except Hls4mlUnsupported as exc:
        hls4ml_note = str(exc)
    hls4ml_text = hls4ml_yaml(graph, candidate, network)
    doc = _pair_doc(pair, config, network, data, check, torch_diff, trained_now)
    doc["export_check"]["hls4ml"] = hls4ml_note or "the configuration is for hls4ml's PyTorch front end (plain_torch_model of the graph)"
    doc["graph"] = graph.structure()
    files: dict[str, Callable[[Path], object]] = {
        QONNX: lambda p: onnx.save(proto, str(p)),
        TORCH: lambda p: torch.export.save(program, p),
        INTEGERS: lambda p: _save_npz(p, graph.integer_record(), np),
        HLS4ML: lambda p: p.write_text(hls4ml_text, encoding="utf-8"),
        PAIR_JSON: lambda p: p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8"),
        LOADER: lambda p: p.write_text(_LOADER_TEXT, encoding="utf-8"),
    }
    _write_pair(out, files)
    return ExportResult(out, check, torch_diff, trained_now, hls4ml_note)


def _cache_name(config: Any) -> str:
    from codesign.nn.accuracy import default_cache_dir

    return str(config.resolve(config.accuracy.cache_dir) or default_cache_dir())


def _save_npz(path: Path, arrays: Mapping[str, Any], np: Any) -> None:
    with path.open("wb") as handle:  # a file object: numpy would append ".npz" to a path without it
        np.savez(handle, **arrays)


def _pair_doc(pair: Any, config: Any, network: Any, data: Any, check: Any, torch_diff: float, trained_now: bool) -> dict[str, Any]:
    from codesign.results.front import TEST_METRICS

    costs = {layer.name: layer for layer in pair.layers}
    verified = {k: v for k, v in pair.verified.items() if k in TEST_METRICS}
    return {
        "study": pair.study,
        "trial": pair.trial,
        "summary": pair.candidate.summary(),
        "space": {
            "name": config.space.architecture or pair.candidate.space,
            "options": dict(config.space.options),
            **({"model": config.space.model} if config.space.model else {}),
            **({"define": config.space.define} if config.space.define else {}),
        },
        "candidate": pair.candidate.to_dict(),
        "accelerator": None if pair.candidate.accelerator is None else pair.candidate.accelerator.to_dict(),
        "input": {"shape": list(data.input_shape), **data.preprocess.to_dict()},
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "weight_bits": layer.weight_bits if layer.has_weights else 0,
                "act_bits": layer.act_bits,
                **({"cost": costs[layer.name].to_dict()} if layer.name in costs else {}),
            }
            for layer in network.layers
        ],
        "metrics": {
            "searched": {k: _json_number(v) for k, v in pair.searched.items()},
            "searched_source": dict(pair.fidelity),
            "searched_note": "the numbers the search chose on: accuracy on the validation split, hardware from the model",
            "verified": {k: _json_number(v) for k, v in verified.items()} or None,
            "verified_note": "measured on the test split after the search; never used to choose"
            if verified else "this pair was not verified on the test split",
        },
        "export_check": {
            "split": "test",
            "qonnx": check.to_dict(),
            "torch_program_max_abs_logit_diff": torch_diff,
            "trained_at_export": trained_now,
        },
        "notes": list(pair.notes),
    }


def _json_number(value: float) -> float | str:
    import math

    return value if math.isfinite(value) else str(value)


def exported_graph(folder: str | Path) -> DeployGraph:
    """The deploy graph of an exported folder (from ``pair.json`` and ``integers.npz``): what
    :func:`codesign.results.hls4ml_export.plain_torch_model` and the QONNX writer take."""
    import numpy as np

    from codesign.results.deploy import load_graph

    folder = Path(folder)
    try:
        doc = json.loads((folder / PAIR_JSON).read_text(encoding="utf-8"))
        with np.load(folder / INTEGERS) as arrays:
            return load_graph(doc["graph"], {k: arrays[k] for k in arrays.files})
    except FileNotFoundError as exc:
        raise CodesignError(f"{folder} holds no {Path(exc.filename).name}; export a pair with 'codesign export'") from None
    except (KeyError, ValueError, OSError) as exc:
        raise CodesignError(f"{folder}: not a readable export ({type(exc).__name__}: {exc})") from None


def load_exported(folder: str | Path) -> torch.nn.Module:
    """The exported model (raw input in, logits out), loaded with torch alone from ``model.pt2``."""
    folder = Path(folder)
    if not (folder / TORCH).is_file():
        raise CodesignError(f"{folder} holds no {TORCH}; export a pair with 'codesign export'")
    try:
        return torch.export.load(folder / TORCH).module()
    except Exception as exc:  # noqa: BLE001 - a corrupt program file raises many types
        raise CodesignError(f"{folder / TORCH}: cannot load it ({type(exc).__name__}: {exc})") from None

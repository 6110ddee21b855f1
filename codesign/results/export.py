"""Deployable pairs: a front's model with its trained (quantized) weights, its per-layer bits and its
accelerator configuration, written to a folder that loads back without the study."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import optuna
import torch

from codesign.config.experiment import config_from_record
from codesign.core.errors import CodesignError
from codesign.core.values import Candidate
from codesign.search.storage import (
    ATTR_CANDIDATE,
    ATTR_FIDELITY,
    ATTR_METRICS,
    load_experiment,
    open_existing_storage,
    pick_study,
)

PAIR_JSON = "pair.json"
WEIGHTS = "model.pt"
LOADER = "load_model.py"

_LOADER_TEXT = '''"""Load this exported model: ``python load_model.py`` prints it; ``load()`` returns it in eval mode."""

from pathlib import Path

from codesign.results.export import load_exported


def load():
    return load_exported(Path(__file__).resolve().parent)


if __name__ == "__main__":
    print(load())
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
                f"cannot export to {out}: it is a file (a pair is a folder of {WEIGHTS}, {PAIR_JSON}, {LOADER}); "
                "pass --force to replace the file"
            )
    elif out.is_dir():
        held = [name for name in (WEIGHTS, PAIR_JSON, LOADER) if (out / name).exists()]
        blocked = [name for name in held if (out / name).is_dir()]
        if blocked:
            raise CodesignError(f"cannot export to {out}: {', '.join(blocked)} in it is a folder")
        if held and not force:
            raise CodesignError(
                f"cannot export to {out}: it already holds an exported pair ({', '.join(held)}); pass --force to overwrite it"
            )
    return out


def _write_pair(out: Path, model: torch.nn.Module, doc: dict[str, Any]) -> None:
    """Write the three files into a fresh folder beside ``out``, then move them into place: a failed write
    (a full disk, say) leaves ``out`` as it was, and a file that ``out`` replaces goes only once the new
    files exist."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
        staging.mkdir()  # not mkdtemp: the folder keeps the user's usual permissions when it becomes ``out``
    except OSError as exc:
        raise CodesignError(f"cannot export to {out}: {exc.strerror or exc}") from None
    try:
        torch.save(model.state_dict(), staging / WEIGHTS)
        (staging / PAIR_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        (staging / LOADER).write_text(_LOADER_TEXT, encoding="utf-8")
        if out.is_dir():
            for name in (WEIGHTS, PAIR_JSON, LOADER):
                os.replace(staging / name, out / name)
        else:
            if out.exists():
                out.unlink()  # a file, which check_export_target let go only with force
            staging.rename(out)
    except OSError as exc:
        raise CodesignError(f"cannot export to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_pair(
    storage: str | Path, trial_number: int, out_dir: str | Path, *, study: str | None = None, force: bool = False
) -> Path:
    """Write trial ``trial_number``'s pair to ``out_dir``: ``model.pt`` (state dict), ``pair.json`` (space,
    architecture, per-layer bits with layer names, accelerator, metrics) and ``load_model.py``. An existing
    file at ``out_dir``, or a pair already exported there, is replaced only with ``force``
    (:func:`check_export_target`, checked before the study is read)."""
    out = check_export_target(out_dir, force=force)
    backend = open_existing_storage(storage)
    name = pick_study(backend, study)
    loaded = optuna.load_study(study_name=name, storage=backend)
    trials = {t.number: t for t in loaded.get_trials(deepcopy=False)}
    trial = trials.get(trial_number)
    if trial is None or ATTR_CANDIDATE not in trial.user_attrs:
        done = sorted(n for n, t in trials.items() if ATTR_CANDIDATE in t.user_attrs)
        raise CodesignError(f"study {name!r} has no evaluated trial {trial_number}; evaluated: {_ranges(done)}")
    config = config_from_record(load_experiment(loaded))
    from codesign.search.build import build_problem
    from codesign.search.problem import CodesignProblem

    problem = build_problem(config)
    if not isinstance(problem, CodesignProblem):
        raise CodesignError(f"study {name!r} searches a table ({config.space.architecture}); it has no model to export")
    candidate = Candidate.from_dict(trial.user_attrs[ATTR_CANDIDATE])
    arch = problem.space.from_id(candidate.arch_id)
    network = problem.space.network(arch, candidate.weight_bits, candidate.act_bits)
    model = problem.accuracy.trained_model(arch, candidate.weight_bits, candidate.act_bits)  # type: ignore[attr-defined]
    doc: dict[str, Any] = {
        "study": name,
        "trial": trial_number,
        "space": {"name": config.space.architecture, "options": dict(config.space.options)},
        "candidate": candidate.to_dict(),
        "layers": [
            {"name": layer.name, "weight_bits": layer.weight_bits, "act_bits": layer.act_bits}
            for layer in network.weighted_layers
        ],
        "accelerator": None if candidate.accelerator is None else candidate.accelerator.to_dict(),
        "metrics": trial.user_attrs.get(ATTR_METRICS, {}),
        "fidelity": trial.user_attrs.get(ATTR_FIDELITY, {}),
        "network": network.to_dict(),
    }
    _write_pair(out, model, doc)
    return out


def load_exported(folder: str | Path) -> torch.nn.Module:
    """The exported model, with its bits set and quantization on, in eval mode."""
    from codesign.nn.training import build_model
    from codesign.quantization.fake import set_bits, set_quant_mode
    from search_spaces.registry import make_space

    folder = Path(folder)
    try:
        doc = json.loads((folder / PAIR_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CodesignError(f"{folder} holds no {PAIR_JSON}; export a pair with 'codesign export'") from None
    space = make_space(doc["space"]["name"], **doc["space"]["options"])
    candidate = Candidate.from_dict(doc["candidate"])
    model = build_model(space, space.from_id(candidate.arch_id))
    set_bits(model, candidate.weight_bits, candidate.act_bits)
    set_quant_mode(model, "quant")
    model.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))
    return model.eval()


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    return f"{numbers[0]}..{numbers[-1]}" if numbers == list(range(numbers[0], numbers[-1] + 1)) else ", ".join(map(str, numbers))

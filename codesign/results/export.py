"""Deployable pairs: a front's model with its trained (quantized) weights, its per-layer bits and its
accelerator configuration, written to a folder that loads back without the study."""

from __future__ import annotations

import json
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


def export_pair(storage: str | Path, trial_number: int, out_dir: str | Path, *, study: str | None = None) -> Path:
    """Write trial ``trial_number``'s pair to ``out_dir``: ``model.pt`` (state dict), ``pair.json`` (space,
    architecture, per-layer bits with layer names, accelerator, metrics) and ``load_model.py``."""
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / WEIGHTS)
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
    (out / PAIR_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (out / LOADER).write_text(_LOADER_TEXT, encoding="utf-8")
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

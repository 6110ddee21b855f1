"""``codesign hardware import MEASUREMENTS.csv --name NAME``: learn a hardware model from measured latencies.

The table's rows give a network (a JSON layer list in ``layers``, or an architecture id in ``arch`` of the
space named by ``space`` or ``--space``, or of your own model or define-by-run space: ``--model`` /
``--define`` with ``--input-shape``), optionally the accelerator configuration (``accelerator``, JSON),
the measured ``latency_ms`` and optionally ``energy_mj``. Without a prior the methods are a per-operation
additive cost table (``kernels``; with dead layers kept by the space, e.g. ``--space-option prune=false``,
also one costing them apart and one leaving them out) and a scale model, on relative and on absolute
error, chosen by cross-validation. With ``--prior MODEL`` a simulator's estimate is the starting point and
only the correction is learned (best with 10-50 rows). A poor cross-validated fit is saved with a warning,
and the model's every report carries a note saying so. The model is saved as
``<out>/<name>/`` (``--out``, else ``$CODESIGN_MODELS``, else ``./models``); an experiment uses it with
``hardware: {model: measured:NAME}``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from codesign.cli.format import non_negative_int

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def register(hardware_subparsers: Any) -> None:
    """Add the ``import`` action to the ``codesign hardware`` group."""
    p = hardware_subparsers.add_parser("import", help="learn a hardware model from a table of measured latencies", description=__doc__,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("table", metavar="MEASUREMENTS.csv", help="CSV table of measurements")
    p.add_argument("--name", required=True, help="name of the model (letters, digits, _ . -)")
    p.add_argument("--prior", default=None, metavar="MODEL", help="hardware model whose estimate is the prior (e.g. overlay)")
    p.add_argument("--device", default=None, help="device on which the prior picks its best accelerator for rows without one")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock for the prior's best accelerator (default: the device's)")
    p.add_argument("--space", default=None, help="search space of the 'arch' ids when the table has no 'space' column")
    p.add_argument(
        "--space-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of the search space the 'arch' ids are built in (YAML value), e.g. prune=false to keep "
        "NAS-Bench-201's dead operations, which its measured latencies include (repeatable)",
    )
    own = p.add_mutually_exclusive_group()
    own.add_argument("--model", metavar="SPEC", help="the 'arch' rows are your own model (package.module:factory or file.py:factory; "
                     "its one id is 'model'), traced as codesign run traces space.model")
    own.add_argument("--define", metavar="SPEC", help="the 'arch' ids are of your define-by-run space (package.module:build or "
                     "file.py:build; ids are the JSON of the choices, as the study's trials record them)")
    p.add_argument("--input-shape", metavar="C,H,W", help="the input shape of --model or --define, e.g. 1,8,8")
    p.add_argument("--out", default=None, metavar="DIR", help="models folder (default $CODESIGN_MODELS or ./models)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the cross-validation folds and the trees (>= 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model of that name")
    p.set_defaults(handler=handle_import)


def _space_options(items: list[str]) -> dict[str, Any]:
    """``["prune=false", "depths=[1, 2]"]`` as a mapping; each value is read as YAML."""
    import yaml

    from codesign.core.errors import CodesignError

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CodesignError(f"--space-option {item!r}: expected KEY=VALUE, e.g. prune=false")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise CodesignError(f"--space-option {item!r}: the value is not valid YAML") from None
    return options


def _check_target(target: Path, name: str, force: bool) -> Path:
    """Refuse, before reading the table, a model folder that cannot be written or must not be replaced."""
    from codesign.core.errors import CodesignError
    from codesign.predictors.measured import META_FILE

    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CodesignError(f"--out: {parent} is a file, not a folder of models")
            break
    if target.exists():
        if not force:
            raise CodesignError(f"a model named {name!r} already exists at {target}; pass --force to replace it")
        if not (target / META_FILE).is_file():
            raise CodesignError(f"{target} exists but holds no measured model ({META_FILE}); refusing to replace it")
    return target


def _save(model: Any, target: Path) -> None:
    """Save into a fresh folder beside ``target``, then swap it in: a replaced model leaves no file of the
    old one behind (an energy predictor the new one lacks), and a failed save leaves the old one whole."""
    import shutil
    import uuid

    from codesign.core.errors import CodesignError

    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:12]}"
    retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    try:
        model.save(staging)
        if target.exists():
            target.rename(retired)
        staging.rename(target)
    except OSError as exc:
        if retired.exists() and not target.exists():
            retired.rename(target)
        raise CodesignError(f"cannot save the model to {target} ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def _own_space(args: argparse.Namespace) -> Any:
    """The space of ``--model``/``--define`` (the user's factory imported, relative to this folder), or None."""
    from codesign.core.errors import CodesignError

    spec = args.model or args.define
    if spec is None:
        if args.input_shape is not None:
            raise CodesignError("--input-shape is for --model or --define")
        return None
    if args.space is not None or args.space_option:
        raise CodesignError("--space and --space-option name a registered space; --model and --define bring their own")
    if args.input_shape is None:
        raise CodesignError(f"{'--model' if args.model else '--define'} needs --input-shape C,H,W (one input's shape)")
    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError:
        raise CodesignError(f"--input-shape {args.input_shape!r}: expected integers separated by commas, e.g. 1,8,8") from None
    from codesign.nn.own_model import define_by_run_space, model_space
    from codesign.nn.user_data import load_factory

    function = load_factory(spec, base_dir=Path.cwd(), what="model factory" if args.model else "build function")
    name = spec.rpartition(":")[2]
    if args.model:
        return model_space(function, shape, name=name, spec=spec)
    return define_by_run_space(function, shape, name=name, spec=spec, seed=args.seed)


def _same_space(space: Any, name: str) -> Any:
    from codesign.core.errors import CodesignError

    if name != space.name:
        raise CodesignError(f"a row names space {name!r}, but --model/--define gives space {space.name!r}")
    return space


def handle_import(args: argparse.Namespace) -> int:
    from codesign.core.errors import CodesignError
    from codesign.predictors.measured import NEAR_ZERO, MeasuredModel, models_dir
    from codesign.predictors.measurements import read_measurements

    if not _NAME.match(args.name):
        raise CodesignError(f"--name {args.name!r}: expected letters, digits, '_', '.' or '-' (no path separators)")
    target = _check_target(models_dir(args.out) / args.name, args.name, args.force)
    own = _own_space(args)
    if own is not None:
        table = read_measurements(args.table, resolve_space=lambda name: _same_space(own, name), default_space=own.name)
    else:
        from search_spaces.registry import make_space

        options = _space_options(args.space_option)
        table = read_measurements(
            args.table, resolve_space=lambda name: make_space(name, **options), default_space=args.space
        )
    prior = None
    if args.prior is not None:
        from simulators.registry import make_hardware_model

        prior = make_hardware_model(args.prior)
    model = MeasuredModel.fit(
        name=args.name, networks=table.networks, accels=table.accels, latency_ms=table.latency_ms,
        energy_mj=table.energy_mj, prior=prior, prior_name=args.prior, device=args.device,
        clock_mhz=args.clock_mhz, seed=args.seed,
    )  # fmt: skip
    _save(model, target)
    c = model.confidence
    print(f"imported {len(table)} measurements as {args.name!r} -> {target}")
    if table.merged:
        print(f"note: {table.merged} row(s) repeated an earlier row's network and accelerator; each such group "
              "counts once, at the mean of its measurements")  # fmt: skip
    print(f"latency method: {c.method} (chosen by {c.folds}-fold cross-validation: best Spearman, then lowest error; "
          + ", ".join(f"{m} {rho:.3f}/{err:.1%}" for m, rho, err in c.candidates) + ")")  # fmt: skip
    print(f"cross-validated Spearman {c.cv_spearman:.3f}, mean error {c.cv_nmae:.1%} of the mean latency, "
          f"MAPE {c.cv_mape:.1%}, within +-10% {c.cv_within_10:.0%}")  # fmt: skip
    print(f"90% interval per prediction: x{c.interval_low:.3f} .. x{c.interval_high:.3f}")
    if c.constant:
        print(f"warning: all {len(table)} measured latencies are equal ({table.latency_ms[0]:g} ms); the model "
              "predicts that value for every network, and ranks nothing", file=sys.stderr)  # fmt: skip
    if c.near_zero:
        print(f"note: {c.near_zero} measurement(s) below {NEAR_ZERO:.0%} of the median latency; their relative "
              "errors are large by nature (methods fitted on absolute error weigh them by their ms)")  # fmt: skip
    if model.energy_confidence is not None:
        print(f"energy: {model.energy_confidence.method}, cross-validated MAPE {model.energy_confidence.cv_mape:.1%}")
    for label, conf in (("latency", c), ("energy", model.energy_confidence)):
        if conf is not None and conf.poor:
            print(f"warning: the {label} fit is poor (cross-validated Spearman {conf.cv_spearman:.2f}, mean error "
                  f"{conf.cv_nmae:.0%} of the mean); the model is saved and every report it makes says so",
                  file=sys.stderr)  # fmt: skip
    print(f"use it with  hardware: {{model: measured:{args.name}}}")
    return 0

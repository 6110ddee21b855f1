"""``codesign run EXPERIMENT.yaml``: search, with a progress bar; Ctrl-C stops after saving; the same
command again resumes the same study. Training and measuring run on ``accuracy.threads`` torch threads
(set once for the whole process, which this command owns)."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any

from codesign.cli.format import non_negative_int, positive_int
from codesign.search.storage import HEARTBEAT_S

if TYPE_CHECKING:
    from tqdm import tqdm

    from codesign.search.loop import Progress


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run (or resume) a search experiment", description=__doc__)
    add_arguments(p, storage_required=False)
    p.set_defaults(handler=handle)


def add_arguments(p: argparse.ArgumentParser, *, storage_required: bool) -> None:
    """The options of ``run`` and ``worker``."""
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--trials", type=positive_int, help="completed trials the study should hold (default: the experiment's budget)")
    p.add_argument("--storage", required=storage_required,
                   help="Optuna storage shared by many workers: a URL such as postgresql://user:pw@host/db, or a journal "
                   "file or folder" + ("" if storage_required else " (default: a journal file in the output folder)"))
    p.add_argument("--out", help="output folder (default: the experiment's output.dir, else runs/NAME)")
    p.add_argument("--cache", help="cache folder on this machine (default: the experiment's accuracy.cache_dir)")
    p.add_argument("--heartbeat", type=positive_int, default=HEARTBEAT_S, metavar="SECONDS",
                   help="seconds between heartbeats on a database storage; a trial without one for twice as long "
                   f"is failed as 'worker lost' and retried once (default: {HEARTBEAT_S})")
    p.add_argument("--worker", type=non_negative_int, default=0, help="index of this worker, stored on its trials")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Bar:
    """tqdm on stderr: completed trials, feasible share, front size and hypervolume."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.bar: tqdm[Any] | None = None
        self.name = name
        self.enabled = enabled

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.target, initial=p.completed, desc=self.name, unit="trial", file=sys.stderr, dynamic_ncols=True)
        self.bar.n = min(p.completed, p.target)
        share = p.feasible / p.completed if p.completed else 0.0
        post = {"feasible": f"{share:.0%}", "front": p.front_size, "hv": f"{p.hypervolume:.4g}"}
        if p.failed:
            post["failed"] = p.failed
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def set_torch_threads(threads: int) -> None:
    """torch's intra-op thread count for the whole process (small CPU models train fastest on one)."""
    import torch

    torch.set_num_threads(threads)


def handle(args: argparse.Namespace) -> int:
    from codesign.cli.format import table
    from codesign.config.experiment import load_config
    from codesign.experiment.run import run_experiment
    from codesign.search.loop import Interruption

    config = load_config(args.experiment)
    set_torch_threads(config.accuracy.threads)
    bar = _Bar(config.name, enabled=not args.quiet)
    interruption = Interruption()
    handlers = {sig: signal.signal(sig, lambda signum, frame: interruption.request(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run_experiment(
            config,
            storage=args.storage,
            out_dir=args.out,
            trials=args.trials,
            worker=args.worker,
            on_progress=bar,
            interruption=interruption,
            cache_dir=args.cache,
            heartbeat_s=args.heartbeat,
        )
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        bar.close()
    front = result.front
    outcome = result.outcome
    print(f"study {outcome.study_name}: {outcome.completed} completed trials, {outcome.failed} failed; "
          f"{len(front)} Pareto-optimal pairs on {', '.join(f'{n} ({d})' for n, d in front.objectives)}")
    from codesign.results.front import noted_trials

    noted = noted_trials(front)
    if noted:
        print(f"{len(noted)} trial(s) have notes (see the notes column), e.g. trial {noted[0]['trial']}: {noted[0]['notes']}")
    if result.verification is not None:
        v = result.verification
        earlier = f"; {v.pairs - v.measured} of them measured by an earlier run or another worker" if v.measured < v.pairs else ""
        print(f"the {v.pairs} chosen pairs are measured on the test split (accuracy_test; the front is chosen on "
              f"the searched numbers{earlier}): searched-vs-test accuracy error mean {v.accuracy_mae:.4f}, max "
              f"{v.accuracy_max_error:.4f} (bias {v.accuracy_bias:+.4f})")
        if v.unverified:
            print(f"predicted by a learned model and not measured: {', '.join(v.unverified)}")
    if len(front):
        print(table(front.rows, front.summary_columns()))
    else:
        constraints = ", ".join(str(c) for c in front.constraints) or "the device budgets"
        print(f"no feasible pair: no evaluated candidate meets {constraints}", file=sys.stderr)
    print(f"front written to {', '.join(str(f) for f in result.files)}")
    if outcome.interrupted:
        print("interrupted: every completed trial is saved; run the same command again to resume", file=sys.stderr)
        return 130
    return 0

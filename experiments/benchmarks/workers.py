"""Workers benchmark: trials per second with 1, 2 and 4 ``codesign worker`` processes on one study, on
PostgreSQL and on a journal file, and the storage's own cost per trial.

Scaling (the path users get): each run starts N ``codesign worker EXPERIMENT --storage S`` processes on
a fresh study of a small co-design experiment whose evaluation trains an MBConv network on scikit-learn's
digits on one torch thread (a few tenths of a second of CPU per trial, reported as ``trial_cpu_s_median``;
every worker has its own cache folder, so nothing is reused). Throughput is taken in the steady state, from the storage's own trial times: the trials
completed after every worker finished its first trial (which pays for imports and data loading), over that
time. ``speedup_2_workers_<storage>`` is the median 2-worker throughput over the median 1-worker
throughput of the same storage, measured in the same run.

Storage cost (public API): ``codesign.search.loop.run_trials`` on the NAS-Bench-201 table (a look-up per
trial, so the loop's own work is all there is), one worker, on each storage and on Optuna's in-memory
storage; ``storage_overhead_ms_per_trial.<storage>`` is the median difference per trial (the in-memory run
is the baseline: same sampler, same loop, no storage). Needs ../shared/data/nasbench201; without it the
figure is reported as null with the reason.

Without ``--storage`` a throwaway PostgreSQL server is started on loopback (``initdb`` + ``pg_ctl`` from
the system's PostgreSQL, as ``.ci/run`` does) and stopped at the end.

Figures (``--json``): ``tps.<storage>.<n>`` (median trials per second with n workers), ``tps_runs`` (every
run), ``speedup_2_workers_pg``, ``speedup_2_workers_journal``, ``speedup_4_workers_pg``,
``speedup_4_workers_journal``, ``storage_overhead_ms_per_trial.{pg,journal}``, ``trial_cpu_s_median`` (CPU
seconds of one evaluation, median of the 1-worker runs' trial durations), ``repeats``, ``trials``, ``cpus``.

Usage: ``python experiments/benchmarks/workers.py [--json] [--storage postgresql://...] [--repeats 3]
[--trials 24] [--workers 1 2 4]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / ".." / "shared" / "data" / "nasbench201" / "nb201_accuracy_latency.csv.gz"

EXPERIMENT = """\
name: {name}
space: {{architecture: mbconv_digits, weight_bits: [4, 8], act_bits: [8], options: {{depths: [1], expansions: [1, 3]}}}}
hardware: {{model: overlay, device: xczu3eg, clock_mhz: 200}}
accuracy: {{method: scratch, dataset: digits, epochs: 3, train_subset: 600, threads: 1}}
objectives: {{accuracy: maximize, latency_ms: minimize}}
strategy: {{name: random}}
budget: {{trials: {trials}, seed: 0}}
"""


@contextlib.contextmanager
def throwaway_postgres(work: Path) -> Iterator[str]:
    """A PostgreSQL server on loopback for the duration of the block; yields its URL."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()])
    if not bins:
        raise SystemExit("workers benchmark: no PostgreSQL installed (apt-get install postgresql), or pass --storage URL")
    pgbin = bins[-1]
    data = work / "pg"
    data.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if subprocess.run(["id", "postgres"], check=False, capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        shutil.chown(data, "postgres")
        shutil.chown(work, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = 54400 + os.getpid() % 500
    subprocess.run([*run_as, str(pgbin / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=100"
    subprocess.run([*run_as, str(pgbin / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o", options, "start"], check=True, capture_output=True)
    try:
        subprocess.run([*run_as, str(pgbin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "bench"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/bench"
    finally:
        subprocess.run([*run_as, str(pgbin / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"], check=False, capture_output=True)


def _storage_for(kind: str, pg_url: str, work: Path, name: str) -> str:
    return pg_url if kind == "pg" else str(work / f"{name}.journal")


def _load(storage: str, name: str) -> optuna.Study:
    from codesign.search.storage import open_existing_storage

    return optuna.load_study(study_name=name, storage=open_existing_storage(storage))


def scaling_run(kind: str, workers: int, trials: int, pg_url: str, work: Path) -> dict[str, Any]:
    """One run of ``workers`` CLI workers to ``trials`` completed trials; steady-state trials per second."""
    name = f"bench-{kind}-{workers}-{uuid.uuid4().hex[:6]}"
    exp = work / f"{name}.yaml"
    exp.write_text(EXPERIMENT.format(name=name, trials=trials))
    storage = _storage_for(kind, pg_url, work, name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "codesign", "worker", str(exp), "--storage", storage, "--out", str(work / f"{name}-out{i}"),
             "--cache", str(work / f"{name}-cache{i}"), "--worker", str(i), "--quiet"],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for i in range(workers)
    ]
    for p in procs:
        _, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SystemExit(f"workers benchmark: a worker failed ({p.returncode}): {err.strip().splitlines()[-1:]}")
    done = [t for t in _load(storage, name).get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(done) != trials:
        raise SystemExit(f"workers benchmark: {len(done)} completed trials, expected {trials}")
    by_worker: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in done:
        by_worker.setdefault(str(t.user_attrs.get("codesign.worker")), []).append(t)
    warm = max(min(t.datetime_complete for t in ts) for ts in by_worker.values())  # type: ignore[type-var]
    steady = [t for t in done if t.datetime_start is not None and t.datetime_start >= warm]
    end = max(t.datetime_complete for t in done)  # type: ignore[type-var]
    span = (end - warm).total_seconds()
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in steady]  # type: ignore[operator]
    return {
        "storage": kind,
        "workers": workers,
        "active_workers": len(by_worker),
        "steady_trials": len(steady),
        "span_s": span,
        "tps": len(steady) / span if span > 0 and steady else float("nan"),
        "trial_s_median": statistics.median(durations) if durations else float("nan"),
    }


def overhead_run(kind: str, pg_url: str, work: Path, trials: int) -> float:
    """Seconds per trial of the search loop on the NAS-Bench-201 table, one worker, on ``kind``."""
    from codesign.config.experiment import config_from_mapping
    from codesign.search.build import build_problem
    from codesign.search.loop import open_study, run_trials, seeded_sampler
    from codesign.search.storage import journal_path, open_storage
    from codesign.search.strategies import RandomStrategy
    from codesign.search.workers import ThreadLock, budget_lock

    name = f"overhead-{kind}-{uuid.uuid4().hex[:6]}"
    config = config_from_mapping(
        {
            "name": name,
            "space": {"architecture": "nb201"},
            "accuracy": {"method": "table", "metric": "cifar10_test_acc", "data_dir": str(TABLE.resolve())},
            "objectives": {"accuracy": "maximize", "lat_ms_fpga": "minimize"},
            "strategy": {"name": "random"},
            "budget": {"trials": trials, "seed": 0},
        }
    )
    problem = build_problem(config)
    strategy = RandomStrategy()
    sampler = seeded_sampler(lambda seed: strategy.sampler(problem, seed), 0)
    if kind == "memory":
        storage: Any = optuna.storages.InMemoryStorage()
        lock: Any = ThreadLock()
    else:
        target = _storage_for(kind, pg_url, work, name)
        storage = open_storage(target)
        lock = budget_lock(storage, name, journal_path(target))
    study = open_study(config, storage, sampler)
    evaluate = strategy.evaluator(problem)
    started = time.perf_counter()
    run_trials(config, study, evaluate, target=trials, lock=lock)
    return (time.perf_counter() - started) / trials


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--storage", help="a PostgreSQL URL to use instead of a throwaway server")
    parser.add_argument("--repeats", type=int, default=3, help="runs per (storage, workers); medians are reported")
    parser.add_argument("--trials", type=int, default=24, help="completed trials per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--overhead-trials", type=int, default=60)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    figures: dict[str, Any] = {"repeats": args.repeats, "trials": args.trials, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="codesign-workers-") as tmp:
        work = Path(tmp)
        with contextlib.ExitStack() as stack:
            pg_url = args.storage or stack.enter_context(throwaway_postgres(work))
            runs = []
            for _ in range(args.repeats):  # interleaved, so a slow spell of a shared machine hits every setting
                for kind in ("pg", "journal"):
                    for n in args.workers:
                        run = scaling_run(kind, n, args.trials, pg_url, work)
                        runs.append(run)
                        if not args.json:
                            print(f"{kind:8s} {n} workers: {run['tps']:.2f} trials/s ({run['steady_trials']} steady trials in {run['span_s']:.1f} s)", flush=True)
            figures["tps_runs"] = runs
            for kind in ("pg", "journal"):
                for n in args.workers:
                    figures[f"tps.{kind}.{n}"] = statistics.median(r["tps"] for r in runs if r["storage"] == kind and r["workers"] == n)
                for n in args.workers:
                    if n > 1 and 1 in args.workers:
                        figures[f"speedup_{n}_workers_{kind}"] = figures[f"tps.{kind}.{n}"] / figures[f"tps.{kind}.1"]
            figures["trial_cpu_s_median"] = statistics.median(r["trial_s_median"] for r in runs if r["workers"] == 1)
            if TABLE.is_file():
                per_trial: dict[str, list[float]] = {"memory": [], "pg": [], "journal": []}
                for _ in range(args.repeats):
                    for kind in per_trial:
                        per_trial[kind].append(overhead_run(kind, pg_url, work, args.overhead_trials))
                base = statistics.median(per_trial["memory"])
                figures["loop_ms_per_trial.memory"] = 1000 * base
                for kind in ("pg", "journal"):
                    figures[f"storage_overhead_ms_per_trial.{kind}"] = 1000 * (statistics.median(per_trial[kind]) - base)
            else:
                figures["storage_overhead_ms_per_trial.pg"] = figures["storage_overhead_ms_per_trial.journal"] = None
                figures["storage_overhead_note"] = f"NAS-Bench-201 table not found at {TABLE}"
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            if key != "tps_runs":
                print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

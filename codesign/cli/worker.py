"""``codesign worker EXPERIMENT.yaml --storage URL``: join a shared study as one more worker.

Any number of workers, on any machines, run trials of one study until it holds the experiment's budget of
completed trials (met exactly; a worker whose colleagues run the last trials waits in case one fails).
The trials, the data the predictors learn from and the verified measurements live in the storage; a
worker needs no other worker's files (``--cache`` names this machine's cache folder). A worker that dies
is noticed by its missing heartbeat and its trial is retried once by a live worker. A worker that ends
measures the front's pairs on the test split that no run has measured yet.
"""

from __future__ import annotations

from typing import Any

from codesign.cli.run import add_arguments, handle


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="join a shared study (PostgreSQL) as one more worker", description=__doc__)
    add_arguments(p, storage_required=True)
    p.set_defaults(handler=handle)

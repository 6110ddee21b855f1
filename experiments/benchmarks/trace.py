"""Cost of turning a PyTorch model into a network for the hardware models (``codesign.nn.trace``).

Figures (medians of ``--repeats`` runs after one untimed warm-up; CPU milliseconds of this process with
torch on one thread, so other load on the machine changes them little):

- ``trace_ms.<model>``: one :func:`codesign.nn.trace.trace_network` call (torch.fx symbolic tracing, one
  run of the graph on the example input to record the shapes, the mapping to layers) on the
  ``codesign.nn.zoo`` architectures: ``resnet20`` and ``mobilenet_v2`` (the CIFAR variants, 3x32x32
  inputs; the figures the issue bounds at 500 ms) and ``shufflenet_v2_stage``;
- ``trace_ms.mbconv_digits`` beside ``network_ms.mbconv_digits``: the largest architecture of the
  built-in ``mbconv_digits`` space traced from its torch model, and built by hand by the space
  (``space.network``, the baseline: what a search pays per candidate today); ``trace_over_network`` is
  their ratio;
- ``layers.<model>`` and ``macs.<model>``: the size of each traced network (not timed).

Usage: ``python experiments/benchmarks/trace.py [--json] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402 - after OMP_NUM_THREADS, which torch reads when it loads

from codesign.nn.models import build_model  # noqa: E402
from codesign.nn.trace import trace_network  # noqa: E402
from codesign.nn.zoo import ZOO  # noqa: E402
from search_spaces.registry import make_space  # noqa: E402


def median_cpu_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of one call (ms), after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


def measure(repeats: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for entry in ZOO:
        model = entry.build().eval()
        network = trace_network(model, entry.input_shape, name=entry.name)
        figures[f"trace_ms.{entry.name}"] = median_cpu_ms(functools.partial(
            trace_network, model, entry.input_shape, name=entry.name
        ), repeats)  # fmt: skip
        figures[f"layers.{entry.name}"] = len(network)
        figures[f"macs.{entry.name}"] = network.macs
    space = make_space("mbconv_digits")
    arch = space.largest()  # type: ignore[attr-defined]
    model = build_model(space, arch).eval()
    shape = space.input_shape  # type: ignore[attr-defined]
    traced = median_cpu_ms(lambda: trace_network(model, shape, name="mbconv_digits"), repeats)
    built = median_cpu_ms(lambda: space.network(arch), repeats)
    figures["trace_ms.mbconv_digits"] = traced
    figures["network_ms.mbconv_digits"] = built
    figures["trace_over_network"] = traced / built if built > 0 else float("inf")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median reported)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    figures = measure(args.repeats)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:32s} {value:.4g}" if isinstance(value, float) else f"{name:32s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Graph features of NAS-Bench-201 cells for accuracy and latency predictors.

A cell string such as ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``
lists, for nodes 1..3, the operation on each incoming edge from node ``i``. Node 0 is the cell input and
node 3 its output. Beyond a one-hot of the six edges, accuracy depends on what actually reaches the output:
an edge whose source is unreachable from the input, or whose target cannot reach the output, is dead; the
number of convolutions on input-output paths and the longest such chain measure effective depth.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from codesign.core.errors import CodesignError
from codesign.predictors.features import FeatureSchema

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""(source, target) node of each edge, in the order the cell string lists them."""
CELL_FEATURES_VERSION = 1
_CONVS = ("nor_conv_1x1", "nor_conv_3x3")


@dataclass(frozen=True)
class Cell:
    """The operation on each edge of :data:`NB201_EDGES`."""

    ops: tuple[str, ...]

    @classmethod
    def parse(cls, arch_str: str) -> Cell:
        nodes = arch_str.strip().strip("|").split("|+|")
        ops: list[str] = []
        try:
            for target, node in enumerate(nodes, start=1):
                tokens = node.strip("|").split("|")
                if len(tokens) != target:
                    raise ValueError(f"node {target} has {len(tokens)} inputs")
                for source, token in enumerate(tokens):
                    op, src = token.split("~")
                    if int(src) != source or op not in NB201_OPS:
                        raise ValueError(f"bad edge {token!r}")
                    ops.append(op)
        except ValueError as exc:
            raise CodesignError(f"NAS-Bench-201 cell {arch_str!r}: {exc}; expected e.g. |nor_conv_3x3~0|+|...~0|...~1|+|...") from exc
        if len(ops) != len(NB201_EDGES):
            raise CodesignError(f"NAS-Bench-201 cell {arch_str!r}: expected 3 nodes and 6 edges, got {len(ops)} edges")
        return cls(tuple(ops))

    def live_edges(self) -> tuple[bool, ...]:
        """Whether each edge lies on some path from the input (node 0) to the output (node 3)."""
        present = [op != "none" for op in self.ops]
        reach = {0}
        for (src, dst), ok in zip(NB201_EDGES, present, strict=True):
            if ok and src in reach:
                reach.add(dst)
        # edges are in topological order of their target, so one backward pass suffices
        reaches_out = {3}
        for (src, dst), ok in sorted(zip(NB201_EDGES, present, strict=True), key=lambda e: -e[0][1]):
            if ok and dst in reaches_out:
                reaches_out.add(src)
        return tuple(ok and src in reach and dst in reaches_out for (src, dst), ok in zip(NB201_EDGES, present, strict=True))

    def paths(self) -> list[tuple[str, ...]]:
        """The operation sequence of every input-to-output path through non-``none`` edges."""
        out: list[tuple[str, ...]] = []

        def walk(node: int, ops: tuple[str, ...]) -> None:
            if node == 3:
                out.append(ops)
                return
            for (src, dst), op in zip(NB201_EDGES, self.ops, strict=True):
                if src == node and op != "none":
                    walk(dst, (*ops, op))

        walk(0, ())
        return out


CELL_FEATURE_NAMES: tuple[str, ...] = (
    *(f"edge{e}={op}" for e in range(len(NB201_EDGES)) for op in NB201_OPS),
    *(f"count={op}" for op in NB201_OPS),
    *(f"live={op}" for op in NB201_OPS),
    "connected", "n_paths", "max_convs_on_path", "min_convs_on_path", "mean_convs_on_path",
    "max_conv3_on_path", "n_paths_all_conv", "n_paths_no_conv", "n_paths_with_pool", "longest_path", "live_params",
)  # fmt: skip
CELL_SCHEMA = FeatureSchema("nb201_cell", CELL_FEATURES_VERSION, CELL_FEATURE_NAMES)


def _cell_vector(arch_str: str) -> tuple[float, ...]:
    cell = Cell.parse(arch_str)
    values = dict.fromkeys(CELL_FEATURE_NAMES, 0.0)
    live = cell.live_edges()
    for e, op in enumerate(cell.ops):
        values[f"edge{e}={op}"] = 1.0
        values[f"count={op}"] += 1
        if live[e]:
            values[f"live={op}"] += 1
    paths = cell.paths()
    convs = [sum(op in _CONVS for op in p) for p in paths]
    values["connected"] = float(bool(paths))
    values["n_paths"] = float(len(paths))
    if paths:
        values["max_convs_on_path"] = float(max(convs))
        values["min_convs_on_path"] = float(min(convs))
        values["mean_convs_on_path"] = float(np.mean(convs))
        values["max_conv3_on_path"] = float(max(sum(op == "nor_conv_3x3" for op in p) for p in paths))
        values["n_paths_all_conv"] = float(sum(c == len(p) for c, p in zip(convs, paths, strict=True)))
        values["n_paths_no_conv"] = float(sum(c == 0 for c in convs))
        values["n_paths_with_pool"] = float(sum("avg_pool_3x3" in p for p in paths))
        values["longest_path"] = float(max(len(p) for p in paths))
    values["live_params"] = values["live=nor_conv_3x3"] * 9 + values["live=nor_conv_1x1"]
    return tuple(values[name] for name in CELL_FEATURE_NAMES)


def cell_features(arch_strs: list[str] | tuple[str, ...]) -> np.ndarray:
    """A ``(len(arch_strs), len(CELL_SCHEMA))`` matrix of :data:`CELL_FEATURE_NAMES`."""
    return np.array([_cell_vector(s) for s in arch_strs], dtype=float).reshape(len(arch_strs), len(CELL_FEATURE_NAMES))


CELL_PATHS = {
    path: i
    for i, path in enumerate(
        p for n in (1, 2, 3) for p in itertools.product([op for op in NB201_OPS if op != "none"], repeat=n)
    )
}
"""Index of every input-to-output operation sequence of a NAS-Bench-201 cell (4 + 16 + 64 of
them: paths have 1 to 3 edges)."""


def cell_search_features(arch_str: str) -> np.ndarray:
    """The features the ``hao`` sampler's surrogates see for a cell: the row of :func:`cell_features`, the
    one-hot of each edge's operation with dead edges read as ``none`` (cells that compute the same function
    share it whatever their dead operations, which still cost latency), and the path encoding of BANANAS
    (White et al., AAAI 2021): one indicator per operation sequence from input to output (:data:`CELL_PATHS`)."""
    cell = Cell.parse(arch_str)
    live = np.zeros((len(cell.ops), len(NB201_OPS)))
    for e, (op, ok) in enumerate(zip(cell.ops, cell.live_edges(), strict=True)):
        live[e, NB201_OPS.index(op if ok else "none")] = 1.0
    paths = np.zeros(len(CELL_PATHS))
    for path in cell.paths():
        paths[CELL_PATHS[path]] = 1.0
    return np.concatenate([np.asarray(_cell_vector(arch_str)), live.ravel(), paths])

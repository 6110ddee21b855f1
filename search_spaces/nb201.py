"""The NAS-Bench-201 cell space, backed by its table of measured accuracies and latencies.

A cell is a 4-node DAG; each of its 6 edges ``j <- i`` (i < j) carries one of 5 operations. The arch id is
the benchmark's ``arch_str``, e.g. ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|
nor_conv_3x3~1|skip_connect~2|`` (node j's inputs, ``op~i`` = op applied to node i).

The macro network (as in NAS-Bench-201) on a CIFAR 32x32x3 input: a 3x3 stem convolution to 16 channels,
three stages of 5 cells at 16/32/64 channels (32x32, 16x16, 8x8) with a ResNet basic block of stride 2
between stages (3x3 stride-2 conv, 3x3 conv, and a 2x2 average pool + 1x1 conv shortcut, summed), global
average pooling and a linear layer to 10 classes. In a cell, ``nor_conv_kxk`` (ReLU-conv-BN) is a conv
layer, ``avg_pool_3x3`` a pool layer, ``skip_connect`` and ``none`` add no layer, and a node with several
inputs sums them with add layers. Operations whose result cannot reach the cell output are dropped, and so
are operations that read a node no path from the cell input reaches (they only ever see zeros), unless
the space is built with ``prune=False``.

Units: the table file stores accuracies in percent, as the benchmark publishes them; :func:`read_table`
(and so :meth:`NB201Table.load`) converts every accuracy column (:func:`is_accuracy_column`) to a fraction
in 0..1, the unit of ``accuracy`` everywhere else in codesign, so ``constraints: {accuracy: ">= 0.9"}``
means 90 %. Latencies are in ms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codesign.core.errors import CodesignError
from codesign.core.values import Layer, Network

if TYPE_CHECKING:
    import pandas as pd

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The cell's edges as (to node, from node), in arch_str order."""
ACCURACY_COLUMNS = (
    "cifar10_test_acc",
    "cifar100_test_acc",
    "imagenet16_120_test_acc",
    "cifar10_fp32_acc_b",
    "cifar10_ptq_int8_acc",
    "cifar10_qat_int8_acc",
)
"""Accuracy columns, as fractions in 0..1 once loaded (the file stores percent): test accuracy after 200
epochs on CIFAR-10, CIFAR-100 and ImageNet16-120, and a second CIFAR-10 run's float, int8 post-training
quantized and int8 quantization-aware accuracy."""
LATENCY_COLUMNS = ("lat_ms_fpga", "lat_ms_eyeriss", "lat_ms_pixel3")
"""Measured latencies in ms (HW-NAS-Bench: FPGA, Eyeriss ASIC, Pixel 3)."""
TABLE_COLUMNS = ("nb201_index", "arch_str", *ACCURACY_COLUMNS, *LATENCY_COLUMNS)
"""The columns a table must have; accuracies are fractions and latencies ms once loaded."""
_ACCURACY_NAME = re.compile(r"_acc(_|$)")
STAGE_CHANNELS = (16, 32, 64)
CELLS_PER_STAGE = 5


@dataclass(frozen=True)
class NB201Arch:
    """One cell: the operation on each edge, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES) or any(op not in OPS for op in self.ops):
            raise CodesignError(
                f"nb201: a cell needs {len(EDGES)} operations from {', '.join(OPS)}, got {self.ops!r}"
            )


def arch_str(arch: NB201Arch) -> str:
    nodes = []
    for node in (1, 2, 3):
        nodes.append("|".join(f"{op}~{i}" for (j, i), op in zip(EDGES, arch.ops, strict=True) if j == node))
    return "|" + "|+|".join(nodes) + "|"


def parse_arch_str(text: str) -> NB201Arch:
    """The cell of an ``arch_str``; raises CodesignError naming the bad string."""
    ops: list[str] = []
    try:
        groups = text.strip().strip("|").split("|+|")
        if len(groups) != 3:
            raise ValueError
        for node, group in enumerate(groups, start=1):
            tokens = group.split("|")
            if len(tokens) != node:
                raise ValueError
            for source, token in enumerate(tokens):
                op, src = token.split("~")
                if int(src) != source:
                    raise ValueError
                ops.append(op)
        return NB201Arch(tuple(ops))
    except (ValueError, CodesignError) as exc:
        raise CodesignError(
            f"nb201: {text!r} is not a NAS-Bench-201 arch_str like |op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
        ) from exc


def live_edges(arch: NB201Arch) -> tuple[bool, ...]:
    """For each edge, whether its operation matters: it reads a node reachable from the cell input and its
    result reaches the cell output (``none`` edges never matter)."""
    active = [op != "none" for op in arch.ops]
    from_input = {0}
    for (j, i), on in zip(EDGES, active, strict=True):  # EDGES is in topological order of j
        if on and i in from_input:
            from_input.add(j)
    to_output = {3}
    for (j, i), on in reversed(list(zip(EDGES, active, strict=True))):
        if on and j in to_output:
            to_output.add(i)
    return tuple(on and i in from_input and j in to_output for (j, i), on in zip(EDGES, active, strict=True))


class _Builder:
    """Accumulates layers with unique names and the residual edges of add layers."""

    def __init__(
        self, weight_bits: Sequence[int] | None, act_bits: Sequence[int] | None, n_weighted: int
    ) -> None:
        for name, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
            if bits is not None and len(bits) != n_weighted:
                raise CodesignError(
                    f"nb201: {name} needs {n_weighted} entries (one per weighted layer), got {len(bits)}"
                )
        self.wbits = list(weight_bits) if weight_bits is not None else [8] * n_weighted
        self.abits = list(act_bits) if act_bits is not None else [8] * n_weighted
        self.layers: list[Layer] = []
        self.residuals: list[tuple[str, str]] = []
        self.dead: list[str] = []
        self.weighted = 0

    def conv(self, name: str, cin: int, cout: int, size: int, kernel: int, stride: int = 1) -> str:
        i = self.weighted
        self.weighted += 1
        self.layers.append(
            Layer(
                name,
                "conv",
                cin,
                cout,
                size,
                size,
                kernel,
                stride,
                kernel // 2,
                weight_bits=self.wbits[i],
                act_bits=self.abits[i],
            )
        )
        return name

    def pool(self, name: str, channels: int, size: int, kernel: int, stride: int, padding: int) -> str:
        self.layers.append(
            Layer(name, "pool", channels, channels, size, size, kernel, stride, padding, mode="avg")
        )
        return name

    def add(self, name: str, channels: int, size: int, left: str, right: str) -> str:
        self.layers.append(Layer(name, "add", channels, channels, size, size))
        self.residuals.append((left, name))
        return name

    def linear(self, name: str, cin: int, cout: int) -> str:
        i = self.weighted
        self.weighted += 1
        self.layers.append(
            Layer(name, "linear", cin, cout, weight_bits=self.wbits[i], act_bits=self.abits[i])
        )
        return name


def _cell(
    b: _Builder,
    arch: NB201Arch,
    keep: tuple[bool, ...],
    prefix: str,
    channels: int,
    size: int,
    source: str,
) -> str:
    """Append one cell's layers (the operations of the ``keep`` edges); returns the name of the layer
    producing the cell output. A kept operation that is not live (:func:`live_edges`) is recorded as dead,
    and so are the add layers of a node no live edge enters."""
    live = live_edges(arch)
    node_out: dict[int, str | None] = {0: source}
    for node in (1, 2, 3):
        terms: list[str] = []
        node_live = False
        for (j, i), op, on, alive in zip(EDGES, arch.ops, keep, live, strict=True):
            if j != node or not on:
                continue
            node_live = node_live or alive
            src = node_out[i] or source  # an unreachable node holds zeros of the cell input's shape
            name = f"{prefix}_e{j}{i}"
            if op == "skip_connect":
                terms.append(src)
                continue
            if op == "avg_pool_3x3":
                terms.append(b.pool(f"{name}_pool", channels, size, 3, 1, 1))
            else:
                terms.append(b.conv(f"{name}_conv{op[-1]}", channels, channels, size, int(op[-1])))
            if not alive:
                b.dead.append(terms[-1])
        out = terms[0] if terms else None
        for k, term in enumerate(terms[1:], start=1):
            assert out is not None
            out = b.add(f"{prefix}_n{node}_add{k}", channels, size, term, out)
            if not node_live:
                b.dead.append(out)
        node_out[node] = out
    return node_out[3] or source


def is_accuracy_column(name: str) -> bool:
    """Whether a table column is an accuracy (percent in the file, a fraction once read): the
    :data:`ACCURACY_COLUMNS` and any other column named ``*_acc`` or ``*_acc_*``."""
    return name in ACCURACY_COLUMNS or bool(_ACCURACY_NAME.search(name))


def read_table(path: str | Path) -> pd.DataFrame:
    """The table file as a frame with every accuracy column (:func:`is_accuracy_column`) converted from
    percent to a fraction in 0..1; raises CodesignError naming the file when it is absent, unreadable or
    an accuracy lies outside 0..100 %."""
    import pandas as pd

    path = Path(path)
    try:
        found = path.is_file()
    except (OSError, ValueError) as exc:  # a name longer than the file system allows, a NUL in it
        raise CodesignError(f"NAS-Bench-201 table: cannot use the path {str(path)[:80]!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if not found:
        raise CodesignError(
            f"NAS-Bench-201 table not found at {path}; expected nb201_accuracy_latency.csv.gz "
            "(see ../shared/data/README.md for its columns)"
        )
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise CodesignError(f"NAS-Bench-201 table {path}: cannot read ({exc})") from exc
    for name in [c for c in frame.columns if is_accuracy_column(str(c))]:
        try:
            percent = frame[name].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise CodesignError(f"NAS-Bench-201 table {path}: column {name} is not numeric ({exc})") from exc
        if not np.all((percent >= 0.0) & (percent <= 100.0)):
            raise CodesignError(
                f"NAS-Bench-201 table {path}: column {name} must hold accuracies in percent, 0..100"
            )
        frame[name] = percent / 100.0
    return frame


@dataclass(frozen=True)
class NB201Table:
    """The NAS-Bench-201 table (one row per cell, columns :data:`TABLE_COLUMNS`), indexed by arch_str.

    Accuracies are fractions in 0..1 (the file's percent divided by 100, see :func:`read_table`),
    latencies ms."""

    path: str
    rows: Mapping[str, Mapping[str, float]] = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> NB201Table:
        """The table at ``path``, accuracies converted to fractions (see :func:`read_table`)."""
        path = Path(path)
        frame = read_table(path)
        missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
        if missing:
            raise CodesignError(f"NAS-Bench-201 table {path}: missing column(s) {', '.join(missing)}")
        if frame["arch_str"].duplicated().any():
            raise CodesignError(f"NAS-Bench-201 table {path}: duplicate arch_str rows")
        metrics = [c for c in TABLE_COLUMNS if c != "arch_str"]
        values = frame[metrics].to_numpy(dtype=np.float64)
        rows = {
            a: dict(zip(metrics, map(float, v), strict=True))
            for a, v in zip(frame["arch_str"], values, strict=True)
        }
        return cls(path=str(path), rows=rows)

    def __len__(self) -> int:
        return len(self.rows)

    def arch_strs(self) -> tuple[str, ...]:
        return tuple(self.rows)

    def lookup(self, arch_id: str) -> dict[str, float]:
        """Every measured value of one cell (accuracies as fractions in 0..1, latencies in ms, the benchmark
        index)."""
        try:
            return dict(self.rows[arch_id])
        except KeyError:
            raise CodesignError(f"NAS-Bench-201 table has no cell {arch_id!r}") from None

    def column(self, name: str) -> np.ndarray:
        """One metric for every cell, in :meth:`arch_strs` order (accuracies as fractions, latencies ms)."""
        if name not in TABLE_COLUMNS or name == "arch_str":
            raise CodesignError(
                f"NAS-Bench-201 table: unknown column {name!r}; known: {', '.join(TABLE_COLUMNS[2:])}"
            )
        return np.asarray([row[name] for row in self.rows.values()], dtype=np.float64)


@dataclass(frozen=True)
class NB201Space:
    """The NAS-Bench-201 space (implements :class:`search_spaces.base.ArchitectureSpace`); ``table``
    enables :meth:`lookup` of the measured values."""

    table: NB201Table | None = None
    name: str = "nb201"
    prune: bool = True
    """Drop operations that cannot affect the cell output (see :func:`live_edges`). ``False`` keeps every
    non-``none`` operation, as an implementation that instantiates each edge does (HW-NAS-Bench's FPGA
    latencies were measured that way), and lists the ones that cannot affect it in
    :attr:`codesign.core.values.Network.dead`."""

    def __post_init__(self) -> None:
        if self.table is not None and not isinstance(self.table, NB201Table):
            raise CodesignError(f"nb201: table must be an NB201Table or the path of its file, got {self.table!r}")
        if not isinstance(self.prune, bool):
            raise CodesignError(f"nb201: prune must be true or false, got {self.prune!r}")

    def _live(self, arch: NB201Arch) -> tuple[bool, ...]:
        return live_edges(arch) if self.prune else tuple(op != "none" for op in arch.ops)

    def choices(self) -> dict[str, tuple[str, ...]]:
        return {f"edge_{j}_{i}": OPS for j, i in EDGES}

    def from_choices(self, values: Mapping[str, Any]) -> NB201Arch:
        missing = [k for k in self.choices() if k not in values]
        if missing:
            raise CodesignError(f"nb201: missing choice(s) {', '.join(missing)}")
        return NB201Arch(tuple(str(values[k]) for k in self.choices()))

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return NB201Arch(tuple(OPS[int(k)] for k in rng.integers(len(OPS), size=len(EDGES))))

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        edge = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != arch.ops[edge]]
        ops = list(arch.ops)
        ops[edge] = others[int(rng.integers(len(others)))]
        return NB201Arch(tuple(ops))

    def arch_id(self, arch: NB201Arch) -> str:
        return arch_str(arch)

    def from_id(self, arch_id: str) -> NB201Arch:
        return parse_arch_str(arch_id)

    def encode(self, arch: NB201Arch) -> np.ndarray:
        """One-hot of each edge's operation: 6 x 5 = 30 floats."""
        out = np.zeros((len(EDGES), len(OPS)))
        out[np.arange(len(EDGES)), [OPS.index(op) for op in arch.ops]] = 1.0
        return out.ravel()

    def n_weighted(self, arch: NB201Arch) -> int:
        """Weighted layers of the network: stem, 15 cells' convolutions, 2 x 3 reduction convs, classifier."""
        convs = sum(
            on and op.startswith("nor_conv") for op, on in zip(arch.ops, self._live(arch), strict=True)
        )
        return 1 + len(STAGE_CHANNELS) * CELLS_PER_STAGE * convs + 3 * (len(STAGE_CHANNELS) - 1) + 1

    def network(
        self, arch: NB201Arch, weight_bits: Sequence[int] | None = None, act_bits: Sequence[int] | None = None
    ) -> Network:
        """The layer list (bits follow the order of the weighted layers; default 8/8)."""
        b = _Builder(weight_bits, act_bits, self.n_weighted(arch))
        live = self._live(arch)
        size, channels = 32, STAGE_CHANNELS[0]
        out = b.conv("stem", 3, channels, size, 3)
        for stage, width in enumerate(STAGE_CHANNELS):
            if width != channels:
                rb = f"rb{stage}"
                b.conv(f"{rb}_a", channels, width, size, 3, stride=2)
                size //= 2
                main = b.conv(f"{rb}_b", width, width, size, 3)
                b.pool(f"{rb}_pool", channels, size * 2, 2, 2, 0)
                short = b.conv(f"{rb}_short", channels, width, size, 1)
                out = b.add(f"{rb}_add", width, size, short, main)
                channels = width
            for cell in range(CELLS_PER_STAGE):
                out = _cell(b, arch, live, f"s{stage}c{cell}", channels, size, out)
        b.pool("gap", channels, size, size, 1, 0)
        b.linear("classifier", channels, 10)
        ties = [(f"rb{s}_a", f"rb{s}_short") for s in range(1, len(STAGE_CHANNELS))]
        return Network(
            f"nb201:{arch_str(arch)}", tuple(b.layers), (3, 32, 32), tuple(b.residuals), tuple(ties), tuple(b.dead)
        )

    def lookup(self, arch: NB201Arch) -> dict[str, float]:
        """The table's measured values for ``arch`` (accuracies as fractions in 0..1, latencies in ms)."""
        if self.table is None:
            raise CodesignError("nb201: no table loaded; build NB201Space(table=NB201Table.load(path))")
        return self.table.lookup(arch_str(arch))

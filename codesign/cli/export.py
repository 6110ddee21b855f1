"""``codesign export DIR --pair TRIAL``: write a pair for the tools that build it: the quantized network as
QONNX (model.onnx, for FINN) and as a torch program (model.pt2, loadable with torch alone), both taking the
raw input; its integer weights, scales and zero points (integers.npz); its hls4ml configuration
(hls4ml.yaml); and pair.json with the per-layer bits and costs, the accelerator, and the searched and
test-split numbers labelled as such. The QONNX graph is checked by running it with qonnx on the test
split beside the PyTorch model."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a pair for FINN (QONNX), hls4ml and PyTorch", description=__doc__)
    p.add_argument("target", metavar="DIR_OR_STORAGE", help="output folder, .journal file or storage URL")
    p.add_argument("--pair", type=int, required=True, metavar="TRIAL", help="the pair's trial number (the 'trial' column of a front)")
    p.add_argument("--study", help="study name, when the storage holds several")
    p.add_argument(
        "--to",
        help="folder to write (default: DIR/pairs/TRIAL, beside a .journal file, or pairs/TRIAL for a URL); "
        "missing folders are created",
    )
    p.add_argument("--force", action="store_true", help="replace a file at --to, or a pair already exported there")
    p.add_argument("--cache", help="the run's cache folder on this machine, where it differs from the experiment's accuracy.cache_dir")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesign.results.export import FILES, export_pair
    from codesign.search.storage import is_url

    if is_url(args.target):
        default = Path("pairs") / str(args.pair)
    else:
        folder = Path(args.target)
        default = (folder.parent if folder.is_file() else folder) / "pairs" / str(args.pair)
    result = export_pair(args.target, args.pair, args.to or default, study=args.study, force=args.force, cache_dir=args.cache)
    check = result.qonnx
    print(f"pair {args.pair} exported to {result.folder}: {', '.join(FILES)}")
    print(
        f"checked by execution on the test split: qonnx and the PyTorch model agree on {check.same_predictions} of "
        f"{check.samples} predictions (max |logit difference| {check.max_abs_logit_diff:.3g}); "
        f"accuracy {check.accuracy_qonnx:.4f} (qonnx) vs {check.accuracy_torch:.4f} (PyTorch)"
    )
    if result.hls4ml_unsupported:
        print(f"hls4ml.yaml lists the bits and reuse factors only: {result.hls4ml_unsupported}")
    return 0

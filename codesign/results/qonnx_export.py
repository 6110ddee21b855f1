"""A :class:`~codesign.results.deploy.DeployGraph` as a QONNX model (what FINN reads), and its check by
execution with the ``qonnx`` package.

Every weighted layer becomes a QONNX ``Quant`` node on its input (unsigned, the calibrated scale and zero
point), a ``Quant`` node on its weights (signed, narrow range, one scale per output channel, zero point 0;
the weight initializer holds the integers times their scales, so quantizing it gives the integers back)
and a ``Conv`` or ``Gemm`` with the folded float bias. The preprocessing is a ``Mul`` and an ``Add`` in
front, so the graph takes the raw input. Operators are from ONNX opset 13; ``Quant`` is in the
``qonnx.custom_op.general`` domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codesign.core.errors import CodesignError
from codesign.results.deploy import DeployGraph, DeployNode

QONNX_DOMAIN = "qonnx.custom_op.general"
OPSET = 13
INPUT = "input"
OUTPUT = "logits"


def _const(name: str, value: Any, dtype: Any = np.float32) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name)


def to_qonnx(graph: DeployGraph, *, name: str = "codesign", batch: int = 1, num_classes: int | None = None) -> Any:
    """The QONNX ``ModelProto`` of ``graph`` for inputs of batch size ``batch``."""
    from onnx import TensorProto, helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def quant(x: str, out: str, scale: Any, zero_point: Any, bits: int, *, signed: bool, narrow: bool) -> None:
        inits.extend([_const(f"{out}_scale", scale), _const(f"{out}_zeropt", zero_point), _const(f"{out}_bitwidth", float(bits))])
        nodes.append(helper.make_node(
            "Quant", [x, f"{out}_scale", f"{out}_zeropt", f"{out}_bitwidth"], [out], name=out, domain=QONNX_DOMAIN,
            signed=int(signed), narrow=int(narrow), rounding_mode="ROUND",
        ))

    inits.extend([_const("pre_mul", graph.preprocess.mul), _const("pre_add", graph.preprocess.add)])
    nodes.append(helper.make_node("Mul", [INPUT, "pre_mul"], ["pre_scaled"], name="preprocess_mul"))
    nodes.append(helper.make_node("Add", ["pre_scaled", "pre_add"], ["preprocessed"], name="preprocess_add"))
    names = {"input": "preprocessed"}
    for node in graph.nodes:
        out = OUTPUT if node.name == graph.output else node.name
        names[node.name] = out
        x = names[node.inputs[0]]
        if node.op in ("conv", "linear"):
            _weighted(node, x, out, quant, nodes, inits)
        elif node.op == "batchnorm":
            keys = [f"{node.name}_{k}" for k in ("weight", "bias", "mean", "var")]
            inits.extend(_const(k, node.attrs[k.rsplit("_", 1)[1]]) for k in keys)
            nodes.append(helper.make_node("BatchNormalization", [x, *keys], [out], name=node.name, epsilon=node.attrs["eps"]))
        elif node.op == "relu":
            nodes.append(helper.make_node("Relu", [x], [out], name=node.name))
        elif node.op == "add":
            nodes.append(helper.make_node("Add", [x, names[node.inputs[1]]], [out], name=node.name))
        elif node.op == "global_avg_pool":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [out], name=node.name))
        elif node.op == "flatten":
            nodes.append(helper.make_node("Flatten", [x], [out], name=node.name, axis=1))
        elif node.op in ("max_pool", "avg_pool"):
            ph, pw = node.attrs["padding"]
            nodes.append(helper.make_node(
                "MaxPool" if node.op == "max_pool" else "AveragePool", [x], [out], name=node.name,
                kernel_shape=list(node.attrs["kernel"]), strides=list(node.attrs["stride"]), pads=[ph, pw, ph, pw],
            ))
        else:
            raise CodesignError(f"QONNX export: operator {node.op!r} of node {node.name!r} has no ONNX form")
    if graph.output == "input" or names[graph.output] != OUTPUT:
        raise CodesignError("QONNX export: the graph's output is not computed by any operator")
    c, h, w = graph.input_shape
    outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, num_classes] if num_classes else None)]
    onnx_graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, c, h, w])], outputs, initializer=inits
    )
    model = helper.make_model(
        onnx_graph, producer_name="codesign",
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(QONNX_DOMAIN, 1)],
    )
    model.ir_version = 8
    return model


def _weighted(node: DeployNode, x: str, out: str, quant: Any, nodes: list[Any], inits: list[Any]) -> None:
    from onnx import helper

    assert node.act is not None and node.weight_int is not None and node.weight_scale is not None
    act = node.act
    quant(x, f"{node.name}_in_q", act.scale, float(act.zero_point), act.bits, signed=False, narrow=False)
    view = (-1,) + (1,) * (node.weight_int.ndim - 1)
    inits.append(_const(f"{node.name}_weight", node.weight))
    quant(f"{node.name}_weight", f"{node.name}_weight_q", node.weight_scale.reshape(view), 0.0, node.weight_bits, signed=True, narrow=True)
    bias = node.bias if node.bias is not None else np.zeros(node.weight_int.shape[0])
    inits.append(_const(f"{node.name}_bias", bias))
    ins = [f"{node.name}_in_q", f"{node.name}_weight_q", f"{node.name}_bias"]
    if node.op == "conv":
        ph, pw = node.attrs["padding"]
        nodes.append(helper.make_node(
            "Conv", ins, [out], name=node.name, kernel_shape=list(node.attrs["kernel"]), strides=list(node.attrs["stride"]),
            pads=[ph, pw, ph, pw], group=node.attrs["groups"], dilations=[1, 1],
        ))
    else:
        nodes.append(helper.make_node("Gemm", ins, [out], name=node.name, transB=1))


@dataclass(frozen=True)
class ExecutionCheck:
    """The exported QONNX graph run by ``qonnx`` beside the PyTorch quantized model on the same inputs."""

    samples: int
    same_predictions: int
    max_abs_logit_diff: float
    accuracy_qonnx: float | None
    accuracy_torch: float | None

    @property
    def all_same(self) -> bool:
        return self.same_predictions == self.samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "same_predictions": self.same_predictions,
            "max_abs_logit_diff": self.max_abs_logit_diff,
            "accuracy_qonnx": self.accuracy_qonnx,
            "accuracy_torch": self.accuracy_torch,
            "tool": _qonnx_version(),
        }


def _qonnx_version() -> str:
    from importlib.metadata import version

    return f"qonnx {version('qonnx')} (qonnx.core.onnx_exec.execute_onnx)"


def run_qonnx(model_or_path: Any, raw: np.ndarray) -> np.ndarray:
    """Logits of a QONNX model (a ``ModelProto`` or an ``.onnx`` path) on ``raw`` inputs ``(N, C, H, W)``,
    executed by ``qonnx`` (its ``Quant`` implementation, onnxruntime for the standard operators). The model
    is re-shaped to batch ``N`` and its shapes are inferred first."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    proto = onnx.load(str(model_or_path)) if isinstance(model_or_path, str | Path) else model_or_path
    proto = type(proto).FromString(proto.SerializeToString())  # a copy: the caller's model keeps batch 1
    del proto.graph.value_info[:]
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = int(raw.shape[0])
    for out in proto.graph.output:
        out.type.tensor_type.ClearField("shape")
    wrapper = ModelWrapper(proto).transform(InferShapes())
    result = execute_onnx(wrapper, {wrapper.graph.input[0].name: raw.astype(np.float32)})
    return np.asarray(result[wrapper.graph.output[0].name])


def check_by_execution(
    proto: Any, torch_model: torch.nn.Module, x: torch.Tensor, raw: torch.Tensor, y: torch.Tensor | None = None
) -> ExecutionCheck:
    """Run ``proto`` with qonnx on ``raw`` and ``torch_model`` (the quantized model the search measured) on
    ``x`` (the same samples, preprocessed); compare their predictions sample by sample."""
    with torch.no_grad():
        reference = torch_model.eval()(x).double().numpy()
    got = run_qonnx(proto, raw.numpy())
    if got.shape != reference.shape:
        raise CodesignError(f"QONNX check: the graph gives logits of shape {got.shape}, the model {reference.shape}")
    same = int((got.argmax(1) == reference.argmax(1)).sum())
    labels = None if y is None else y.numpy()
    return ExecutionCheck(
        samples=len(reference),
        same_predictions=same,
        max_abs_logit_diff=float(np.abs(got - reference).max()),
        accuracy_qonnx=None if labels is None else float((got.argmax(1) == labels).mean()),
        accuracy_torch=None if labels is None else float((reference.argmax(1) == labels).mean()),
    )


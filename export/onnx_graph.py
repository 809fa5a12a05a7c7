"""Reading and tidying exported ONNX graphs: constant evaluation, "SAME" padding folded into Conv and
MaxPool ``pads``, dead-node removal, the checks TensorRT cares about, and metadata.

PyTorch has no asymmetric convolution padding, so the I3D pads explicitly (``F.pad``) where TF "SAME"
puts the odd pixel after; the exporter turns that into ``Pad`` nodes whose pads come out of a small
Slice/Transpose/Reshape chain evaluated at run time. ONNX's Conv and MaxPool take asymmetric ``pads``
directly, so :func:`fold_pads` evaluates each chain once, moves the padding into the consumer's
attribute and deletes the Pad and the chain: the graph TensorRT reads has no Pad node at all.
"""

from __future__ import annotations

import json
from typing import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Ops an I3D export may contain that onnx-tensorrt (TensorRT 10, opsets 9-20) supports without
# restrictions that matter here; MaxPool and AveragePool are supported in 2D and 3D. Pad is supported
# too, but only with constant pads: runtime-computed pads are rejected separately.
TENSORRT_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Concat", "Constant", "Conv", "Div", "Flatten",
    "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Mul", "Pad", "ReduceMean", "Relu",
    "Reshape", "Shape", "Slice", "Softmax", "Squeeze", "Sub", "Transpose", "Unsqueeze", "Gather",
    "ConstantOfShape",
})
FOLDABLE = {"Conv": 0.0, "MaxPool": float("-inf")}  # consumer op -> the pad value its own pads imply


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def constant_value(graph: onnx.GraphProto, name: str, opset: int = 17) -> np.ndarray | None:
    """The value of tensor ``name`` when it depends on no graph input (initializers and Constant nodes
    only), computed with ONNX's reference evaluator; None when it needs run-time data."""
    initializers = {t.name: t for t in graph.initializer}
    if name in initializers:
        return numpy_helper.to_array(initializers[name])
    made_by = producers(graph)
    needed: list[onnx.NodeProto] = []
    stack, seen = [name], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in initializers or tensor == "":
            continue
        seen.add(tensor)
        node = made_by.get(tensor)
        if node is None:  # a graph input: known only at run time
            return None
        if node not in needed:
            needed.append(node)
            stack.extend(node.input)
    order = [n for n in graph.node if n in needed]  # graph order is topological
    used = {i for n in order for i in n.input}
    sub = helper.make_graph(order, "constant", [], [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)],
                            [t for t in graph.initializer if t.name in used])
    from onnx.reference import ReferenceEvaluator

    sub_model = helper.make_model(sub, opset_imports=[helper.make_opsetid("", opset)])
    return np.asarray(ReferenceEvaluator(sub_model).run(None, {})[0])


def opset_of(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def fold_pads(model: onnx.ModelProto) -> int:
    """Fold every constant-padding Pad that feeds only Conv (value 0) or MaxPool (value -inf) into the
    consumer's ``pads``; returns how many were folded. Pads on the batch or channel axes, other modes
    or values, or pads known only at run time are left alone (and :func:`runtime_pads` reports them)."""
    graph = model.graph
    opset = opset_of(model)
    folded = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        users = consumers(graph).get(pad.output[0], [])
        if not users or any(u.op_type not in FOLDABLE for u in users) or len({u.op_type for u in users}) != 1:
            continue
        if _attribute(pad, "mode", b"constant") != b"constant" or len(pad.input) > 3 and pad.input[3]:
            continue
        pads = constant_value(graph, pad.input[1], opset)
        value = constant_value(graph, pad.input[2], opset) if len(pad.input) > 2 and pad.input[2] else np.array(0.0)
        if pads is None or value is None:
            continue
        pads = [int(p) for p in pads.reshape(-1)]
        rank = len(pads) // 2
        begins, ends = pads[:rank], pads[rank:]
        wanted = FOLDABLE[users[0].op_type]
        if any(begins[:2]) or any(ends[:2]) or min(pads) < 0 or float(value.reshape(-1)[0]) != wanted:
            continue
        for user in users:
            if _attribute(user, "auto_pad", b"NOTSET") not in (b"NOTSET", b""):
                break
        else:
            for user in users:
                _add_pads(user, begins[2:], ends[2:])
                user.input[0] = pad.input[0]
            graph.node.remove(pad)
            folded += 1
    remove_dead_nodes(model)
    return folded


def _attribute(node: onnx.NodeProto, name: str, default):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _add_pads(node: onnx.NodeProto, begins: list[int], ends: list[int]) -> None:
    current = list(_attribute(node, "pads", [0] * (2 * len(begins))))
    merged = [a + b for a, b in zip(current, begins + ends)]
    for attribute in list(node.attribute):
        if attribute.name == "pads":
            node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute("pads", merged))


def remove_dead_nodes(model: onnx.ModelProto) -> None:
    """Drop nodes whose outputs nothing uses (repeatedly), then unused initializers."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    for info in [v for v in graph.value_info if v.name not in used and v.name not in outputs]:
        graph.value_info.remove(info)


def runtime_pads(model: onnx.ModelProto) -> list[str]:
    """Names of Pad nodes whose pads are computed by other nodes at run time (anything but an
    initializer or a Constant node), which TensorRT cannot fold into its layers."""
    graph = model.graph
    fixed = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "Pad" and n.input[1] not in fixed]


def unsupported_ops(model: onnx.ModelProto, supported: Iterable[str] = TENSORRT_OPS) -> list[str]:
    """Op types in the graph outside ``supported`` (default: TensorRT's ONNX parser), sorted."""
    allowed = set(supported)
    return sorted({n.op_type for n in model.graph.node if n.op_type not in allowed or n.domain not in ("", "ai.onnx")})


def set_metadata(model: onnx.ModelProto, entries: dict[str, object]) -> None:
    """Write ``entries`` into metadata_props (strings as they are, anything else as JSON)."""
    for key, value in entries.items():
        text = value if isinstance(value, str) else json.dumps(value)
        for prop in list(model.metadata_props):
            if prop.key == key:
                model.metadata_props.remove(prop)
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=text))


def get_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}

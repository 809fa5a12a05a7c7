"""fp16 ONNX: the same graph with fp16 weights and compute, and float32 ``video`` in and ``logits`` out
(a Cast after the input and before the output), so callers feed and read it exactly like the fp32 one.

Meant for GPUs (ONNX Runtime's CUDA provider, TensorRT); ONNX Runtime's CPU provider has no fp16
kernels for most of these ops.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in fp16; inputs and outputs keep their float32 type."""
    model = copy.deepcopy(model)
    graph = model.graph
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT:
            half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name)
            graph.initializer[i].CopyFrom(half)
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
                    attribute.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(attribute.t).astype(np.float16), attribute.t.name))
        for attribute in node.attribute:  # Cast targets and similar dtype attributes
            if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.FLOAT16
    casts_in = []
    for graph_input in graph.input:
        if graph_input.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half_name = f"{graph_input.name}_fp16"
        _rename(graph, graph_input.name, half_name, "input")
        casts_in.append(helper.make_node("Cast", [graph_input.name], [half_name], to=TensorProto.FLOAT16,
                                         name=f"{graph_input.name}_to_fp16"))
    for graph_output in graph.output:
        if graph_output.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half_name = f"{graph_output.name}_fp16"
        _rename(graph, graph_output.name, half_name, "output")
        graph.node.append(helper.make_node("Cast", [half_name], [graph_output.name], to=TensorProto.FLOAT,
                                           name=f"{graph_output.name}_to_fp32"))
    for k, cast in enumerate(casts_in):
        graph.node.insert(k, cast)
    del graph.value_info[:]  # stale float32 annotations; shape inference recomputes them
    onnx.checker.check_model(model, full_check=True)
    return model


def _rename(graph: onnx.GraphProto, old: str, new: str, side: str) -> None:
    """Every node ``input`` (or ``output``) named ``old`` becomes ``new``."""
    for node in graph.node:
        names = getattr(node, side)
        for j, name in enumerate(names):
            if name == old:
                names[j] = new

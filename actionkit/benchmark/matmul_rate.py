"""This CPU's matrix-multiply rate, measured in the same rounds as a speed benchmark.

A CPU has no data-sheet peak worth comparing with: on a shared or virtual host the clock, the cache and
the memory bandwidth it gets drift over minutes. So the speed benchmark also times a 2048² matrix
product with the library each backend computes with (PyTorch's oneDNN / MKL, ONNX Runtime's MLAS) and
reports each CPU row as a share of it. The product is timed in every round of
:func:`actionkit.benchmark.model_speed`, between the configurations, so the rate and the rows see the
same spells of the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from actionkit.benchmark.timing import time_calls

MATMUL_SIZE = 2048
_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MEASURABLE = {("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32")}  # (library, precision)


def matmul_flops(size: int = MATMUL_SIZE) -> int:
    """FLOPs of one ``size``² × ``size``² product (a multiply-add is 2)."""
    return 2 * size**3


def matmul_call(library: str, precision: str = "fp32", size: int = MATMUL_SIZE) -> Callable[[], Any]:
    """A call computing one ``size``² × ``size``² product in ``library`` (``torch`` in fp32 / bf16,
    ``onnxruntime`` in fp32) with the library's default threads; its inputs are made once, here.
    ImportError when the ONNX Runtime graph cannot be built (no onnx package)."""
    if (library, precision) not in MEASURABLE:
        raise ValueError(f"no {precision} matmul rate for {library}")
    if library == "torch":
        a = torch.randn(size, size, dtype=_TORCH_DTYPES[precision])
        b = torch.randn(size, size, dtype=_TORCH_DTYPES[precision])
        return lambda: a @ b
    session = _onnxruntime_matmul(size)
    feeds = {name: np.random.rand(size, size).astype(np.float32) for name in ("a", "b")}
    return lambda: session.run(None, feeds)


def matmul_gflops(library: str, precision: str = "fp32", size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``² × ``size``² product in ``library``, median of ``repeats`` calls after a
    warm-up (a rate on its own; :func:`~actionkit.benchmark.model_speed` times it among its rows)."""
    return matmul_flops(size) / time_calls(matmul_call(library, precision, size), repeats) / 1e9


def _onnxruntime_matmul(size: int) -> Any:
    import onnxruntime
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size]) for name in ("a", "b")]
    output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # the IR of opset 17: older than the onnx package's default, which ORT may not read yet
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def reference_calls(configurations: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Callable[[], Any]]:
    """A matmul call per distinct (backend, precision) of ``configurations`` whose library has a rate
    (torch fp32 / bf16, onnxruntime fp32; the ONNX Runtime one needs the onnx package to build its graph
    and is left out without it). For CPU runs."""
    calls: dict[tuple[str, str], Callable[[], Any]] = {}
    for key in dict.fromkeys(configurations):
        if key in MEASURABLE:
            try:
                calls[key] = matmul_call(*key)
            except ImportError:
                continue
    return calls

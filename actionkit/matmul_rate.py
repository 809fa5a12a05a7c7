"""This CPU's matrix-multiply rate, measured in the same run as a speed benchmark.

A CPU has no data-sheet peak worth comparing with: on a shared or virtual host the clock, the cache and
the memory bandwidth it gets drift over minutes (2× swings measured on the 2-core CI machine). So the
speed benchmark also times a 2048² matrix product with the library each backend computes with (PyTorch's
oneDNN / MKL, ONNX Runtime's MLAS) and reports each CPU row as a share of it: a ratio from one run,
which holds while absolute seconds drift. A convolution network cannot beat its library's matmul rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from actionkit.benchmark import ModelSpeed, time_calls

MATMUL_SIZE = 2048
_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MEASURABLE = {("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32")}  # (library, precision)


def matmul_gflops(library: str, precision: str = "fp32", size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``² × ``size``² product in ``library`` (``torch`` in fp32 / bf16, ``onnxruntime``
    in fp32), median of ``repeats`` calls after a warm-up, with each library's default threads."""
    if (library, precision) not in MEASURABLE:
        raise ValueError(f"no {precision} matmul rate for {library}")
    flops = 2 * size**3
    if library == "torch":
        a = torch.randn(size, size, dtype=_TORCH_DTYPES[precision])
        b = torch.randn(size, size, dtype=_TORCH_DTYPES[precision])
        return flops / time_calls(lambda: a @ b, repeats) / 1e9
    session = _onnxruntime_matmul(size)
    feeds = {name: np.random.rand(size, size).astype(np.float32) for name in ("a", "b")}
    return flops / time_calls(lambda: session.run(None, feeds), repeats) / 1e9


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


def cpu_matmul_rates(rows: Sequence[ModelSpeed]) -> dict[str, float]:
    """``"backend precision"`` -> the GFLOP/s of that backend's library in that precision, for every
    measured row a matmul rate exists for (torch fp32 / bf16, onnxruntime fp32; the ONNX Runtime rate
    needs the onnx package to build its graph and is left out without it). Call on CPU runs only."""
    rates: dict[str, float] = {}
    for row in rows:
        key = f"{row.backend} {row.precision}"
        if row.seconds_per_clip is None or key in rates:
            continue
        if (row.backend, row.precision) in MEASURABLE:  # the torch and onnxruntime backends are their libraries
            try:
                rates[key] = matmul_gflops(row.backend, row.precision)
            except ImportError:
                continue
    return rates


def roofline_inputs(rows: Sequence[ModelSpeed], device: str | torch.device | None) -> tuple[str | None, dict[str, float]]:
    """What :func:`actionkit.benchmark.format_roofline` sets ``rows`` against on ``device`` (default: CUDA
    if present): on a GPU its name (for the data-sheet peak) and no rates; on CPU no name and this CPU's
    matmul rates, measured now."""
    from actionkit.predict import default_device

    target = torch.device(device) if device else default_device()
    if target.type == "cuda":
        return torch.cuda.get_device_name(target), {}
    return None, cpu_matmul_rates(rows) if target.type == "cpu" else {}

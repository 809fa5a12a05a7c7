"""TensorRT engines from the exported ONNX, with the tensorrt Python API (TensorRT 10).

Two steps, so everything but the build itself is testable without a GPU:
- :func:`plan_engine` reads the ONNX file and the options and returns an :class:`EnginePlan`: the
  input name, the optimisation profile (min / opt / max shapes over the batch), precision flags,
  workspace and timing-cache paths; it rejects an ONNX without a dynamic batch axis, a profile out of
  order and a batch range the ONNX cannot take.
- :func:`build_engine` imports tensorrt (an optional extra) and builds exactly that plan, writing the
  engine, the timing cache (reused by the next build) and ``engine.json`` describing it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from actionkit.artifacts import ENGINE_FILE
from actionkit.errors import ActionkitError
from actionkit.files import write_atomically, write_text_atomically
from actionkit.predict.tensorrt_runtime import (
    TensorRTUnavailable,
    import_tensorrt,
)

ENGINE_INFO_NAME = "engine.json"
TIMING_CACHE_NAME = "timing.cache"
@dataclass(frozen=True)
class TensorRTOptions:
    """Precision and the batch range of the optimisation profile."""

    fp16: bool = True
    min_batch: int = 1
    opt_batch: int = 4
    max_batch: int = 8
    workspace_gib: float = 4.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ActionkitError(f"TensorRT profile needs 1 <= min-batch <= opt-batch <= max-batch, got "
                                 f"{self.min_batch} / {self.opt_batch} / {self.max_batch}")
        if self.workspace_gib <= 0:
            raise ActionkitError(f"workspace must be positive, got {self.workspace_gib} GiB")


@dataclass(frozen=True)
class EnginePlan:
    """Everything the builder is given: shapes are N×3×T×H×W tuples."""

    onnx_path: str
    input_name: str
    output_name: str
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    precision: str  # "fp16" (fp16 and fp32 kernels allowed) or "fp32"
    workspace_bytes: int
    engine_path: str
    timing_cache_path: str

    def builder_flags(self) -> list[str]:
        """Names of the ``tensorrt.BuilderFlag`` members to set."""
        return ["FP16"] if self.precision == "fp16" else []


def plan_engine(onnx_path: Path, options: TensorRTOptions, out_dir: Path) -> EnginePlan:
    """The build plan for ``onnx_path``: the batch axis ranges over the options' profile, every other
    axis keeps the ONNX file's fixed size (a dynamic time axis takes the config's clip length)."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise ActionkitError(f"{onnx_path}: expected one input and one output, found "
                             f"{len(model.graph.input)} and {len(model.graph.output)}")
    graph_input = model.graph.input[0]
    dims = graph_input.type.tensor_type.shape.dim
    if len(dims) != 5:
        raise ActionkitError(f"{onnx_path}: input {graph_input.name!r} has {len(dims)} axes, expected N×3×T×H×W")
    if dims[0].HasField("dim_value"):
        if not options.min_batch == options.opt_batch == options.max_batch == dims[0].dim_value:
            raise ActionkitError(f"{onnx_path}: the batch axis is fixed at {dims[0].dim_value}; a profile over "
                                 f"{options.min_batch}-{options.max_batch} needs an ONNX with a dynamic batch")
    rest = []
    metadata = {p.key: p.value for p in model.metadata_props}
    for axis, dim in enumerate(dims[1:], start=1):
        if dim.HasField("dim_value"):
            rest.append(dim.dim_value)
        elif axis == 2 and "preprocessing" in metadata:
            rest.append(int(json.loads(metadata["preprocessing"])["clip_len"]))
        else:
            raise ActionkitError(f"{onnx_path}: input axis {axis} is dynamic; only the batch (and time) may be")
    out_dir = Path(out_dir)
    return EnginePlan(
        onnx_path=str(onnx_path), input_name=graph_input.name, output_name=model.graph.output[0].name,
        min_shape=(options.min_batch, *rest), opt_shape=(options.opt_batch, *rest),
        max_shape=(options.max_batch, *rest), precision="fp16" if options.fp16 else "fp32",
        workspace_bytes=int(options.workspace_gib * 2**30), engine_path=str(out_dir / ENGINE_FILE),
        timing_cache_path=str(out_dir / TIMING_CACHE_NAME))


def build_engine(plan: EnginePlan, log=print) -> Path:
    """Build and write the engine of ``plan`` (and its timing cache and ``engine.json``)."""
    trt = import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailable("building a TensorRT engine needs a CUDA GPU; none is visible")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(plan.onnx_path):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ActionkitError(f"{plan.onnx_path}: TensorRT could not parse the ONNX ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for flag in plan.builder_flags():
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, plan.min_shape, plan.opt_shape, plan.max_shape)
    config.add_optimization_profile(profile)
    cache_path = Path(plan.timing_cache_path)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    started = time.perf_counter()
    log(f"building the TensorRT engine ({plan.precision}, batch {plan.min_shape[0]}-{plan.max_shape[0]}); "
        "this takes minutes")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ActionkitError(f"TensorRT failed to build an engine from {plan.onnx_path} (see its log above)")
    engine_path = write_atomically(Path(plan.engine_path), lambda tmp: tmp.write_bytes(bytes(serialized)))
    write_atomically(cache_path, lambda tmp: tmp.write_bytes(bytes(config.get_timing_cache().serialize())))
    info = {**asdict(plan), "tensorrt_version": trt.__version__, "gpu": torch.cuda.get_device_name(),
            "build_seconds": round(time.perf_counter() - started, 1)}
    write_text_atomically(engine_path.parent / ENGINE_INFO_NAME, json.dumps(info, indent=2) + "\n")
    return engine_path

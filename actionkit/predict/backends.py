"""Inference backends: one call, float video N×3×T×H×W in, logits N×classes out, whatever runs it.

- ``torch``: the I3D in PyTorch (CPU or CUDA).
- ``onnxruntime``: an exported ``model.onnx``; the CUDA provider only when a CUDA GPU is visible, so a
  CPU-only machine with onnxruntime-gpu installed gets the CPU provider and no CUDA warnings.
- ``tensorrt``: an exported ``model.engine`` (tensorrt and a CUDA GPU needed).
- ``openvino``: an exported OpenVINO IR on the CPU, ``model.int8.xml`` (INT8) or ``model.xml`` (fp32)
  (:mod:`actionkit.predict.openvino_runtime`; the ``openvino`` extra).
- ``auto``: the fastest one the artifact and the machine allow (measured by ``benchmarks/end_to_end.py``):
  TensorRT on a GPU when an engine and tensorrt are present, else PyTorch fp16 on CUDA; on a CPU,
  OpenVINO INT8 when ``model.int8.xml`` and openvino are present; else, with AMX, PyTorch bf16; on
  other CPUs ONNX Runtime fp32 when ``model.onnx`` is present, else PyTorch fp32.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from actionkit.artifacts import ENGINE_FILE, ONNX_FILE, OPENVINO_INT8_FILE, WEIGHTS_FILE
from actionkit.errors import ActionkitError
from actionkit.models.fast_inference import SpaceToDepthStem, inference_copy
from actionkit.predict.clip_lengths import clip_len_error
from actionkit.predict.tensorrt_runtime import TensorRTUnavailable, import_tensorrt

BackendName = Literal["torch", "onnxruntime", "tensorrt", "openvino", "auto"]
BACKENDS = ("torch", "onnxruntime", "tensorrt", "openvino", "auto")


class Backend(Protocol):
    """What the Recognizer calls. ``device`` is where it wants its input."""

    name: str
    device: torch.device
    fixed_clip_len: int | None  # the only clip length the model file takes; None when it takes several

    def __call__(self, video: torch.Tensor) -> torch.Tensor: ...

    def clip_len_error(self, frames: int) -> str | None:
        """Why the model cannot take ``frames``-frame clips (e.g. "takes clips of exactly 64 frames"), or None."""
        ...


Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]  # int8: the openvino backend's
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU has bf16 matrix units (Intel AMX), which make bf16 convolutions several times
    faster than fp32 ones. Without them bf16 is emulated and slower than fp32."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if check is not None:
        try:
            return bool(check())
        except RuntimeError:
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision for ``precision`` on ``device``: ``auto`` is fp16 on a CUDA GPU (every CUDA
    GPU has fp16 tensor cores; bf16 needs Ampere or newer, and measured slower and further from fp32:
    benchmarks/README.md), bf16 on a CPU with AMX, fp32 on other CPUs. Any other name than ``auto``,
    ``fp32``, ``bf16`` or ``fp16`` is an :class:`~actionkit.errors.ActionkitError`."""
    if precision == "int8":
        raise ActionkitError("int8 runs on the openvino backend (an INT8 model made by actionkit export --int8 "
                             "--calibrate DATA), not in PyTorch")
    if precision not in ("auto", *_DTYPES):
        raise ActionkitError(f"unknown precision {precision!r}; choose auto, fp32, bf16 or fp16")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_has_bf16_matmul() else "fp32"


class TorchBackend:
    """The I3D in PyTorch, run as :func:`~actionkit.models.fast_inference.inference_copy` makes it: batch norms
    folded into the convolutions and, on CPU, separable max pools and (bf16 / fp16) a space-to-depth stem
    (``model`` stays the module it was given). ``precision`` bf16 / fp16 runs it under autocast (weights stay fp32;
    logits come back as float32). ``channels_last`` (default) uses the channels-last 3D memory layout, which
    oneDNN and cuDNN convolve fastest. ``compile`` wraps the model in
    ``torch.compile`` (on CUDA in "reduce-overhead" mode, i.e. CUDA graphs); the first batch of each
    new shape then takes a while to compile."""

    name = "torch"
    fixed_clip_len = None

    def clip_len_error(self, frames: int) -> str | None:
        return None  # the I3D in PyTorch takes any clip length

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: Precision = "fp32",
                 channels_last: bool = True, compile: bool = False) -> None:
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.channels_last = channels_last
        self.model = model.to(device).eval()
        runnable = inference_copy(self.model, device, self.precision)  # batch norms folded, CPU rewrites
        self._run = runnable.to(memory_format=torch.channels_last_3d) if channels_last else runnable
        # A space-to-depth stem regroups the clip itself; converting it to channels-last first is a wasted copy.
        regrouped = any(isinstance(module, SpaceToDepthStem) for module in runnable.modules())
        self._input_channels_last = channels_last and not regrouped
        self.compiled = compile
        if compile:
            mode = "reduce-overhead" if device.type == "cuda" else None
            self._run = torch.compile(self._run, mode=mode, dynamic=False)

    @torch.inference_mode()
    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        video = video.to(self.device)
        if self._input_channels_last:
            video = video.contiguous(memory_format=torch.channels_last_3d)
        dtype = _DTYPES[self.precision]
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self._run(video).float().clone()  # clone: a CUDA-graph output is overwritten next call


def cuda_available() -> bool:
    return torch.cuda.is_available()


def onnxruntime_providers(device: torch.device) -> list[str]:
    """CUDA then CPU on a CUDA device when onnxruntime offers CUDA; CPU alone otherwise."""
    import onnxruntime

    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, device: torch.device, threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ActionkitError("the onnxruntime backend needs onnxruntime: pip install onnxruntime-gpu "
                                 "(or onnxruntime on a CPU-only machine)") from None
        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
        self.providers = onnxruntime_providers(device)
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=self.providers)
        self.device = torch.device("cpu")  # inputs go through host memory
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        frames = model_input.shape[2] if len(model_input.shape) == 5 else None
        self.fixed_clip_len = frames if isinstance(frames, int) else None
        multiple = self.session.get_modelmeta().custom_metadata_map.get("clip_len_multiple", "0")
        self.clip_len_multiple = int(multiple) if multiple.isdigit() else 0  # set by a dynamic-clip-length export

    def clip_len_error(self, frames: int) -> str | None:
        return clip_len_error(frames, self.fixed_clip_len, self.clip_len_multiple)

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(video.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, path: Path) -> None:
        trt = import_tensorrt()
        if not cuda_available():
            raise TensorRTUnavailable("the tensorrt backend needs a CUDA GPU; none is visible")
        self.path = Path(path)
        self.device = torch.device("cuda")
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ActionkitError(f"{self.path}: TensorRT could not load the engine (built by another "
                                 "TensorRT version or for another GPU? rebuild it with actionkit export --trt)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        smallest, _, largest = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.clip_lens = (int(smallest[2]), int(largest[2]))  # the optimisation profile's range
        self.fixed_clip_len = self.clip_lens[0] if self.clip_lens[0] == self.clip_lens[1] else None
        self.stream = torch.cuda.Stream()

    def clip_len_error(self, frames: int) -> str | None:
        low, high = self.clip_lens
        if low == high:
            return None if frames == low else f"takes clips of exactly {low} frames"
        return None if low <= frames <= high else f"takes clips of {low} to {high} frames (its optimisation profile)"

    @torch.inference_mode()
    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        video = video.to(self.device, torch.float32).contiguous()
        self.context.set_input_shape(self.input_name, tuple(video.shape))
        logits = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), device=self.device)
        self.context.set_tensor_address(self.input_name, video.data_ptr())
        self.context.set_tensor_address(self.output_name, logits.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ActionkitError(f"{self.path}: TensorRT inference failed for input shape {tuple(video.shape)}")
        torch.cuda.current_stream().wait_stream(self.stream)
        return logits


def tensorrt_importable() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def onnxruntime_importable() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def openvino_importable() -> bool:
    return importlib.util.find_spec("openvino") is not None


def choose_backend(name: str, folder: Path | None, device: torch.device, precision: str = "auto") -> str:
    """The concrete backend for ``name`` given the artifacts in ``folder``, the device and the precision
    asked for (``int8`` means OpenVINO; ``bf16`` or ``fp16`` means PyTorch, which has those paths on CPU)."""
    if name not in BACKENDS:
        raise ActionkitError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    has = (lambda file: folder is not None and (folder / file).is_file())
    if precision == "int8":
        return "openvino"
    if device.type == "cuda":
        if has(ENGINE_FILE) and tensorrt_importable():
            return "tensorrt"
        return "torch"
    if precision == "auto" and has(OPENVINO_INT8_FILE) and openvino_importable():
        return "openvino"
    fp32_wanted = precision == "fp32" or (precision == "auto" and not cpu_has_bf16_matmul())
    only_onnx = precision == "auto" and not has(WEIGHTS_FILE)
    if has(ONNX_FILE) and onnxruntime_importable() and (fp32_wanted or only_onnx):
        return "onnxruntime"
    return "torch"

"""Inference backends: one call, float video N×3×T×H×W in, logits N×classes out, whatever runs it.

- ``torch``: the I3D in PyTorch (CPU or CUDA).
- ``onnxruntime``: an exported ``model.onnx``; the CUDA provider only when a CUDA GPU is visible, so a
  CPU-only machine with onnxruntime-gpu installed gets the CPU provider and no CUDA warnings. A model
  whose batch axis is fixed at 1 is run one clip at a time; any other fixed batch is refused.
- ``tensorrt``: an exported ``model.engine`` (tensorrt and a CUDA GPU needed).
- ``openvino``: an exported OpenVINO IR on the CPU, ``model.int8.xml`` (INT8) or ``model.xml`` (fp32)
  (:mod:`actionkit.predict.openvino_runtime`; the ``openvino`` extra).
- ``auto``: the fastest one the artifact and the machine allow (measured by ``benchmarks/end_to_end.py``):
  TensorRT on a GPU when an engine and tensorrt are present, else PyTorch fp16 on CUDA; on a CPU,
  OpenVINO INT8 when ``model.int8.xml`` and openvino are present; else, with AMX, PyTorch bf16; on
  other CPUs ONNX Runtime fp32 when ``model.onnx`` is present, else PyTorch fp32.

Every backend is checked against its config when it is opened (:func:`check_backend`): a model file
whose output width differs from the number of labels, whose input is not N×C×T×crop×crop, or which
cannot take the config's clip length is a :class:`~actionkit.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from actionkit.artifacts import ENGINE_FILE, ONNX_FILE, OPENVINO_INT8_FILE, WEIGHTS_FILE
from actionkit.errors import ActionkitError, CheckpointError
from actionkit.hub.model_config import ModelConfig
from actionkit.models.fast_inference import SpaceToDepthStem, inference_copy
from actionkit.predict.clip_lengths import clip_len_error
from actionkit.predict.tensorrt_runtime import TensorRTUnavailable, import_tensorrt

BackendName = Literal["torch", "onnxruntime", "tensorrt", "openvino", "auto"]
BACKENDS = ("torch", "onnxruntime", "tensorrt", "openvino", "auto")


class Backend(Protocol):
    """What the Recognizer calls. ``device`` is where it wants its input. A backend may also say what its
    model file declares, for :func:`check_backend`: ``num_classes`` (its output width), ``input_shape``
    (N, C, T, H, W with None for a dynamic axis) and ``path`` (the file, named in errors)."""

    name: str
    device: torch.device
    fixed_clip_len: int | None  # the only clip length the model file takes; None when it takes several

    def __call__(self, video: torch.Tensor) -> torch.Tensor: ...

    def clip_len_error(self, frames: int) -> str | None:
        """Why the model cannot take ``frames``-frame clips (e.g. "takes clips of exactly 64 frames"), or None."""
        ...


Shape = tuple[int | None, ...]  # a declared tensor shape, None for a dynamic axis


def dims_text(shape: Shape) -> str:
    """``(None, 3, 64, 224, 224)`` -> ``?×3×64×224×224``; ``()`` -> ``of unknown rank``."""
    return "×".join("?" if d is None else str(d) for d in shape) or "of unknown rank"


def check_model_file(source: str | Path, config: ModelConfig, input_shape: Shape | None = None,
                     num_classes: int | None = None) -> None:
    """Refuse a model whose declared shapes disagree with ``config``: an ``input_shape`` that is not
    N×C×T×crop×crop (C the config's ``in_channels``; dynamic axes pass), or ``num_classes`` outputs for a
    config with another number of labels. Raises :class:`~actionkit.errors.CheckpointError` naming
    ``source``; None (undeclared) checks nothing."""
    crop = config.preprocessing.crop_size
    if input_shape is not None:
        wanted = (None, config.model.in_channels, None, crop, crop)
        if len(input_shape) != 5 or any(d is not None and w is not None and d != w for d, w in zip(input_shape, wanted)):
            raise CheckpointError(source, f"its input is {dims_text(input_shape)}, not "
                                          f"N×{config.model.in_channels}×T×{crop}×{crop} as its config says")
    if num_classes is not None and num_classes != len(config.labels):
        raise CheckpointError(source, f"it outputs {num_classes} classes but its config has {len(config.labels)} labels")


def check_backend(backend: Backend, config: ModelConfig) -> None:
    """The checks a backend passes before it runs with ``config``: :func:`check_model_file` on what its
    model file declares (``input_shape``, ``num_classes``), and the config's clip length one it takes.
    Raises :class:`~actionkit.errors.CheckpointError` naming the backend's file."""
    source = getattr(backend, "path", None) or f"the {backend.name} model"
    check_model_file(source, config, getattr(backend, "input_shape", None), getattr(backend, "num_classes", None))
    check = getattr(backend, "clip_len_error", None)
    problem = check(config.preprocessing.clip_len) if check else None
    if problem:
        raise CheckpointError(source, f"its config's clip_len {config.preprocessing.clip_len} does not fit: it {problem}")


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


def cpu_bf16_is_emulated() -> bool:
    """Whether bf16 matrix products on this CPU are emulated: neither AMX nor AVX-512 BF16 instructions.
    There bf16 runs many times slower than fp32 (about 90× for I3D on an AVX2-only CPU)."""
    if cpu_has_bf16_matmul():
        return False
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    try:
        return not (check is not None and bool(check()))
    except RuntimeError:
        return True


_warned_emulated_bf16 = False


def warn_if_bf16_is_emulated(precision: str, device: torch.device) -> None:
    """Log one warning per process when bf16 is asked for on a CPU that emulates it."""
    global _warned_emulated_bf16
    if precision == "bf16" and device.type == "cpu" and not _warned_emulated_bf16 and cpu_bf16_is_emulated():
        _warned_emulated_bf16 = True
        logging.getLogger("actionkit").warning(
            "this CPU has no bf16 instructions (AMX or AVX-512 BF16): bf16 is emulated and can be about 90x "
            "slower than fp32; use --precision fp32 (or auto)")


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
    input_shape = None

    def clip_len_error(self, frames: int) -> str | None:
        return None  # the I3D in PyTorch takes any clip length

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: Precision = "fp32",
                 channels_last: bool = True, compile: bool = False) -> None:
        self.device = device
        self.num_classes: int | None = getattr(model, "num_classes", None)
        self.precision = resolve_precision(precision, device)
        warn_if_bf16_is_emulated(self.precision, device)
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
    """An ONNX model run by ONNX Runtime. Opening it checks what the file declares: one float32 input of
    rank 5, a batch axis that is dynamic or fixed at 1 (such a model is run one clip at a time; another
    fixed batch is refused), and a 2-D output whose width is :attr:`num_classes` (None when dynamic). A
    file ONNX Runtime cannot load is a :class:`~actionkit.errors.CheckpointError` naming it."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: torch.device, threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ActionkitError("the onnxruntime backend needs onnxruntime: pip install onnxruntime-gpu "
                                 "(or onnxruntime on a CPU-only machine)") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(self.path, "no such ONNX file")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
        self.providers = onnxruntime_providers(device)
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as e:  # onnxruntime's own exception classes (InvalidProtobuf, Fail, ...): all mean "cannot load"
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CheckpointError(self.path, f"ONNX Runtime cannot load it ({reason})") from None
        self.device = torch.device("cpu")  # inputs go through host memory
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise CheckpointError(self.path, f"expected one video input and an output, found {len(inputs)} "
                                             f"input(s) and {len(outputs)} output(s)")
        model_input, model_output = inputs[0], outputs[0]
        if model_input.type != "tensor(float)":
            raise CheckpointError(self.path, f"its input {model_input.name!r} is {model_input.type}, not a float32 video")
        self.input_name = model_input.name
        self.input_shape: Shape = tuple(d if isinstance(d, int) and d > 0 else None for d in model_input.shape or ())
        if len(self.input_shape) != 5:
            raise CheckpointError(self.path, f"its input is {dims_text(self.input_shape)}, not a video N×C×T×H×W")
        self.fixed_batch = self.input_shape[0]
        if self.fixed_batch not in (None, 1):
            raise CheckpointError(self.path, f"its batch axis is fixed at {self.fixed_batch}; actionkit runs a "
                                             "dynamic batch axis or one fixed at 1 (export it again with actionkit export)")
        output_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in model_output.shape or ())
        if len(output_shape) not in (0, 2):  # 0: undeclared, the width unknown until it runs
            raise CheckpointError(self.path, f"its output is {dims_text(output_shape)}, not N×classes logits")
        self.num_classes: int | None = output_shape[1] if output_shape else None
        self.fixed_clip_len = self.input_shape[2]  # None: any clip length (dynamic time axis)
        multiple = self.session.get_modelmeta().custom_metadata_map.get("clip_len_multiple", "0")
        self.clip_len_multiple = int(multiple) if multiple.isdigit() else 0  # set by a dynamic-clip-length export

    def clip_len_error(self, frames: int) -> str | None:
        return clip_len_error(frames, self.fixed_clip_len, self.clip_len_multiple)

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(video.detach().to("cpu", torch.float32).numpy())
        if self.fixed_batch == 1 and len(array) != 1:  # a model exported for one clip: run them one by one
            return torch.from_numpy(np.concatenate([self._run(array[i:i + 1]) for i in range(len(array))]))
        return torch.from_numpy(self._run(array))

    def _run(self, array: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: array})[0]


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

        def declared(name: str) -> Shape:  # the engine's shape of tensor ``name``, -1 (dynamic) as None
            return tuple(int(d) if int(d) > 0 else None for d in self.engine.get_tensor_shape(name))

        self.input_shape: Shape = declared(self.input_name)
        output_shape = declared(self.output_name)
        self.num_classes: int | None = output_shape[-1] if output_shape else None  # None: dynamic width
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

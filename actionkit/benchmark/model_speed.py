"""Measuring inference speed on the machine at hand (``actionkit benchmark`` and ``benchmarks/``).

- :func:`model_speed`: model-only throughput, one row per backend × precision × clip length × batch
  size, on random input of the model's crop size (no decoding). Combinations a machine cannot run
  well get a row that says why they were skipped rather than a misleading number.
- :func:`flops_per_clip` and :func:`peak_tflops`: the work in one clip (111 GFLOP for the I3D at
  32×224²) and the GPU's dense tensor-core peak, so each row's achieved TFLOP/s can be set against the
  compute roofline.

Times are medians over ``repeats`` calls after ``warmup`` calls, in seconds per clip.
"""

from __future__ import annotations

import copy
import os
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from actionkit.artifacts import ENGINE_FILE, ONNX_FILE, ONNX_FP16_FILE, OPENVINO_FILE, OPENVINO_INT8_FILE
from actionkit.benchmark.matmul_rate import matmul_flops, reference_calls
from actionkit.benchmark.timing import synchronize
from actionkit.devices import DeviceLike, resolve_device
from actionkit.errors import ActionkitError
from actionkit.hub import load_pretrained, model_config_of
from actionkit.predict.backends import (
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchBackend,
    cpu_has_bf16_matmul,
    onnxruntime_importable,
    openvino_importable,
    tensorrt_importable,
)
from actionkit.predict.openvino_runtime import OpenVinoBackend
from actionkit.progress import progress_bar

BENCHMARK_BACKENDS = ("torch", "torch-compile", "onnxruntime", "tensorrt", "openvino")  # torch-compile: torch.compile (CUDA graphs on GPU)
MATMULS_PER_ROUND = 3  # matrix products per library per round on CPU (about 0.1 s each)
Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelSpeed:
    """Model-only speed of one configuration; ``skipped`` says why a configuration was not run."""

    backend: str
    precision: str
    clip_len: int
    batch_size: int
    crop_size: int
    seconds_per_clip: float | None = None  # median
    skipped: str | None = None
    best_seconds_per_clip: float | None = None  # the fastest call
    gflop_per_clip: float | None = None  # multiply-adds counted as 2 FLOPs
    matmul_gflops: float | None = None  # on CPU: its library's matmul rate, timed in the same rounds

    @property
    def clips_per_second(self) -> float | None:
        return 1.0 / self.seconds_per_clip if self.seconds_per_clip else None

    @property
    def tflops(self) -> float | None:
        """Achieved TFLOP/s at the median time."""
        if self.gflop_per_clip is None or not self.seconds_per_clip:
            return None
        return self.gflop_per_clip / self.seconds_per_clip / 1000

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clips_per_second": self.clips_per_second, "tflops": self.tflops}


def flops_per_clip(model: torch.nn.Module, clip_len: int, crop_size: int | None = None) -> float:
    """FLOPs of one forward pass on one ``clip_len``-frame clip (a multiply-add is 2), counted by
    PyTorch's FLOP counter on a copy of ``model`` on the meta device (no memory, no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = model_config_of(model)
    crop = crop_size or config.preprocessing.crop_size
    ghost = copy.deepcopy(model).to("meta").eval()
    video = torch.empty(1, config.model.in_channels, clip_len, crop, crop, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ghost(video)
    return float(counter.get_total_flops())


# Dense (no sparsity) peaks in TFLOP/s from NVIDIA's data sheets: bf16/fp16 on tensor cores, and fp32
# without them. Matched against the words of torch.cuda.get_device_name(), most specific first.
_GPU_PEAKS: list[tuple[tuple[str, ...], float, float]] = [
    (("H200", "NVL"), 835.0, 60.0),
    (("H200",), 989.0, 67.0),
    (("H100", "PCIe"), 756.0, 51.0),
    (("H100", "NVL"), 835.0, 60.0),
    (("H100",), 989.0, 67.0),
    (("A100",), 312.0, 19.5),
    (("L40S",), 362.0, 91.6),
    (("L4",), 121.0, 30.3),
]


def peak_tflops(device_name: str, precision: str, tf32: bool | None = None) -> float | None:
    """The data-sheet peak of a GPU named ``device_name`` (e.g. "NVIDIA H100 80GB HBM3") for
    ``precision`` (fp32, bf16, fp16), or None for a GPU this table does not know (and for CPUs).

    fp32 convolutions run on TF32 tensor cores when ``tf32`` (default: PyTorch's
    ``torch.backends.cudnn.allow_tf32``, on unless turned off), so their peak is TF32's, half the
    fp16 figure on these GPUs; without TF32 it is the plain fp32 peak."""
    words = set(re.split(r"[\s\-_]+", device_name))
    tf32 = torch.backends.cudnn.allow_tf32 if tf32 is None else tf32
    for needed, half, single in _GPU_PEAKS:
        if words.issuperset(needed):
            if precision == "fp32":
                return half / 2 if tf32 else single
            return half
    return None


def default_precisions(device: DeviceLike = None, backends: Sequence[str] = ()) -> list[str]:
    """The precisions ``actionkit benchmark`` times unless told: fp32 and bf16, on CUDA also fp16, the
    precision ``auto`` runs there (fp16 on CPU is emulated, so it is left out), and int8 when the
    openvino backend is among ``backends``."""
    target = resolve_device(device)
    chosen = ["fp32", "bf16", "fp16"] if target.type == "cuda" else ["fp32", "bf16"]
    return chosen + (["int8"] if "openvino" in backends else [])


def model_speed(source: str | os.PathLike, backends: Sequence[str] = ("torch", "onnxruntime"),
                precisions: Sequence[str] = ("fp32", "bf16"), batch_sizes: Sequence[int] = (1, 4, 8),
                clip_lens: Sequence[int] = (32, 64), device: DeviceLike = None,
                repeats: int = 3, warmup: int = 1, progress: bool = True) -> list[ModelSpeed]:
    """Model-only seconds per clip for every backend × precision × clip length × batch size.

    ``source``: a Hub or export folder (or anything :func:`load_pretrained` reads). ONNX Runtime uses the
    folder's ``model.onnx`` when it accepts the clip length, else an ONNX exported on the fly with a
    dynamic clip length into a temporary folder; TensorRT needs the folder's ``model.engine``.

    The timed calls are interleaved: each round times every configuration once, and each row reports the
    median over ``repeats`` rounds (and the fastest call), so a slow spell of the machine (other
    processes, a noisy neighbour on a shared host) weighs on every configuration alike and the ratios
    between them hold. On CPU each round also times a matrix product in each measured backend's library
    (:mod:`actionkit.benchmark.matmul_rate`) ``MATMULS_PER_ROUND`` times; a row's ``matmul_gflops`` is the median.
    """
    target = resolve_device(device)
    for name in backends:
        if name not in BENCHMARK_BACKENDS:
            raise ActionkitError(f"unknown backend {name!r}; choose from {', '.join(BENCHMARK_BACKENDS)}")
    if repeats < 1 or warmup < 0 or not batch_sizes or not clip_lens or min(batch_sizes) < 1:
        raise ValueError("repeats and batch sizes must be at least 1, warmup at least 0")
    model = load_pretrained(source)
    crop = model_config_of(model).preprocessing.crop_size
    gflop = {clip_len: flops_per_clip(model, clip_len, crop) / 1e9 for clip_len in clip_lens}
    folder = Path(source) if Path(source).is_dir() else None
    rows: dict[tuple[str, str, int, int], ModelSpeed] = {}
    calls: dict[tuple[str, str, int, int], Callable[[], None]] = {}
    inputs: dict[tuple[int, int, torch.device], torch.Tensor] = {}
    loaded: dict[object, Runner] = {}  # one backend per model file and precision, whatever the clip length
    with tempfile.TemporaryDirectory(prefix="actionkit-bench-") as scratch:
        for backend in backends:
            for precision in precisions:
                for clip_len in clip_lens:
                    runner = _runner(backend, precision, clip_len, model, folder, Path(scratch), target, loaded)
                    for batch_size in batch_sizes:
                        key = (backend, precision, clip_len, batch_size)
                        rows[key] = ModelSpeed(backend, precision, clip_len, batch_size, crop,
                                               skipped=runner if isinstance(runner, str) else None,
                                               gflop_per_clip=gflop[clip_len])
                        if not isinstance(runner, str):
                            where = runner_device(runner)
                            shape = (batch_size, clip_len, where)
                            if shape not in inputs:
                                inputs[shape] = torch.rand(batch_size, 3, clip_len, crop, crop, device=where) * 2 - 1
                            calls[key] = _call(runner, inputs[shape], target)
        times: dict[tuple[str, str, int, int], list[float]] = {key: [] for key in calls}
        references = reference_calls([key[:2] for key in calls]) if target.type == "cpu" else {}
        matmul_times: dict[tuple[str, str], list[float]] = {key: [] for key in references}
        with progress_bar("benchmarking", len(calls) * (warmup + repeats), progress and bool(calls)) as advance:
            for round_ in range(warmup + repeats):
                for key, call in calls.items():
                    started = time.perf_counter()
                    call()
                    if round_ >= warmup:
                        times[key].append((time.perf_counter() - started) / key[3])
                    advance()
                for library, matmul in references.items():
                    for _ in range(MATMULS_PER_ROUND):
                        started = time.perf_counter()
                        matmul()
                        if round_ >= warmup:
                            matmul_times[library].append(time.perf_counter() - started)
    rates = {library: matmul_flops() / statistics.median(measured) / 1e9 for library, measured in matmul_times.items()}
    for key, measured in times.items():
        rows[key] = replace(rows[key], seconds_per_clip=statistics.median(measured),
                            best_seconds_per_clip=min(measured), matmul_gflops=rates.get(key[:2]))
    return list(rows.values())


def _call(runner: Runner, video: torch.Tensor, device: torch.device) -> Callable[[], None]:
    def call() -> None:
        runner(video)
        synchronize(device)

    return call


def runner_device(runner: Runner) -> torch.device:
    return getattr(runner, "device", torch.device("cpu"))


def _runner(backend: str, precision: str, clip_len: int, model: torch.nn.Module, folder: Path | None,
            scratch: Path, device: torch.device, loaded: dict[object, Runner]) -> Runner | str:
    """A backend ready to run ``clip_len``-frame clips, or the reason it cannot be benchmarked here.
    Backends already in ``loaded`` (by precision or model file) are reused."""

    def once(key: object, make: Callable[[], Runner]) -> Runner:
        if key not in loaded:
            loaded[key] = make()
        return loaded[key]

    def folder_onnx(name: str) -> OnnxRuntimeBackend | None:
        """The folder's own ONNX file ``name``, when it exists and takes ``clip_len``-frame clips."""
        if folder is None or not (folder / name).is_file():
            return None
        runner = once(folder / name, lambda: OnnxRuntimeBackend(folder / name, device))
        return None if runner.clip_len_error(clip_len) else runner  # type: ignore[attr-defined, return-value]

    if precision == "int8" and backend != "openvino":
        return "INT8 runs on the openvino backend (actionkit export --int8 --calibrate DATA)"
    if backend in ("torch", "torch-compile"):
        if precision == "fp16" and device.type == "cpu":
            return "fp16 autocast on CPU is emulated (use bf16 or fp32)"
        if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16_matmul():
            return "this CPU has no bf16 matrix units (AMX): bf16 would be emulated and slower than fp32"
        compiled = backend == "torch-compile"
        return once((backend, precision), lambda: TorchBackend(model, device, precision,  # type: ignore[arg-type]
                                                               compile=compiled))
    if backend == "openvino":
        return _openvino_runner(precision, clip_len, model, folder, scratch, device, once)
    if backend == "onnxruntime":
        if not onnxruntime_importable():
            return "onnxruntime is not installed (pip install 'actionkit[onnx]')"
        if precision == "bf16":
            return "no bf16 ONNX is exported (ONNX Runtime's CPU provider has no bf16 convolutions)"
        if precision == "fp16":
            if device.type != "cuda":
                return "fp16 ONNX on the CPU provider is emulated (it is for GPUs)"
            fp16 = folder_onnx(ONNX_FP16_FILE)
            return fp16 or f"no {ONNX_FP16_FILE} for {clip_len} frames (actionkit export --fp16)"
        own = folder_onnx(ONNX_FILE)
        if own is not None:
            return own
        exported = _dynamic_onnx(model, scratch)
        return once(exported, lambda: OnnxRuntimeBackend(exported, device))
    if precision not in ("fp32", "fp16"):
        return "TensorRT engines are built in fp32 or fp16"
    if not tensorrt_importable():
        return "tensorrt is not installed (pip install 'actionkit[tensorrt]')"
    if folder is None or not (folder / ENGINE_FILE).is_file():
        return f"no {ENGINE_FILE} in the model folder (actionkit export --trt)"
    return once(folder / ENGINE_FILE, lambda: TensorRTBackend(folder / ENGINE_FILE))


def _openvino_runner(precision: str, clip_len: int, model: torch.nn.Module, folder: Path | None, scratch: Path,
                     device: torch.device, once: Callable[[object, Callable[[], Runner]], Runner]) -> Runner | str:
    """The folder's OpenVINO model for ``precision`` (fp32: ``model.xml``, else converted on the fly from a
    dynamic-length ONNX; int8: ``model.int8.xml`` only, since INT8 needs calibration clips)."""
    if device.type != "cpu":
        return "OpenVINO runs on the CPU here"
    if not openvino_importable():
        return "openvino is not installed (pip install 'actionkit[openvino]')"
    if precision not in ("fp32", "int8"):
        return "OpenVINO models are exported in fp32 and int8"
    config = model_config_of(model)
    name = OPENVINO_INT8_FILE if precision == "int8" else OPENVINO_FILE
    if folder is not None and (folder / name).is_file():
        runner = once(folder / name, lambda: OpenVinoBackend(folder / name, config))
        if not runner.clip_len_error(clip_len):  # type: ignore[attr-defined]
            return runner
    if precision == "int8":
        return f"no {OPENVINO_INT8_FILE} for {clip_len} frames (actionkit export --int8 --calibrate DATA)"
    exported = scratch / OPENVINO_FILE
    if not exported.is_file():
        from actionkit.export.openvino_export import onnx_to_openvino, save_openvino

        save_openvino(onnx_to_openvino(_dynamic_onnx(model, scratch)), exported, config, "fp32", 8)
    return once(exported, lambda: OpenVinoBackend(exported, config))


def _dynamic_onnx(model: torch.nn.Module, scratch: Path) -> Path:
    """An ONNX export of ``model`` with a dynamic clip length in ``scratch`` (made once)."""
    exported = scratch / ONNX_FILE
    if not exported.is_file():
        from actionkit.export import (  # the onnx extra; imported where used
            OnnxOptions,
            save_onnx,
            to_onnx,
        )

        config = model_config_of(model)
        save_onnx(to_onnx(model, config, OnnxOptions(dynamic_clip_len=True)), exported)  # type: ignore[arg-type]
    return exported


def format_model_speed(rows: Sequence[ModelSpeed]) -> str:
    """A Markdown table: one line per backend × precision × clip length, seconds per clip per batch size."""
    batch_sizes = sorted({r.batch_size for r in rows})
    header = "| backend | precision | frames | " + " | ".join(f"s/clip @ batch {b}" for b in batch_sizes) + " |"
    lines = [header, "|" + "---|" * (3 + len(batch_sizes))]
    groups: dict[tuple[str, str, int], dict[int, ModelSpeed]] = {}
    for r in rows:
        groups.setdefault((r.backend, r.precision, r.clip_len), {})[r.batch_size] = r
    for (backend, precision, clip_len), by_batch in groups.items():
        first = next(iter(by_batch.values()))
        if first.skipped:
            lines.append(f"| {backend} | {precision} | {clip_len} | skipped: {first.skipped} |"
                         + " |" * (len(batch_sizes) - 1))
            continue
        cells = [f"{by_batch[b].seconds_per_clip:.3f}" if b in by_batch else "" for b in batch_sizes]
        lines.append(f"| {backend} | {precision} | {clip_len} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_roofline(rows: Sequence[ModelSpeed], device_name: str | None = None) -> str:
    """One line per measured row: clips/s, achieved TFLOP/s and, on a GPU the peak table knows, the
    share of its data-sheet peak (the compute roofline: peak / FLOPs per clip = the most clips/s). A
    row with a ``matmul_gflops`` (CPU runs of :func:`model_speed`) adds its share of its library's
    matmul rate timed in the same rounds."""
    lines = []
    for r in rows:
        if r.tflops is None:
            continue
        line = (f"{r.backend} {r.precision} {r.clip_len}×{r.crop_size}² batch {r.batch_size}: "
                f"{r.clips_per_second:.1f} clips/s × {r.gflop_per_clip:.1f} GFLOP = "
                + (f"{r.tflops:.1f} TFLOP/s" if r.tflops >= 1 else f"{1000 * r.tflops:.0f} GFLOP/s"))
        peak = peak_tflops(device_name, r.precision) if device_name else None
        if peak:
            ceiling = peak * 1000 / r.gflop_per_clip
            kind = " TF32" if r.precision == "fp32" and torch.backends.cudnn.allow_tf32 else ""
            line += (f", {100 * r.tflops / peak:.1f}% of the {peak:g} TFLOP/s{kind} peak "
                     f"(roofline {ceiling:.0f} clips/s)")
        rate = r.matmul_gflops
        if rate:
            line += (f", {100 * r.tflops * 1000 / rate:.0f}% of this CPU's {r.precision} matmul rate in "
                     f"{r.backend} ({rate:.0f} GFLOP/s, timed in the same rounds)")
        lines.append(line)
    return "\n".join(lines)


def roofline_inputs(rows: Sequence[ModelSpeed], device: DeviceLike) -> tuple[str | None, dict[str, float]]:
    """For the roofline lines and the report on ``device`` (default: CUDA if present): on a GPU its name
    (for :func:`format_roofline`'s data-sheet peak) and no rates; on CPU no name and
    the matmul rates ``"backend precision"`` -> GFLOP/s that :func:`model_speed`
    timed among the rows (each row also carries its own)."""
    target = resolve_device(device)
    if target.type == "cuda":
        return torch.cuda.get_device_name(target), {}
    return None, {f"{r.backend} {r.precision}": r.matmul_gflops for r in rows if r.matmul_gflops}

"""The check every export ends with: each exported artifact against PyTorch on the same clips.

One clip per video (the model's own preprocessing: its clip length, centre crop), PyTorch's logits at
batch 1 as the reference; each backend runs the same clips at each batch size. Reported per backend:
the max absolute logit difference, top-1 agreement, and latency per clip at batch 1.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from actionkit.artifacts import ENGINE_FILE, ONNX_FILE, ONNX_FP16_FILE, OPENVINO_FILE, OPENVINO_INT8_FILE
from actionkit.data.transforms import to_model_input
from actionkit.data.video import expand_video_paths, read_video
from actionkit.data.views import evaluation_views
from actionkit.devices import resolve_device
from actionkit.errors import ActionkitError
from actionkit.files import write_text_atomically
from actionkit.hub import ModelConfig
from actionkit.models.i3d import I3D
from actionkit.predict.backends import OnnxRuntimeBackend, TensorRTBackend, TorchBackend
from actionkit.predict.openvino_runtime import OpenVinoBackend

CHECK_NAME = "export_check.json"
Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BackendCheck:
    """One artifact against PyTorch. ``skipped`` says why it did not run (then the numbers are None)."""

    backend: str
    artifact: str
    max_abs_diff: float | None = None
    top1_agreement: float | None = None
    latency_ms: float | None = None  # per clip, batch 1, median
    batch_sizes: list[int] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class ExportCheck:
    clips: list[str]
    input_shape: list[int]
    reference_latency_ms: float
    backends: list[BackendCheck]
    note: str = ""
    int8_accuracy: dict | None = None  # val top-1 of fp32 and INT8 (Int8Accuracy.to_dict()), with --int8 on a dataset

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        lines = [f"checked on {len(self.clips)} clip(s) of shape {tuple(self.input_shape)} against PyTorch "
                 f"({self.reference_latency_ms:.0f} ms/clip){'; ' + self.note if self.note else ''}",
                 f"{'backend':<22}{'max |Δlogit|':>14}{'top-1 agree':>13}{'ms/clip':>10}  batches"]
        for row in self.backends:
            if row.skipped:
                lines.append(f"{row.backend:<22}  skipped: {row.skipped}")
                continue
            lines.append(f"{row.backend:<22}{row.max_abs_diff:>14.2e}{100 * row.top1_agreement:>12.0f}%"
                         f"{row.latency_ms:>10.0f}  {','.join(map(str, row.batch_sizes))}")
        if self.int8_accuracy:
            a = self.int8_accuracy
            lines.append(f"validation top-1 on {a['videos']} videos: fp32 {100 * a['fp32_top1']:.1f}%, "
                         f"INT8 {100 * a['int8_top1']:.1f}% (same top-1 on {a['agreement']})")
        return "\n".join(lines)


def check_clips(config: ModelConfig, videos: Sequence[str | Path] | None, synthetic: int = 2,
                seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """N×T×3×H×W uint8 clips: one per video (centre clip, centre crop), or random frames when no
    videos are given (``synthetic`` of them)."""
    pre = replace(config.preprocessing, num_clips=1, num_crops=1)
    if not videos:
        generator = torch.Generator().manual_seed(seed)
        shape = (synthetic, pre.clip_len, 3, pre.crop_size, pre.crop_size)
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator), [f"<random {i}>" for i in range(synthetic)]
    paths = expand_video_paths([Path(v) for v in videos])
    clips = []
    for path in paths:
        frames = read_video(path).frames
        views, _ = evaluation_views(lambda wanted: frames[wanted], len(frames), pre)
        clips.append(views[0])
    return torch.stack(clips), [str(p) for p in paths]


def artifacts(folder: Path) -> list[tuple[str, Path]]:
    """(backend label, file) for every exported artifact in ``folder``."""
    found = [("onnxruntime", folder / ONNX_FILE), ("onnxruntime fp16", folder / ONNX_FP16_FILE),
             ("tensorrt", folder / ENGINE_FILE), ("openvino fp32", folder / OPENVINO_FILE),
             ("openvino int8", folder / OPENVINO_INT8_FILE)]
    return [(label, path) for label, path in found if path.is_file()]


def check_export(folder: Path, model: I3D, config: ModelConfig, videos: Sequence[str | Path] | None = None,
                 batch_sizes: Sequence[int] = (1, 3), device: torch.device | str = "cpu",
                 save: bool = True, int8: dict | None = None) -> ExportCheck:
    """Run every artifact in ``folder`` and PyTorch on the same clips; write ``export_check.json``
    (with ``int8``, the val top-1 of fp32 and INT8, when the export measured it)."""
    folder = Path(folder)
    clips, names = check_clips(config, videos)
    video = to_model_input(clips, config.preprocessing.value_range)
    device = resolve_device(device)
    reference_backend = TorchBackend(model, device)
    reference, reference_ms = _run(reference_backend, video, 1)
    rows = []
    for label, path in artifacts(folder):
        try:
            runner = _open(label, path, device, config)
        except ActionkitError as e:
            rows.append(BackendCheck(label, path.name, skipped=str(e)))
            continue
        diffs, agree, latency = [], 1.0, float("nan")
        for size in batch_sizes:
            logits, ms = _run(runner, video, size)
            diffs.append(float((logits - reference).abs().max()))
            agree = min(agree, float((logits.argmax(1) == reference.argmax(1)).float().mean()))
            if size == 1:
                latency = ms
        rows.append(BackendCheck(label, path.name, max(diffs), agree, latency, list(batch_sizes)))
    report = ExportCheck(names, list(video.shape[1:]), reference_ms, rows,
                         note="" if videos else "no videos given: random frames (pass real clips for a meaningful check)",
                         int8_accuracy=int8)
    if save:
        write_text_atomically(folder / CHECK_NAME, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _open(label: str, path: Path, device: torch.device, config: ModelConfig) -> Runner:
    if label.startswith("onnxruntime"):
        return OnnxRuntimeBackend(path, device)
    if label.startswith("openvino"):
        return OpenVinoBackend(path, config)
    return TensorRTBackend(path)


def _run(runner: Runner, video: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, float]:
    """Logits of every clip in batches of ``batch_size`` (float32, CPU), and the median ms per clip."""
    outputs, per_clip = [], []
    with torch.inference_mode():
        runner(video[:1])  # warm-up: first-call allocations and kernel selection are not latency
    for start in range(0, len(video), batch_size):
        chunk = video[start:start + batch_size]
        started = time.perf_counter()
        with torch.inference_mode():
            logits = runner(chunk)
        outputs.append(logits.float().cpu())
        per_clip.append(1000 * (time.perf_counter() - started) / len(chunk))
    return torch.cat(outputs), statistics.median(per_clip) if per_clip else float(np.nan)

"""Recognizer: videos in, top-k labels out.

Stages (as a predictor should be read): load (decode with PyAV, sample clips, resize and crop in uint8,
in background threads, a few videos ahead) -> infer (clips of many videos share batches; the value
range is applied on the model's device) -> postprocess (mean of the clip probabilities, top-k).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence, Union

import numpy as np
import torch

from actionkit.artifacts import CONFIG_FILE, ENGINE_FILE, ONNX_FILE, OPENVINO_FILE, OPENVINO_INT8_FILE
from actionkit.data.transforms import to_model_input
from actionkit.data.video import expand_video_paths
from actionkit.devices import DeviceLike, resolve_device
from actionkit.errors import ActionkitError, VideoError
from actionkit.hub import ModelConfig, load_pretrained, model_config_of, model_folder
from actionkit.models.i3d import I3D
from actionkit.predict.backends import (
    Backend,
    BackendName,
    OnnxRuntimeBackend,
    Precision,
    TensorRTBackend,
    TorchBackend,
    check_backend,
    check_model_file,
    choose_backend,
)
from actionkit.predict.boundaries import DEFAULT_REFINE_WINDOW
from actionkit.predict.clip_loading import load_video
from actionkit.predict.load_ahead import decode_threads, load_ahead
from actionkit.predict.onnx_metadata import read_onnx_config
from actionkit.predict.openvino_runtime import OpenVinoBackend, read_openvino_config
from actionkit.predict.stream import StreamPrediction, stream
from actionkit.predict.timeline import timeline
from actionkit.predict.timeline_result import Timeline
from actionkit.progress import progress_bar

VideoInput = Union[str, os.PathLike, np.ndarray]


@dataclass(frozen=True)
class Prediction:
    """One class and its probability (mean over the video's clips)."""

    label: str
    score: float


@dataclass
class VideoResult:
    """The outcome for one input video: predictions, or the error that prevented them."""

    video: str
    predictions: list[Prediction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def top1(self) -> Prediction | None:
        return self.predictions[0] if self.predictions else None

    def to_dict(self) -> dict[str, Any]:
        """``{"video", "predictions": [{"label", "score"}]}``, plus ``warnings`` / ``error`` when set."""
        out: dict[str, Any] = {"video": self.video,
                               "predictions": [{"label": p.label, "score": p.score} for p in self.predictions]}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class _PreparedVideo:
    index: int
    clips: torch.Tensor  # (clips × crops)×T×3×H×W uint8
    warnings: list[str]


class Recognizer:
    """Action recognition over video files or frame arrays with an I3D and its config.json contract,
    run by PyTorch, ONNX Runtime or TensorRT (see :mod:`actionkit.predict.backends`); the preprocessing
    and the result format are the same whichever runs it. It is a
    :class:`~actionkit.predict.clip_scorer.ClipScorer`, which is how timelines and streams use it."""

    def __init__(self, model: I3D | Backend, config: ModelConfig | None = None,
                 device: DeviceLike = None, precision: Precision = "auto",
                 compile: bool = False) -> None:
        """``precision`` (PyTorch models): ``auto`` is fp16 autocast on CUDA, bf16 on CPUs with AMX,
        fp32 on other CPUs (:func:`~actionkit.predict.backends.resolve_precision`). ``compile``:
        run the model through ``torch.compile`` (CUDA graphs on a GPU). The model is checked against
        ``config`` first (:func:`~actionkit.predict.backends.check_backend`): a model whose number of
        classes, input shape or clip lengths disagree with it is a
        :class:`~actionkit.errors.CheckpointError`, so labels are never mapped onto another model's outputs."""
        if isinstance(model, I3D):
            self.config = config or model_config_of(model)
            check_model_file("the PyTorch model", self.config, num_classes=model.num_classes)
            self.backend: Backend = TorchBackend(model, resolve_device(device), precision, compile=compile)
        else:
            if config is None:
                raise ValueError("a backend needs its ModelConfig (labels and preprocessing)")
            check_backend(model, config)
            self.config, self.backend = config, model
        self.device = self.backend.device
        self.last_batch_sizes: list[int] = []  # clips in each batch of the latest predict(), in order

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, device: DeviceLike = None,
                        backend: BackendName = "auto", precision: Precision = "auto", compile: bool = False,
                        **hub_kwargs: Any) -> "Recognizer":
        """From a Hub folder, a training run folder (its ``best/`` model, else ``last/``), an export folder
        (``actionkit export``), a ``.onnx``, ``.engine`` or OpenVINO ``.xml`` file, a DeepMind / pytorch-i3d
        checkpoint file or a Hub repo id (``revision=``, ``cache_dir=``, ``local_files_only=``, ``token=``
        go to the Hub download). ``backend``: ``"torch"``, ``"onnxruntime"``, ``"tensorrt"`` and
        ``"openvino"`` need the matching file (``model.safetensors``, ``model.onnx``, ``model.engine``,
        ``model.int8.xml`` or ``model.xml``); ``"auto"`` takes the fastest the folder and machine allow
        (:attr:`backend_description` says which). ``precision``: for the torch backend auto / fp32 /
        bf16 / fp16; for openvino auto (INT8 when the folder has it) / int8 / fp32. ``compile`` applies to
        the torch backend. Raises :class:`~actionkit.errors.ActionkitError` naming the folder when the
        backend's file is missing, and a :class:`~actionkit.errors.CheckpointError` naming the file when it
        is unreadable, its config (config.json or the one inside it) is invalid, or the model disagrees
        with that config (outputs per label, input N×C×T×crop×crop, clip length; see
        :func:`~actionkit.predict.backends.check_backend`). An ONNX model whose batch axis is fixed at 1
        runs one clip at a time."""
        target = resolve_device(device)
        path = Path(source).expanduser()
        if path.is_dir():
            path = source = model_folder(path)
        if path.is_file() and path.suffix in _ARTIFACT_BACKENDS:
            folder, artifact = path.parent, path
            chosen = _ARTIFACT_BACKENDS[path.suffix]
            if backend not in ("auto", chosen):
                raise ActionkitError(f"{path}: a {path.suffix} file runs with backend {chosen!r}, not {backend!r}")
        else:
            folder = path if path.is_dir() else None
            chosen = choose_backend(backend, folder, target, precision)
            artifact = None
        if chosen == "torch":
            return cls(load_pretrained(source, **hub_kwargs), device=target, precision=precision, compile=compile)
        if folder is None:
            raise ActionkitError(f"{source}: backend {chosen!r} needs an export folder or file "
                                 "(made by actionkit export), not a checkpoint or repo id")
        file = artifact or _artifact_file(folder, chosen, precision)
        if not file.is_file():
            flag = {"onnxruntime": "--onnx", "tensorrt": "--trt", "openvino": "--openvino"}[chosen]
            if file.name == OPENVINO_INT8_FILE:
                flag = "--int8 --calibrate DATA"
            raise ActionkitError(f"{folder}: no {file.name} for backend {chosen!r}; make one with "
                                 f"actionkit export --model ... {flag} --out {folder}")
        config = _artifact_config(file)
        if chosen == "onnxruntime":
            runner: Backend = OnnxRuntimeBackend(file, target)
        elif chosen == "openvino":
            runner = OpenVinoBackend(file, config)
        else:
            runner = TensorRTBackend(file)
        return cls(runner, config)

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    # --- public API ------------------------------------------------------------------------------

    def predict(self, videos: VideoInput | Sequence[VideoInput], top_k: int = 5, batch_size: int = 4,
                num_clips: int | None = None, num_crops: int | None = None,
                on_error: Literal["report", "raise"] = "report",
                progress: bool = False) -> list[VideoResult]:
        """Top-k labels for each video, in input order.

        ``videos``: file paths, folders (expanded to the videos inside), or uint8 T×H×W×3 arrays.
        ``batch_size`` counts clips; clips of different videos share a batch, and a batch runs before it
        is full when the next video is still decoding, so the model does not idle (not with ``compile``,
        which keeps batch shapes few). ``num_clips`` overrides the config's clips per video and
        ``num_crops`` (1 or 3) its crops; every clip × crop is scored and the probabilities are averaged.
        With ``on_error="report"`` a bad video gets a result whose ``error`` says what is wrong and the
        others are still predicted; ``"raise"`` raises its :class:`VideoError` instead.
        """
        if top_k < 1 or batch_size < 1:
            raise ValueError("top_k and batch_size must be at least 1")
        if num_crops not in (None, 1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        inputs = self._named_inputs(videos)
        results = [VideoResult(name) for name, _ in inputs]
        probabilities: dict[int, list[torch.Tensor]] = {}
        expected: dict[int, int] = {}
        pending: list[tuple[int, torch.Tensor]] = []  # (video index, one clip T×3×H×W)

        self.last_batch_sizes = []

        def flush() -> None:
            self.last_batch_sizes.append(len(pending))
            batch = torch.stack([clip for _, clip in pending])
            probs = self.score_clips(batch)
            for (owner, _), p in zip(pending, probs):
                probabilities[owner].append(p)
                if len(probabilities[owner]) == expected[owner]:
                    results[owner].predictions = self.top_predictions(torch.stack(probabilities.pop(owner)), top_k)
            pending.clear()

        early = self._runs_partial_batches
        with progress_bar("predicting", len(inputs), progress) as advance:
            views = (num_clips, num_crops)
            for index, loading in load_ahead(lambda i, named: self._load(i, *named, views), inputs,
                                             ahead=max(2, batch_size), model_on_cpu=self.device.type == "cpu"):
                if early and pending and not loading.done():
                    flush()  # the model would wait for this video: run the clips already loaded meanwhile
                try:
                    item = loading.result()
                except VideoError as error:
                    if on_error == "raise":
                        raise
                    results[index].error = str(error)
                    advance()
                    continue
                results[item.index].warnings = item.warnings
                probabilities[item.index], expected[item.index] = [], len(item.clips)
                for clip in item.clips:
                    pending.append((item.index, clip))
                    if len(pending) == batch_size:
                        flush()
                advance()
            if pending:
                flush()
        return results

    def timeline(self, video: str | os.PathLike, window: int | None = None, stride: int | None = None,
                 batch_size: int | None = None, top_k: int = 5, threshold: float = 0.5,
                 progress: bool = False, refine_window: int | None = DEFAULT_REFINE_WINDOW) -> Timeline:
        """An action timeline of a whole video, decoded once: sliding windows of ``window`` model frames
        (default: the config's clip length) starting every ``stride`` source frames (default: half a
        window), batched ``batch_size`` at a time (default 2 on CPU, 8 on a GPU). Returns each window's
        start and end in seconds and its top-k, the video-level summary (mean over windows) and the
        segments where one label stays on top with probability ≥ ``threshold``. Each boundary between
        two labels is then refined with short windows of ``refine_window`` model frames scored around it
        (two labels compete; see :mod:`actionkit.predict.boundaries`), which costs a second, partial decode
        and a few windows' compute per boundary; ``refine_window=None`` keeps the window-level
        boundaries. Memory is bounded by the window and the batch, not the video's length.
        :meth:`Timeline.save` writes JSON, CSV and a PNG plot."""
        return timeline(self, video, window, stride, batch_size, top_k, threshold, progress, refine_window)

    def stream(self, source: str | os.PathLike, window: int | None = None, stride: int | None = None,
               top_k: int = 5, timeout: float = 10.0, realtime: bool | None = None, format: str | None = None,
               options: dict[str, str] | None = None) -> Iterator[StreamPrediction]:
        """Predictions over a live source PyAV can open (an HTTP or RTSP URL, a webcam such as
        ``/dev/video0``, or a file), one every ``stride`` frames on the latest ``window`` frames.

        The source is opened here: an unreachable one raises :class:`~actionkit.data.frame_source.StreamError`
        within ``timeout`` seconds (which also bounds each read). Frames are decoded in a background
        thread into a ring buffer of one window; with ``realtime`` (default: URLs and devices) a window
        the model has not reached when the next is ready is skipped, so latency stays bounded, and each
        prediction says how many were skipped. The generator ends at the end of the stream, on Ctrl-C,
        or when the caller stops iterating; the decoder thread and the source are closed each time."""
        return stream(self, source, window, stride, top_k, timeout, realtime, format, options)

    # --- stages ------------------------------------------------------------------------------------

    @staticmethod
    def _named_inputs(videos: VideoInput | Sequence[VideoInput]) -> list[tuple[str, VideoInput | VideoError]]:
        """``(name, input)`` per video, folders expanded to the videos inside; an input that yields no video
        (a folder without any) stays one entry whose input is its :class:`VideoError`, which :meth:`_load`
        raises, so it becomes one failed result and the other inputs are still predicted."""
        if isinstance(videos, (str, os.PathLike, np.ndarray)):
            videos = [videos]
        named: list[tuple[str, VideoInput | VideoError]] = []
        for i, video in enumerate(videos):
            if isinstance(video, np.ndarray):
                named.append((f"<array {i}>", video))
                continue
            try:
                named.extend((str(p), p) for p in expand_video_paths([Path(video)]))
            except VideoError as error:
                named.append((str(video), error))
        return named

    def load_clips(self, video: str | os.PathLike | np.ndarray, num_clips: int | None = None,
                   num_crops: int | None = None) -> torch.Tensor:
        """The load stage for one video file or T×H×W×3 uint8 frame array: decode only the frames the
        clips use, sample the clips and crop them, as :meth:`predict` does. Returns
        (clips × crops)×T×3×H×W uint8, ready for :meth:`score_clips`. Raises a
        :class:`~actionkit.errors.VideoError` for a video that cannot be used."""
        name = "<array>" if isinstance(video, np.ndarray) else str(video)
        return self._load(0, name, video, (num_clips, num_crops)).clips

    def _load(self, index: int, name: str, video: VideoInput | VideoError,
              views: tuple[int | None, int | None]) -> _PreparedVideo:
        """Decode (only the frames the clips use), sample clips and crop (uint8). Runs in a worker thread.
        ``views``: (clips, crops) overrides. ``video`` may be the error of an input that yielded no video
        (see :meth:`_named_inputs`): it is raised."""
        if isinstance(video, VideoError):
            raise video
        loaded = load_video(name, video, self.config.preprocessing, *views, threads=decode_threads())
        return _PreparedVideo(index, loaded.clips, loaded.warnings)

    @property
    def _runs_partial_batches(self) -> bool:
        """Whether a batch may run before it is full, as soon as the model would otherwise wait for
        decoding: yes, except for a compiled model, which keeps to few batch shapes (each new one compiles)."""
        return not getattr(self.backend, "compiled", False)

    @property
    def model(self) -> I3D:
        """The PyTorch I3D (torch backend only)."""
        if not isinstance(self.backend, TorchBackend):
            raise AttributeError(f"the {self.backend.name} backend has no PyTorch model")
        return self.backend.model  # type: ignore[return-value]

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def backend_description(self) -> str:
        """The backend, its precision and the file it runs, e.g. ``openvino int8 (model.int8.xml)``."""
        precision = getattr(self.backend, "precision", "fp32")
        path = getattr(self.backend, "path", None)
        return f"{self.backend.name} {precision}" + (f" ({Path(path).name})" if path else "")

    @property
    def fixed_clip_len(self) -> int | None:
        """The only clip length the backend's model file takes, or None when it takes several."""
        return getattr(self.backend, "fixed_clip_len", None)

    def clip_len_error(self, frames: int) -> str | None:
        """Why the backend cannot take ``frames``-frame clips (e.g. "takes clips of exactly 64 frames"), or None."""
        check = getattr(self.backend, "clip_len_error", None)
        return check(frames) if check else None

    @torch.inference_mode()
    def score_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """Class probabilities of preprocessed clips: N×T×3×H×W uint8 (sampled, resized and cropped as
        the config says) -> N×num_classes float32 on the CPU. The value range is applied here, on the
        model's device."""
        x = to_model_input(clips.to(self.device, non_blocking=True), self.config.preprocessing.value_range)
        return torch.softmax(self.backend(x).float(), dim=1).cpu()

    def top_predictions(self, clip_probs: torch.Tensor, k: int) -> list[Prediction]:
        """A video's ``k`` best classes from the probabilities of its clips (V×classes): the mean over
        the clips, highest first, as :meth:`predict` reports them."""
        scores, indices = clip_probs.mean(dim=0).topk(min(k, clip_probs.shape[1]))
        labels = self.labels
        return [Prediction(labels[int(i)], float(s)) for s, i in zip(scores, indices)]


_ARTIFACT_BACKENDS = {".onnx": "onnxruntime", ".engine": "tensorrt", ".xml": "openvino"}


def _artifact_file(folder: Path, backend: str, precision: str) -> Path:
    """The file ``backend`` runs in an export folder: for OpenVINO the INT8 model unless fp32 is asked
    for (or there is none and int8 was not asked for)."""
    if backend == "onnxruntime":
        return folder / ONNX_FILE
    if backend == "tensorrt":
        return folder / ENGINE_FILE
    int8 = folder / OPENVINO_INT8_FILE
    if precision == "int8" or (precision == "auto" and int8.is_file()):
        return int8
    return folder / OPENVINO_FILE


def _artifact_config(file: Path) -> ModelConfig:
    """The config of an exported artifact: ``config.json`` beside it, else the ONNX metadata."""
    beside = file.parent / CONFIG_FILE
    if beside.is_file():
        return ModelConfig.load(beside)
    if file.suffix == ".onnx":
        return read_onnx_config(file)
    if file.suffix == ".xml":
        return read_openvino_config(file)
    raise ActionkitError(f"{file}: no {CONFIG_FILE} beside it (labels and preprocessing are needed)")

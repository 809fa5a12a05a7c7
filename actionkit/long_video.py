"""Recognizer.timeline (a whole video, windows batched) and Recognizer.stream (a live source, a
prediction every ``stride`` frames). Both decode in a background thread that feeds cropped windows
through a bounded queue (see :mod:`actionkit.timeline` for the windowing); the model runs in the
caller's thread."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from actionkit.data.frame_source import FrameSource, is_live_source
from actionkit.data.sampling import clip_span, sliding_windows
from actionkit.errors import ActionkitError
from actionkit.progress import progress_bar
from actionkit.timeline import (
    CHUNK_FRAMES,
    Timeline,
    Window,
    WindowPrediction,
    crop_frames,
    merge_segments,
    sliding,
    summarise,
    window_predictions,
)
from actionkit.timeline_refine import DEFAULT_REFINE_WINDOW, refine_segments

if TYPE_CHECKING:
    from actionkit.predict import Recognizer

_END = object()


@dataclass(frozen=True)
class StreamPrediction:
    """One live prediction: the window's span and top-k, the seconds from its last frame being decoded
    to the prediction being ready, and how many windows were skipped before it to keep up."""

    window: WindowPrediction
    latency: float
    skipped: int

    @property
    def label(self) -> str:
        return self.window.label

    @property
    def score(self) -> float:
        return self.window.score


def _window_settings(recognizer: "Recognizer", window: int | None, stride: int | None) -> tuple[int, int, int]:
    pre = recognizer.config.preprocessing
    window = window or pre.clip_len
    frame_stride = pre.frame_stride if pre.frame_sampling == "consecutive" else 1
    stride = stride or max(1, clip_span(window, frame_stride) // 2)
    if window < 1 or stride < 1:
        raise ValueError("window and stride must be at least 1")
    problem = _clip_len_error(recognizer, window)
    if problem:
        raise ActionkitError(f"the {recognizer.backend_name} model {problem}, not a {window}-frame window: choose "
                             "--window accordingly, use the torch backend, or export the ONNX with a dynamic clip "
                             "length (actionkit export --dynamic-clip-len)")
    return window, stride, frame_stride


def _clip_len_error(recognizer: "Recognizer", frames: int) -> str | None:
    check = getattr(recognizer.backend, "clip_len_error", None)
    return check(frames) if check else None


def default_timeline_batch(device: torch.device) -> int:
    """Windows per forward pass: 2 on CPU, where larger batches are no faster per clip and each 64-frame
    224² window adds about 350 MB of activations (benchmarks/timeline_memory.py); 8 on a GPU."""
    return 8 if device.type == "cuda" else 2


class _Producer(threading.Thread):
    """Decode, crop and window in the background; put windows (or the error, then _END) on ``out``.
    With ``latest_only`` a window not yet taken is replaced by the next one (live sources keep up)."""

    def __init__(self, source: FrameSource, recognizer: "Recognizer", window: int, stride: int, frame_stride: int,
                 out: queue.Queue, latest_only: bool) -> None:
        super().__init__(name="actionkit-decode", daemon=True)
        self.source, self.pre = source, recognizer.config.preprocessing
        self.window, self.stride, self.frame_stride = window, stride, frame_stride
        self.out, self.latest_only = out, latest_only
        self.stop = threading.Event()
        self.skipped = 0

    def run(self) -> None:
        try:
            frames = crop_frames(self._chunks(), self.pre)
            for item in sliding(frames, self.window, self.stride, self.frame_stride):
                if not self._put((item, time.perf_counter())):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, which raises it in the caller's thread
            self._put(error)
            self._put(_END)
        finally:
            self.source.close()

    def _chunks(self) -> Iterator[np.ndarray]:
        for chunk in self.source.chunks(CHUNK_FRAMES):
            if self.stop.is_set():
                return
            yield chunk

    def _put(self, item: Any) -> bool:
        if self.latest_only and isinstance(item, tuple):
            try:
                self.out.get_nowait()
                self.skipped += 1
            except queue.Empty:
                pass
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _windows(producer: _Producer, out: queue.Queue) -> Iterator[tuple[Window, float]]:
    producer.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.stop.set()
        producer.join(timeout=30)


def timeline(recognizer: "Recognizer", video: str | Path, window: int | None = None, stride: int | None = None,
             batch_size: int | None = None, top_k: int = 5, threshold: float = 0.5, progress: bool = False,
             refine_window: int | None = DEFAULT_REFINE_WINDOW) -> Timeline:
    """See :meth:`actionkit.predict.Recognizer.timeline`."""
    if is_live_source(video):
        raise ActionkitError(f"{video}: a live source has no end; use Recognizer.stream() for it")
    window, stride, frame_stride = _window_settings(recognizer, window, stride)
    batch_size = batch_size or default_timeline_batch(recognizer.device)
    if batch_size < 1 or top_k < 1:
        raise ValueError("batch_size and top_k must be at least 1")
    if refine_window is not None and refine_window < 0:
        raise ValueError("refine_window must be positive (or 0 / None to keep window-level boundaries)")
    fixed = getattr(recognizer.backend, "fixed_clip_len", None)  # a fixed-length model gets short windows looped
    problem = _clip_len_error(recognizer, refine_window) if refine_window and not fixed else None
    if problem:
        raise ActionkitError(f"the {recognizer.backend_name} model {problem}, not {refine_window}-frame windows "
                             "for refining boundaries: choose --refine-window accordingly (0 turns refinement off)")
    source = FrameSource(video)
    fps, declared = source.fps, source.declared_frames
    span = clip_span(window, frame_stride)
    expected = len(sliding_windows(declared, span, stride)) if declared else 0  # for the progress bar
    out: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    producer = _Producer(source, recognizer, window, stride, frame_stride, out, latest_only=False)
    spans: list[tuple[int, int]] = []
    probabilities: list[np.ndarray] = []
    warnings: list[str] = []
    pending: list[Window] = []

    def flush() -> None:
        probs = recognizer._infer(torch.stack([w.clip for w in pending]))
        probabilities.extend(probs.numpy())
        spans.extend((w.start, w.end) for w in pending)
        pending.clear()

    feed = _windows(producer, out)
    with progress_bar(f"timeline of {Path(video).name}", expected, progress and expected > 0) as advance:
        try:
            for item, _ in feed:
                if item.looped:
                    warnings.append(f"{video}: {item.end} frames, shorter than one {span}-frame window; "
                                    "looped to fill it")
                pending.append(item)
                if len(pending) == batch_size:
                    flush()
                advance()
        finally:
            feed.close()
        if pending:
            flush()
    num_frames = source.decoded
    table = np.stack(probabilities).astype(np.float32)
    labels = recognizer.labels
    windows = window_predictions(spans, table, labels, fps, top_k)
    segments = merge_segments(windows, num_frames, fps, threshold)
    refine = bool(refine_window) and refine_window < window and num_frames > span
    if refine:
        segments = refine_segments(recognizer, video, segments, num_frames, fps, reach=span,
                                   short_window=refine_window, frame_stride=frame_stride, batch_size=2 * batch_size,
                                   progress=progress)
    return Timeline(str(video), fps, num_frames, window, stride, labels, windows, table,
                    summarise(table, labels, top_k), segments, threshold, warnings,
                    refine_window if refine else 0)


def stream(recognizer: "Recognizer", source: str | Path, window: int | None = None, stride: int | None = None,
           top_k: int = 5, timeout: float = 10.0, realtime: bool | None = None, format: str | None = None,
           options: dict[str, str] | None = None) -> Iterator[StreamPrediction]:
    """See :meth:`actionkit.predict.Recognizer.stream`. Opens the source now (so an unreachable one fails
    here, within ``timeout``) and returns the generator of predictions."""
    window, stride, frame_stride = _window_settings(recognizer, window, stride)
    opened = FrameSource(source, timeout=timeout, format=format, options=options)
    live = opened.live if realtime is None else realtime
    out: queue.Queue = queue.Queue(maxsize=1 if live else 2)
    producer = _Producer(opened, recognizer, window, stride, frame_stride, out, latest_only=live)
    return _predictions(recognizer, producer, out, top_k)


def _predictions(recognizer: "Recognizer", producer: _Producer, out: queue.Queue,
                 top_k: int) -> Iterator[StreamPrediction]:
    feed = _windows(producer, out)
    skipped_before = 0
    try:
        for item, ready in feed:
            probs = recognizer._infer(item.clip[None]).numpy()
            (prediction,) = window_predictions([(item.start, item.end)], probs, recognizer.labels,
                                               producer.source.fps, top_k)
            skipped = producer.skipped - skipped_before
            skipped_before = producer.skipped
            yield StreamPrediction(prediction, time.perf_counter() - ready, skipped)
    except KeyboardInterrupt:  # Ctrl-C ends the stream cleanly
        return
    finally:  # also when the caller stops iterating: stop the decoder thread, close the source
        feed.close()
        if not producer.is_alive():
            producer.source.close()

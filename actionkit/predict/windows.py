"""Sliding windows over a video or a live source, decoded once, in a background thread.

Frames are decoded in order, resized and centre-cropped in uint8 as they arrive (in chunks), and kept
in a ring buffer just long enough for one window, so memory depends on the window and the batch, not
on the video's length. A window is ``window`` model frames taken every ``frame_stride`` source frames
(the model config's sampling; 1 for DeepMind's I3D), and a new one starts every ``stride`` source
frames; the last window is flush with the end, and a video shorter than one window is looped once.
The :class:`WindowProducer` thread feeds windows through a bounded queue; the model runs in the
caller's thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from actionkit.config import PreprocessConfig
from actionkit.data.frame_source import FrameSource
from actionkit.data.sampling import clip_span
from actionkit.data.transforms import resize_and_crop
from actionkit.errors import ActionkitError
from actionkit.predict.clip_scorer import ClipScorer

CHUNK_FRAMES = 16  # frames resized together (one interpolate call), a few MB of uint8
_END = object()


@dataclass(frozen=True)
class Window:
    """One window's clip: source frames [start, end), its uint8 T×3×S×S frames, and whether it was looped."""

    start: int
    end: int
    clip: torch.Tensor
    looped: bool = False


def crop_frames(chunks: Iterable[np.ndarray], pre: PreprocessConfig) -> Iterator[torch.Tensor]:
    """N×H×W×3 uint8 chunks -> one 3×S×S uint8 frame at a time, resized and centre-cropped like prediction."""
    for chunk in chunks:
        yield from resize_and_crop(chunk, pre.resize_short_side, pre.crop_size)[0]


def sliding(frames: Iterable[torch.Tensor], window: int, stride: int, frame_stride: int = 1) -> Iterator[Window]:
    """Windows over a stream of cropped frames, holding only one window's span of frames at a time."""
    if window < 1 or stride < 1 or frame_stride < 1:
        raise ValueError("window, stride and frame_stride must be at least 1")
    span = clip_span(window, frame_stride)
    buffer: deque[torch.Tensor] = deque(maxlen=span)
    count, last_end = 0, 0
    for frame in frames:
        buffer.append(frame)
        count += 1
        start = count - span
        if start >= 0 and start % stride == 0:
            last_end = count
            yield Window(start, count, torch.stack(list(buffer)[::frame_stride]))
    if count == 0:
        return
    if count < span:  # shorter than one window: loop it, as prediction does
        indices = (np.arange(window) * frame_stride) % count
        frames_so_far = list(buffer)
        yield Window(0, count, torch.stack([frames_so_far[i] for i in indices]), looped=True)
    elif last_end < count:  # the last window flush with the end
        yield Window(count - span, count, torch.stack(list(buffer)[::frame_stride]))


def window_settings(scorer: ClipScorer, window: int | None, stride: int | None) -> tuple[int, int, int]:
    """(window, stride, frame_stride) with the defaults filled in: the config's clip length, half a window's
    span, and the config's frame stride for consecutive sampling. Raises when the model cannot take the window."""
    pre = scorer.config.preprocessing
    window = window or pre.clip_len
    frame_stride = pre.frame_stride if pre.frame_sampling == "consecutive" else 1
    stride = stride or max(1, clip_span(window, frame_stride) // 2)
    if window < 1 or stride < 1:
        raise ValueError("window and stride must be at least 1")
    problem = scorer.clip_len_error(window)
    if problem:
        raise ActionkitError(f"the {scorer.backend_name} model {problem}, not a {window}-frame window: choose "
                             "--window accordingly, use the torch backend, or export the ONNX with a dynamic clip "
                             "length (actionkit export --dynamic-clip-len)")
    return window, stride, frame_stride


def default_timeline_batch(device: torch.device) -> int:
    """Windows per forward pass: 2 on CPU, where larger batches are no faster per clip and each 64-frame
    224² window adds about 350 MB of activations (benchmarks/timeline_memory.py); 8 on a GPU."""
    return 8 if device.type == "cuda" else 2


class WindowProducer(threading.Thread):
    """Decode, crop and window in the background; put windows (or the error, then _END) on ``out``.
    With ``latest_only`` a window not yet taken is replaced by the next one (live sources keep up)."""

    def __init__(self, source: FrameSource, scorer: ClipScorer, window: int, stride: int, frame_stride: int,
                 out: queue.Queue, latest_only: bool) -> None:
        super().__init__(name="actionkit-decode", daemon=True)
        self.source, self.pre = source, scorer.config.preprocessing
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


def window_feed(producer: WindowProducer, out: queue.Queue) -> Iterator[tuple[Window, float]]:
    """Start ``producer`` and yield (window, time it was ready) from ``out``; a decoding error is raised
    here, in the caller's thread. Closing the generator stops the producer."""
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

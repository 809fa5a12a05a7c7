"""Optical-flow targets for Rev2Net's flow decoder: TV-L1 (the paper's choice) or DIS (fast), quantised
to uint8 and cached on disk, one ``.npy`` per (video, settings).

``flow[i]`` is the motion from decoded frame ``i`` to frame ``i + 1`` (T frames give T-1 flows), channels
(u, v) = (x, y) displacement in pixels at the resolution it was computed at. Stored flows are uint8 over
[-bound, bound] px (DeepMind's convention: bound 20, and [-1, 1] = px / bound as a network target).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from actionkit.data.transforms import short_side_size
from actionkit.data.video import as_frames, read_video
from actionkit.errors import VideoError, VideoNotFoundError
from actionkit.files import ensure_writable_folder, write_atomically
from actionkit.progress import progress_bar

# Bumped whenever what a cache entry holds changes for the same settings (its key includes it).
FORMAT_VERSION = 1

_METHODS = ("dis", "tvl1")
_DIS_PRESETS = ("ultrafast", "fast", "medium")


@dataclass(frozen=True)
class FlowConfig:
    """How flow targets are computed: the method, the short side frames are resized to first
    (``None``: the video's own resolution), the quantisation bound in pixels and DIS's preset."""

    method: Literal["dis", "tvl1"] = "dis"
    short_side: int | None = 128
    bound: float = 20.0
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"flow method must be one of {', '.join(_METHODS)}, got {self.method!r}")
        if self.dis_preset not in _DIS_PRESETS:
            raise ValueError(f"dis_preset must be one of {', '.join(_DIS_PRESETS)}, got {self.dis_preset!r}")
        if self.short_side is not None and (not isinstance(self.short_side, int) or self.short_side < 1):
            raise ValueError(f"short_side must be a positive int or None, got {self.short_side!r}")
        if not self.bound > 0:
            raise ValueError(f"bound must be positive, got {self.bound!r}")
        object.__setattr__(self, "bound", float(self.bound))  # 20 and 20.0: one setting, one key

    def key(self) -> str:
        """A short hash of every setting and the entry format: equal settings, equal key."""
        text = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- computing -----------------------------------------------------------------------------------

def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError("optical flow needs OpenCV with its contrib modules: "
                          "pip install opencv-contrib-python-headless") from None
    return cv2


def _estimator(config: FlowConfig):
    cv2 = _cv2()
    if config.method == "dis":
        preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[config.dis_preset]
        return cv2.DISOpticalFlow_create(preset)
    if not hasattr(cv2, "optflow"):
        raise ImportError("TV-L1 flow needs OpenCV's contrib modules (cv2.optflow): "
                          "pip install opencv-contrib-python-headless instead of opencv-python")
    return cv2.optflow.DualTVL1OpticalFlow_create()  # OpenCV's defaults


def _gray(frame: np.ndarray, short_side: int | None) -> np.ndarray:
    """H×W×3 uint8 RGB -> h×w uint8 grayscale, resized to ``short_side`` first (area filter when
    shrinking, bilinear when enlarging)."""
    cv2 = _cv2()
    if short_side is not None:
        size = short_side_size(frame.shape[0], frame.shape[1], short_side)
        if size != frame.shape[:2]:
            shrink = size[0] < frame.shape[0]
            frame = cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def compute_flow(frames: np.ndarray, config: FlowConfig = FlowConfig()) -> np.ndarray:
    """T×H×W×3 uint8 RGB frames -> (T-1)×h×w×2 float32 flow in pixels; ``flow[i]`` is frame i -> i+1.
    (h, w) is the frame size with its short side resized to ``config.short_side``."""
    frames = as_frames(frames, "frames")
    estimator = _estimator(config)
    previous = _gray(frames[0], config.short_side)
    flow = np.empty((len(frames) - 1, *previous.shape, 2), np.float32)
    for i in range(1, len(frames)):
        current = _gray(frames[i], config.short_side)
        flow[i - 1] = estimator.calc(previous, current, None)
        previous = current
    return flow


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N)×h×w×2 flow in pixels -> (N)×height×width×2, vectors rescaled with the image (u by
    width / w, v by height / h), so they stay displacements in pixels of the new size."""
    cv2 = _cv2()
    single = flow.ndim == 3
    fields = flow[None] if single else flow
    h, w = fields.shape[1:3]
    shrink = height < h
    out = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
                    for f in fields]).astype(np.float32)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out[0] if single else out


def quantize_flow(flow: np.ndarray, bound: float) -> np.ndarray:
    """Flow in pixels -> uint8: [-bound, bound] spread over 0..255 (beyond the bound is clipped)."""
    scaled = (np.clip(np.asarray(flow, np.float32), -bound, bound) + bound) * np.float32(255 / (2 * bound))
    return np.round(scaled).astype(np.uint8)


def dequantize_flow(q: np.ndarray | torch.Tensor, bound: float) -> np.ndarray | torch.Tensor:
    """uint8 from :func:`quantize_flow` -> float32 pixels (within bound / 255 of the original); a numpy
    array or a torch tensor (on any device) in, the same kind out."""
    if isinstance(q, torch.Tensor):
        return q.float() * (2 * bound / 255) - bound
    return q.astype(np.float32) * np.float32(2 * bound / 255) - np.float32(bound)


def flow_between(flows: np.ndarray, indices: np.ndarray, bound: float) -> np.ndarray:
    """The flow leaving each of a clip's frames toward the clip's next frame, from a video's
    frame-to-frame flows: ``flows`` (T_video − 1)×h×w×2 uint8 (flow k = frame k -> k + 1, as cached),
    ``indices`` the clip's frame numbers; returns len(indices)×h×w×2 uint8 in the same quantisation.

    For clip frames a -> b with b > a it is the sum of flows a .. b − 1: the displacement over the gap,
    adding the per-frame vectors at the same pixel (no warping between them, so a sub-pixel approximation
    for the few-pixel motions of a stride of a few frames). The last frame takes the gap before it;
    b = a (a repeated frame) gives zero flow; b < a (a short video looping to its start) and frames past
    the last flow fall back to the single frame-to-frame flow at a (or the last one).
    """
    indices = np.asarray(indices, dtype=np.int64)
    last = len(flows) - 1
    gaps = np.diff(indices)
    ends = indices + np.append(gaps, gaps[-1] if len(gaps) else 1)
    out = np.empty((len(indices), *flows.shape[1:]), np.float32)
    for i, (start, end) in enumerate(zip(indices, ends)):
        if end == start:
            out[i] = 0.0
        elif end < start or start >= last:
            out[i] = dequantize_flow(np.asarray(flows[min(start, last)]), bound)
        else:
            out[i] = dequantize_flow(np.asarray(flows[start:min(end, last + 1)]), bound).sum(axis=0)
    return quantize_flow(out, bound)


def unit_flow(flow: np.ndarray, bound: float) -> np.ndarray:
    """Flow in pixels -> [-1, 1] (px / bound, clipped): DeepMind's scale for flow inputs and targets."""
    return np.clip(np.asarray(flow, np.float32), -bound, bound) / np.float32(bound)


# --- the cache -----------------------------------------------------------------------------------

def default_cache_root() -> Path:
    """``$ACTIONKIT_CACHE/flow``, or ``~/.cache/actionkit/flow``."""
    return Path(os.environ.get("ACTIONKIT_CACHE") or Path.home() / ".cache" / "actionkit").expanduser() / "flow"


class FlowCache:
    """On-disk cache of quantised flows, one .npy per (video, config) entry.

    Entries live in ``root/<config.key()>/`` and are named after the video's resolved path, size and
    modification time: a changed video or setting is a new key, so nothing stale is ever read. Entries
    are written to a temporary file and renamed, so they are always whole (an interrupted run leaves
    no half entry); a cache that cannot be written raises :class:`~actionkit.errors.OutputError` naming the
    entry. Old entries of changed videos stay on disk until the folder is deleted.
    """

    def __init__(self, root: str | Path | None, config: FlowConfig) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.config = config
        self.directory = self.root / config.key()
        self.computations = 0

    def entry_path(self, video: str | Path) -> Path:
        path = Path(video).resolve()
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise VideoNotFoundError(video, "no such file") from None
        digest = hashlib.sha256(f"{path}\n{stat.st_size}\n{stat.st_mtime_ns}".encode()).hexdigest()[:20]
        return self.directory / f"{path.stem[:80]}-{digest}.npy"

    def has(self, video: str | Path) -> bool:
        return self.entry_path(video).is_file()

    def get(self, video: str | Path) -> np.ndarray:
        """The video's quantised flow, uint8 (T-1)×h×w×2, memory-mapped; computed and stored if missing.
        Raises :class:`VideoError` when the video cannot be decoded."""
        path = self.entry_path(video)
        if not path.is_file():
            self._write(path, self._compute(video))
            self.computations += 1
        return np.load(path, mmap_mode="r")

    def put(self, video: str | Path, q: np.ndarray) -> Path:
        """Store ``q`` (uint8 (T-1)×h×w×2, from :func:`quantize_flow`) as the entry of ``video``."""
        path = self.entry_path(video)
        self._write(path, q)
        return path

    def _compute(self, video: str | Path) -> np.ndarray:
        return quantize_flow(compute_flow(read_video(video).frames, self.config), self.config.bound)

    def _write(self, path: Path, q: np.ndarray) -> None:
        if q.dtype != np.uint8 or q.ndim != 4 or q.shape[-1] != 2:
            raise ValueError(f"a flow entry is uint8 (T-1)×h×w×2, got {q.dtype} {q.shape}")

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the temporary name
                np.save(f, q)

        write_atomically(path, write)


# --- precomputing a dataset's flows in worker processes ---------------------------------------------

@dataclass
class PrecomputeReport:
    """What :func:`precompute_flows` did: entries computed, already cached, and videos that failed."""

    computed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    seconds: float = 0.0


def _init_worker() -> None:
    _cv2().setNumThreads(1)  # one process per core: OpenCV's own threads would only compete


def _compute_entry(video: str, root: str, config: FlowConfig) -> str | None:
    """In a worker: compute and store one entry. Returns the error message if the video is unusable."""
    cache = FlowCache(root, config)
    try:
        path = cache.entry_path(video)  # keyed before decoding: a video changed meanwhile gets a new key
        cache._write(path, cache._compute(video))
    except VideoError as e:
        return str(e)
    return None


def precompute_flows(videos: Sequence[str | Path], cache: FlowCache, workers: int = 2,
                     progress: bool = True) -> PrecomputeReport:
    """Compute the missing entries of ``videos`` in ``workers`` processes (so an interrupted run resumes
    where it stopped). A video that cannot be decoded is reported in ``failed``; the others go on. A cache
    folder that cannot be written is an :class:`~actionkit.errors.OutputError` before any flow is computed
    (or, when the disk fills up meanwhile, as soon as an entry cannot be stored)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    start = time.perf_counter()
    report = PrecomputeReport()
    missing: list[str] = []
    for video in dict.fromkeys(map(str, videos)):  # each path once, in the order given
        try:
            if cache.has(video):
                report.skipped += 1
            else:
                missing.append(video)
        except VideoError as e:
            report.failed.append((video, str(e)))
    if missing:
        ensure_writable_folder(cache.directory)
        errors = _run_workers(missing, cache, workers, progress)
        for video in missing:  # reported in the order given
            if errors[video] is None:
                report.computed += 1
            else:
                report.failed.append((video, errors[video]))
        cache.computations += report.computed
    report.seconds = time.perf_counter() - start
    return report


def _run_workers(videos: list[str], cache: FlowCache, workers: int, progress: bool) -> dict[str, str | None]:
    """Each video's entry computed in a worker process: video -> error message (None when stored)."""
    errors: dict[str, str | None] = {}
    # spawn, not fork: the parent may hold torch's and OpenCV's thread pools, which fork does not copy safely
    pool = ProcessPoolExecutor(min(workers, len(videos)), mp_context=get_context("spawn"),
                               initializer=_init_worker)
    try:
        with progress_bar("flow", len(videos), progress) as advance:
            futures = {pool.submit(_compute_entry, video, str(cache.root), cache.config): video
                       for video in videos}
            for future in as_completed(futures):
                errors[futures[future]] = future.result()
                advance()
    finally:  # on an error or Ctrl+C, queued videos are dropped rather than waited for
        pool.shutdown(wait=True, cancel_futures=True)
    return errors

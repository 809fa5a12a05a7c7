"""Which frames make a clip: the sampling rules of config.json's ``preprocessing``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actionkit.config import PreprocessConfig


@dataclass
class ClipPlan:
    """Frame indices of each clip (K arrays of ``clip_len``) and whether the video had to be looped."""

    clips: list[np.ndarray]
    looped: bool

    @property
    def frames(self) -> np.ndarray:
        """The distinct frame indices the clips use, sorted (what has to be decoded)."""
        return np.unique(np.concatenate(self.clips))


def clip_span(clip_len: int, stride: int) -> int:
    """Source frames covered by ``clip_len`` frames taken ``stride`` apart."""
    return (clip_len - 1) * stride + 1


def uniform_indices(start: float, stop: float, clip_len: int) -> np.ndarray:
    """``clip_len`` indices evenly spread over [start, stop], rounded (DeepMind's evaluation rule)."""
    return np.linspace(start, stop, clip_len).round().astype(np.int64)


def plan_clips(num_frames: int, config: PreprocessConfig, num_clips: int | None = None) -> ClipPlan:
    """Frame indices for ``num_clips`` (default: the config's) clips of a ``num_frames`` video.

    A video shorter than one clip's span is looped (indices wrap around), the same rule for every
    sampling mode, so short clips keep their motion speed rather than being stretched.
    """
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    k = num_clips or config.num_clips
    clip_len = config.clip_len
    span = clip_len if config.frame_sampling == "uniform" else clip_span(clip_len, config.frame_stride)
    if num_frames < span:
        offsets = np.arange(clip_len) * (1 if config.frame_sampling == "uniform" else config.frame_stride)
        return ClipPlan([offsets % num_frames for _ in range(k)], looped=True)
    if config.frame_sampling == "uniform":
        bounds = np.linspace(0, num_frames, k + 1)
        clips = [uniform_indices(bounds[i], max(bounds[i], bounds[i + 1] - 1), clip_len) for i in range(k)]
        return ClipPlan(clips, looped=False)
    starts = [(num_frames - span) // 2] if k == 1 else np.linspace(0, num_frames - span, k).round().astype(int)
    offsets = np.arange(clip_len) * config.frame_stride
    return ClipPlan([int(s) + offsets for s in starts], looped=False)


def random_clip(num_frames: int, clip_len: int, stride: int, rng: np.random.Generator,
                jitter: bool = True) -> ClipPlan:
    """One training clip: a random start, ``clip_len`` frames ``stride`` apart.

    With ``jitter`` each frame is taken at a random offset inside its stride step (so stride 2 sees
    both odd and even frames over epochs); order is kept. Short videos loop, as in :func:`plan_clips`.
    """
    offsets = np.arange(clip_len) * stride
    if jitter and stride > 1:
        offsets = offsets + rng.integers(0, stride, size=clip_len)
    span = int(offsets[-1]) + 1
    if num_frames < span:
        start = int(rng.integers(0, num_frames))
        return ClipPlan([(start + offsets) % num_frames], looped=True)
    start = int(rng.integers(0, num_frames - span + 1))
    return ClipPlan([start + offsets], looped=False)


def sliding_windows(num_frames: int, window: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of length ``window`` every ``stride`` frames, the last one flush
    with the end so no frame is left out; one (looped-later) window for videos shorter than it."""
    if window < 1 or stride < 1:
        raise ValueError("window and stride must be at least 1")
    if num_frames <= window:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return [(s, s + window) for s in starts]

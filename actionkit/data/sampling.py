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
    span = clip_len if config.frame_sampling == "uniform" else (clip_len - 1) * config.frame_stride + 1
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

"""The load stage of prediction for one video, without a model: decode the planned frames, sample the
clips, resize and crop them, as the config's preprocessing says. :class:`~actionkit.predict.Recognizer`
runs it in its loading threads; the Ray batch job runs it in Ray tasks, away from the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from actionkit.config import PreprocessConfig
from actionkit.data.sampling import clip_span, plan_clips
from actionkit.data.video import DecodeThreads, as_frames, read_planned_frames
from actionkit.data.views import evaluation_views


@dataclass
class LoadedVideo:
    """A video's views, (clips × crops)×T×3×H×W uint8, and what was worked around to make them."""

    clips: torch.Tensor
    warnings: list[str] = field(default_factory=list)


def looped_warning(name: str, num_frames: int, pre: PreprocessConfig) -> str:
    """What a result says when its video was shorter than one clip and looped to fill it."""
    if pre.frame_sampling == "uniform" or pre.frame_stride == 1:
        needed = f"the {pre.clip_len}-frame clip"
    else:
        needed = (f"the {clip_span(pre.clip_len, pre.frame_stride)}-frame span of one clip "
                  f"({pre.clip_len} frames {pre.frame_stride} apart)")
    return f"{name}: {num_frames} frames, shorter than {needed}; the video was looped to fill it"


def load_video(name: str, video: str | Path | np.ndarray, pre: PreprocessConfig, num_clips: int | None = None,
               num_crops: int | None = None, threads: DecodeThreads = "AUTO") -> LoadedVideo:
    """The views of ``video`` (a file, or a T×H×W×3 uint8 array named ``name``): only the frames the
    clips use are decoded. ``num_clips`` / ``num_crops`` override the config's. Raises the
    :class:`~actionkit.errors.VideoError` that says why a video cannot be used."""
    if isinstance(video, np.ndarray):
        frames = as_frames(video, name)
        num_frames, frames_at = len(frames), (lambda wanted: frames[wanted])
    else:
        num_frames, decoded = read_planned_frames(video, lambda count: plan_clips(count, pre, num_clips).frames,
                                                  threads=threads)
        frames_at = (lambda wanted: np.stack([decoded[int(i)] for i in wanted]))
    clips, looped = evaluation_views(frames_at, num_frames, pre, num_clips, num_crops)
    return LoadedVideo(clips, [looped_warning(name, num_frames, pre)] if looped else [])

"""Evaluation views: the clips × crops that prediction and evaluation score for one video."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from actionkit.config import PreprocessConfig
from actionkit.data.sampling import plan_clips
from actionkit.data.transforms import resize_and_crop


def evaluation_views(frames_at: Callable[[np.ndarray], np.ndarray], num_frames: int, pre: PreprocessConfig,
                     num_clips: int | None = None, num_crops: int | None = None) -> tuple[torch.Tensor, bool]:
    """(K·C)×T×3×S×S uint8 views of a ``num_frames`` video (clip-major: view k·C + c is clip k, crop c)
    and whether it was looped. ``frames_at(indices)`` returns those frames, T×H×W×3; each distinct frame
    is fetched and resized once, however many clips share it."""
    plan = plan_clips(num_frames, pre, num_clips)
    wanted = plan.frames
    crops = resize_and_crop(frames_at(wanted), pre.resize_short_side, pre.crop_size, num_crops or pre.num_crops)
    if len(plan.clips) == 1 and np.array_equal(plan.clips[0], wanted):
        return crops, plan.looped  # one clip of distinct frames: the crops are the views, no gather
    positions = [torch.from_numpy(np.searchsorted(wanted, clip)) for clip in plan.clips]
    return torch.stack([crop[p] for p in positions for crop in crops]), plan.looped

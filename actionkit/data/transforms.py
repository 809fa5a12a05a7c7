"""Frames -> model input. Geometry stays in uint8 (cheap to move, e.g. to the GPU); the value range
is applied last, on whatever device runs the model."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) after scaling so the shorter side is ``short_side``, aspect kept."""
    if height <= width:
        return short_side, max(short_side, round(width * short_side / height))
    return max(short_side, round(height * short_side / width)), short_side


def resize_and_center_crop(frames: np.ndarray, short_side: int, crop: int) -> torch.Tensor:
    """T×H×W×3 uint8 -> T×3×crop×crop uint8: bilinear (antialiased) short-side resize, centre crop."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # T, 3, H, W
    height, width = x.shape[-2:]
    new_h, new_w = short_side_size(height, width, short_side)
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    return x[:, :, top:top + crop, left:left + crop].contiguous()


def to_model_input(clips: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """N×T×3×H×W uint8 -> N×3×T×H×W float32 in ``value_range``."""
    low, high = value_range
    x = clips.permute(0, 2, 1, 3, 4).float()
    return x.mul_((high - low) / 255.0).add_(low)

"""Frames -> model input. Geometry stays in uint8 (cheap to move, e.g. to the GPU); the value range
is applied last, on whatever device runs the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) after scaling so the shorter side is ``short_side``, aspect kept."""
    if height <= width:
        return short_side, max(short_side, round(width * short_side / height))
    return max(short_side, round(height * short_side / width)), short_side


def resize_and_crop(frames: np.ndarray, short_side: int, crop: int, num_crops: int = 1) -> torch.Tensor:
    """T×H×W×3 uint8 -> num_crops×T×3×crop×crop uint8: bilinear (antialiased) short-side resize, then
    square crops along the long side: 1 = centre; 3 = start, centre, end (the usual 3-crop evaluation)."""
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # T, 3, H, W
    height, width = x.shape[-2:]
    new_h, new_w = short_side_size(height, width, short_side)
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    if num_crops == 1:
        corners = [(top, left)]
    elif new_w >= new_h:
        corners = [(top, 0), (top, left), (top, new_w - crop)]
    else:
        corners = [(0, left), (top, left), (new_h - crop, left)]
    out = torch.empty((len(corners), len(x), x.shape[1], crop, crop), dtype=x.dtype)
    for view, (t, l) in zip(out, corners):
        view.copy_(x[:, :, t:t + crop, l:l + crop])  # one copy, straight into the contiguous result
    return out


def resize_and_center_crop(frames: np.ndarray, short_side: int, crop: int) -> torch.Tensor:
    """T×H×W×3 uint8 -> T×3×crop×crop uint8: short-side resize and centre crop."""
    return resize_and_crop(frames, short_side, crop)[0]


def to_model_input(clips: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """N×T×3×H×W uint8 -> N×3×T×H×W float32 in ``value_range``."""
    low, high = value_range
    x = clips.permute(0, 2, 1, 3, 4).float()
    return x.mul_((high - low) / 255.0).add_(low)


# --- training-time augmentation -----------------------------------------------------------------
# A crop is chosen once per clip in normalised [0, 1] coordinates, so frames (at the video's own
# resolution) and flow targets (computed at a smaller one) get exactly the same geometry.

@dataclass(frozen=True)
class CropBox:
    """A crop in normalised frame coordinates, and whether the clip is mirrored horizontally."""

    top: float
    left: float
    height: float
    width: float
    flip: bool = False

    def pixels(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) in pixels of an image of that size, at least 1×1."""
        top, left = int(round(self.top * height)), int(round(self.left * width))
        h = max(1, min(height - top, int(round(self.height * height))))
        w = max(1, min(width - left, int(round(self.width * width))))
        return top, left, h, w


@dataclass(frozen=True)
class AugmentConfig:
    """Random resized crop (area ``scale`` of the frame, aspect ``ratio``), flip, colour jitter."""

    crop_size: int = 224
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    color_jitter: float = 0.0  # brightness/contrast/saturation strength; 0 turns it off


def random_crop_box(height: int, width: int, config: AugmentConfig, rng: np.random.Generator) -> CropBox:
    """A random-resized-crop box: area fraction in ``config.scale``, log-uniform aspect in ``config.ratio``;
    falls back to the largest centred square after ten misses."""
    flip = bool(config.flip and rng.random() < 0.5)
    area = height * width
    log_ratio = np.log(config.ratio)
    for _ in range(10):
        target = area * rng.uniform(*config.scale)
        aspect = float(np.exp(rng.uniform(*log_ratio)))
        w = int(round(np.sqrt(target * aspect)))
        h = int(round(np.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return CropBox(top / height, left / width, h / height, w / width, flip)
    side = min(height, width)
    return CropBox((height - side) / 2 / height, (width - side) / 2 / width, side / height, side / width, flip)


def crop_and_resize(clip: torch.Tensor, box: CropBox, size: int) -> torch.Tensor:
    """T×C×H×W uint8 -> T×C×size×size uint8: crop ``box``, bilinear (antialiased) resize, mirror if asked."""
    top, left, h, w = box.pixels(*clip.shape[-2:])
    out = F.interpolate(clip[:, :, top:top + h, left:left + w], size=(size, size), mode="bilinear",
                        antialias=True, align_corners=False)
    return out.flip(-1) if box.flip else out


def flow_geometry_scale(flow_shape: tuple[int, int], box: CropBox, size: int) -> torch.Tensor:
    """Per-component factors (u, v) that carry flow vectors through ``crop_and_resize``: the resize
    stretches displacements, and a mirror negates u."""
    _, _, h, w = box.pixels(*flow_shape)
    sx, sy = size / w, size / h
    return torch.tensor([-sx if box.flip else sx, sy], dtype=torch.float32)


def color_jitter(clip: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """T×3×H×W uint8: one random brightness, contrast and saturation change for the whole clip."""
    if strength <= 0:
        return clip
    b, c, s = (float(rng.uniform(1 - strength, 1 + strength)) for _ in range(3))
    x = clip.float() * b
    x = (x - x.mean()) * c + x.mean()
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * s + gray
    return x.clamp_(0, 255).round_().to(torch.uint8)

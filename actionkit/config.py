"""The preprocessing contract and the label lists that travel with weights.

Every backend (PyTorch, ONNX Runtime, TensorRT) preprocesses from this one description, the way
timm's PretrainedCfg travels with its weights; config.json (:class:`actionkit.hub.ModelConfig`) holds it
beside the architecture and the labels.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from actionkit.errors import CheckpointError

FrameSampling = Literal["uniform", "consecutive"]
MIN_FRAMES = 8  # the shortest clip I3D takes: its strides shrink time 8-fold
MAX_FRAMES = 4096  # the longest clip a config may ask for
SIDE_RANGE = (16, 4096)  # resize_short_side and crop_size, in pixels
MAX_STRIDE = 1024  # frame_stride
MAX_CLIPS = 64  # num_clips per video
MAX_CLIP_VALUES = 2**31  # clip_len × resize_short_side² × 3: one resized clip in uint8 stays under 2 GiB


def integer_in_range(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int when it is an integer (not a bool, not a float) in [low, high]; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _value_range(value: Any) -> tuple[float, float]:
    """Two finite numbers, low < high, as floats; else ValueError."""
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            and value[0] < value[1]):
        return float(value[0]), float(value[1])
    raise ValueError(f"value_range must be two finite numbers [low, high] with low < high, got {value!r}")


@dataclass
class PreprocessConfig:
    """How raw RGB frames become the model's input.

    * ``frame_sampling="uniform"``: ``clip_len`` frames at ``linspace(0, T-1, clip_len).round()`` of
      the video (DeepMind's evaluation); with ``num_clips`` K > 1 the video is cut into K equal
      segments sampled that way.
    * ``frame_sampling="consecutive"``: ``clip_len`` frames ``frame_stride`` apart; K clips with
      evenly spaced starts (one centred clip when K = 1).

    Videos shorter than a clip are looped. Frames are resized so the short side is
    ``resize_short_side`` (bilinear, antialiased), cropped to ``crop_size`` squares (``num_crops`` 1:
    centre; 3: start, centre and end of the long side; every clip × crop is scored and the
    probabilities averaged) and mapped from [0, 255] to ``value_range``. Layout N×3×T×H×W, RGB.

    Every field is checked on construction (a config.json may come from anywhere): integers of the
    right type in range (``clip_len`` in [8, 4096], ``resize_short_side`` and ``crop_size`` in
    [16, 4096] with the crop no larger than the short side, ``frame_stride`` in [1, 1024],
    ``num_clips`` in [1, 64], ``num_crops`` 1 or 3), one resized clip no larger than 2^31 values
    (``clip_len × resize_short_side² × 3``), ``value_range`` two finite numbers, low < high, and
    ``channel_order`` / ``layout`` the only ones the models take. A bad value is a ``ValueError``
    naming the field.
    """

    clip_len: int = 64
    frame_sampling: FrameSampling = "uniform"
    frame_stride: int = 1
    num_clips: int = 1
    num_crops: int = 1
    resize_short_side: int = 256
    crop_size: int = 224
    value_range: tuple[float, float] = (-1.0, 1.0)
    channel_order: str = "RGB"
    layout: str = "NCTHW"

    def __post_init__(self) -> None:
        self.clip_len = integer_in_range("clip_len", self.clip_len, MIN_FRAMES, MAX_FRAMES)
        if self.frame_sampling not in ("uniform", "consecutive"):
            raise ValueError(f"frame_sampling must be 'uniform' or 'consecutive', got {self.frame_sampling!r}")
        self.frame_stride = integer_in_range("frame_stride", self.frame_stride, 1, MAX_STRIDE)
        self.num_clips = integer_in_range("num_clips", self.num_clips, 1, MAX_CLIPS)
        if isinstance(self.num_crops, bool) or not isinstance(self.num_crops, numbers.Integral) \
                or self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 (centre) or 3 (start, centre, end), got {self.num_crops!r}")
        self.num_crops = int(self.num_crops)
        self.resize_short_side = integer_in_range("resize_short_side", self.resize_short_side, *SIDE_RANGE)
        self.crop_size = integer_in_range("crop_size", self.crop_size, *SIDE_RANGE)
        if self.crop_size > self.resize_short_side:
            raise ValueError(f"crop_size {self.crop_size} exceeds resize_short_side {self.resize_short_side}")
        if self.clip_len * self.resize_short_side ** 2 * 3 > MAX_CLIP_VALUES:
            raise ValueError(f"one clip of {self.clip_len} frames resized to {self.resize_short_side} pixels is too "
                             "large: clip_len × resize_short_side² × 3 must be at most 2^31")
        self.value_range = _value_range(self.value_range)
        if self.channel_order != "RGB":
            raise ValueError(f"channel_order must be 'RGB' (the only order the models take), got {self.channel_order!r}")
        if self.layout != "NCTHW":
            raise ValueError(f"layout must be 'NCTHW' (the only layout the models take), got {self.layout!r}")


def read_labels(path: str | Path) -> list[str]:
    """One class name per line; blank lines are ignored."""
    path = Path(path)
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as e:
        raise CheckpointError(path, f"cannot read labels file ({e.strerror})") from None
    if len(set(labels)) != len(labels):
        raise CheckpointError(path, "labels file has duplicate class names")
    return labels


def kinetics400_labels() -> list[str]:
    """The Kinetics-400 class names in the order DeepMind's weights use (shipped with the package)."""
    return read_labels(Path(__file__).with_name("resources") / "kinetics400.txt")

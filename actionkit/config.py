"""The preprocessing contract and the label lists that travel with weights.

Every backend (PyTorch, ONNX Runtime, TensorRT) preprocesses from this one description, the way
timm's PretrainedCfg travels with its weights; config.json (:class:`actionkit.hub.ModelConfig`) holds it
beside the architecture and the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from actionkit.errors import CheckpointError

FrameSampling = Literal["uniform", "consecutive"]
MIN_FRAMES = 8  # the shortest clip I3D takes: its strides shrink time 8-fold


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
        self.value_range = tuple(float(v) for v in self.value_range)  # type: ignore[assignment]
        if self.clip_len < MIN_FRAMES:
            raise ValueError(f"clip_len must be at least {MIN_FRAMES} for I3D, got {self.clip_len}")
        if self.frame_sampling not in ("uniform", "consecutive"):
            raise ValueError(f"frame_sampling must be 'uniform' or 'consecutive', got {self.frame_sampling!r}")
        if self.frame_stride < 1 or self.num_clips < 1:
            raise ValueError("frame_stride and num_clips must be at least 1")
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 (centre) or 3 (start, centre, end), got {self.num_crops}")
        if self.crop_size > self.resize_short_side:
            raise ValueError(f"crop_size {self.crop_size} exceeds resize_short_side {self.resize_short_side}")


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

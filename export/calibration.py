"""Calibration clips for INT8 quantization: real videos through the model's own preprocessing.

The source is a dataset in any layout ``--data`` accepts (its train split is calibrated on; its val
split, when it has one, measures the accuracy INT8 costs) or a folder of videos. Clips are sampled,
resized and cropped exactly as :class:`~actionkit.predict.Recognizer` does for prediction, so
calibration sees what inference sees. With fewer videos than clips asked for, each video gives several
views (3 temporal clips × 3 crops) before any is repeated.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from actionkit.data.datasets import DatasetError, scan_dataset
from actionkit.data.video import expand_video_paths
from actionkit.errors import ActionkitError, VideoError
from actionkit.predict import Recognizer

DEFAULT_CALIBRATION_CLIPS = 32
VIEWS = (3, 3)  # temporal clips × crops a video gives when videos are fewer than the clips asked for


@dataclass(frozen=True)
class CalibrationConfig:
    """Where calibration clips come from. ``data``: a dataset (any ``--data`` layout; ``split_by`` /
    ``val`` / ``test`` split a CSV without a split column) or a folder of videos. ``clips``: how many."""

    data: Path
    clips: int = DEFAULT_CALIBRATION_CLIPS
    split_by: str | None = None
    val: list[str] | None = None
    test: list[str] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ActionkitError(f"--calibration-clips must be at least 1, got {self.clips}")


@dataclass
class CalibrationSource:
    """The videos to calibrate on and, for a labelled dataset with a val split, (video, class) pairs to
    compare fp32 with INT8 on."""

    videos: list[Path]
    validation: list[tuple[Path, str]] = field(default_factory=list)
    described: str = ""


def calibration_source(config: CalibrationConfig) -> CalibrationSource:
    """The calibration videos of ``config.data``. Raises :class:`~actionkit.errors.ActionkitError` naming
    the path when it holds no video."""
    root = Path(config.data).expanduser()
    if not root.exists():
        raise ActionkitError(f"{root}: no such calibration dataset or folder")
    try:
        index = scan_dataset(root, split_by=config.split_by, val=config.val, test=config.test, need_split=False)
    except DatasetError as dataset_error:
        if not root.is_dir():
            raise
        try:
            videos = expand_video_paths([root])
        except VideoError:
            raise ActionkitError(f"{root}: no videos to calibrate on (neither a dataset: {dataset_error}; "
                                 "nor a folder of videos)") from None
        return CalibrationSource(videos, described=f"{len(videos)} videos in {root}")
    train = index.split("train") or index.samples
    validation = [(Path(s.path), index.classes[s.label]) for s in index.split("val")]
    return CalibrationSource([Path(s.path) for s in train], validation,
                             f"{len(train)} training videos of {index.root.name} ({index.describe()})")


def calibration_clips(recognizer: Recognizer, videos: list[Path], count: int, seed: int = 0,
                      warn: Callable[[str], None] = print) -> list[torch.Tensor]:
    """Up to ``count`` clips (each 1×T×3×H×W uint8) from ``videos``, preprocessed by ``recognizer``:
    one view per video when there are enough videos (a seeded sample of them), else every video's
    3 × 3 views, spread evenly. Unreadable videos are skipped with a warning; fewer clips than
    ``count`` is a warning, none at all an :class:`~actionkit.errors.ActionkitError`."""
    order = list(videos)
    random.Random(seed).shuffle(order)
    per_video = min(VIEWS[0] * VIEWS[1], math.ceil(count / max(1, len(order))))
    views = (1, 1) if per_video == 1 else VIEWS
    clips: list[torch.Tensor] = []
    for video in order:
        if len(clips) >= count:
            break
        try:
            loaded = recognizer.load_clips(video, num_clips=views[0], num_crops=views[1])
        except VideoError as e:
            warn(f"calibration: skipped {e}")
            continue
        picks = torch.linspace(0, len(loaded) - 1, min(per_video, len(loaded))).round().long()
        clips.extend(loaded[int(i)][None] for i in picks)
    if not clips:
        raise ActionkitError(f"no readable video to calibrate on among {len(videos)} "
                             f"({', '.join(str(v) for v in videos[:3])}{', ...' if len(videos) > 3 else ''})")
    if len(clips) < count:
        warn(f"calibration: {count} clips asked for, but {len(videos)} video(s) gave {len(clips)}; "
             f"quantizing with {len(clips)}")
    return clips[:count]

"""Prediction decodes only the frames its clips use, and gets exactly the clips a full decode gives."""

from pathlib import Path

import numpy as np
import pytest

from actionkit.config import PreprocessConfig
from actionkit.data.sampling import plan_clips
from actionkit.data.video import read_planned_frames, read_video
from actionkit.errors import CorruptVideoError

from conftest import CLIPS, require
from videos import remux_faststart, truncate

PLANS = {
    "uniform 64 frames, 1 clip": PreprocessConfig(clip_len=64, frame_sampling="uniform", num_clips=1),
    "16 frames every 2nd, 3 clips": PreprocessConfig(clip_len=16, frame_sampling="consecutive", frame_stride=2,
                                                     num_clips=3),
}


def wanted_by(pre: PreprocessConfig):
    return lambda count: plan_clips(count, pre).frames


@pytest.mark.parametrize("name", ["arm_wrestling.mp4", "ucf101_HeadMassage.avi", "v_CricketShot_g04_c01_rgb.gif"])
@pytest.mark.parametrize("plan", sorted(PLANS))
def test_planned_frames_equal_a_full_decode(name: str, plan: str) -> None:
    video = require(CLIPS / name)
    full = read_video(video).frames
    num_frames, frames = read_planned_frames(video, wanted_by(PLANS[plan]))
    assert num_frames == len(full)
    wanted = wanted_by(PLANS[plan])(len(full))
    assert sorted(frames) == wanted.tolist()
    for i in wanted:
        assert np.array_equal(frames[int(i)], full[i])


def test_a_header_promising_more_frames_falls_back_to_the_real_count(tmp_path: Path) -> None:
    """A cut MP4 whose index (at the front) still declares every frame: the plan made from the header
    wants frames that are gone, so the video is decoded fully and planned with what it really has."""
    faststart = remux_faststart(require(CLIPS / "arm_wrestling.mp4"), tmp_path / "faststart.mp4")
    cut = truncate(faststart, tmp_path / "cut.mp4", fraction=0.95)
    full = read_video(cut).frames
    assert len(full) < 280  # the header says 280
    num_frames, frames = read_planned_frames(cut, wanted_by(PLANS["uniform 64 frames, 1 clip"]))
    assert num_frames == len(full) and max(frames) == len(full) - 1
    assert np.array_equal(frames[len(full) - 1], full[-1])


def test_a_badly_truncated_video_gives_the_same_error_as_a_full_decode(tmp_path: Path) -> None:
    faststart = remux_faststart(require(CLIPS / "arm_wrestling.mp4"), tmp_path / "faststart.mp4")
    cut = truncate(faststart, tmp_path / "cut.mp4", fraction=0.5)
    with pytest.raises(CorruptVideoError, match="cut.mp4: truncated or damaged: only"):
        read_planned_frames(cut, wanted_by(PLANS["uniform 64 frames, 1 clip"]))

"""Prediction decodes only the frames its clips use, and gets exactly the clips a full decode gives."""

from pathlib import Path

import av
import numpy as np
import pytest

from actionkit.config import PreprocessConfig
from actionkit.data import skip_decode
from actionkit.data.sampling import plan_clips
from actionkit.data.skip_decode import can_skip_frames, frames_skipping_unwanted
from actionkit.data.video import read_frames, read_planned_frames, read_video
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


@pytest.mark.parametrize("name", ["arm_wrestling.mp4", "cleaning_pool.mp4", "ucf101_HeadMassage.avi",
                                  "ucf101_ApplyEyeMakeup.avi", "v_CricketShot_g04_c01_rgb.gif"])
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


@pytest.mark.parametrize("name", ["arm_wrestling.mp4", "cleaning_pool.mp4"])
def test_h264_frames_nobody_references_are_not_decoded(name: str) -> None:
    """Uniform 64 of ~300 frames: the unwanted B-frames are skipped, and what comes out is exact."""
    video = require(CLIPS / name)
    full = read_video(video).frames
    wanted = set(wanted_by(PLANS["uniform 64 frames, 1 clip"])(len(full)).tolist())
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert can_skip_frames(container, stream)
        decoded = dict((i, f.to_ndarray(format="rgb24")) for i, f in
                       frames_skipping_unwanted(container, stream, wanted, max(wanted)))
    assert wanted <= set(decoded) and len(decoded) < 0.75 * len(full)  # 198 of 280, 187 of 300
    for i, frame in decoded.items():
        assert np.array_equal(frame, full[i])


def test_training_clips_read_with_skipping_equal_a_full_decode() -> None:
    video = require(CLIPS / "cleaning_pool.mp4")
    full = read_video(video).frames
    for start in (0, 101, 237):
        indices = np.arange(start, start + 32 * 2, 2)  # every second frame, as a stride-2 training clip
        assert np.array_equal(read_frames(video, indices), full[indices])


def test_a_stream_that_breaks_the_reordering_assumption_is_decoded_plainly(monkeypatch) -> None:
    """With a reorder window of one packet the B-frames of an H.264 video arrive "too late" to rank:
    the skipping decoder gives up and the plain decode gives the same frames."""
    monkeypatch.setattr(skip_decode, "REORDER_LOOKAHEAD", 0)
    video = require(CLIPS / "arm_wrestling.mp4")
    with av.open(str(video)) as container, pytest.raises(skip_decode.SkippingUnsupported, match="reorder"):
        list(frames_skipping_unwanted(container, container.streams.video[0], {5}, 5))
    full = read_video(video).frames
    indices = np.array([3, 50, 51, 279])
    assert np.array_equal(read_frames(video, indices), full[indices])


def test_only_timestamped_h264_and_hevc_are_skipped() -> None:
    for name, expected in [("arm_wrestling.mp4", True), ("hmdb51_dive.mp4", False),
                           ("ucf101_ApplyEyeMakeup.avi", False), ("v_CricketShot_g04_c01_rgb.gif", False)]:
        with av.open(str(require(CLIPS / name))) as container:
            assert can_skip_frames(container, container.streams.video[0]) is expected, name

"""Clip sampling and the uint8 -> model input transforms."""

import numpy as np
import torch

from actionkit import PreprocessConfig
from actionkit.data.sampling import plan_clips
from actionkit.data.transforms import resize_and_center_crop, short_side_size, to_model_input


def test_uniform_sampling_is_deepminds_linspace_rule() -> None:
    plan = plan_clips(280, PreprocessConfig(clip_len=64))
    assert not plan.looped and len(plan.clips) == 1
    assert np.array_equal(plan.clips[0], np.linspace(0, 279, 64).round().astype(int))


def test_uniform_multi_clip_covers_equal_segments() -> None:
    plan = plan_clips(300, PreprocessConfig(clip_len=16, num_clips=3))
    assert [(c[0], c[-1]) for c in plan.clips] == [(0, 99), (100, 199), (200, 299)]


def test_consecutive_sampling_centres_or_spreads_clips() -> None:
    config = PreprocessConfig(clip_len=8, frame_sampling="consecutive", frame_stride=2)
    (centred,) = plan_clips(100, config).clips
    assert np.array_equal(centred, np.arange(42, 57, 2))  # span 15, centred in 100 frames
    spread = plan_clips(100, config, num_clips=3).clips
    assert [int(c[0]) for c in spread] == [0, 42, 85] and int(spread[-1][-1]) == 99


def test_short_videos_loop_in_every_mode() -> None:
    plan = plan_clips(5, PreprocessConfig(clip_len=12))
    assert plan.looped and plan.clips[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    plan = plan_clips(10, PreprocessConfig(clip_len=8, frame_sampling="consecutive", frame_stride=2))
    assert plan.looped and plan.clips[0].tolist() == [0, 2, 4, 6, 8, 0, 2, 4]


def test_resize_short_side_then_centre_crop() -> None:
    assert short_side_size(240, 320, 256) == (256, 341)
    assert short_side_size(320, 180, 256) == (455, 256)  # portrait
    frames = np.zeros((3, 240, 320, 3), np.uint8)
    frames[:, 100:140, 140:180] = 255  # a white square in the middle survives the crop
    out = resize_and_center_crop(frames, 256, 224)
    assert out.shape == (3, 3, 224, 224) and out.dtype == torch.uint8
    assert out[0, 0, 112, 112] == 255 and out[0, 0, 0, 0] == 0


def test_model_input_value_range() -> None:
    clips = torch.tensor([0, 255], dtype=torch.uint8).reshape(1, 2, 1, 1, 1).expand(1, 2, 3, 1, 1)
    x = to_model_input(clips.contiguous())
    assert x.shape == (1, 3, 2, 1, 1) and x.dtype == torch.float32
    assert torch.equal(x[0, :, 0].flatten(), torch.full((3,), -1.0))
    assert torch.equal(x[0, :, 1].flatten(), torch.full((3,), 1.0))

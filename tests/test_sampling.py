"""Clip sampling and the uint8 -> model input transforms."""

import numpy as np
import torch

from actionkit import PreprocessConfig
from actionkit.data.sampling import plan_clips
from actionkit.data.transforms import (
    resize_and_center_crop,
    short_side_size,
    to_model_input,
)


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


def test_random_clip_stride_jitter_and_looping() -> None:
    from actionkit.data.sampling import random_clip

    rng = np.random.default_rng(0)
    for _ in range(50):
        (clip,) = random_clip(100, 8, 3, rng).clips
        steps = np.diff(clip)
        assert clip[0] >= 0 and clip[-1] < 100 and np.all(steps >= 1) and np.all(steps <= 5)
    seen = {int(random_clip(100, 8, 3, rng).clips[0][1] - random_clip(100, 8, 3, rng).clips[0][0]) for _ in range(10)}
    assert len(seen) > 1  # jitter varies the offsets
    (plain,) = random_clip(100, 8, 3, rng, jitter=False).clips
    assert np.all(np.diff(plain) == 3)
    short = random_clip(5, 8, 1, rng)
    assert short.looped and sorted(set(short.clips[0].tolist())) == [0, 1, 2, 3, 4]


def test_sliding_windows_cover_the_video() -> None:
    from actionkit.data.sampling import sliding_windows

    assert sliding_windows(100, 32, 16) == [(0, 32), (16, 48), (32, 64), (48, 80), (64, 96), (68, 100)]
    assert sliding_windows(64, 32, 32) == [(0, 32), (32, 64)]
    assert sliding_windows(20, 32, 16) == [(0, 20)]


def test_random_crop_boxes_stay_inside_and_flip_half_the_time() -> None:
    from actionkit.data.transforms import AugmentConfig, random_crop_box

    rng = np.random.default_rng(1)
    config = AugmentConfig(scale=(0.3, 1.0))
    boxes = [random_crop_box(296, 400, config, rng) for _ in range(400)]
    for box in boxes:
        top, left, h, w = box.pixels(296, 400)
        assert 0 <= top and top + h <= 296 and 0 <= left and left + w <= 400
        assert 0.25 <= (h * w) / (296 * 400) <= 1.0
    assert 150 < sum(box.flip for box in boxes) < 250
    assert not any(random_crop_box(296, 400, AugmentConfig(flip=False), rng).flip for _ in range(20))


def test_crop_flip_and_flow_factors() -> None:
    from actionkit.data.transforms import CropBox, crop_and_resize, flow_geometry_scale

    clip = torch.zeros(2, 3, 100, 200, dtype=torch.uint8)
    clip[:, :, :, :100] = 200  # left half bright
    box = CropBox(0.0, 0.25, 1.0, 0.5)  # x 50..150: the bright/dark edge in the middle
    out = crop_and_resize(clip, box, 50)
    assert out.shape == (2, 3, 50, 50) and out[0, 0, 10, 5] == 200 and out[0, 0, 10, 45] == 0
    mirrored = crop_and_resize(clip, CropBox(0.0, 0.25, 1.0, 0.5, flip=True), 50)
    assert torch.equal(mirrored, out.flip(-1))
    # flow at half the frame resolution (50×100): the box spans 50 px wide, 50 px high there
    assert torch.equal(flow_geometry_scale((50, 100), box, 25), torch.tensor([0.5, 0.5]))
    assert torch.equal(flow_geometry_scale((50, 100), CropBox(0.0, 0.25, 1.0, 0.5, flip=True), 25),
                       torch.tensor([-0.5, 0.5]))


def test_color_jitter_changes_colours_not_geometry() -> None:
    from actionkit.data.transforms import color_jitter

    rng = np.random.default_rng(2)
    clip = torch.randint(0, 255, (4, 3, 16, 16), dtype=torch.uint8)
    assert color_jitter(clip, 0.0, rng) is clip
    jittered = color_jitter(clip, 0.4, rng)
    assert jittered.shape == clip.shape and jittered.dtype == torch.uint8 and not torch.equal(jittered, clip)
    flat = torch.full((4, 3, 16, 16), 77, dtype=torch.uint8)
    assert len(color_jitter(flat, 0.4, rng).unique()) == 1  # a uniform clip stays uniform


def test_three_crops_span_the_long_side() -> None:
    from actionkit.data.transforms import resize_and_crop

    frames = np.zeros((2, 240, 320, 3), np.uint8)
    frames[:, :, :40] = 50     # left edge
    frames[:, :, -40:] = 200   # right edge
    crops = resize_and_crop(frames, 240, 224, num_crops=3)
    assert crops.shape == (3, 2, 3, 224, 224)
    assert crops[0, 0, 0, 100, 0] == 50 and crops[2, 0, 0, 100, -1] == 200
    assert torch.equal(crops[1], resize_and_crop(frames, 240, 224)[0])
    portrait = resize_and_crop(np.zeros((1, 320, 240, 3), np.uint8), 240, 224, num_crops=3)
    assert portrait.shape == (3, 1, 3, 224, 224)

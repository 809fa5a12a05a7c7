"""The training loader: flow targets follow the frames' geometry; batches arrive as uint8; the
`actionkit flow` command precomputes and resumes."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from test_datasets import UT, UT_VAL
from typer.testing import CliRunner

from actionkit.cli.app import app
from actionkit.data.flow import (
    FlowCache,
    FlowConfig,
    dequantize_flow,
    flow_between,
    quantize_flow,
)
from actionkit.data.loader import (
    ClipConfig,
    ClipDataset,
    finish_batch,
    make_loader,
    set_loader_epoch,
    worker_processes,
)
from actionkit.data.transforms import AugmentConfig

from conftest import require
from videos import write_video

runner = CliRunner()


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def moving_texture(path: Path, frames: int = 24, speed: int = 4) -> Path:
    """A noise patch sliding right by ``speed`` px a frame over a still noise background (320×240)."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 120, (240, 320, 3), dtype=np.uint8)
    patch = rng.integers(120, 255, (80, 80, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        video[t, 80:160, 60 + speed * t:140 + speed * t] = patch
    return write_video(path, video, codec="ffv1", pix_fmt="yuv444p")


def as_batch(item: dict):
    """One dataset item as a batch of one, normalised on the CPU."""
    return finish_batch({k: (v[None] if torch.is_tensor(v) else torch.tensor([v])) for k, v in item.items()}, "cpu")


def test_flow_targets_follow_crop_and_flip(tmp_path: Path) -> None:
    video = moving_texture(tmp_path / "moving.mkv")
    cache = FlowCache(tmp_path / "cache", FlowConfig(method="dis", short_side=120))  # half of 240
    clips = ClipConfig(clip_len=8, frame_stride=1, augment=AugmentConfig(crop_size=112, scale=(0.5, 0.5), ratio=(1, 1)))
    dataset = ClipDataset([Sample(video, 0)], clips=clips, flow_cache=cache, seed=3)
    signs = set()
    for epoch in range(8):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert item["frames"].shape == (8, 3, 112, 112) and item["flow"].shape == (8, 2, 56, 56)
        batch = as_batch(item)
        u = batch.flow[0, 0]  # T×56×56, in units of 20 px of the 56² target
        moving = batch.flow[0].abs().amax(dim=(0, 1)) > 0.02  # where the patch moves
        if moving.sum() < 20:
            continue  # this crop missed the patch
        # 4 px/frame at 320 wide -> 1.5 px/frame at the flow's 160 wide -> ×(56 / crop width in flow px)
        u_moving = float(u[:, moving].median()) * 20
        expected = 1.5 * item["flow_scale"][0].abs().item()
        assert abs(abs(u_moving) - expected) < 0.35 * expected, (u_moving, expected)
        flipped = item["flow_scale"][0] < 0
        assert (u_moving < 0) == bool(flipped)  # mirrored clips move left
        # the patch is where the flow says it moves: bright pixels of the frame overlap the moving area
        bright = item["frames"][0].float().mean(0) > 120
        small = torch.nn.functional.interpolate(bright[None, None].float(), size=(56, 56))[0, 0] > 0.5
        assert (small & moving).sum() > 0.3 * moving.sum()
        signs.add(bool(flipped))
    assert signs == {True, False}, "both mirrored and plain crops should have been seen"


def test_flow_between_sums_the_frame_flows_over_each_gap() -> None:
    px = np.zeros((10, 4, 4, 2), np.float32)
    px[..., 0] = np.arange(10)[:, None, None] * 0.5  # video flow k -> k + 1 has u = 0.5·k px
    px[..., 1] = -1.0
    q = quantize_flow(px, 20.0)
    out = dequantize_flow(flow_between(q, np.array([1, 4, 6, 6, 2, 9]), 20.0), 20.0)
    step = 40 / 255  # one quantisation step, in px
    # 1 -> 4: flows 1, 2, 3; 4 -> 6: flows 4, 5; 6 -> 6: none; 6 -> 2 (a loop back): flow 6 alone;
    # 2 -> 9: flows 2 .. 8; 9, the last frame, is past the last flow (9 -> 10): that flow alone
    assert np.allclose(out[:, 0, 0, 0], [3.0, 4.5, 0.0, 3.0, 17.5, 4.5], atol=2 * step)
    assert np.allclose(out[:, 0, 0, 1], [-3.0, -2.0, 0.0, -1.0, -7.0, -1.0], atol=2 * step)
    assert flow_between(q, np.array([3]), 20.0).shape == (1, 4, 4, 2)


def test_clip_flow_targets_span_the_frame_stride(tmp_path: Path) -> None:
    """4 px a frame and frames 3 apart: the clip's flow moves 3× as far as the video's frame-to-frame flow."""
    video = moving_texture(tmp_path / "moving.mkv", frames=24)
    cache = FlowCache(tmp_path / "cache", FlowConfig(method="dis", short_side=120))
    augment = AugmentConfig(crop_size=112, scale=(1, 1), ratio=(4 / 3, 4 / 3), flip=False)
    speeds = {}
    for span in ("clip", "frame"):
        clips = ClipConfig(clip_len=8, frame_stride=3, jitter=False, augment=augment, flow_span=span)
        item = ClipDataset([Sample(video, 0)], clips=clips, flow_cache=cache, seed=1)[0]
        batch = as_batch(item)
        u = batch.flow[0, 0, :-1] * 20  # px at the 56² target; the last frame has no next clip frame
        speeds[span] = float(u[u.abs() > 0.3].median())
    assert 2.5 < speeds["clip"] / speeds["frame"] < 3.5, speeds
    with pytest.raises(ValueError, match="flow_span"):
        ClipConfig(flow_span="stride")


def test_loader_batches_are_uint8_and_reproducible(tmp_path: Path) -> None:
    videos = sorted(require(UT / "set2").glob("*.avi"))[:4]
    samples = [Sample(p, i % 2) for i, p in enumerate(videos)]
    dataset = ClipDataset(samples, clips=ClipConfig(clip_len=8), seed=7)
    handler = signal.getsignal(signal.SIGCHLD)
    with worker_processes():  # the workers stop here, not whenever the loader is collected
        loader = make_loader(dataset, batch_size=2, workers=2)
        runs = []
        for _ in range(2):
            set_loader_epoch(loader, 1)
            runs.append([b for b in loader])
        set_loader_epoch(loader, 2)
        third = next(iter(loader))["frames"]
        assert signal.getsignal(signal.SIGCHLD) is not handler  # PyTorch's, while its workers live
    # ... and the process's own again after the block (left installed, it crashed a later OpenVINO export)
    assert signal.getsignal(signal.SIGCHLD) is handler
    assert [len(b["label"]) for b in runs[0]] == [2, 2]
    assert runs[0][0]["frames"].dtype == torch.uint8 and runs[0][0]["frames"].shape == (2, 8, 3, 224, 224)
    for a, b in zip(*runs):  # same seed and epoch: the same clips, whichever worker made them
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["index"], b["index"])
    assert not torch.equal(third, runs[0][0]["frames"])


def test_flow_command_precomputes_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "ut_subset"
    (data / "videos").mkdir(parents=True)
    lines = []
    for name, label in [("0_1_4.avi", "punching"), ("1_1_2.avi", "kicking"), ("0_11_4.avi", "punching")]:
        src = require(UT / ("set2" if "_11_" in name else "set1") / name)
        (data / "videos" / name).symlink_to(src)
        lines.append(f"videos/{name},{label},{'val' if '_11_' in name else 'train'}")
    (data / "labels.csv").write_text("path,label,split\n" + "\n".join(lines) + "\n")
    args = ["flow", "--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--workers", "2"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "3 computed, 0 already cached, 0 failed" in first.stdout
    cache = FlowCache(tmp_path / "cache", FlowConfig())
    assert all(cache.has(data / "videos" / n) for n in ("0_1_4.avi", "1_1_2.avi", "0_11_4.avi"))
    cache.entry_path(data / "videos" / "1_1_2.avi").unlink()  # as if interrupted before this one
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "1 computed, 2 already cached" in again.stdout
    # flow targets do not depend on the split: a CSV with none is fine, and --flow-cache names the same cache
    unsplit = data / "unsplit.csv"
    unsplit.write_text("path,label\n" + "\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    plain = runner.invoke(app, ["flow", "--data", str(unsplit), "--flow-cache", str(tmp_path / "cache")])
    assert plain.exit_code == 0 and "0 computed, 3 already cached" in plain.stdout, plain.output
    bad = runner.invoke(app, [*args, "--method", "farneback"])
    assert bad.exit_code == 1 and "--method must be dis or tvl1" in bad.stderr
    assert UT_VAL  # the UT split constants come from the dataset tests

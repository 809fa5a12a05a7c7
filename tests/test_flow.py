"""Optical-flow targets: agreement with DeepMind's TV-L1 flow, quantisation, and the on-disk cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from actionkit.data.flow import (
    FlowCache,
    FlowConfig,
    compute_flow,
    dequantize_flow,
    precompute_flows,
    quantize_flow,
    resize_flow,
    unit_flow,
)
from actionkit.data.transforms import short_side_size
from actionkit.data.video import read_video
from actionkit.errors import VideoNotFoundError

from conftest import CLIPS, DATA, require
from videos import truncate

try:
    import cv2

    HAS_TVL1 = hasattr(cv2, "optflow")
except ImportError:
    HAS_TVL1 = False
NEEDS_TVL1 = pytest.mark.skipif(not HAS_TVL1, reason="TV-L1 needs OpenCV's contrib build (cv2.optflow): "
                                "opencv-contrib-python-headless, which the dev extra installs")

# Three short UT-Interaction clips (52, 59 and 74 frames; 340×260, 308×232, 304×292).
UT_CLIPS = ("set2/10_12_4.avi", "set1/44_8_4.avi", "set2/11_12_2.avi")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _deepmind_flow() -> tuple[np.ndarray, np.ndarray]:
    """CricketShot RGB frames (79×224×224×3) and DeepMind's flow from its flow GIF in [-1, 1] units
    (= px / 20). The GIF has 79 frames like the RGB one; GIF frame i is the flow of frames i -> i+1
    (shifting by one frame lowers the agreement a lot), so its last frame has no pair and is dropped."""
    rgb = read_video(require(CLIPS / "v_CricketShot_g04_c01_rgb.gif")).frames
    gif = read_video(require(CLIPS / "v_CricketShot_g04_c01_flow.gif")).frames
    assert rgb.shape == gif.shape == (79, 224, 224, 3)
    assert (gif[..., 2] == 127).all()  # R = u, G = v, B unused (zero flow)
    # value / 255 - 0.5 is DeepMind's [-1, 1] scale: the spread of TV-L1 in px over the spread of this
    # is ~20 (19-20 for u and v), i.e. px / bound with bound 20.
    return rgb, gif[:-1, ..., :2].astype(np.float32) / 255 - 0.5


@NEEDS_TVL1
def test_tvl1_matches_deepmind_flow_and_dis_is_close():
    """Acceptance: our TV-L1 against DeepMind's TV-L1 flow of the CricketShot clip.

    DeepMind computed flow on frames resized to short side 256, then centre-cropped 224; the GIF holds
    the 224 crops. We follow that protocol as far as the crop allows: the 224² frames are computed at
    256² (``short_side=256``) and the flow resized back to 224² with its vectors scaled (``resize_flow``).
    TV-L1 takes ~1.3 s a pair at 256² on a CPU core, so this uses every 4th of the 78 pairs (20 pairs)
    to stay inside CI's budget. Measured (per-pixel Pearson correlation, all pixels of all pairs):
    these 20 pairs u 0.930, v 0.859; the full sequence u 0.935, v 0.862. At 224² directly the v
    agreement is lower (full sequence u 0.926, v 0.847): TV-L1's pyramid and median filter act at a
    different scale. DIS (medium) runs on every pair at 224² (u 0.783, v 0.610).
    """
    rgb, reference = _deepmind_flow()

    pairs = np.arange(0, 78, 4)
    tvl1 = FlowConfig(method="tvl1", short_side=256)
    flow = np.concatenate([compute_flow(rgb[i:i + 2], tvl1) for i in pairs])
    assert flow.shape == (len(pairs), 256, 256, 2) and flow.dtype == np.float32
    flow = resize_flow(flow, 224, 224)
    r_u, r_v = (_correlation(flow[..., c], reference[pairs, ..., c]) for c in (0, 1))
    print(f"\nTV-L1 vs DeepMind ({len(pairs)} of 78 pairs): u {r_u:.4f}  v {r_v:.4f}")
    assert r_u >= 0.85 and r_v >= 0.85

    dis = compute_flow(rgb, FlowConfig(method="dis", short_side=None))
    assert dis.shape == (78, 224, 224, 2)
    d_u, d_v = (_correlation(dis[..., c], reference[..., c]) for c in (0, 1))
    print(f"DIS medium vs DeepMind (78 pairs): u {d_u:.4f}  v {d_v:.4f}")
    assert d_u > 0.7 and d_v > 0.5


def test_resize_flow_scales_vectors_with_the_image():
    flow = np.zeros((3, 4, 8, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    resized = resize_flow(flow, 8, 4)  # twice as tall, half as wide
    assert resized.shape == (3, 8, 4, 2)
    np.testing.assert_allclose(resized[..., 0], 1.0)
    np.testing.assert_allclose(resized[..., 1], -2.0)
    assert resize_flow(flow[0], 8, 4).shape == (8, 4, 2)


@pytest.mark.parametrize("method", ["dis", pytest.param("tvl1", marks=NEEDS_TVL1)])
def test_flow_is_pixels_from_frame_i_to_i_plus_1(method):
    """A textured image moved 3 px right and 2 px up: u ≈ +3, v ≈ -2 (image x and y)."""
    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(0, 256, (40, 40, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # 160×160
    frames = np.stack([texture[20:140, 20:140], texture[22:142, 17:137]])  # content moves +3 x, -2 y
    flow = compute_flow(frames, FlowConfig(method=method, short_side=None))
    assert flow.shape == (1, 120, 120, 2)
    u, v = np.median(flow[0, 20:-20, 20:-20].reshape(-1, 2), axis=0)
    assert u == pytest.approx(3, abs=0.25) and v == pytest.approx(-2, abs=0.25)


def test_frames_are_resized_to_the_short_side_first():
    frames = np.random.default_rng(0).integers(0, 256, (3, 300, 200, 3), dtype=np.uint8)  # portrait
    assert compute_flow(frames, FlowConfig(short_side=128)).shape == (2, 192, 128, 2)
    assert compute_flow(frames[:1], FlowConfig(short_side=64)).shape == (0, 96, 64, 2)


@pytest.mark.parametrize("bound", [20.0, 7.5])
def test_quantize_round_trip_and_clipping(bound):
    flow = np.random.default_rng(0).uniform(-bound, bound, (4, 16, 16, 2)).astype(np.float32)
    q = quantize_flow(flow, bound)
    assert q.dtype == np.uint8 and q.shape == flow.shape
    back = dequantize_flow(q, bound)
    assert back.dtype == np.float32
    assert np.abs(back - flow).max() <= bound / 255 + 1e-5
    outside = np.array([-3 * bound, -bound, 0.0, bound, 3 * bound], np.float32)
    assert quantize_flow(outside, bound).tolist() == [0, 0, 128, 255, 255]
    np.testing.assert_allclose(dequantize_flow(quantize_flow(outside, bound), bound),
                               [-bound, -bound, bound / 255, bound, bound], atol=1e-5)
    np.testing.assert_allclose(unit_flow(back, bound), back / bound, atol=1e-6)
    assert unit_flow(outside, bound).tolist() == [-1, -1, 0, 1, 1]


def test_config_key_is_stable_and_covers_every_field():
    base = FlowConfig()
    assert base.key() == FlowConfig(method="dis", short_side=128, bound=20, dis_preset="medium").key()
    others = [FlowConfig(method="tvl1"), FlowConfig(short_side=None), FlowConfig(short_side=112),
              FlowConfig(bound=10.0), FlowConfig(dis_preset="fast")]
    assert len({base.key(), *(c.key() for c in others)}) == 1 + len(others)
    with pytest.raises(ValueError, match="method"):
        FlowConfig(method="farneback")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="short_side"):
        FlowConfig(short_side=0)


@pytest.fixture
def ut_copies(tmp_path: Path) -> list[Path]:
    """The UT clips copied into tmp_path (so their modification times can be changed)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    return [Path(shutil.copy(require(DATA / "ut_interaction" / name), folder / Path(name).name))
            for name in UT_CLIPS]


def test_cache_computes_once_and_recomputes_only_what_changed(ut_copies, tmp_path):
    """Acceptance: a first pass computes each entry once, a second epoch (a new FlowCache on the same
    root) computes nothing, a touched video is recomputed alone, other settings get other entries."""
    root = tmp_path / "cache"
    first = FlowCache(root, FlowConfig())
    entries = [first.get(video) for video in ut_copies]
    assert first.computations == 3
    for video, entry in zip(ut_copies, entries):  # shapes: (T-1)×h×w×2 with short side 128
        frames = read_video(video).frames
        assert isinstance(entry, np.memmap) and entry.dtype == np.uint8
        assert entry.shape == (len(frames) - 1, *short_side_size(*frames.shape[1:3], 128), 2)
        assert min(entry.shape[1:3]) == 128
    [first.get(video) for video in ut_copies]
    assert first.computations == 3

    second = FlowCache(root, FlowConfig())
    assert all(second.has(video) for video in ut_copies)
    for video, entry in zip(ut_copies, entries):
        np.testing.assert_array_equal(second.get(video), entry)
    assert second.computations == 0

    stat = ut_copies[1].stat()
    os.utime(ut_copies[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert [second.has(video) for video in ut_copies] == [True, False, True]
    [second.get(video) for video in ut_copies]
    assert second.computations == 1

    other = FlowCache(root, FlowConfig(short_side=96))
    assert not any(other.has(video) for video in ut_copies)
    assert min(other.get(ut_copies[0]).shape[1:3]) == 96
    tvl1 = FlowCache(root, FlowConfig(method="tvl1"))
    assert {tvl1.entry_path(v) for v in ut_copies}.isdisjoint(second.entry_path(v) for v in ut_copies)

    with pytest.raises(VideoNotFoundError):
        second.get(tmp_path / "missing.avi")


def test_put_stores_whole_entries(ut_copies, tmp_path):
    cache = FlowCache(tmp_path / "cache", FlowConfig())
    q = np.zeros((2, 4, 5, 2), np.uint8)
    path = cache.put(ut_copies[0], q)
    assert path == cache.entry_path(ut_copies[0]) and cache.has(ut_copies[0])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    np.testing.assert_array_equal(cache.get(ut_copies[0]), q)
    assert cache.computations == 0
    with pytest.raises(ValueError, match="uint8"):
        cache.put(ut_copies[0], q.astype(np.float32))


def test_default_root_follows_actionkit_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTIONKIT_CACHE", str(tmp_path))
    assert FlowCache(None, FlowConfig()).root == tmp_path / "flow"


def test_precompute_resumes_and_reports_bad_videos(ut_copies, tmp_path, capsys):
    """Acceptance: only missing entries are computed (in worker processes), so a rerun after an
    interruption (here: a deleted entry) resumes; an undecodable video is reported, the others go on."""
    broken = truncate(ut_copies[0], tmp_path / "videos" / "broken.avi", 0.3)
    videos = [*ut_copies, broken, tmp_path / "videos" / "gone.avi"]
    cache = FlowCache(tmp_path / "cache", FlowConfig())

    report = precompute_flows(videos, cache, workers=2, progress=False)
    assert (report.computed, report.skipped) == (3, 0) and cache.computations == 3
    assert [path for path, _ in report.failed] == [str(videos[4]), str(broken)]
    assert "no such file" in report.failed[0][1]
    assert "broken.avi" in report.failed[1][1] and "truncated" in report.failed[1][1]
    assert report.seconds > 0
    expected = quantize_flow(compute_flow(read_video(ut_copies[0]).frames), 20.0)
    np.testing.assert_array_equal(FlowCache(cache.root, FlowConfig()).get(ut_copies[0]), expected)

    cache.entry_path(ut_copies[2]).unlink()
    report = precompute_flows(videos, FlowCache(cache.root, FlowConfig()), workers=2, progress=True)
    assert (report.computed, report.skipped, len(report.failed)) == (1, 2, 2)
    assert "flow" in capsys.readouterr().err
    assert all(cache.has(video) for video in ut_copies)


def test_tvl1_without_opencv_contrib_names_the_package(monkeypatch):
    """Where OpenCV lacks its contrib modules (a plain opencv-python install), asking for TV-L1 says what
    to install instead of failing on a missing attribute."""
    cv2 = pytest.importorskip("cv2")
    if hasattr(cv2, "optflow"):
        monkeypatch.delattr(cv2, "optflow")
    frames = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ImportError, match="opencv-contrib-python-headless"):
        compute_flow(frames, FlowConfig(method="tvl1"))

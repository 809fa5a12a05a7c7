"""Decoding holds up on every container and on awkward files: memory does not grow with a video whose
header gives no frame count, a truncated file is refused everywhere, a folder without videos is one bad
entry of a batch, display rotation is applied, and a still image is called an image."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from actionkit import NotAVideoError, Recognizer
from actionkit.config import PreprocessConfig
from actionkit.data.datasets import VideoSample
from actionkit.data.frame_source import FrameSource
from actionkit.data.loader import ClipDataset
from actionkit.data.sampling import plan_clips
from actionkit.data.video import probe_video, read_frames, read_planned_frames, read_video
from actionkit.errors import CorruptVideoError

from conftest import CLIPS, require
from videos import (
    moving_square,
    moving_square_frames,
    remux,
    remux_faststart,
    truncate,
    write_image,
    write_video,
)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionkit.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single ``error: ...`` line a failed command printed (no traceback, nothing else wrong)."""
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


# --- 1. memory does not grow with the length of a video whose header has no frame count ----------------

LONG_FPS, LONG_SECONDS, LONG_HEIGHT, LONG_WIDTH = 10, 180, 240, 320
LONG_FRAMES = LONG_FPS * LONG_SECONDS
FRAME_BYTES = LONG_HEIGHT * LONG_WIDTH * 3


@pytest.fixture(scope="module")
def long_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three minutes of the same MPEG-4 stream as MP4 (the header counts the frames) and as Matroska
    (it does not): 1800 frames of 320×240, 414 MB as RGB."""
    folder = tmp_path_factory.mktemp("long")
    mp4 = write_video(folder / "long.mp4", moving_square_frames(LONG_FRAMES, LONG_HEIGHT, LONG_WIDTH), fps=LONG_FPS)
    mkv = remux(mp4, folder / "long.mkv")
    with av.open(str(mp4)) as a, av.open(str(mkv)) as b:
        assert a.streams.video[0].frames == LONG_FRAMES and not b.streams.video[0].frames
    return mp4, mkv


GROWTH = """
import json, resource, sys
import numpy as np
from actionkit.config import PreprocessConfig
from actionkit.data.sampling import plan_clips
from actionkit.data.video import probe_video, read_frames, read_planned_frames

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

video, pre = sys.argv[1], PreprocessConfig(clip_len=16)
read_frames(video, [0, 1, 2])  # decoder libraries and threads loaded: the baseline
growth, before = {}, peak()
num_frames, planned = read_planned_frames(video, lambda count: plan_clips(count, pre).frames)
growth["predict"] = peak() - before
clip = read_frames(video, np.arange(1000, 1064))
growth["training clip"] = peak() - before
info = probe_video(video)
growth["data check"] = peak() - before
print(json.dumps({"growth_mib": growth, "num_frames": num_frames, "planned": sorted(planned),
                  "clip": list(clip.shape), "probed": info.num_frames}))
"""


def test_decoding_a_long_video_without_a_frame_count_holds_only_the_frames_it_uses(
        long_pair: tuple[Path, Path]) -> None:
    """Peak RSS of a fresh process: planning clips, reading a training clip and counting frames (the
    dataset check) of three minutes of Matroska add the frames used and the decoder, not the video."""
    _, mkv = long_pair
    done = subprocess.run([sys.executable, "-c", GROWTH, str(mkv)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["num_frames"] == report["probed"] == LONG_FRAMES
    assert report["planned"] == plan_clips(LONG_FRAMES, PreprocessConfig(clip_len=16)).frames.tolist()
    assert report["clip"] == [64, LONG_HEIGHT, LONG_WIDTH, 3]
    whole_video_mib = LONG_FRAMES * FRAME_BYTES / 2**20
    for reader, growth in report["growth_mib"].items():
        assert growth < 100, f"{reader}: {growth:.0f} MiB more (the whole video is {whole_video_mib:.0f} MiB)"


def test_planned_frames_without_a_frame_count_equal_a_full_decode(long_pair: tuple[Path, Path]) -> None:
    mp4, mkv = long_pair
    pre = PreprocessConfig(clip_len=16, frame_sampling="consecutive", frame_stride=2, num_clips=3)
    wanted = plan_clips(LONG_FRAMES, pre).frames
    num_frames, frames = read_planned_frames(mkv, lambda count: plan_clips(count, pre).frames)
    assert num_frames == LONG_FRAMES and sorted(frames) == wanted.tolist()
    reference = read_frames(mp4, wanted)
    assert all(np.array_equal(frames[int(i)], f) for i, f in zip(wanted, reference))


PEAK_RSS = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def peak_rss(*args: str) -> tuple[float, dict]:
    """Peak RSS (MiB) of ``python -m actionkit.cli ARGS`` run in a fresh process, and what it printed."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "actionkit.cli", *args],
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    return report["peak_kib"] / 1024, report


def test_predict_peak_memory_on_mkv_equals_mp4(long_pair: tuple[Path, Path], k400_fast_dir: Path) -> None:
    peaks = {}
    for video in long_pair:
        peaks[video.suffix], report = peak_rss("predict", str(video), "--model", str(k400_fast_dir), "--json", "-k", "1")
        assert report["rc"] == 0, report["stderr"]
        assert json.loads(report["stdout"])[0]["predictions"]
    print(f"peak RSS of predict, 3 min of {LONG_WIDTH}×{LONG_HEIGHT}: MP4 {peaks['.mp4']:.0f} MiB, "
          f"MKV {peaks['.mkv']:.0f} MiB")
    assert abs(peaks[".mkv"] - peaks[".mp4"]) <= 0.2 * peaks[".mp4"], peaks


# --- 2. one strict decoding policy for files: the timeline and its refinement pass too -----------------

@pytest.fixture(scope="module")
def cut_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 120-frame MP4 with its index first, cut at 60% of its bytes: it opens, and about half decodes."""
    folder = tmp_path_factory.mktemp("cut")
    whole = remux_faststart(write_video(folder / "whole.mp4", moving_square(120, 120, 160)), folder / "faststart.mp4")
    return truncate(whole, folder / "cut.mp4", fraction=0.6)


def test_frame_source_refuses_a_truncated_file(cut_video: Path) -> None:
    with FrameSource(cut_video) as source, pytest.raises(CorruptVideoError, match=r"cut\.mp4: .*of the 120 frames"):
        for _ in source.chunks(16):
            pass
    with FrameSource(cut_video) as source, pytest.raises(CorruptVideoError, match=r"cut\.mp4: .*of the 120 frames"):
        list(source.frames_at(list(range(0, 119, 2))))  # the boundary refinement's pass


def test_timeline_refuses_a_truncated_video_like_predict(cut_video: Path, k400_fast_dir: Path) -> None:
    done = run_cli("predict", str(cut_video), "--model", str(k400_fast_dir), "--timeline", "--json")
    assert done.returncode == 1 and done.stdout.strip() == ""
    error = one_error_line(done)
    assert error.startswith(f"error: {cut_video}: ") and "truncated" in error and "of the 120 frames" in error


# --- 3. a folder argument without videos is one bad entry; the others are predicted -------------------

def test_a_folder_without_videos_is_an_error_entry_of_the_batch(k400_fast_dir: Path, tmp_path: Path) -> None:
    a = write_video(tmp_path / "a.mp4", moving_square(20, 120, 160))
    b = write_video(tmp_path / "b.mp4", moving_square(24, 120, 160))
    folder = tmp_path / "dir_named.mp4"
    folder.mkdir()
    done = run_cli("predict", str(a), str(folder), str(b), "--model", str(k400_fast_dir), "--json", "-k", "1")
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert [entry["video"] for entry in payload] == [str(a), str(folder), str(b)]
    assert [bool(entry["predictions"]) for entry in payload] == [True, False, True]
    assert "error" not in payload[0] and "error" not in payload[2]
    assert payload[1]["error"].startswith(f"{folder}: folder holds no video files")
    assert one_error_line(done) == f"error: {payload[1]['error']}"

    recognizer = Recognizer.from_pretrained(str(k400_fast_dir))
    results = recognizer.predict([str(a), str(folder), str(b)], top_k=1)
    assert [r.ok for r in results] == [True, False, True] and results[1].predictions == []
    with pytest.raises(NotAVideoError, match="dir_named.mp4: folder holds no video files"):
        recognizer.predict([str(a), str(folder)], on_error="raise")


# --- 4. display rotation is applied wherever frames are decoded ---------------------------------------

UPRIGHT_H, UPRIGHT_W = 96, 64  # what a player shows: portrait


def upright_frames(num_frames: int) -> np.ndarray:
    """Top half white, bottom half black, with a grey block in the top-left corner (so a mirror image
    or a turn the wrong way shows)."""
    frames = np.zeros((num_frames, UPRIGHT_H, UPRIGHT_W, 3), np.uint8)
    frames[:, :UPRIGHT_H // 2] = 255
    frames[:, :UPRIGHT_H // 4, :UPRIGHT_W // 2] = 128
    return frames


def assert_upright(frames: np.ndarray) -> None:
    assert frames.shape[-3:] == (UPRIGHT_H, UPRIGHT_W, 3), frames.shape
    h, w = UPRIGHT_H, UPRIGHT_W
    top_left, top_right = frames[..., 2:h // 4 - 2, 2:w // 2 - 2, :], frames[..., 2:h // 4 - 2, w // 2 + 2:-2, :]
    assert abs(float(top_left.mean()) - 128) < 12 and float(top_right.mean()) > 240
    assert float(frames[..., h // 2 + 2:, :, :].mean()) < 15


@pytest.fixture(scope="module", params=[("mp4", "libx264", -90), ("mp4", "mpeg4", 90), ("mkv", "libx264", 180),
                                        ("mkv", "mpeg4", -90)], ids=lambda p: f"{p[0]}-{p[1]}-{p[2]}")
def rotated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video coded turned by ``-rotation`` degrees, with a display matrix that turns it back upright."""
    suffix, codec, rotation = request.param
    coded = np.rot90(upright_frames(30), k=-rotation // 90, axes=(1, 2))
    path = tmp_path_factory.mktemp("rotated") / f"rot{rotation}_{codec}.{suffix}"
    return write_video(path, np.ascontiguousarray(coded), fps=10, codec=codec, rotation=rotation)


def test_rotated_videos_decode_upright_everywhere(rotated: Path) -> None:
    assert_upright(read_video(rotated).frames)
    info = probe_video(rotated)
    assert (info.height, info.width, info.num_frames) == (UPRIGHT_H, UPRIGHT_W, 30)
    assert_upright(read_frames(rotated, [0, 7, 29]))
    num_frames, planned = read_planned_frames(rotated, lambda count: np.arange(0, count, 3))
    assert num_frames == 30 and len(planned) == 10
    assert_upright(np.stack(list(planned.values())))
    with FrameSource(rotated) as source:  # the timeline's pass
        assert_upright(np.concatenate(list(source.chunks(8))))
    with FrameSource(rotated) as source:  # the boundary refinement's pass
        assert_upright(np.stack([frame for _, frame in source.frames_at([3, 4, 20])]))


def test_prediction_and_training_views_of_a_rotated_video_are_upright(rotated: Path, k400_fast_dir: Path) -> None:
    """The views prediction and evaluation score, with the whole short side kept (64 px) and a 64-px crop so
    that they keep the frame's layout, equal those of the upright frames given as an array."""
    recognizer = Recognizer.from_pretrained(str(k400_fast_dir))
    pre = replace(recognizer.config.preprocessing, resize_short_side=64, crop_size=64)
    recognizer.config.preprocessing = pre
    from_file = recognizer.load_clips(str(rotated)).float()
    from_upright = recognizer.load_clips(upright_frames(30)).float()
    assert from_file.shape == from_upright.shape
    assert float((from_file - from_upright).abs().mean()) < 6
    views = ClipDataset([VideoSample(rotated, 0, "val")], train=False, eval_preprocessing=pre)[0]["frames"]
    assert float((views.float() - from_upright).abs().mean()) < 6


# --- 5. a still image is not a video ------------------------------------------------------------------

IMAGES = {"JPEG": ("photo.jpg", "mjpeg"), "PNG": ("drawing.png", "png"), "BMP": ("scan.bmp", "bmp"),
          "WebP": ("picture.webp", "libwebp")}


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_still_images_are_refused_as_images(kind: str, tmp_path: Path) -> None:
    name, codec = IMAGES[kind]
    image = write_image(tmp_path / name, moving_square(1, 48, 64)[0], codec)
    disguised = tmp_path / f"{Path(name).stem}.mp4"
    disguised.write_bytes(image.read_bytes())
    for path in (image, disguised):
        for read in (read_video, probe_video, lambda p: read_planned_frames(p, lambda n: np.arange(n)),
                     FrameSource):
            with pytest.raises(NotAVideoError) as error:
                read(path)
            assert str(error.value) == f"{path}: is an image ({kind}), not a video"


def test_a_gif_stays_a_video(tmp_path: Path) -> None:
    gif = write_video(tmp_path / "anim.gif", moving_square(5, 48, 64), fps=10, codec="gif", pix_fmt="rgb8")
    assert read_video(gif).num_frames == 5
    assert read_video(require(CLIPS / "v_CricketShot_g04_c01_rgb.gif")).num_frames > 1


def test_cli_says_an_image_is_not_a_video(k400_fast_dir: Path, tmp_path: Path) -> None:
    photo = write_image(tmp_path / "photo.jpg", moving_square(1, 120, 160)[0], "mjpeg")
    done = run_cli("predict", str(photo), "--model", str(k400_fast_dir), "--json")
    assert done.returncode == 1
    assert one_error_line(done) == f"error: {photo}: is an image (JPEG), not a video"
    assert json.loads(done.stdout) == [{"video": str(photo), "predictions": [],
                                        "error": f"{photo}: is an image (JPEG), not a video"}]
    done = run_cli("predict", str(photo), "--model", str(k400_fast_dir), "--timeline")
    assert done.returncode == 1
    assert one_error_line(done) == f"error: {photo}: is an image (JPEG), not a video"

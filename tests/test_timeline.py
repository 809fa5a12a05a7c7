"""Timelines over long videos and predictions over live sources, on real clips."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from actionkit import Recognizer
from actionkit.cli.app import app
from actionkit.data.frame_source import StreamError
from actionkit.data.sampling import clip_span, sliding_windows
from actionkit.data.video import read_video
from actionkit.errors import ActionkitError
from actionkit.predict.boundaries import best_cut, boundaries_to_refine, short_clip, short_window_starts
from actionkit.predict.timeline_result import Segment, WindowPrediction, merge_segments
from actionkit.predict.windows import sliding

from conftest import CLIPS, require
from videos import remux_faststart, write_video

runner = CliRunner()
CONCATENATED = [("arm_wrestling.mp4", "arm wrestling"), ("cleaning_pool.mp4", "cleaning pool"),
                ("ucf101_HeadMassage.avi", "massaging person's head")]
FPS = 25


# --- windowing and segments (no model) -----------------------------------------------------------

@pytest.mark.parametrize("num_frames,window,stride,frame_stride",
                         [(100, 32, 16, 1), (64, 32, 32, 1), (300, 16, 10, 2), (200, 64, 32, 1), (7, 8, 4, 1)])
def test_sliding_windows_over_a_frame_stream(num_frames: int, window: int, stride: int, frame_stride: int) -> None:
    frames = (torch.full((3, 2, 2), i, dtype=torch.int32) for i in range(num_frames))
    windows = list(sliding(frames, window, stride, frame_stride))
    span = clip_span(window, frame_stride)
    assert [(w.start, w.end) for w in windows] == sliding_windows(num_frames, span, stride)
    for w in windows:
        taken = w.clip[:, 0, 0, 0].tolist()
        if w.looped:  # shorter than a window: looped, like prediction
            assert taken == [(i * frame_stride) % num_frames for i in range(window)]
        else:
            assert taken == list(range(w.start, w.end, frame_stride)) and len(taken) == window


def _windows(labels: list[str], scores: list[float], window: int = 64, stride: int = 32) -> list[WindowPrediction]:
    return [WindowPrediction(i * stride / FPS, (i * stride + window) / FPS, i * stride, i * stride + window,
                             [(label, score)]) for i, (label, score) in enumerate(zip(labels, scores))]


def test_segments_split_a_straddling_window_and_keep_long_doubt_unlabelled() -> None:
    windows = _windows(["a", "a", "a", "x", "b", "b", "c", "c", "c", "c"], [.9, .9, .9, .3, .8, .8, .2, .3, .3, .2])
    segments = merge_segments(windows, num_frames=9 * 32 + 64, fps=FPS, threshold=0.5)
    assert [s.label for s in segments] == ["a", "b"]
    # window centres are at 32 + 32 i frames; "a" owns up to 112, the doubtful "x" (112-144) is halved
    assert segments[0].start == 0 and segments[0].end == pytest.approx(128 / FPS)
    assert segments[1].start == pytest.approx(128 / FPS) and segments[1].end == pytest.approx(208 / FPS)
    assert segments[0].score == pytest.approx(0.9)
    # the same action on both sides of one doubtful window stays one segment
    same = merge_segments(_windows(["a", "a", "x", "a"], [.9, .9, .2, .9]), 3 * 32 + 64, FPS, 0.5)
    assert [(s.label, s.start, s.end) for s in same] == [("a", 0, (3 * 32 + 64) / FPS)]


def test_best_cut_separates_the_two_labels_votes_by_hand() -> None:
    # log p_A − log p_B per short window (centres 10..50): A, A, a doubtful B, A, then B
    centres, scores = np.array([10.0, 20, 30, 40, 50]), np.array([3.0, 4, -0.5, 20, -5])
    # clipped to ±5: [3, 4, -0.5, 5, -5], total 6.5; cuts 5, 15, 25, 35, 45, 55 have Σ before
    # [0, 3, 7, 6.5, 11.5, 6.5], so Σ before − Σ after = [-6.5, -0.5, 7.5, 6.5, 16.5, 6.5]: the cut at 45
    assert best_cut(centres, scores, lo=5, hi=55, near=30) == 45
    # one confident outlier inside B's stretch: unclipped (total 24) it would pull the cut to 65
    # (value 32 against -16 at 25); clipped (total -1) the cut stays at 25 (value 9 against 7)
    outlier = np.array([2.0, 2, -2, -2, -2, 30, -2, -2])
    assert best_cut(np.arange(10.0, 90, 10), outlier, lo=5, hi=85, near=40) == 25
    # ties go to the cut nearest the window-level boundary
    assert best_cut(np.array([10.0, 20]), np.array([0.0, 0]), 0, 30, near=29) == 30
    assert best_cut(np.array([10.0, 20]), np.array([0.0, 0]), 0, 30, near=14) == 15


def test_boundaries_to_refine_stay_inside_their_two_segments() -> None:
    segments = [Segment("a", 0, 4.0, .9), Segment("b", 4.0, 5.0, .8), Segment("b", 6.0, 9.0, .8),
                Segment("c", 9.0, 12.0, .9)]
    found = boundaries_to_refine(segments, fps=FPS, num_frames=300, reach=64)
    # a|b touch (100 frames in: region 36..125, b ends at 125); b..b have a gap; b|c touch at 225
    assert [(b.left, b.before, b.after, b.frame, b.lo, b.hi) for b in found] == [
        (0, "a", "b", 100, 36, 125), (2, "b", "c", 225, 161, 289)]
    starts = short_window_starts(found[0], span=16, step=8, num_frames=300)
    assert starts == list(range(28, 117, 8))  # 16-frame windows whose centres (36 .. 124) lie in 36..125


def test_a_fixed_length_model_gets_short_windows_looped_to_its_length() -> None:
    frames = {i: torch.full((3, 2, 2), i, dtype=torch.uint8) for i in range(40)}
    clip = short_clip(frames, start=10, window=4, frame_stride=2, model_len=16)
    assert clip[:, 0, 0, 0].tolist() == [10, 12, 14, 16] * 4
    assert short_clip(frames, 10, 4, 2, None)[:, 0, 0, 0].tolist() == [10, 12, 14, 16]
    assert short_clip(frames, 36, 4, 2, None) is None  # runs past the frames held


# --- a long video made of three actions ----------------------------------------------------------

@pytest.fixture(scope="module", params=["mpeg4", "libx264"])
def concatenated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """Three shared clips of different actions back to back at 340×256, 25 fps, and the true boundaries (s),
    encoded with MPEG-4 Part 2 and with H.264 (x264 once put a window-level boundary 1.6 s early)."""
    import cv2

    parts = []
    for name, _ in CONCATENATED:
        frames = read_video(require(CLIPS / name)).frames
        if frames.shape[1:3] != (256, 340):
            frames = np.stack([cv2.resize(f, (340, 256), interpolation=cv2.INTER_AREA) for f in frames])
        parts.append(frames)
    path = write_video(tmp_path_factory.mktemp("long") / "three_actions.mp4", np.concatenate(parts), fps=FPS,
                       codec=request.param)
    boundaries = list(np.cumsum([len(p) for p in parts]) / FPS)
    return path, boundaries


def test_timeline_of_three_actions_finds_them_in_order_with_boundaries_within_a_stride(
        concatenated: tuple[Path, list[float]], k400_dir: Path, tmp_path: Path) -> None:
    video, boundaries = concatenated
    out = tmp_path / "timeline"
    result = runner.invoke(app, ["predict", str(video), "--model", str(k400_dir), "--timeline", "--window", "64",
                                 "--stride", "32", "--top-k", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    segments = report["segments"]
    assert [s["label"] for s in segments] == [label for _, label in CONCATENATED], segments
    stride_s = 32 / FPS
    assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(boundaries[-1])
    assert report["refine_window"] == 16
    for left, right, truth in zip(segments, segments[1:], boundaries):
        assert left["end"] == pytest.approx(right["start"]) and abs(left["end"] - truth) <= stride_s, (segments, boundaries)
        assert abs(left["end"] - truth) <= 16 / FPS, (segments, boundaries)  # refined: within one short window
    assert report["summary"][0]["label"] in {label for _, label in CONCATENATED}
    # every window, with its times, in the JSON and the CSV; the plot beside them
    windows = report["windows"]
    assert windows[0]["start"] == 0 and windows[-1]["end"] == pytest.approx(boundaries[-1])
    assert all(b["start"] - a["start"] == pytest.approx(stride_s) for a, b in zip(windows[:-2], windows[1:-1]))
    assert json.loads((out / "timeline.json").read_text())["segments"] == segments
    csv_lines = (out / "windows.csv").read_text().splitlines()
    assert csv_lines[0] == "start_s,end_s,start_frame,end_frame,rank,label,score" and len(csv_lines) == 1 + 3 * len(windows)
    assert (out / "timeline.png").stat().st_size > 20_000


def test_timeline_of_a_video_shorter_than_a_window_loops_it_and_says_so(k400_fast_dir: Path) -> None:
    recognizer = Recognizer.from_pretrained(k400_fast_dir, device="cpu")
    dive = require(CLIPS / "hmdb51_dive.mp4")  # 45 frames
    result = recognizer.timeline(dive, window=64)
    assert len(result.windows) == 1 and result.windows[0].end_frame == 45 == result.num_frames
    assert "shorter than one 64-frame window" in result.warnings[0]
    with pytest.raises(Exception, match="use Recognizer.stream"):
        recognizer.timeline("http://127.0.0.1:9/live.mp4")


def test_onnx_models_refuse_windows_they_cannot_take_clearly(k400_fast_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from actionkit.export import export_model

    export_model(k400_fast_dir, tmp_path / "onnx", check=False, log=lambda _: None)
    recognizer = Recognizer.from_pretrained(tmp_path / "onnx", device="cpu", backend="onnxruntime")
    assert recognizer.backend.fixed_clip_len == 16
    with pytest.raises(ActionkitError, match="exactly 16 frames, not a 32-frame window.*dynamic-clip-len"):
        recognizer.timeline(require(CLIPS / "hmdb51_dive.mp4"), window=32)
    result = recognizer.timeline(require(CLIPS / "hmdb51_dive.mp4"), stride=8, refine_window=8)
    assert result.num_frames == 45 and len(result.windows) == 5
    # a dynamic clip length takes multiples of 8 from 16: other windows are refused before any decoding
    export_model(k400_fast_dir, tmp_path / "dynamic", dynamic_clip_len=True, check=False, log=lambda _: None)
    dynamic = Recognizer.from_pretrained(tmp_path / "dynamic", device="cpu", backend="onnxruntime")
    assert dynamic.backend.fixed_clip_len is None and dynamic.backend.clip_len_error(32) is None
    with pytest.raises(ActionkitError, match="multiples of 8, at least 16, not a 20-frame window"):
        dynamic.timeline(tmp_path / "never-opened.mp4", window=20)
    with pytest.raises(ActionkitError, match="multiples of 8, at least 16, not 12-frame windows.*--refine-window"):
        dynamic.timeline(tmp_path / "never-opened.mp4", window=32, refine_window=12)


# --- live sources ----------------------------------------------------------------------------------

class _Throttled(http.server.SimpleHTTPRequestHandler):
    """Serves files in 16 KiB pieces with a pause after each, like a source that is still arriving."""

    pause = 0.05
    finished: list[float] = []

    def copyfile(self, source, outputfile) -> None:
        while piece := source.read(16 * 1024):
            outputfile.write(piece)
            outputfile.flush()
            time.sleep(self.pause)
        self.finished.append(time.perf_counter())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def http_server(tmp_path: Path):
    video = remux_faststart(require(CLIPS / "hmdb51_punch.mp4"), tmp_path / "punch.mp4")  # index first: streamable
    handler = lambda *a, **kw: _Throttled(*a, directory=str(tmp_path), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Throttled.finished.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/{video.name}", video
    server.shutdown()


def test_stream_over_http_predicts_while_the_file_arrives_and_ends(http_server, k400_fast_dir: Path) -> None:
    url, video = http_server
    recognizer = Recognizer.from_pretrained(k400_fast_dir, device="cpu")
    arrivals, predictions = [], []
    for prediction in recognizer.stream(url, window=16, stride=32, timeout=10):
        arrivals.append(time.perf_counter())
        predictions.append(prediction)
    assert predictions, "no prediction from the stream"
    assert _Throttled.finished and arrivals[0] < _Throttled.finished[0]  # the first came before the file had arrived
    total = read_video(video).num_frames
    assert predictions[-1].window.end_frame == total  # the last window is flush with the end of the stream
    assert all(p.latency >= 0 and p.skipped >= 0 for p in predictions)
    assert {p.label for p in predictions} & {"punching bag", "punching person (boxing)"}
    assert not [t for t in threading.enumerate() if t.name == "actionkit-decode"]


def test_an_mp4_with_its_index_last_over_http_fails_saying_how_to_fix_it(http_server, k400_fast_dir: Path) -> None:
    """The shared clip as it is (moov after the frames), from a server without range requests."""
    url, video = http_server
    shutil.copy(require(CLIPS / "hmdb51_punch.mp4"), video.parent / "index_last.mp4")
    recognizer = Recognizer.from_pretrained(k400_fast_dir, device="cpu")
    with pytest.raises(StreamError, match="failed after frame 0 .*moov atom.*-movflags \\+faststart"):
        list(recognizer.stream(url.replace(video.name, "index_last.mp4"), stride=16))


def test_leaving_a_stream_early_stops_its_decoder(http_server, k400_fast_dir: Path) -> None:
    url, _ = http_server
    recognizer = Recognizer.from_pretrained(k400_fast_dir, device="cpu")
    predictions = recognizer.stream(url, window=16, stride=16, realtime=False)
    next(predictions)
    predictions.close()
    assert not [t for t in threading.enumerate() if t.name == "actionkit-decode"]


def test_unreachable_sources_fail_clearly_within_the_timeout(k400_fast_dir: Path) -> None:
    recognizer = Recognizer.from_pretrained(k400_fast_dir, device="cpu")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    with pytest.raises(StreamError, match=f"http://127.0.0.1:{port}/cam.mp4: cannot open the stream"):
        recognizer.stream(f"http://127.0.0.1:{port}/cam.mp4", timeout=2)
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    started = time.perf_counter()
    with pytest.raises(StreamError, match="within 2 s"):
        recognizer.stream(f"http://127.0.0.1:{silent.getsockname()[1]}/cam.mp4", timeout=2)
    assert time.perf_counter() - started < 10
    silent.close()

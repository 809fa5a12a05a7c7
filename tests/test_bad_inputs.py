"""Every bad input gives one clear message naming the file; a batch survives one bad video."""

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from actionkit import (
    I3D,
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    Recognizer,
    VideoError,
    VideoNotFoundError,
)
from actionkit.cli.app import app
from actionkit.data.video import read_video

from conftest import CLIPS, require
from videos import (
    moving_square,
    remux_faststart,
    truncate,
    write_undecodable,
    write_video,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Broken and unusual videos, made from a real clip where the damage needs one."""
    d = tmp_path_factory.mktemp("bad_videos")
    real = require(CLIPS / "arm_wrestling.mp4")  # its index (moov) sits at the end of the file
    (d / "notes.mp4").write_text("this is a text file\n" * 20)
    (d / "empty.mp4").write_bytes(b"")
    damaged = bytearray(real.read_bytes())
    third = len(damaged) // 3
    damaged[third:third + 20000] = bytes((b * 7 + 13) % 256 for b in damaged[third:third + 20000])
    (d / "corrupt.mp4").write_bytes(bytes(damaged))
    return {
        "missing": d / "does_not_exist.mp4",
        "not_video": d / "notes.mp4",
        "empty_file": d / "empty.mp4",
        "truncated_index_at_end": truncate(real, d / "cut_before_index.mp4"),
        "truncated_faststart": truncate(remux_faststart(real, d / "faststart.mp4"), d / "cut_faststart.mp4"),
        "corrupt": d / "corrupt.mp4",
        "no_decodable_frames": write_undecodable(d / "noise.mkv"),
        "short": write_video(d / "short.mp4", moving_square(6, 120, 160)),
        "portrait": write_video(d / "portrait.mp4", moving_square(20, 320, 180)),
        "tiny": write_video(d / "tiny.mp4", moving_square(20, 24, 32)),
        "grayscale": write_video(d / "gray.mkv", moving_square(20, 96, 128)[..., 0], codec="ffv1", pix_fmt="gray"),
    }


ERRORS = {
    "missing": (VideoNotFoundError, "does_not_exist.mp4: no such file"),
    "not_video": (NotAVideoError, "notes.mp4: not a video file"),
    "empty_file": (EmptyVideoError, "empty.mp4: the file is empty (0 bytes)"),
    "truncated_index_at_end": (CorruptVideoError, "cut_before_index.mp4: cannot be opened: truncated or corrupt"),
    # read_video's frame-threaded decoder reaches the end and counts the frames; predict's single-threaded one
    # stops at the cut packet and says where. Both name the file and call it truncated.
    "truncated_faststart": (CorruptVideoError, re.compile(r"cut_faststart\.mp4: (truncated or damaged: only \d+ of "
                                                          r"the 280 frames|decoding failed after frame \d+ of 280: "
                                                          r"truncated or damaged)")),
    "corrupt": (CorruptVideoError, "corrupt.mp4: decoding failed after frame"),
    "no_decodable_frames": (EmptyVideoError, "noise.mkv: has no decodable frames"),
}


def _says(message: str | re.Pattern, text: str) -> bool:
    return bool(message.search(text)) if isinstance(message, re.Pattern) else message in text


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_video_errors_name_the_file_and_problem(bad: dict[str, Path], case: str) -> None:
    kind, message = ERRORS[case]
    with pytest.raises(kind) as err:
        read_video(bad[case])
    assert str(err.value).startswith(str(bad[case].parent))
    assert _says(message, str(err.value))
    assert isinstance(err.value, VideoError) and err.value.path == str(bad[case])


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_cli_reports_one_line_and_exit_code_1(bad: dict[str, Path], case: str, k400_fast_dir: Path) -> None:
    result = runner.invoke(app, ["predict", str(bad[case]), "--model", str(k400_fast_dir), "--json"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and _says(ERRORS[case][1], errors[0])
    assert "Traceback" not in result.output
    assert json.loads(result.stdout) == [{"video": str(bad[case]), "predictions": [], "error": errors[0][7:]}]


def test_truncated_video_says_how_much_decoded(bad: dict[str, Path]) -> None:
    with pytest.raises(CorruptVideoError, match=r"only \d+ of the 280 frames its header declares"):
        read_video(bad["truncated_faststart"])
    assert read_video(bad["truncated_faststart"].with_name("faststart.mp4")).num_frames == 280


def test_unusual_but_valid_videos_are_predicted(bad: dict[str, Path], k400_fast_dir: Path) -> None:
    recognizer = Recognizer.from_pretrained(str(k400_fast_dir))
    cases = ["short", "portrait", "tiny", "grayscale"]
    results = recognizer.predict([str(bad[c]) for c in cases], top_k=2, on_error="raise")
    for case, result in zip(cases, results):
        assert result.ok and len(result.predictions) == 2, case
    short = results[0]
    assert short.warnings == [f"{bad['short']}: 6 frames, shorter than the 16-frame clip; the video was looped to fill it"]
    # frames taken 4 apart: what the video falls short of is the clip's span, not its frame count
    model = I3D.from_pretrained(str(k400_fast_dir))
    config = model.pretrained_cfg
    config.preprocessing = replace(config.preprocessing, frame_sampling="consecutive", frame_stride=4)
    (spaced,) = Recognizer(model, config, device="cpu").predict([str(bad["grayscale"])], top_k=1, on_error="raise")
    assert spaced.warnings == [f"{bad['grayscale']}: 20 frames, shorter than the 61-frame span of one clip "
                               "(16 frames 4 apart); the video was looped to fill it"]
    assert all(not r.warnings for r in results[1:])
    frames = read_video(bad["grayscale"]).frames
    assert frames.shape == (20, 96, 128, 3) and np.array_equal(frames[..., 0], frames[..., 2])


def test_short_video_note_reaches_cli_output(bad: dict[str, Path], k400_fast_dir: Path) -> None:
    result = runner.invoke(app, ["predict", str(bad["short"]), "--model", str(k400_fast_dir), "--json"])
    assert result.exit_code == 0
    assert "warning: " in result.stderr and "looped" in result.stderr
    assert "looped" in json.loads(result.stdout)[0]["warnings"][0]


def test_one_bad_video_in_a_batch(bad: dict[str, Path], k400_fast_dir: Path) -> None:
    clip = str(require(CLIPS / "arm_wrestling.mp4"))
    videos = [clip, str(bad["corrupt"]), str(bad["portrait"])]
    results = Recognizer.from_pretrained(str(k400_fast_dir)).predict(videos, batch_size=2)
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].top1.label == "arm wrestling"
    assert "corrupt.mp4: decoding failed" in results[1].error and results[1].predictions == []
    with pytest.raises(CorruptVideoError):
        Recognizer.from_pretrained(str(k400_fast_dir)).predict(videos, on_error="raise")

    cli = runner.invoke(app, ["predict", *videos, "--model", str(k400_fast_dir), "--json"])
    assert cli.exit_code == 1
    payload = json.loads(cli.stdout)
    assert [bool(entry["predictions"]) for entry in payload] == [True, False, True]


def test_bad_arrays_and_empty_folders(k400_fast_dir: Path, tmp_path: Path) -> None:
    recognizer = Recognizer.from_pretrained(str(k400_fast_dir))
    (result,) = recognizer.predict(np.zeros((10, 64, 64, 3), np.float32))
    assert result.error == "<array 0>: frames must be uint8 T×H×W×3, got dtype float32"
    (result,) = recognizer.predict(np.zeros((0, 64, 64, 3), np.uint8))
    assert result.error == "<array 0>: has no frames"
    (tmp_path / "empty_dir").mkdir()
    (result,) = recognizer.predict(str(tmp_path / "empty_dir"))  # an error entry: the batch goes on
    assert "empty_dir: folder holds no video files" in result.error
    with pytest.raises(VideoError, match="empty_dir: folder holds no video files"):
        recognizer.predict(str(tmp_path / "empty_dir"), on_error="raise")
    cli = runner.invoke(app, ["predict", str(tmp_path / "empty_dir"), "--model", str(k400_fast_dir)])
    errors = [line for line in cli.stderr.splitlines() if line.startswith("error: ")]  # after the progress bar
    assert cli.exit_code == 1 and len(errors) == 1 and "folder holds no video files" in errors[0]


def test_model_errors_through_the_console_script(tmp_path: Path) -> None:
    """A real process: one line on stderr, exit code 1, no traceback."""
    clip = str(require(CLIPS / "arm_wrestling.mp4"))
    bogus = tmp_path / "weights.pt"
    bogus.write_text("no weights here")
    for model, message in [(str(tmp_path / "missing.ckpt"), "missing.ckpt: no such file or folder"),
                           (str(bogus), "weights.pt: not a checkpoint")]:
        done = subprocess.run([sys.executable, "-m", "actionkit.cli", "predict", clip, "--model", model],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [f"error: {done.stderr.strip()[7:]}"]
        assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("case", ["short", "portrait", "tiny", "grayscale"])
def test_cli_predicts_unusual_videos_with_exit_code_0(bad: dict[str, Path], case: str, k400_fast_dir: Path) -> None:
    result = runner.invoke(app, ["predict", str(bad[case]), "--model", str(k400_fast_dir), "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["video"] == str(bad[case]) and len(entry["predictions"]) == 1 and "error" not in entry

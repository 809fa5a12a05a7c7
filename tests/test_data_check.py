"""`actionkit data check` on real UT-Interaction clips: every video decoded once, bad files reported exactly."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_datasets import UT, UT_CLASSES, UT_VAL, ut_folder_copy
from typer.testing import CliRunner

from actionkit.cli.data import data_app
from actionkit.data.check import CheckReport, check_dataset
from actionkit.data.datasets import scan_dataset
from actionkit.data.video import probe_video
from actionkit.errors import CorruptVideoError, NotAVideoError

from videos import truncate

runner = CliRunner()

TRUNCATED = "train/punching/zz_truncated.avi"
FAKE = "val/hugging/fake.avi"  # text with a video suffix: what a "non-video file" in a dataset looks like


@pytest.fixture(scope="module")
def damaged_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """UT-Interaction folder per class (links to the real clips) plus a truncated clip and a fake video."""
    root = ut_folder_copy(tmp_path_factory.mktemp("ut") / "ut_damaged")
    truncate(UT / "set1" / "0_1_4.avi", root / TRUNCATED)
    (root / FAKE).write_text("camera 3, take 2: hugging, re-shoot tomorrow\n" * 10)
    (root / "train" / "hugging" / "notes.txt").write_text("no video suffix: not part of the dataset\n")
    return root


@pytest.fixture(scope="module")
def report(damaged_copy: Path) -> CheckReport:
    return check_dataset(scan_dataset(damaged_copy), workers=2)


def test_the_damage_is_real(damaged_copy: Path) -> None:
    with pytest.raises(CorruptVideoError, match="truncated or damaged"):
        probe_video(damaged_copy / TRUNCATED)
    with pytest.raises(NotAVideoError, match="not a video file"):
        probe_video(damaged_copy / FAKE)


def test_check_reports_exactly_the_bad_files(report: CheckReport, damaged_copy: Path) -> None:
    assert len(report.files) == 98 and [f.path for f in report.files] == [s.path for s in report.index.samples]
    bad = {f.path.relative_to(damaged_copy).as_posix(): f for f in report.unreadable}
    assert sorted(bad) == sorted([TRUNCATED, FAKE])
    assert bad[TRUNCATED].error.startswith(f"{damaged_copy / TRUNCATED}: ")
    assert "truncated or damaged: only" in bad[TRUNCATED].error or "cannot be opened" in bad[TRUNCATED].error
    assert bad[FAKE].error == f"{damaged_copy / FAKE}: not a video file (no known container format)"
    assert all(f.info is None for f in bad.values())
    assert all(f.info.num_frames > 30 and f.info.fps == 30 for f in report.files if f.ok)


def test_usable_samples_exclude_the_bad_files(report: CheckReport) -> None:
    train, val = report.usable("train"), report.usable("val")
    assert (len(train), len(val)) == (72, 24) and len(report.index.split("train")) == 73
    assert not {f.path for f in report.unreadable} & {s.path for s in train + val}
    assert train == [s for s in report.index.split("train") if s.path.name != "zz_truncated.avi"]


def test_summary_lines(report: CheckReport, damaged_copy: Path) -> None:
    lines = report.summary_lines()
    assert lines[0].split() == ["class", "train", "val"]
    assert lines[1].split() == ["hand_shaking", "12", "4"] and lines[2].split() == ["hugging", "12", "5"]
    assert lines[5].split() == ["punching", "13", "4"] and lines[7].split() == ["total", "73", "25"]
    assert lines[8].startswith("duration 1.7–6.1 s, fps 30, frames ") and "size (w×h) " in lines[8]
    assert lines[9:] == ["unreadable: 2 of 98 files",
                         f"  [train/punching] {report.unreadable[0].error}",
                         f"  [val/hugging] {damaged_copy / FAKE}: not a video file (no known container format)"]


def test_cli_check_exit_code_1_with_reasons(damaged_copy: Path) -> None:
    result = runner.invoke(data_app, ["check", "--data", str(damaged_copy), "--workers", "2"])
    assert result.exit_code == 1, result.output
    out = result.stdout.splitlines()
    assert out[0] == "ut_damaged: folders layout (train/<class>/ val/<class>/), 6 classes, 73 train / 25 val"
    assert "unreadable: 2 of 98 files" in out
    problems = out[out.index("unreadable: 2 of 98 files") + 1:]
    assert len(problems) == 2
    assert str(damaged_copy / TRUNCATED) in problems[0] and str(damaged_copy / FAKE) in problems[1]

    result = runner.invoke(data_app, ["check", "--data", str(damaged_copy), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["classes"] == UT_CLASSES and len(payload["files"]) == 98
    assert payload["counts"]["val"]["hugging"] == 5
    assert [(e["path"], e["split"], e["label"]) for e in payload["unreadable"]] == [
        (str(damaged_copy / TRUNCATED), "train", 4), (str(damaged_copy / FAKE), "val", 1)]
    assert "not a video file" in payload["unreadable"][1]["error"]


def test_cli_check_clean_dataset_exit_code_0(tmp_path: Path) -> None:
    """The CSV file given directly, and a class list whose order is kept (a model's labels)."""
    scan_dataset(UT, split_by="sequence", val=UT_VAL, classes=UT_CLASSES[::-1]).save_classes(tmp_path / "classes.json")
    result = runner.invoke(data_app, ["check", "--data", str(UT / "labels.csv"), "--split-by", "sequence",
                                      "--val", ",".join(UT_VAL), "--classes", str(tmp_path / "classes.json"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["description"].startswith("ut_interaction: csv layout (labels.csv, split by sequence")
    assert payload["classes"] == UT_CLASSES[::-1]
    assert payload["unreadable"] == [] and payload["ranges"]["fps"] == [30.0, 30.0]
    assert payload["counts"]["train"] == dict.fromkeys(UT_CLASSES[::-1], 12)
    # UT's file names end in the original class index, which is the sorted order: CLIP_SEQUENCE_CLASS.avi
    assert all(payload["classes"][e["label"]] == UT_CLASSES[int(Path(e["path"]).stem.split("_")[2])]
               for e in payload["files"])


def test_workers_must_be_positive(report: CheckReport) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        check_dataset(report.index, workers=0)


def test_training_skips_unreadable_videos_and_says_so(report: CheckReport, caplog: pytest.LogCaptureFixture) -> None:
    from actionkit.data.datasets import DatasetError
    from actionkit.data.loader import ClipConfig, ClipDataset

    with caplog.at_level(logging.WARNING, logger="actionkit"):
        training = report.training_samples("train")
    assert len(training.samples) == 72 and len(training.skipped) == 1
    assert "zz_truncated.avi: truncated or damaged" in training.skipped[0]
    assert f"skipping unreadable video: {training.skipped[0]}" in caplog.text
    assert "skipped 1 unreadable of 73 train videos" in caplog.text
    assert set(training.num_frames) == {str(s.path) for s in training.samples}
    with pytest.raises(DatasetError, match=r"zz_truncated\.avi: unreadable .*strict mode is on"):
        report.training_samples("train", strict=True)
    # the loader built on them reads real clips with the frame counts from the check
    dataset = ClipDataset(training.samples, clips=ClipConfig(clip_len=8), num_frames=training.num_frames)
    item = dataset[len(dataset) - 1]
    assert item["frames"].shape == (8, 3, 224, 224) and item["label"] == training.samples[-1].label

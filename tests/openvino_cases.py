"""OpenVINO on the CPU (run by tests/test_openvino.py in a process of its own): the fp32 IR and the INT8 IR
calibrated on real clips (NNCF), exported from DeepMind's Kinetics-400 I3D, reloaded and run on the shared clips; and each bad input's message."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from actionkit.errors import ActionkitError, CheckpointError
from actionkit.export import CalibrationConfig, export_model
from actionkit.export.calibration import calibration_clips
from actionkit.predict import Recognizer

from conftest import CLIPS, EXPECTED_LABELS, require

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install -e '.[dev]')")
pytest.importorskip("nncf", reason="the openvino extra is not installed (pip install -e '.[dev]')")


def shared_clips() -> list[Path]:
    """Every RGB clip in ../shared/data/clips (the flow GIF is a picture of flow, not a video to classify)."""
    return [require(CLIPS / name) for name in EXPECTED_LABELS]


def _linked(folder: Path, videos: list[Path]) -> Path:
    folder.mkdir(parents=True)
    for video in videos:
        (folder / video.name).symlink_to(video)
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionkit.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def k400_int8(k400_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The Kinetics-400 I3D exported with --int8, calibrated on the shared clips, checked on all of them."""
    root = tmp_path_factory.mktemp("openvino")
    calibration = CalibrationConfig(_linked(root / "calibration", shared_clips()), clips=32)
    lines: list[str] = []
    result = export_model(k400_dir, root / "k400", int8=True, calibration=calibration,
                          check_videos=shared_clips(), log=lines.append)
    return root / "k400", result, lines


def test_int8_keeps_the_fp32_top1_of_every_shared_clip(k400_int8, k400_dir: Path) -> None:
    out, result, _ = k400_int8
    rows = {row.backend: row for row in result.check.backends}
    assert rows["openvino fp32"].max_abs_diff < 1e-3 and rows["openvino fp32"].top1_agreement == 1.0
    assert rows["openvino int8"].top1_agreement == 1.0  # all 8 clips, at batch 1 and 3, against PyTorch fp32
    assert rows["openvino int8"].batch_sizes == [1, 3]
    videos = [str(p) for p in shared_clips()]
    fp32 = Recognizer.from_pretrained(str(k400_dir), device="cpu", precision="fp32").predict(videos, top_k=1)
    int8 = Recognizer.from_pretrained(str(out), backend="openvino", precision="int8").predict(videos, top_k=1)
    assert [r.top1.label for r in int8] == [r.top1.label for r in fp32]


def test_every_openvino_artifact_reloads_and_recognises_a_real_clip(k400_int8) -> None:
    out, result, lines = k400_int8
    written = {p.name for p in result.files}
    assert {"model.xml", "model.bin", "model.int8.xml", "model.int8.bin", "model.onnx"} <= written
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    assert any(line.startswith("calibrating INT8 on 32 clips from 8 videos") for line in lines)
    clip = str(require(CLIPS / "arm_wrestling.mp4"))
    openers = {
        "auto": lambda: Recognizer.from_pretrained(str(out)),
        "int8 file": lambda: Recognizer.from_pretrained(str(out / "model.int8.xml")),
        "fp32 file": lambda: Recognizer.from_pretrained(str(out / "model.xml")),
        "fp32 by name": lambda: Recognizer.from_pretrained(str(out), backend="openvino", precision="fp32"),
    }
    expected = {"auto": "openvino int8 (model.int8.xml)", "int8 file": "openvino int8 (model.int8.xml)",
                "fp32 file": "openvino fp32 (model.xml)", "fp32 by name": "openvino fp32 (model.xml)"}
    for name, open_model in openers.items():
        recognizer = open_model()
        assert recognizer.backend_description == expected[name]
        (prediction,) = recognizer.predict(clip, top_k=1)
        assert prediction.ok and prediction.top1.label == "arm wrestling", name


def test_the_ir_carries_its_config_without_config_json(k400_int8, tmp_path: Path) -> None:
    out, _, _ = k400_int8
    for name in ("model.int8.xml", "model.int8.bin"):
        shutil.copy(out / name, tmp_path / name)  # no config.json beside it
    recognizer = Recognizer.from_pretrained(str(tmp_path / "model.int8.xml"))
    assert len(recognizer.labels) == 400 and recognizer.config.preprocessing.clip_len == 64


def test_export_check_json_holds_the_openvino_rows(k400_int8) -> None:
    out, _, _ = k400_int8
    check = json.loads((out / "export_check.json").read_text())
    backends = {row["backend"]: row for row in check["backends"]}
    assert {"onnxruntime", "openvino fp32", "openvino int8"} <= set(backends)
    assert backends["openvino int8"]["latency_ms"] > 0


def test_cli_int8_export_reports_fp32_and_int8_validation_top1(k400_dir: Path, tmp_path: Path) -> None:
    """--calibrate on a labelled dataset: its train split calibrates, its val split is scored in fp32 and
    INT8 side by side (in the log and in export_check.json)."""
    dataset = tmp_path / "kinetics_clips"
    dataset.mkdir()
    rows = []
    for i, (name, (label, rank)) in enumerate(EXPECTED_LABELS.items()):
        (dataset / name).symlink_to(require(CLIPS / name))
        rows.append(f"{name},{label},{'val' if rank == 1 and i % 2 == 0 else 'train'}")
    (dataset / "labels.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    out = tmp_path / "export"
    done = _cli("export", "--model", str(k400_dir), "--out", str(out), "--int8", "--calibrate", str(dataset),
                "--calibration-clips", "8", "--check-video", str(CLIPS / "arm_wrestling.mp4"))
    assert done.returncode == 0, done.stderr
    val = [r for r in rows if r.endswith(",val")]
    assert f"validation top-1 on {len(val)} videos: fp32 100.0% ({len(val)}), INT8" in done.stderr
    accuracy = json.loads((out / "export_check.json").read_text())["int8_accuracy"]
    assert accuracy["videos"] == len(val) and accuracy["fp32_correct"] == len(val)
    assert accuracy["int8_correct"] >= len(val) - 1
    for precision, correct in (("int8", accuracy["int8_correct"]), ("fp32", accuracy["fp32_correct"])):
        scored = _cli("evaluate", "--data", str(dataset), "--model", str(out), "--backend", "openvino",
                      "--precision", precision, "--json")  # the same model files, through the evaluation loader
        assert scored.returncode == 0, scored.stderr
        metrics = json.loads(scored.stdout)
        assert metrics["videos"] == len(val) and metrics["top1"] == pytest.approx(correct / len(val))


def test_fewer_calibration_clips_than_asked_is_a_warning(k400_fast_dir: Path) -> None:
    recognizer = Recognizer.from_pretrained(str(k400_fast_dir), device="cpu", precision="fp32")
    warnings: list[str] = []
    clips = calibration_clips(recognizer, [require(CLIPS / "arm_wrestling.mp4")], 20, warn=warnings.append)
    assert len(clips) == 9 and clips[0].shape == (1, 16, 3, 224, 224) and clips[0].dtype == torch.uint8
    assert warnings == ["calibration: 20 clips asked for, but 1 video(s) gave 9; quantizing with 9"]


def test_a_calibration_source_without_a_readable_video_is_one_line_and_writes_nothing(k400_dir: Path,
                                                                                       tmp_path: Path) -> None:
    source = tmp_path / "calibration"
    source.mkdir()
    (source / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    out = tmp_path / "export"
    done = _cli("export", "--model", str(k400_dir), "--out", str(out), "--int8", "--calibrate", str(source))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "error: no readable video to calibrate on among 1" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--int8"], "error: --int8 needs calibration clips: --calibrate DATA"),
    (["--calibrate", "somewhere"], "error: --calibrate applies to --int8"),
])
def test_int8_and_calibrate_go_together(k400_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    done = _cli("export", "--model", str(k400_dir), "--out", str(tmp_path / "export"), *args)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert message in done.stderr
    assert not (tmp_path / "export").exists()


def test_an_openvino_model_that_disagrees_with_its_config_is_refused(k400_int8, tmp_path: Path) -> None:
    out, _, _ = k400_int8
    config = json.loads((out / "config.json").read_text())
    for name, change, message in (
            ("labels", lambda c: c.update(id2label={str(i): f"c{i}" for i in range(10)},
                                          model={**c["model"], "num_classes": 10}),
             "it outputs 400 classes but its config has 10 labels"),
            ("crop", lambda c: c["preprocessing"].update(crop_size=112, resize_short_side=128),
             "not N×3×T×112×112 as its config says")):
        folder = tmp_path / name
        folder.mkdir()
        for file in ("model.int8.xml", "model.int8.bin"):
            shutil.copy(out / file, folder / file)
        changed = json.loads(json.dumps(config))
        change(changed)
        (folder / "config.json").write_text(json.dumps(changed))
        with pytest.raises(CheckpointError, match=message):
            Recognizer.from_pretrained(str(folder / "model.int8.xml"))


def test_openvino_asked_for_where_the_folder_has_none(k400_dir: Path) -> None:
    with pytest.raises(ActionkitError, match="no model.xml for backend 'openvino'; make one with actionkit export"):
        Recognizer.from_pretrained(str(k400_dir), backend="openvino")
    with pytest.raises(ActionkitError, match="no model.int8.xml for backend 'openvino'.*--int8 --calibrate DATA"):
        Recognizer.from_pretrained(str(k400_dir), precision="int8")


def test_without_openvino_installed_the_error_names_the_extra() -> None:
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from actionkit.predict.openvino_runtime import import_openvino\n"
            "try:\n    import_openvino()\nexcept Exception as e:\n    print(type(e).__name__, e)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "OpenVinoUnavailable OpenVINO is not installed: pip install 'actionkit[openvino]'"

"""The scripts in examples/ run as a user would run them, on real weights and clips (small settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_training import tiny_data  # noqa: F401  (fixture)

from conftest import CLIPS, require

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_predict_clips_converts_once_then_recognises(checkpoint: Path, tmp_path: Path) -> None:
    clip = require(CLIPS / "arm_wrestling.mp4")
    done = _run("predict_clips.py", str(checkpoint), str(clip), cwd=tmp_path)
    assert done.stdout.startswith("arm_wrestling.mp4: arm wrestling (")
    assert (tmp_path / "models" / "i3d-kinetics-400" / "model.safetensors").is_file()


def test_finetune_export_publish_runs_the_whole_path(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "example"
    args = [str(k400_dir), str(tiny_data), "--out", str(out), "--clip-len", "8", "--frame-stride", "1",
            "--crop-size", "64", "--epochs", "2", "--batch-size", "2", "--lr", "5e-4", "--workers", "0"]
    done = _run("finetune_export_publish.py", *args, cwd=tmp_path, HF_HUB_OFFLINE="1")
    lines = done.stdout.splitlines()
    # 1-2: trained, evaluated with the best model's own preprocessing, confusion matrix saved
    assert any(line.startswith("trained 2 epochs in ") for line in lines)
    assert any(line.startswith("validation (3 videos, 3 classes): top-1 ") for line in lines)
    assert (out / "evaluation" / "confusion.png").is_file()
    best_top1 = json.loads((out / "run" / "run.json").read_text())["result"]["best_top1"]
    assert f"top-1 {100 * best_top1:.1f}%" in next(line for line in lines if line.startswith("validation"))
    # 3-4: the export was checked against PyTorch and its ONNX file recognises a validation video
    check = json.loads((out / "export" / "export_check.json").read_text())
    assert check and "onnxruntime" in json.dumps(check)
    predicted = next(line for line in lines if " with ONNX Runtime: " in line)
    assert predicted.split(": ", 1)[1].split()[0] in ("hugging", "kicking", "punching")
    # 5: without --push nothing is sent, and the script says how to publish
    assert lines[-1].startswith("to publish: ")

    # rerun with --push, offline: the finished run is left as it is and says so (no epoch trains again),
    # then the upload fails with one clear line
    again = subprocess.run([sys.executable, str(EXAMPLES / "finetune_export_publish.py"), *args, "--push", "acme/x"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert "the run is already finished" in again.stdout and "epoch 1/2" not in again.stdout + again.stderr
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == \
        "error: upload to acme/x failed: offline mode is on (HF_HUB_OFFLINE=1); nothing was sent"
    assert "Traceback" not in again.stderr


def test_the_shipped_demo_clip_is_recognised_as_the_readme_says(k400_dir: Path) -> None:
    """The Quickstart's clip ships with the repository, beside its licence, and the Kinetics-400 I3D
    calls it arm wrestling (the README shows this output)."""
    from actionkit.predict import Recognizer

    clip = EXAMPLES / "clips" / "arm_wrestling.mp4"
    assert (EXAMPLES / "clips" / "LICENSE-mmaction2").is_file()
    (result,) = Recognizer.from_pretrained(str(k400_dir), device="cpu").predict(str(clip), top_k=1)
    assert result.ok and result.top1 is not None
    assert result.top1.label == "arm wrestling"

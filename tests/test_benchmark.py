"""actionkit benchmark: real timings of the real model, skipped configurations named with their reason."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actionkit import Recognizer
from actionkit.backends import cpu_has_bf16_matmul, tensorrt_importable
from actionkit.benchmark import ModelSpeed, end_to_end_speed, format_model_speed, model_speed, time_calls
from actionkit.cli.app import app
from actionkit.errors import ActionkitError

from conftest import CLIPS, require

runner = CliRunner()


def test_time_calls_is_the_median_after_warmup() -> None:
    calls = []
    durations = iter([5.0, 0.0, 0.0, 0.0])  # the warm-up call would be slow

    def call() -> None:
        import time

        calls.append(1)
        time.sleep(next(durations) / 100)

    assert time_calls(call, repeats=3, warmup=1) < 0.02 and len(calls) == 4


def test_cli_times_torch_and_onnxruntime_and_says_why_it_skips(k400_fast_dir: Path, tmp_path: Path) -> None:
    """16-frame clips at batch 1 and 2: the model folder has no model.onnx, so one is exported on the fly."""
    out = tmp_path / "speed.json"
    result = runner.invoke(app, ["benchmark", "--model", str(k400_fast_dir), "--clip-len", "16", "--batch-size", "1",
                                 "--batch-size", "2", "--repeats", "1", "--backend", "torch", "--backend", "onnxruntime",
                                 "--backend", "tensorrt", "--precision", "fp32", "--precision", "bf16", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["model_only"]
    by_key = {(r["backend"], r["precision"], r["batch_size"]): r for r in rows}
    assert len(rows) == 3 * 2 * 2
    for batch in (1, 2):
        for key in (("torch", "fp32", batch), ("onnxruntime", "fp32", batch)):
            assert by_key[key]["skipped"] is None and 0 < by_key[key]["seconds_per_clip"] < 60
            assert by_key[key]["clips_per_second"] == pytest.approx(1 / by_key[key]["seconds_per_clip"])
        assert "no bf16 ONNX" in by_key[("onnxruntime", "bf16", batch)]["skipped"]
        assert "fp32 or fp16" in by_key[("tensorrt", "bf16", batch)]["skipped"]
        if not tensorrt_importable():
            assert "pip install 'actionkit[tensorrt]'" in by_key[("tensorrt", "fp32", batch)]["skipped"]
        bf16 = by_key[("torch", "bf16", batch)]
        assert (bf16["skipped"] is None) == cpu_has_bf16_matmul()
    assert "| torch | fp32 | 16 |" in result.stdout and "skipped: no bf16 ONNX" in result.stdout


def test_unknown_backend_is_a_clear_error(k400_fast_dir: Path) -> None:
    with pytest.raises(ActionkitError, match="unknown backend 'openvino'"):
        model_speed(k400_fast_dir, backends=["openvino"], progress=False)
    result = runner.invoke(app, ["benchmark", "--model", str(k400_fast_dir), "--backend", "openvino"])
    assert result.exit_code == 1 and "unknown backend 'openvino'" in result.output


def test_end_to_end_speed_times_predict_and_the_model_alone(k400_fast_dir: Path) -> None:
    recognizer = Recognizer.from_pretrained(k400_fast_dir, device="cpu", precision="fp32")
    videos = [require(CLIPS / "hmdb51_dive.mp4"), require(CLIPS / "hmdb51_jump.mp4")]
    speed = end_to_end_speed(recognizer, videos, batch_size=2)
    assert (speed.videos, speed.clips, speed.backend, speed.precision) == (2, 2, "torch", "fp32")
    assert speed.seconds > 0 and speed.model_only_seconds > 0
    assert speed.to_dict()["overhead"] == pytest.approx(speed.seconds / speed.model_only_seconds - 1)


def test_table_has_one_line_per_configuration() -> None:
    rows = [ModelSpeed("torch", "fp32", 32, 1, 224, 0.9), ModelSpeed("torch", "fp32", 32, 4, 224, 0.8),
            ModelSpeed("onnxruntime", "bf16", 32, 1, 224, skipped="no bf16 ONNX"),
            ModelSpeed("onnxruntime", "bf16", 32, 4, 224, skipped="no bf16 ONNX")]
    lines = format_model_speed(rows).splitlines()
    assert lines[0] == "| backend | precision | frames | s/clip @ batch 1 | s/clip @ batch 4 |"
    assert lines[2] == "| torch | fp32 | 32 | 0.900 | 0.800 |"
    assert lines[3].startswith("| onnxruntime | bf16 | 32 | skipped: no bf16 ONNX |")

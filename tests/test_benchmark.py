"""actionkit benchmark: real timings of the real model, skipped configurations named with their reason."""

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actionkit import Recognizer
from actionkit.benchmark import (
    ModelSpeed,
    default_precisions,
    end_to_end_speed,
    flops_per_clip,
    format_model_speed,
    format_roofline,
    model_speed,
    peak_tflops,
    time_calls,
)
from actionkit.cli.app import app
from actionkit.errors import ActionkitError
from actionkit.predict.backends import cpu_has_bf16_matmul, tensorrt_importable

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
    assert all(r["gflop_per_clip"] == pytest.approx(55.58, abs=0.01) for r in rows)  # 16 frames: half of 32's
    assert "torch fp32 16×224² batch 1:" in result.stdout and "× 55.6 GFLOP = " in result.stdout
    measured = {key: row["matmul_gflops"] for key, row in by_key.items() if row["skipped"] is None}
    assert all(1 < rate < 1e5 for rate in measured.values())  # timed among the rows, for every measured row
    assert all(row["matmul_gflops"] is None for row in rows if row["skipped"])
    assert "of this CPU's fp32 matmul rate in onnxruntime" in result.stdout


def test_unknown_backend_is_a_clear_error(k400_fast_dir: Path) -> None:
    with pytest.raises(ActionkitError, match="unknown backend 'coreml'"):
        model_speed(k400_fast_dir, backends=["coreml"], progress=False)
    result = runner.invoke(app, ["benchmark", "--model", str(k400_fast_dir), "--backend", "coreml"])
    assert result.exit_code == 1 and "unknown backend 'coreml'" in result.output


def test_end_to_end_speed_times_predict_and_the_model_alone(k400_fast_dir: Path) -> None:
    recognizer = Recognizer.from_pretrained(k400_fast_dir, device="cpu", precision="fp32")
    videos = [require(CLIPS / "hmdb51_dive.mp4"), require(CLIPS / "hmdb51_jump.mp4")]
    speed = end_to_end_speed(recognizer, videos, batch_size=2, repeats=3)
    assert (speed.videos, speed.clips, speed.backend, speed.precision) == (2, 2, "torch", "fp32")
    assert speed.seconds > 0 and speed.model_only_seconds > 0
    assert speed.rounds == 3 and len(speed.overhead_per_round) == 3
    assert sum(speed.batch_sizes) == 2 and max(speed.batch_sizes) <= 2  # the batches predict formed
    assert speed.to_dict()["overhead"] == pytest.approx(sorted(speed.overhead_per_round)[1])
    assert speed.to_dict()["overhead_mean"] == pytest.approx(sum(speed.overhead_per_round) / 3)
    assert speed.load_cpu_seconds > 0 and speed.to_dict()["overhead_floor"] == pytest.approx(
        speed.load_cpu_seconds / (speed.cores * speed.model_only_seconds))


def test_table_has_one_line_per_configuration() -> None:
    rows = [ModelSpeed("torch", "fp32", 32, 1, 224, 0.9), ModelSpeed("torch", "fp32", 32, 4, 224, 0.8),
            ModelSpeed("onnxruntime", "bf16", 32, 1, 224, skipped="no bf16 ONNX"),
            ModelSpeed("onnxruntime", "bf16", 32, 4, 224, skipped="no bf16 ONNX")]
    lines = format_model_speed(rows).splitlines()
    assert lines[0] == "| backend | precision | frames | s/clip @ batch 1 | s/clip @ batch 4 |"
    assert lines[2] == "| torch | fp32 | 32 | 0.900 | 0.800 |"
    assert lines[3].startswith("| onnxruntime | bf16 | 32 | skipped: no bf16 ONNX |")


def test_flops_per_clip_of_the_i3d_is_its_convolutions_and_classifier_counted_by_hand(k400_model) -> None:
    """About 111 GFLOP per 32×224² clip, against a count of 2 × output elements ×
    (input channels / groups × kernel volume) over every convolution and the linear classifier (meta tensors)."""
    import torch

    from actionkit.models.i3d import ConvBNReLU3d

    counted = []

    def count(module: torch.nn.Module, inputs, output) -> None:
        conv = module.conv if isinstance(module, ConvBNReLU3d) else module  # its conv runs functionally
        if isinstance(conv, torch.nn.Conv3d):  # batch norm and ReLU keep the conv's output shape
            counted.append(2 * output.numel() * conv.in_channels // conv.groups * conv.weight[0, 0].numel())
        elif isinstance(module, torch.nn.Linear):  # the classifier
            counted.append(2 * output.numel() * module.in_features)

    ghost = copy.deepcopy(k400_model).to("meta").eval()
    for module in ghost.modules():
        module.register_forward_hook(count)
    ghost(torch.empty(1, 3, 32, 224, 224, device="meta"))
    total = flops_per_clip(k400_model, 32)
    assert total == sum(counted)
    assert total / 1e9 == pytest.approx(111.15, abs=0.01)
    assert flops_per_clip(k400_model, 64) / total == pytest.approx(2.0, abs=1e-4)


def test_roofline_lines_set_achieved_flops_against_the_gpu_peak() -> None:
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989 and peak_tflops("NVIDIA H100 PCIe", "fp32", tf32=False) == 51
    assert peak_tflops("NVIDIA H100 80GB HBM3", "fp32", tf32=True) == 494.5  # TF32 tensor cores: half of fp16
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "fp16") == 312 and peak_tflops("NVIDIA L40", "bf16") is None
    assert peak_tflops("Intel(R) Xeon(R) Processor", "bf16") is None
    rows = [ModelSpeed("torch", "bf16", 32, 32, 224, seconds_per_clip=1 / 1000, gflop_per_clip=111.15),
            ModelSpeed("torch", "fp32", 32, 1, 224, seconds_per_clip=0.5, gflop_per_clip=111.15),
            ModelSpeed("tensorrt", "fp16", 32, 1, 224, skipped="tensorrt is not installed")]
    on_gpu = format_roofline(rows, "NVIDIA H100 80GB HBM3").splitlines()
    # 1000 clips/s × 111.15 GFLOP = 111.15 TFLOP/s = 11.2% of 989; the roofline is 989e12 / 111.15e9 = 8898 clips/s
    assert on_gpu[0] == ("torch bf16 32×224² batch 32: 1000.0 clips/s × 111.2 GFLOP = 111.2 TFLOP/s, "
                         "11.2% of the 989 TFLOP/s peak (roofline 8898 clips/s)")
    # fp32 on TF32 tensor cores (PyTorch's default for convolutions): 222 GFLOP/s of 494.5 TFLOP/s
    assert on_gpu[1].endswith("= 222 GFLOP/s, 0.0% of the 494.5 TFLOP/s TF32 peak (roofline 4449 clips/s)")
    assert len(on_gpu) == 2  # skipped rows have no line
    assert format_roofline(rows[1:2]) == "torch fp32 32×224² batch 1: 2.0 clips/s × 111.2 GFLOP = 222 GFLOP/s"


def test_cpu_rows_are_set_against_the_matmul_rate_timed_in_the_same_rounds() -> None:
    from actionkit.benchmark import (
        matmul_flops,
        matmul_gflops,
        reference_calls,
        roofline_inputs,
    )

    configurations = [("onnxruntime", "fp32"), ("torch", "fp32"), ("torch", "fp16"), ("torch", "fp32")]
    calls = reference_calls(configurations)
    assert set(calls) == {("onnxruntime", "fp32"), ("torch", "fp32")}  # no fp16 CPU rate; one call per library
    assert calls[("torch", "fp32")]().shape == (2048, 2048) and matmul_flops() == 2 * 2048**3
    assert 1 < matmul_gflops("onnxruntime", "fp32", size=256, repeats=2) < 1e5  # a real product's GFLOP/s
    rows = [ModelSpeed("onnxruntime", "fp32", 32, 1, 224, seconds_per_clip=0.75, gflop_per_clip=111.15,
                       matmul_gflops=164.7),
            ModelSpeed("torch", "fp32", 32, 1, 224, seconds_per_clip=0.5, gflop_per_clip=111.15, matmul_gflops=222.3),
            ModelSpeed("torch", "fp16", 32, 1, 224, seconds_per_clip=2.0, gflop_per_clip=111.15),
            ModelSpeed("onnxruntime", "bf16", 32, 1, 224, skipped="no bf16 ONNX")]
    gpu, rates = roofline_inputs(rows, "cpu")
    assert gpu is None and rates == {"onnxruntime fp32": 164.7, "torch fp32": 222.3}
    lines = format_roofline(rows, gpu).splitlines()
    # 111.15 GFLOP / 0.75 s = 148.2 GFLOP/s = 90% of 164.7
    assert lines[0] == ("onnxruntime fp32 32×224² batch 1: 1.3 clips/s × 111.2 GFLOP = 148 GFLOP/s, 90% of this "
                        "CPU's fp32 matmul rate in onnxruntime (165 GFLOP/s, timed in the same rounds)")
    assert lines[1].endswith("= 222 GFLOP/s, 100% of this CPU's fp32 matmul rate in torch (222 GFLOP/s, "
                             "timed in the same rounds)")
    assert lines[2].endswith("= 56 GFLOP/s")
    for library, precision in (("onnxruntime", "bf16"), ("torch", "fp16"), ("tensorrt", "fp32")):
        with pytest.raises(ValueError, match=f"no {precision} matmul rate for {library}"):
            matmul_gflops(library, precision)


def test_default_precisions_add_fp16_on_cuda_where_auto_runs_it() -> None:
    assert default_precisions("cuda:0") == ["fp32", "bf16", "fp16"]
    assert default_precisions("cpu") == ["fp32", "bf16"]

"""Export: stripping, ONNX (graph, metadata, parity with PyTorch on the shared clips), fp16, a dynamic
clip length, Triton, the format table's option checks, and TensorRT's build inputs (the build itself
needs tensorrt and a GPU and is skipped here with that reason)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_training import tiny_data  # noqa: F401  (fixture)

from actionkit import Recognizer
from actionkit.export import (
    ExportOptionError,
    OnnxOptions,
    TensorRTOptions,
    check_options,
    export_model,
    load_for_export,
    plan_engine,
    read_onnx_config,
    strip,
    to_onnx,
)
from actionkit.export.onnx_fp16 import to_fp16
from actionkit.export.onnx_graph import (
    TENSORRT_OPS,
    fold_pads,
    runtime_pads,
    unsupported_ops,
)
from actionkit.hub import load_pretrained, model_config_of
from actionkit.models.i3d import ConvBNReLU3d, MaxPool3dSame
from actionkit.predict.backends import cpu_has_bf16_matmul
from actionkit.train.finetune import DataConfig, FinetuneConfig, finetune
from actionkit.train.loop import TrainConfig
from actionkit.train.tasks import TaskConfig

from conftest import CLIPS, EXPECTED_LABELS, require

ort = pytest.importorskip("onnxruntime")
CPU = ["CPUExecutionProvider"]


def shared_clips() -> list[Path]:
    """Every RGB clip in ../shared/data/clips (the flow GIF is a picture of flow, not a video to classify)."""
    return [require(CLIPS / name) for name in EXPECTED_LABELS]


@pytest.fixture(scope="module")
def k400_export(k400_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The Kinetics-400 I3D exported once, checked on every shared clip at batch 1 and 3."""
    out = tmp_path_factory.mktemp("export") / "k400"
    result = export_model(k400_dir, out, check_videos=shared_clips(), log=lambda _: None)
    return out, result


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=CPU)


def test_onnx_of_k400_matches_pytorch_on_every_shared_clip_at_batch_1_and_3(k400_export) -> None:
    out, result = k400_export
    check = json.loads((out / "export_check.json").read_text())
    assert len(check["clips"]) == len(EXPECTED_LABELS) and check["input_shape"] == [3, 64, 224, 224]
    (row,) = [r for r in check["backends"] if r["backend"] == "onnxruntime"]
    assert row["batch_sizes"] == [1, 3]
    assert row["max_abs_diff"] <= 1e-4, row
    assert row["top1_agreement"] == 1.0
    assert row["latency_ms"] > 0 and check["reference_latency_ms"] > 0
    assert result.check is not None and "onnxruntime" in result.check.table()


def test_onnx_graph_is_clean_for_tensorrt(k400_export) -> None:
    out, _ = k400_export
    model = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [n for n in model.graph.node if n.op_type == "Pad"] == []  # all folded into Conv / MaxPool pads
    assert runtime_pads(model) == [] and unsupported_ops(model) == []
    assert {n.op_type for n in model.graph.node} <= TENSORRT_OPS
    # asymmetric "SAME" padding lives in the attributes now
    pads = [next(a.ints for a in n.attribute if a.name == "pads") for n in model.graph.node
            if n.op_type in ("Conv", "MaxPool") and any(a.name == "pads" for a in n.attribute)]
    assert any(list(p[:3]) != list(p[3:]) for p in pads)
    (video,), (logits,) = model.graph.input, model.graph.output
    assert (video.name, logits.name) == ("video", "logits")
    dims = [d.dim_param or d.dim_value for d in video.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 64, 224, 224]


def test_onnx_metadata_carries_preprocessing_and_labels(k400_export, k400_dir: Path) -> None:
    out, _ = k400_export
    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    labels = json.loads(meta["labels"])
    assert len(labels) == 400 and labels[0] == "abseiling"
    pre = json.loads(meta["preprocessing"])
    assert (pre["clip_len"], pre["crop_size"], pre["resize_short_side"], pre["value_range"]) == (64, 224, 256, [-1.0, 1.0])
    assert "N×3×T×224×224" in meta["input"] and "[-1, 1]" in meta["input"]
    config = read_onnx_config(out / "model.onnx")
    assert config.to_dict() == model_config_of(load_pretrained(k400_dir)).to_dict()


def test_recognizer_backends_and_precisions_agree_on_the_shared_clips(k400_export) -> None:
    out, _ = k400_export
    videos = [str(p) for p in shared_clips()]
    by_torch = Recognizer.from_pretrained(out, backend="torch", device="cpu", precision="fp32").predict(videos, top_k=400)
    onnx_recognizer = Recognizer.from_pretrained(out, backend="onnxruntime", device="cpu")
    assert onnx_recognizer.backend_name == "onnxruntime"
    # auto on CPU: PyTorch bf16 where AMX makes it fastest, else ONNX Runtime as model.onnx is there
    auto = Recognizer.from_pretrained(out, device="cpu")
    assert auto.backend_name == ("torch" if cpu_has_bf16_matmul() else "onnxruntime")
    assert Recognizer.from_pretrained(out, device="cpu", precision="fp32").backend_name == "onnxruntime"
    assert Recognizer.from_pretrained(out, device="cpu", precision="bf16").backend_name == "torch"
    by_onnx = onnx_recognizer.predict(videos, top_k=400, batch_size=3)
    for a, b in zip(by_torch, by_onnx):
        assert a.ok and b.ok and a.top1.label == b.top1.label, (a.video, a.top1, b.top1)
        torch_scores = {p.label: p.score for p in a.predictions}
        worst = max(abs(torch_scores[p.label] - p.score) for p in b.predictions)
        assert worst <= 1e-4, (a.video, worst)


@pytest.mark.skipif(not cpu_has_bf16_matmul(), reason="no AMX: bf16 is emulated here (~35 s for these clips) and never "
                    "the auto path; test_predict checks bf16's top-1 on 16-frame clips")
def test_bf16_keeps_the_top1_of_fp32_on_full_length_clips(k400_export) -> None:
    """The bf16 CPU path (autocast, channels-last), the auto path on AMX CPUs, on 64-frame clips."""
    out, _ = k400_export
    videos = [str(p) for p in shared_clips()]
    by_fp32 = Recognizer.from_pretrained(out, backend="torch", device="cpu", precision="fp32").predict(videos, top_k=1)
    by_bf16 = Recognizer.from_pretrained(out, backend="torch", device="cpu", precision="bf16").predict(videos, top_k=1)
    assert [r.top1.label for r in by_bf16] == [r.top1.label for r in by_fp32]


def test_triton_entry(k400_export) -> None:
    out, _ = k400_export
    text = (out / "triton" / "i3d" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in text and "dims: [ 3, 64, 224, 224 ]" in text and "dims: [ 400 ]" in text
    assert len((out / "triton" / "i3d" / "labels.txt").read_text().splitlines()) == 400
    assert (out / "triton" / "i3d" / "1" / "model.onnx").stat().st_size == (out / "model.onnx").stat().st_size


def test_export_folder_is_a_model_folder(k400_export, k400_model) -> None:
    out, _ = k400_export
    assert torch.equal(load_pretrained(out).state_dict()["classifier.weight"], k400_model.state_dict()["classifier.weight"])


def test_fold_pads_moves_same_padding_into_conv_and_maxpool(tmp_path: Path) -> None:
    """Asymmetric SAME padding (odd sizes, stride 2) exports as Pad nodes; folding removes them and
    the graph still computes the same thing."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(ConvBNReLU3d(3, 4, (3, 3, 3), (2, 2, 2)), MaxPool3dSame((1, 3, 3), (1, 2, 2))).eval()
    x = torch.randn(2, 3, 9, 17, 16)
    path = tmp_path / "pads.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    raw = onnx.load(str(path))
    assert len(runtime_pads(raw)) == 2
    folded = onnx.load(str(path))
    assert fold_pads(folded) == 2
    assert [n for n in folded.graph.node if n.op_type == "Pad"] == []
    onnx.checker.check_model(folded)
    expected = net(x).detach().numpy()
    got = ort.InferenceSession(folded.SerializeToString(), providers=CPU).run(None, {"x": x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-5


def _real_clip(config, clip_len: int) -> torch.Tensor:
    from dataclasses import replace

    from actionkit.data.transforms import to_model_input
    from actionkit.export.check import check_clips

    pre = replace(config.preprocessing, clip_len=clip_len)
    clips, _ = check_clips(replace(config, preprocessing=pre), [require(CLIPS / "arm_wrestling.mp4")])
    return to_model_input(clips, pre.value_range)


def test_dynamic_clip_length_serves_multiples_of_8(k400_fast_dir: Path) -> None:
    model = load_pretrained(k400_fast_dir)
    config = model_config_of(model)
    graph = to_onnx(model, config, OnnxOptions(dynamic_clip_len=True))
    session = ort.InferenceSession(graph.SerializeToString(), providers=CPU)
    for clip_len in (16, 24, 32):
        video = _real_clip(config, clip_len)
        with torch.inference_mode():
            expected = model(video).numpy()
        got = session.run(None, {"video": video.numpy()})[0]
        assert np.abs(got - expected).max() <= 1e-4, clip_len
    fixed = to_onnx(model, config)
    assert [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim][2] == 16


def test_fp16_onnx_keeps_float32_io_and_the_top1(k400_fast_dir: Path) -> None:
    model = load_pretrained(k400_fast_dir)
    config = model_config_of(model)
    half = to_fp16(to_onnx(model, config))
    assert {t.data_type for t in half.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    video = _real_clip(config, 16)
    with torch.inference_mode():
        expected = model(video).numpy()
    got = ort.InferenceSession(half.SerializeToString(), providers=CPU).run(None, {"video": video.numpy()})[0]
    assert got.dtype == np.float32 and got.argmax() == expected.argmax()
    assert 0 < np.abs(got - expected).max() < 0.1  # fp16 rounding, not a different model


def test_options_a_format_does_not_take_are_errors(k400_dir: Path, tmp_path: Path) -> None:
    check_options(["torch", "onnx"], {"fp16": True, "opset": 18, "max_batch": None})
    with pytest.raises(ExportOptionError, match="'fp16' does not apply to torch; it is an option of onnx, tensorrt"):
        check_options(["torch"], {"fp16": True})
    with pytest.raises(ExportOptionError, match="'max_batch' does not apply to torch \\+ onnx"):
        check_options(["torch", "onnx"], {"max_batch": 8})
    with pytest.raises(ExportOptionError, match="unknown export format 'tflite'"):
        check_options(["tflite"], {})
    done = subprocess.run([sys.executable, "-m", "actionkit.cli", "export", "--model", str(k400_dir), "--out",
                           str(tmp_path / "x"), "--max-batch", "4"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "error: option 'max_batch' does not apply to torch + onnx" in done.stderr
    assert not (tmp_path / "x").exists()  # refused before any work
    with pytest.raises(Exception, match="opset 16 is outside 17-20"):
        OnnxOptions(opset=16)
    listed = subprocess.run([sys.executable, "-m", "actionkit.cli", "export", "--list"],
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "tensorrt  model.engine" in listed.stdout
    unlisted = subprocess.run([sys.executable, "-m", "actionkit.cli", "export", "--out", str(tmp_path / "x")],
                              capture_output=True, text=True, timeout=300)
    assert unlisted.returncode == 2 and "'--model': required" in unlisted.stderr and not (tmp_path / "x").exists()


def test_export_of_a_bad_source_names_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "actionkit.cli", "export", "--model", str(tmp_path / "empty"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and str(tmp_path / "empty") in done.stderr and "Traceback" not in done.stderr


# --- Rev2Net runs: stripped, nothing of the decoders or teacher reaches the artifacts ----------------

@pytest.fixture(scope="module")
def rev2net_run(tiny_data: Path, k400_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("rev2net_run") / "run"
    config = FinetuneConfig(
        data=DataConfig(tiny_data, clip_len=16, crop_size=64, eval_clips=1, workers=0,
                        flow_cache=tmp_path_factory.mktemp("flow")),
        model=str(k400_dir), out=out, task=TaskConfig(rev2net=True, self_distill=True),
        train=TrainConfig(epochs=1, batch_size=2, lr=5e-4, max_steps_per_epoch=2, seed=1))
    finetune(config, log=lambda _: None)
    return out


def test_strip_rev2net_gives_the_encoder_exactly(rev2net_run: Path) -> None:
    from actionkit.models.rev2net import Rev2Net

    encoder = load_pretrained(rev2net_run / "last")
    rev2net = Rev2Net(encoder)
    stripped = strip(rev2net)
    assert type(stripped).__name__ == "I3D"
    assert stripped.state_dict().keys() == encoder.state_dict().keys()
    assert all(torch.equal(stripped.state_dict()[k], v) for k, v in encoder.state_dict().items())
    x = torch.randn(1, 3, 16, 64, 64)
    with torch.inference_mode():
        assert torch.equal(stripped(x), encoder(x))


def test_export_from_a_rev2net_run_has_no_decoder_tensors(rev2net_run: Path, tmp_path: Path) -> None:
    state = torch.load(rev2net_run / "checkpoint.pt", weights_only=True)["task"]
    assert any("decoder" in k for k in state) and any(k.startswith("teacher.") for k in state)
    encoder_state = {k[len("model.encoder."):]: v for k, v in state.items() if k.startswith("model.encoder.")}
    for source in (rev2net_run, rev2net_run / "checkpoint.pt"):
        model, described = load_for_export(source)
        assert model.state_dict().keys() == encoder_state.keys(), described
        if source.name == "checkpoint.pt":  # the last epoch's encoder, tensor for tensor
            assert all(torch.equal(model.state_dict()[k], v) for k, v in encoder_state.items())
    out = tmp_path / "export"
    export_model(rev2net_run, out, check_videos=[require(CLIPS / "arm_wrestling.mp4")], log=lambda _: None)
    graph = onnx.load(str(out / "model.onnx")).graph
    names = " ".join(t.name for t in graph.initializer)
    assert "decoder" not in names and "head" not in names and "teacher" not in names
    exported = sum(int(np.prod(t.dims)) for t in graph.initializer)
    encoder = load_pretrained(rev2net_run / "best")
    # BN is folded into the convolutions: the ONNX holds conv weights + folded biases + classifier only
    convs = sum(p.numel() for n, p in encoder.named_parameters() if n.endswith("conv.weight"))
    biases = sum(p.numel() for n, p in encoder.named_parameters() if n.endswith("bn.bias"))
    classifier = sum(p.numel() for n, p in encoder.named_parameters() if n.startswith("classifier."))
    assert exported == convs + biases + classifier
    check = json.loads((out / "export_check.json").read_text())
    assert check["backends"][0]["max_abs_diff"] <= 1e-4 and check["backends"][0]["top1_agreement"] == 1.0
    video = torch.randn(2, 3, 16, 64, 64)
    with torch.inference_mode():
        expected = encoder(video).numpy()
    got = _session(out / "model.onnx").run(None, {"video": video.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4


# --- TensorRT ---------------------------------------------------------------------------------------

def test_tensorrt_plan_from_the_exported_onnx(k400_export, tmp_path: Path) -> None:
    out, _ = k400_export
    plan = plan_engine(out / "model.onnx", TensorRTOptions(min_batch=1, opt_batch=4, max_batch=8), tmp_path)
    assert (plan.input_name, plan.output_name) == ("video", "logits")
    assert plan.min_shape == (1, 3, 64, 224, 224) and plan.opt_shape == (4, 3, 64, 224, 224)
    assert plan.max_shape == (8, 3, 64, 224, 224)
    assert plan.precision == "fp16" and plan.builder_flags() == ["FP16"] and plan.workspace_bytes == 4 * 2**30
    assert Path(plan.engine_path) == tmp_path / "model.engine" and Path(plan.timing_cache_path) == tmp_path / "timing.cache"
    fp32 = plan_engine(out / "model.onnx", TensorRTOptions(fp16=False, opt_batch=1, max_batch=2), tmp_path)
    assert fp32.builder_flags() == [] and fp32.max_shape[0] == 2
    with pytest.raises(Exception, match="min-batch <= opt-batch <= max-batch"):
        TensorRTOptions(min_batch=4, opt_batch=2, max_batch=8)


def test_tensorrt_plan_refuses_an_onnx_with_a_fixed_batch(k400_fast_dir: Path, tmp_path: Path) -> None:
    import warnings

    model = load_pretrained(k400_fast_dir)
    path = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 16, 224, 224),), str(path), dynamo=False, opset_version=17,
                          input_names=["video"], output_names=["logits"])
    with pytest.raises(Exception, match="batch axis is fixed at 1"):
        plan_engine(path, TensorRTOptions(), tmp_path)
    assert plan_engine(path, TensorRTOptions(min_batch=1, opt_batch=1, max_batch=1), tmp_path).max_shape[0] == 1


def _tensorrt_ready() -> str | None:
    """Why the TensorRT build cannot run here, or None."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "tensorrt is not installed (NVIDIA's wheels: pip install 'actionkit[tensorrt]')"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


def test_without_tensorrt_the_export_says_what_to_install(k400_dir: Path, tmp_path: Path) -> None:
    reason = _tensorrt_ready()
    if reason is None or "not installed" not in reason:
        pytest.skip("tensorrt is installed here")
    done = subprocess.run([sys.executable, "-m", "actionkit.cli", "export", "--model", str(k400_dir), "--out",
                           str(tmp_path / "x"), "--trt"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "pip install 'actionkit[tensorrt]'" in done.stderr
    assert not (tmp_path / "x").exists()


def test_tensorrt_engine_matches_pytorch(k400_fast_dir: Path, tmp_path: Path) -> None:
    reason = _tensorrt_ready()
    if reason:
        pytest.skip(f"TensorRT build needs tensorrt and a GPU: {reason}")
    out = tmp_path / "trt"
    result = export_model(k400_fast_dir, out, tensorrt=True, fp16=False, max_batch=4,
                          check_videos=shared_clips(), device="cuda", log=print)
    (row,) = [r for r in result.check.backends if r.backend == "tensorrt"]
    assert row.skipped is None and row.max_abs_diff < 1e-2 and row.top1_agreement == 1.0
    assert json.loads((out / "engine.json").read_text())["precision"] == "fp32"
    recognizer = Recognizer.from_pretrained(out, backend="tensorrt")
    assert recognizer.predict(str(shared_clips()[0]))[0].ok

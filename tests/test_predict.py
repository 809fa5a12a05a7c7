"""Recognizer and `actionkit predict` on the real clips with the Kinetics-400 model."""

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from actionkit import I3D, Recognizer
from actionkit.cli.app import app
from actionkit.predict.backends import cpu_bf16_is_emulated, cpu_has_bf16_matmul, resolve_precision
from actionkit.predict.load_ahead import LOADER_NICENESS

from conftest import CLIPS, EXPECTED_LABELS, REFERENCE, require

runner = CliRunner()


def test_cli_predicts_the_expected_labels_on_every_shared_clip(k400_dir: Path) -> None:
    clips = [str(require(CLIPS / name)) for name in EXPECTED_LABELS]
    result = runner.invoke(app, ["predict", *clips, "--model", str(k400_dir), "--json", "--top-k", "3",
                                 "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [entry["video"] for entry in payload] == clips
    for entry in payload:
        label, rank = EXPECTED_LABELS[Path(entry["video"]).name]
        labels = [p["label"] for p in entry["predictions"]]
        assert len(labels) == 3
        assert label in labels[:rank], f"{entry['video']}: expected {label!r} in top {rank}, got {labels}"
        scores = [p["score"] for p in entry["predictions"]]
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1


def test_console_script_json_format(k400_fast_dir: Path) -> None:
    clip = str(require(CLIPS / "arm_wrestling.mp4"))
    done = subprocess.run([sys.executable, "-m", "actionkit.cli", "predict", clip, "--model", str(k400_fast_dir),
                           "--json", "--top-k", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert list(payload[0]) == ["video", "predictions"]
    assert payload[0]["video"] == clip
    assert [list(p) for p in payload[0]["predictions"]] == [["label", "score"]] * 2
    assert payload[0]["predictions"][0]["label"] == "arm wrestling"


def test_table_output(k400_fast_dir: Path) -> None:
    clip = str(require(CLIPS / "arm_wrestling.mp4"))
    result = runner.invoke(app, ["predict", clip, "--model", str(k400_fast_dir), "--top-k", "2"])
    assert result.exit_code == 0, result.output
    assert "arm wrestling" in result.stdout and "arm_wrestling.mp4" in result.stdout
    assert "label" in result.stdout and "score" in result.stdout


def test_frame_arrays_and_mixed_batches_match_single_videos(k400_fast_dir: Path) -> None:
    recognizer = Recognizer.from_pretrained(str(k400_fast_dir), device="cpu", precision="fp32")
    frames = np.load(require(REFERENCE))["frames"]
    dive = str(require(CLIPS / "hmdb51_dive.mp4"))
    together = recognizer.predict([frames, dive], top_k=3, batch_size=3, num_clips=2)
    alone = [recognizer.predict(frames, top_k=3, num_clips=2)[0], recognizer.predict(dive, top_k=3, num_clips=2)[0]]
    assert together[0].video == "<array 0>" and together[0].top1.label == "arm wrestling"
    for a, b in zip(together, alone):
        assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
        assert np.allclose([p.score for p in a.predictions], [p.score for p in b.predictions], atol=1e-5)


class _SecondVideoWaitsForTheModel(Recognizer):
    """Video 1 finishes loading only once the model has run: if predict waited for a full batch before
    running anything, the load would time out."""

    model_ran = threading.Event()

    def _load(self, index, name, video, views):
        if index == 1 and not self.model_ran.wait(timeout=120):
            raise AssertionError("predict let the model idle while a video was still loading")
        return super()._load(index, name, video, views)

    def score_clips(self, clips):
        self.model_ran.set()
        return super().score_clips(clips)


def test_a_batch_runs_early_rather_than_idle_while_the_next_video_decodes(k400_fast_dir: Path) -> None:
    recognizer = _SecondVideoWaitsForTheModel(I3D.from_pretrained(str(k400_fast_dir)), device="cpu",
                                              precision="fp32")
    videos = [str(require(CLIPS / "hmdb51_dive.mp4")), str(require(CLIPS / "hmdb51_jump.mp4"))]
    together = recognizer.predict(videos, top_k=3, batch_size=4, num_clips=2)
    assert recognizer.last_batch_sizes == [2, 2]  # video 0's two clips ran alone, then video 1's
    alone = [Recognizer.from_pretrained(str(k400_fast_dir), device="cpu", precision="fp32").predict(v, top_k=3,
                                                                                                    num_clips=2)[0]
             for v in videos]
    for a, b in zip(together, alone):
        assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
        assert np.allclose([p.score for p in a.predictions], [p.score for p in b.predictions], atol=1e-5)


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are per thread on Linux only")
def test_loading_threads_yield_to_a_model_on_the_cpu(k400_fast_dir: Path) -> None:
    """A decoder preempting the model's threads mid-layer stalls them all: on a CPU the loaders run at
    low priority (the caller's own thread keeps its priority)."""
    seen: list[int] = []

    class Recording(Recognizer):
        def _load(self, index, name, video, views):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super()._load(index, name, video, views)

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    recognizer = Recording(I3D.from_pretrained(str(k400_fast_dir)), device="cpu", precision="fp32")
    recognizer.predict([str(require(CLIPS / "hmdb51_dive.mp4"))] * 2, top_k=1)
    assert seen == [LOADER_NICENESS] * 2
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_folders_expand_to_their_videos(k400_fast_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.mp4").symlink_to(require(CLIPS / "arm_wrestling.mp4"))
    (folder / "nested" / "b.gif").symlink_to(require(CLIPS / "v_CricketShot_g04_c01_rgb.gif"))
    (folder / "notes.txt").write_text("not a video, and not picked up")
    results = Recognizer.from_pretrained(str(k400_fast_dir)).predict(str(folder), top_k=1)
    assert [Path(r.video).relative_to(folder).as_posix() for r in results] == ["a.mp4", "nested/b.gif"]
    assert all(r.ok and len(r.predictions) == 1 for r in results)
    assert results[0].top1.label == "arm wrestling"


def test_cli_model_can_be_a_checkpoint_file(checkpoint: Path) -> None:
    gif = str(require(CLIPS / "v_CricketShot_g04_c01_rgb.gif"))
    result = runner.invoke(app, ["predict", gif, "--model", str(checkpoint), "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["predictions"][0]["label"] == "playing cricket"


def test_three_crop_evaluation_matches_between_prediction_and_loader(k400_fast_dir: Path) -> None:
    from dataclasses import replace

    from actionkit.data.loader import ClipDataset, finish_batch

    recognizer = Recognizer.from_pretrained(str(k400_fast_dir), precision="fp32")
    recognizer.config.preprocessing = replace(recognizer.config.preprocessing, num_clips=2, num_crops=3)
    clip = require(CLIPS / "arm_wrestling.mp4")
    (result,) = recognizer.predict(str(clip), top_k=1)
    assert result.top1.label == "arm wrestling"

    @dataclass(frozen=True)
    class Sample:
        path: Path
        label: int

    item = ClipDataset([Sample(clip, 6)], train=False, eval_preprocessing=recognizer.config.preprocessing)[0]
    assert item["frames"].shape == (6, 16, 3, 224, 224)  # 2 clips × 3 crops
    batch = finish_batch({"frames": item["frames"][None], "label": torch.tensor([6])}, "cpu")
    with torch.no_grad():
        probs = torch.softmax(recognizer.model(batch.video), dim=1).mean(0)
    assert abs(float(probs.max()) - result.top1.score) < 1e-5


def _tiny_copy(folder: Path, target: Path) -> Path:
    """The same weights with 8-frame 112² clips: a bf16 check that stays quick where bf16 is emulated."""
    import json
    import shutil

    shutil.copytree(folder, target)
    config = json.loads((target / "config.json").read_text())
    config["preprocessing"].update(clip_len=8, crop_size=112, resize_short_side=128)
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_bf16_autocast_keeps_the_top1_on_cpu(k400_fast_dir: Path, tmp_path: Path) -> None:
    """The torch backend's bf16 path (autocast, space-to-depth stem; AMX on CPUs that have it) against
    fp32: the same top-1 on every shared clip. Where bf16 is emulated (no AMX, no AVX-512 BF16: about 90×
    slower than fp32) the check runs on one tiny clip, so the suite's time does not depend on the CPU."""
    emulated = cpu_bf16_is_emulated()
    names = ["arm_wrestling.mp4"] if emulated else list(EXPECTED_LABELS)
    folder = _tiny_copy(k400_fast_dir, tmp_path / "tiny") if emulated else k400_fast_dir
    clips = [str(require(CLIPS / name)) for name in names]
    fp32 = Recognizer.from_pretrained(folder, device="cpu", precision="fp32").predict(clips)
    bf16_recognizer = Recognizer.from_pretrained(folder, device="cpu", precision="bf16")
    assert bf16_recognizer.backend.precision == "bf16"
    bf16 = bf16_recognizer.predict(clips)
    for a, b in zip(fp32, bf16):
        assert a.top1.label == b.top1.label and abs(a.top1.score - b.top1.score) < 0.05
    auto = "bf16" if cpu_has_bf16_matmul() else "fp32"  # bf16 only where AMX makes it fast
    assert Recognizer.from_pretrained(k400_fast_dir, device="cpu").backend.precision == auto
    try:
        Recognizer.from_pretrained(k400_fast_dir, device="cpu", precision="int4")
    except Exception as e:
        assert "unknown precision 'int4'" in str(e)
    else:
        raise AssertionError("an unknown precision must be refused")


@pytest.mark.skipif(not os.environ.get("ACTIONKIT_SLOW_TESTS"),
                    reason="torch.compile of the I3D takes minutes on a 2-core CPU; set ACTIONKIT_SLOW_TESTS=1 to run it")
def test_compiled_torch_backend_matches_eager(k400_fast_dir: Path) -> None:
    clip = str(require(CLIPS / "hmdb51_dive.mp4"))
    eager = Recognizer.from_pretrained(k400_fast_dir, device="cpu", precision="fp32").predict(clip, top_k=3)[0]
    compiled = Recognizer.from_pretrained(k400_fast_dir, device="cpu", precision="fp32", compile=True).predict(clip, top_k=3)[0]
    assert [p.label for p in compiled.predictions] == [p.label for p in eager.predictions]
    assert abs(compiled.top1.score - eager.top1.score) < 1e-4


@pytest.mark.parametrize("amx", [True, False])
def test_auto_backend_follows_the_folder_the_device_and_the_cpu(tmp_path: Path, monkeypatch, amx: bool) -> None:
    from actionkit.predict import backends

    monkeypatch.setattr(backends, "cpu_has_bf16_matmul", lambda: amx)  # the rule for both kinds of CPU
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.onnx").write_bytes(b"")
    (export / "model.safetensors").write_bytes(b"")
    only_onnx = tmp_path / "only_onnx"
    only_onnx.mkdir()
    (only_onnx / "model.onnx").write_bytes(b"")
    assert backends.choose_backend("auto", export, cpu) == ("torch" if amx else "onnxruntime")
    assert backends.choose_backend("auto", export, cpu, "fp32") == "onnxruntime"
    assert backends.choose_backend("auto", export, cpu, "bf16") == "torch"
    assert backends.choose_backend("auto", only_onnx, cpu) == "onnxruntime"
    assert backends.choose_backend("auto", tmp_path, cpu) == "torch"  # nothing exported
    assert backends.choose_backend("auto", export, cuda) == "torch"  # no engine here
    assert backends.choose_backend("onnxruntime", export, cpu, "bf16") == "onnxruntime"  # asked for by name


def test_auto_precision_is_fp16_on_cuda_and_bf16_only_on_amx_cpus() -> None:
    """The choice itself (no GPU needed to make it): fp16 on CUDA (faster and closer to fp32 than bf16 on
    an H100: benchmarks/README.md); on CPU, bf16 only where AMX makes it fast. An explicit precision is kept."""
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_bf16_matmul() else "fp32")
    assert resolve_precision("bf16", torch.device("cuda", 0)) == "bf16"


def test_bf16_on_a_cpu_that_emulates_it_is_warned_once(k400_fast_dir: Path, monkeypatch, caplog) -> None:
    from actionkit.predict import backends

    monkeypatch.setattr(backends, "cpu_bf16_is_emulated", lambda: True)
    monkeypatch.setattr(backends, "_warned_emulated_bf16", False)
    with caplog.at_level("WARNING", logger="actionkit"):
        model = Recognizer.from_pretrained(k400_fast_dir, device="cpu", precision="fp32").model
        backends.TorchBackend(model, torch.device("cpu"), "bf16")
        backends.TorchBackend(model, torch.device("cpu"), "bf16")
        backends.TorchBackend(model, torch.device("cpu"), "fp32")
    warned = [r.getMessage() for r in caplog.records if "bf16 is emulated" in r.getMessage()]
    assert len(warned) == 1 and "use --precision fp32" in warned[0]


"""Training runs end to end on a tiny real dataset: the run folder, resume after a kill, torchrun.

Tiny configuration: 8-frame 64×64 clips of UT-Interaction, the real Kinetics-400 I3D, CPU, no loader
workers; a few optimizer steps per epoch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_datasets import UT

from conftest import require
from videos import truncate

TINY = ["--clip-len", "8", "--crop-size", "64", "--batch-size", "2", "--workers", "0", "--eval-clips", "1",
        "--lr", "0.0005", "--seed", "3"]  # 64² crops are far from I3D's 224² training: a small lr keeps it stable


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 train and 3 val clips of three UT classes (CSV with a split column) plus one truncated video."""
    root = tmp_path_factory.mktemp("tiny_ut")
    rows = []
    picks = {"train": [("set1/0_1_4.avi", "punching"), ("set1/1_1_2.avi", "kicking"), ("set1/2_1_1.avi", "hugging"),
                       ("set1/6_2_4.avi", "punching"), ("set1/9_2_2.avi", "kicking"), ("set1/10_2_1.avi", "hugging")],
             "val": [("set1/12_3_4.avi", "punching"), ("set1/13_3_2.avi", "kicking"), ("set1/14_3_1.avi", "hugging")]}
    for split, items in picks.items():
        for rel, label in items:
            (root / Path(rel).name).symlink_to(require(UT / rel))
            rows.append(f"{Path(rel).name},{label},{split}")
    truncate(UT / "set1" / "18_4_4.avi", root / "broken.avi")
    rows.append("broken.avi,punching,train")
    (root / "labels.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return root


def _cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionkit.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env, **kwargs)


def test_finetune_writes_a_complete_run_folder(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out),
                "--epochs", "2", "--self-distill", "--channels-last", *TINY)  # channels-last: saved weights must still be plain
    assert done.returncode == 0, done.stderr
    # the data side says what it did: layout, the skipped video, the classifier
    assert "csv layout" in done.stderr
    assert "warning: skipping unreadable video:" in done.stderr and "broken.avi" in done.stderr
    assert "replacing the model's 400-class classifier with a new 3-class one" in done.stderr
    for name in ("checkpoint.pt", "metrics.jsonl", "run.json", "classes.json", "plots/loss.png",
                 "plots/accuracy.png", "plots/confusion.png", "plots/confusion.json",
                 "best/model.safetensors", "best/config.json", "best/README.md", "last/model.safetensors",
                 "start/model.safetensors"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert [r["epoch"] for r in val] == [-1, 0, 1] and len(train) == 6  # the start, then 3 steps an epoch (6 clips, batch 2)
    assert {"loss", "loss_ce", "loss_sd", "lr"} <= set(train[0]) and all(torch.isfinite(torch.tensor(r["loss"])) for r in train)
    run = json.loads((out / "run.json").read_text())
    assert len(run["skipped_unreadable"]) == 1 and run["classes"] == ["hugging", "kicking", "punching"]
    assert run["result"]["epochs"] == 2 and run["train"]["channels_last"] is True
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "hugging", "1": "kicking", "2": "punching"}
    assert config["preprocessing"]["clip_len"] == 8 and config["preprocessing"]["crop_size"] == 64
    assert "## Metrics" in (out / "best" / "README.md").read_text()
    # the trained model is an ordinary model folder: predict runs on it
    predicted = _cli("predict", str(tiny_data / "0_1_4.avi"), "--model", str(out / "best"), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["predictions"][0]["label"] in run["classes"]
    # the run folder itself stands for its best/ model wherever a model is taken
    from actionkit import Recognizer

    (from_run,) = Recognizer.from_pretrained(out, device="cpu").predict([tiny_data / "0_1_4.avi"], top_k=3)
    assert [(p.label, round(p.score, 4)) for p in from_run.predictions] == \
        [(p["label"], round(p["score"], 4)) for p in json.loads(predicted.stdout)[0]["predictions"][:3]]


def test_strict_mode_refuses_unreadable_videos(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:
    done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(tmp_path / "r"),
                "--epochs", "1", "--strict", *TINY)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "broken.avi" in done.stderr
    assert "strict mode is on" in done.stderr and "Traceback" not in done.stderr


def test_fp16_scales_the_loss_so_small_gradients_survive() -> None:
    """Without loss scaling, fp16 gradients of a small loss flush to zero; the scaler keeps them, within
    fp16's rounding of fp32's. bf16 and fp32 get a pass-through scaler."""
    from actionkit.train.loop import autocast_for, grad_scaler_for, resolve_amp

    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == "off" and resolve_amp("fp16", cpu) == "fp16"
    assert not grad_scaler_for(cpu, "bf16").is_enabled() and not grad_scaler_for(cpu, "auto").is_enabled()

    def gradient(amp: str, scaled: bool) -> torch.Tensor:
        torch.manual_seed(0)
        layer = torch.nn.Linear(64, 64)
        x = torch.randn(8, 64)
        scaler = grad_scaler_for(cpu, amp) if scaled else torch.amp.GradScaler("cpu", enabled=False)
        with autocast_for(cpu, amp):
            loss = layer(x).float().square().mean() * 1e-6  # small enough for every fp16 gradient to underflow
        scaler.scale(loss).backward()
        scaler.unscale_(torch.optim.SGD(layer.parameters(), lr=0.1))
        return layer.weight.grad

    exact = gradient("off", scaled=False)
    assert exact.abs().max() > 0
    assert gradient("fp16", scaled=False).count_nonzero() == 0  # all flushed to zero
    scaled = gradient("fp16", scaled=True)
    assert scaled.count_nonzero() == exact.numel()
    assert (scaled - exact).abs().max() < 0.01 * exact.abs().max()  # fp16's rounding of the inputs, no more


def test_fp16_training_logs_and_checkpoints_its_loss_scale(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp16"
    done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), "--epochs", "1",
                "--amp", "fp16", *TINY)
    assert done.returncode == 0, done.stderr
    train = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert train and all(r["grad_scale"] > 1 and torch.isfinite(torch.tensor(r["loss"])) for r in train)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["grad_scaler"]["scale"] == train[-1]["grad_scale"]  # --resume continues from this scale
    assert all(torch.isfinite(w).all() for w in _weights(out).values())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def test_resume_after_kill_mid_epoch_reaches_the_same_weights(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:
    args = ["finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--epochs", "3", "--rev2net",
            "--self-distill", "--flow-cache", str(tmp_path / "flow"), *TINY]
    straight = _cli(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    logged = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["active_flow"] <= 1 and 0 <= r["active_frame"] <= 1 for r in logged if r["split"] == "train")

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "actionkit.cli", *args, "--out", str(killed_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once epoch 2 (index 1) has taken a step, before it ends
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        if any(json.loads(line)["epoch"] == 1 and json.loads(line)["split"] == "train" for line in lines):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (killed_dir / "checkpoint.pt").exists()
    assert torch.load(killed_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1  # epoch 2 was cut short

    resumed = _cli(*args, "--out", str(killed_dir), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "after epoch 1 of 3" in resumed.stderr
    a, b = _weights(tmp_path / "straight"), _weights(killed_dir)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    straight_val = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    resumed_val = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert straight_val == resumed_val  # the killed epoch's partial log was replaced, not duplicated

    changed = _cli(*[a if a != "0.0005" else "0.001" for a in args], "--out", str(killed_dir), "--resume")
    assert changed.returncode == 1 and "--resume with different settings (train.lr: 0.0005 -> 0.001)" in changed.stderr


def test_torchrun_two_processes_on_cpu(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "actionkit.cli"]
    done = subprocess.run([*torchrun, "finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out",
                           str(out), "--epochs", "2", *TINY], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("replacing the model's 400-class classifier") == 1  # rank 0 logs
    assert done.stdout.count("done: 2 epoch(s)") == 1 and "best val top-1 n/a" not in done.stdout  # and reports
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["checkpoint.pt", "classes.json", "metrics.jsonl", "run.json"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["split"] == "val"] == [-1, 0, 1]  # the start, then each epoch
    assert len([r for r in records if r["split"] == "train"]) == 4  # 6 clips over 2 ranks, batch 2: 2 steps an epoch
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert not list(out.glob(".checkpoint.*")) and not list(out.glob(".*.tmp"))

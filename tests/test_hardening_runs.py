"""Hardening of runs and outputs: unwritable or full output folders, processes left behind by training,
and run folders (metrics, run.json, checkpoint temporaries) kept whole across reruns and resumes.

Tests run as root, where permissions do not stop writes, so an unwritable folder is a path under a regular
file (``file/sub``) or a read-only tmpfs mount, and a full disk is a small tmpfs mount (both skipped when
mounting is not allowed; the full-disk unit test then falls back to a writer that raises ENOSPC).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch
from test_training import TINY, tiny_data  # noqa: F401  (tiny_data: the module-scoped fixture)

FAST = ["--max-steps-per-epoch", "1", "--epochs", "1"]


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionkit.cli", *args], capture_output=True, text=True,
                          timeout=600, **kwargs)


def _tiny(workers: int = 0) -> list[str]:
    """TINY with ``workers`` loader workers."""
    args = list(TINY)
    args[args.index("--workers") + 1] = str(workers)
    return args


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    """The command failed with ``error: ...`` as its last line and no traceback; that line."""
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), done.stderr[-3000:]
    return last


@contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[Path | None]:
    """A tmpfs mounted at ``path`` with ``options`` (None where mounting is not allowed); unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(params=["under-a-file", "read-only-mount"])
def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An output folder nothing can be written to, and the words the error must use for it."""
    if request.param == "under-a-file":
        (tmp_path / "file").write_text("a regular file\n")
        yield tmp_path / "file" / "sub", "not a folder"
        return
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        if mount is None:
            pytest.skip("cannot mount a read-only tmpfs here")
        yield mount / "out", "read-only"


@pytest.fixture(scope="module")
def finished_run(tiny_data: Path, k400_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A finished one-epoch, one-step run folder."""
    out = tmp_path_factory.mktemp("finished") / "run"
    done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), *FAST, *_tiny())
    assert done.returncode == 0, done.stderr[-3000:]
    return out


# --- 1. unwritable or full output -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["finetune", "convert", "predict-timeline", "flow", "evaluate"])
def test_an_unwritable_output_is_one_line_naming_it(command: str, unwritable: tuple[Path, str], tiny_data: Path,  # noqa: F811
                                                    k400_dir: Path, checkpoint: Path, finished_run: Path,
                                                    tmp_path: Path) -> None:
    """Every command that writes says in one line which folder it cannot write and why; those of this
    change check before the work (finetune before it reads the dataset)."""
    out, words = unwritable
    args = {
        "finetune": ["finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), *FAST,
                     *_tiny()],
        "convert": ["convert", str(checkpoint), "--out", str(out)],
        "predict-timeline": ["predict", str(tiny_data / "12_3_4.avi"), "--model", str(finished_run / "best"),
                             "--timeline", "--out", str(out)],
        "flow": ["flow", "--data", str(tiny_data), "--cache-dir", str(out), "--workers", "1"],
        "evaluate": ["evaluate", "--data", str(tiny_data), "--model", str(finished_run / "best"), "--workers", "0",
                     "--out", str(out)],
    }[command]
    done = _cli(*args)
    line = _one_line_error(done)
    assert str(out) in line and words in line, line
    if command == "finetune":
        assert "csv layout" not in done.stderr  # refused before the dataset was read
    if command == "predict-timeline":
        assert "wrote" not in done.stderr and not done.stdout


def test_a_full_disk_at_checkpoint_time_keeps_the_previous_checkpoint(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from actionkit.errors import ActionkitError
    from actionkit.train.checkpoint import TrainingState, load_checkpoint, rng_state, save_checkpoint

    def state(epoch: int, size: int) -> TrainingState:
        layer = torch.nn.Linear(size, size)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        return TrainingState(epoch, epoch, layer.state_dict(), optimizer.state_dict(), scheduler.state_dict(),
                             rng_state(), {"model": "m"})

    with _tmpfs(tmp_path / "small", "size=1m") as disk:
        run = disk or tmp_path / "run"
        run.mkdir(exist_ok=True)
        save_checkpoint(run, state(1, 8))
        if disk is None:  # no tmpfs: a writer that runs out of space half way
            real = torch.save

            def full(obj, f, *args, **kwargs):
                real({"partial": torch.zeros(100)}, f)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(torch, "save", full)
        with pytest.raises(ActionkitError) as failed:
            save_checkpoint(run, state(2, 1000))  # 4 MB of weights: more than the 1 MB disk holds
        message = str(failed.value)
        assert len(message.splitlines()) == 1 and str(run / "checkpoint.pt") in message and "no space" in message
        monkeypatch.undo()
        assert load_checkpoint(run, {"model": "m"}).epoch == 1  # the previous checkpoint, whole
        assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # no temporary left


def test_a_full_disk_during_finetune_is_one_line(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """start/, best/ and last/ (47 MB each, and best/'s temporary while it is replaced) fit on the 200 MB
    disk; the 94 MB checkpoint does not."""
    with _tmpfs(tmp_path / "disk", "size=200m") as disk:
        if disk is None:
            pytest.skip("cannot mount a tmpfs here")
        out = disk / "run"
        done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), *FAST, *_tiny())
        line = _one_line_error(done)
        assert str(out / "checkpoint.pt") in line and "no space left" in line, line
        assert not list(out.glob(".*.tmp")), list(out.iterdir())


@pytest.mark.parametrize(("command", "size"), [("convert", "10m"), ("flow", "200k")])
def test_a_full_disk_is_one_line_whichever_library_writes(command: str, size: str, checkpoint: Path,
                                                          tiny_data: Path, tmp_path: Path) -> None:  # noqa: F811
    """safetensors (convert's weights) and numpy (flow entries, written in worker processes) report a full
    disk in their own ways; the user reads the file and "no space left" either way."""
    with _tmpfs(tmp_path / "disk", f"size={size}") as disk:
        if disk is None:
            pytest.skip("cannot mount a tmpfs here")
        out = disk / "out"
        args = {"convert": ["convert", str(checkpoint), "--out", str(out)],
                "flow": ["flow", "--data", str(tiny_data), "--cache-dir", str(out), "--workers", "1"]}[command]
        line = _one_line_error(_cli(*args))
        assert str(out) in line and "no space left" in line, line
        assert not list(out.rglob(".*.tmp"))


# --- 2. processes left behind -----------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    found = []
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return found


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``: pid -> its start time (so a reused pid is not mistaken for it)."""
    found: dict[int, str] = {}
    stack = _children(pid)
    while stack:
        child = stack.pop()
        start = _started(child)
        if start is not None:
            found[child] = start
            stack += _children(child)
    return found


def _started(pid: int) -> str | None:
    """The start time of a live (not zombie) process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _alive(processes: dict[int, str]) -> list[int]:
    return [pid for pid, start in processes.items() if _started(pid) == start]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_killed_training_run_leaves_no_processes(sig: int, tiny_data: Path, k400_dir: Path,  # noqa: F811
                                                   tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "actionkit.cli", "finetune", "--data", str(tiny_data), "--model",
                            str(k400_dir), "--out", str(out), "--epochs", "2", *_tiny(workers=1)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    descendants: dict[int, str] = {}
    try:
        deadline = time.time() + 300
        while not (out / "metrics.jsonl").exists():  # training: the loader's worker has delivered a batch
            assert run.poll() is None and time.time() < deadline, "the run ended or stalled before training"
            time.sleep(0.1)
        descendants = _descendants(run.pid)
        assert len(descendants) >= 2, descendants  # the fork server and the worker at least
        os.kill(run.pid, sig)
        run.wait(timeout=60)
        time.sleep(10)
        assert _alive(descendants) == []
    finally:
        if run.poll() is None:
            run.kill()
        for pid in _alive(descendants):  # leave nothing behind for the next tests either
            os.kill(pid, signal.SIGKILL)


THREE_RUNS = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path

    from actionkit.train.finetune import DataConfig, FinetuneConfig, finetune
    from actionkit.train.loop import TrainConfig


    def children():
        found = []
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            for pid in (task / "children").read_text().split():
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if stat[0] not in ("Z", "X"):
                    found.append(int(pid))
        return found


    if __name__ == "__main__":
        data, model, out = sys.argv[1:4]
        left = []
        for i in range(3):
            config = FinetuneConfig(
                DataConfig(root=Path(data), clip_len=8, crop_size=64, eval_clips=1, workers=1),
                model=model, out=Path(out) / str(i),
                train=TrainConfig(epochs=1, batch_size=2, lr=0.0005, seed=3, max_steps_per_epoch=1))
            finetune(config, log=lambda line: None)
            left.append(children())
        print(json.dumps(left))
""")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_finetune_leaves_no_child_processes_when_it_returns(tiny_data: Path, k400_dir: Path,  # noqa: F811
                                                            tmp_path: Path) -> None:
    script = tmp_path / "three_runs.py"
    script.write_text(THREE_RUNS)
    done = subprocess.run([sys.executable, str(script), str(tiny_data), str(k400_dir), str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[], [], []]


# --- 3. run records -----------------------------------------------------------------------------------


def test_a_new_run_in_a_used_folder_is_refused_unless_resumed_or_overwritten(tiny_data: Path, k400_dir: Path,  # noqa: F811
                                                                             tmp_path: Path) -> None:
    """What a run killed in its first epoch leaves (no checkpoint yet): a rerun must not add to its log."""
    out = tmp_path / "run"
    out.mkdir()
    logged = json.dumps({"split": "train", "epoch": 0, "step": 1, "lr": 0.0005, "loss": 1.5}) + "\n"
    (out / "metrics.jsonl").write_text(logged)
    (out / "run.json").write_text("{}\n")
    (out / ".checkpoint.pt.k1ll3d00.tmp").write_bytes(b"half a checkpoint")
    args = ["finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), *FAST, *_tiny()]

    refused = _cli(*args)
    line = _one_line_error(refused)
    assert str(out) in line and "--resume" in line and "--overwrite" in line, line
    assert "csv layout" not in refused.stderr  # before any work
    assert (out / "metrics.jsonl").read_text() == logged

    both = _cli(*args, "--resume", "--overwrite")
    assert "--overwrite" in _one_line_error(both)

    again = _cli(*args, "--overwrite")
    assert again.returncode == 0, again.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert steps == [1]  # logged once: the killed run's log was cleared, not appended to
    assert "result" in json.loads((out / "run.json").read_text())
    assert not list(out.glob(".*.tmp"))


def test_resuming_a_finished_run_changes_nothing(finished_run: Path, tiny_data: Path, k400_dir: Path) -> None:  # noqa: F811
    before = {name: (finished_run / name).read_bytes() for name in ("run.json", "metrics.jsonl", "classes.json")}
    stamps = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()}
    assert json.loads(before["run.json"])["result"]["last"]  # the finished run's result, before

    done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(finished_run), *FAST,
                *_tiny(), "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    said = (done.stdout + done.stderr).strip().splitlines()
    assert len(said) == 1 and "finished" in said[0] and str(finished_run) in said[0], said
    assert {name: (finished_run / name).read_bytes() for name in before} == before
    assert {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()} == stamps


def test_stale_temporaries_are_removed_when_a_run_starts_or_saves(tmp_path: Path) -> None:
    """A kill during an atomic write leaves its temporary (``.NAME.RANDOM.tmp``) behind."""
    from actionkit.train.checkpoint import TrainingState, rng_state, save_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    (run / ".checkpoint.pt.aaaa1111.tmp").write_bytes(b"partial")
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    save_checkpoint(run, TrainingState(1, 1, layer.state_dict(), optimizer.state_dict(), scheduler.state_dict(),
                                       rng_state(), {}))
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]

    from actionkit.train.checkpoint import prepare_run_folder

    for folder in (run, run / "last", run / "best", run / "plots"):
        folder.mkdir(exist_ok=True)
        (folder / ".model.safetensors.bbbb2222.tmp").write_bytes(b"partial")
    (run / "notes.txt").write_text("kept")
    prepare_run_folder(run, resume=True, overwrite=False)
    assert not list(run.rglob("*.tmp"))
    assert (run / "notes.txt").read_text() == "kept" and (run / "checkpoint.pt").is_file()

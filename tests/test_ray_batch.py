"""Batch prediction on a real local Ray cluster (two nodes on this machine): labels as single-process
predict, bad videos as error rows, work spread over both nodes, a killed model actor and a killed
driver losing nothing and writing each video once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actionkit.predict import Recognizer
from actionkit.predict.ray_batch import RayBatchConfig, batch_videos, predict_on_ray

from conftest import CLIPS, EXPECTED_LABELS, SHARED, require

ray = pytest.importorskip("ray", reason="the serve extra is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.slow
UT = SHARED / "data" / "ut_interaction"


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray cluster of two nodes on this machine (Ray's own cluster_utils), 2 logical CPUs each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})  # the state API needs the dashboard
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The shared clips, 12 UT-Interaction videos and one truncated video, as a list file."""
    folder = tmp_path_factory.mktemp("ray_videos")
    clips = [require(CLIPS / name) for name in EXPECTED_LABELS]
    ut = sorted(require(UT / "set1").glob("*.avi"))[:12]
    broken = folder / "broken.mp4"
    data = (CLIPS / "arm_wrestling.mp4").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    listing = folder / "videos.txt"
    listing.write_text("\n".join([*map(str, clips + ut), "broken.mp4"]) + "\n")
    return batch_videos([listing])


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_the_job_spreads_over_both_nodes_and_matches_single_process_predict(two_nodes, videos, k400_fast_dir,
                                                                             tmp_path: Path) -> None:
    _, worker = two_nodes
    out = tmp_path / "results.jsonl"
    report = predict_on_ray(videos, RayBatchConfig(model=str(k400_fast_dir), out=out, workers=2,
                                                   cpus_per_worker=1, videos_per_task=2), progress=False)
    assert (report.videos, report.written, report.failed, report.done_before) == (len(videos), len(videos), 1, 0)
    assert 0 < report.first_result_seconds < report.seconds
    rows = {row["video"]: row for row in _rows(out)}
    assert len(rows) == len(videos) == len(_rows(out))  # each video once
    assert "error" in rows[videos[-1]] and rows[videos[-1]]["predictions"] == []
    single = Recognizer.from_pretrained(str(k400_fast_dir), device="cpu").predict(videos, top_k=5)
    for expected in single:
        row = rows[expected.video]
        if expected.error:
            assert row["error"] == expected.error
            continue
        assert [p["label"] for p in row["predictions"]] == [p.label for p in expected.predictions]
        assert [p["score"] for p in row["predictions"]] == pytest.approx([p.score for p in expected.predictions],
                                                                        abs=1e-4)
    from ray.util.state import list_actors, list_tasks

    scorer_nodes = {a.node_id for a in list_actors(filters=[("class_name", "=", "MapWorker(MapBatches(VideoScorer))")])}
    decode_nodes = {t.node_id for t in list_tasks(filters=[("name", "=", "Map(decode_video)")], limit=10000)}
    assert worker.node_id in scorer_nodes | decode_nodes and len(scorer_nodes | decode_nodes) == 2


def test_a_killed_model_actor_is_replaced_and_every_video_is_written_once(two_nodes, videos, k400_fast_dir,
                                                                          tmp_path: Path) -> None:
    from ray.util.state import list_actors

    out = tmp_path / "results.jsonl"
    config = RayBatchConfig(model=str(k400_fast_dir), out=out, workers=2, cpus_per_worker=1, videos_per_task=1)
    outcome: dict = {}
    job = threading.Thread(target=lambda: outcome.setdefault("report", predict_on_ray(videos, config, progress=False)))
    job.start()
    deadline = time.monotonic() + 300
    while (not out.exists() or len(out.read_text().splitlines()) < 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    victims = [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if "VideoScorer" in a.class_name]
    assert victims, "no model actor alive mid-job"
    os.kill(victims[0].pid, signal.SIGKILL)
    job.join(timeout=600)
    assert not job.is_alive() and outcome["report"].written == len(videos)
    rows = _rows(out)
    assert sorted(r["video"] for r in rows) == sorted(videos)  # every video, exactly once


def test_a_rerun_after_the_driver_is_killed_runs_only_the_missing_videos(two_nodes, videos, k400_fast_dir,
                                                                         tmp_path: Path) -> None:
    cluster, _ = two_nodes
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "actionkit.cli", "predict", *videos, "--model", str(k400_fast_dir), "--ray",
               "--address", cluster.address, "--out", str(out), "--workers", "1", "--cpus-per-worker", "1"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while (not out.exists() or len(out.read_text().splitlines()) < 4) and time.monotonic() < deadline:
        time.sleep(0.2)
    driver.kill()
    driver.wait(timeout=60)
    before = {r["video"] for r in _rows(out)}
    assert 4 <= len(before) < len(videos)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stderr  # 1: the broken video failed; everything else was predicted
    assert f"{len(before)} already in {out}" in rerun.stderr
    rows = _rows(out)
    assert sorted(r["video"] for r in rows) == sorted(videos)
    assert len(rows) == len(videos)


def test_decoders_default_to_one_per_cpu_worker_and_four_per_gpu_worker(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    assert RayBatchConfig(model="m", out=out).decoders_per_worker == 1
    assert RayBatchConfig(model="m", out=out, gpus_per_worker=0.5).decoders_per_worker == 4
    assert RayBatchConfig(model="m", out=out, gpus_per_worker=1, decoders=2).decoders_per_worker == 2
    with pytest.raises(ValueError, match="at least 1"):
        RayBatchConfig(model="m", out=out, decoders=0)


def test_decoding_lowers_only_its_own_thread(videos) -> None:
    """A decoding task runs on a low-priority thread, and leaves its process's main thread as it was: Ray
    may make the same worker process a model actor later, whose threads would inherit a lowered main
    thread's priority (measured: the model then ran niced beside its own decoders)."""
    from dataclasses import asdict

    from actionkit.config import PreprocessConfig
    from actionkit.predict.load_ahead import LOADER_NICENESS
    from actionkit.predict.ray_batch import decode_video, low_priority_thread

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    row = decode_video({"video": videos[0]}, asdict(PreprocessConfig(clip_len=8, crop_size=64, resize_short_side=64)),
                       None, None)
    assert row["error"] == "" and row["shape"][1:] == [8, 3, 64, 64]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    decoder = low_priority_thread().submit(threading.get_native_id).result()
    assert os.getpriority(os.PRIO_PROCESS, decoder) in (LOADER_NICENESS, before)  # before: a sandbox that forbids it

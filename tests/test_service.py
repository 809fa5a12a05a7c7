"""The HTTP prediction service on real servers on 127.0.0.1, with real clips and the Kinetics-400 I3D
(16-frame clips): the app under uvicorn without Ray (answers equal ``Recognizer.predict``'s, each bad
input gets its 4xx and the service keeps serving), a bounded load against one-at-a-time requests, and
the Ray Serve deployment (batching, and a killed replica replaced). Every request, server and Ray
instance is bounded in time and shut down by its fixture."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from actionkit.predict import Recognizer
from actionkit.predict.service import ServiceConfig, build_local_app

from conftest import CLIPS, require
from videos import truncate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import service_load  # noqa: E402

# Four real clips in three containers (mp4, avi, gif), small ones first.
CLIP_NAMES = ["hmdb51_dive.mp4", "arm_wrestling.mp4", "ucf101_HeadMassage.avi", "v_CricketShot_g04_c01_rgb.gif"]
TIMEOUT = 180.0  # any single request
LOAD_REQUESTS = int(os.environ.get("ACTIONKIT_SERVICE_LOAD_REQUESTS", "24"))
LOAD_CONCURRENCY = int(os.environ.get("ACTIONKIT_SERVICE_LOAD_CONCURRENCY", "8"))
LOAD_SEQUENTIAL = int(os.environ.get("ACTIONKIT_SERVICE_LOAD_SEQUENTIAL", "4"))


@pytest.fixture(scope="module")
def clips() -> dict[str, Path]:
    return {name: require(CLIPS / name) for name in CLIP_NAMES}


@pytest.fixture(scope="module")
def recognizer(k400_fast_dir: Path) -> Recognizer:
    return Recognizer.from_pretrained(k400_fast_dir, backend="torch", precision="fp32")


@pytest.fixture(scope="module")
def reference(recognizer: Recognizer, clips: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """``predict --json``'s object for each clip, from the Recognizer in this process, named as uploaded."""
    results = recognizer.predict([str(p) for p in clips.values()], top_k=5)
    named = {}
    for (name, path), result in zip(clips.items(), results):
        named[name] = {**result.to_dict(), "video": name}
        if result.warnings:
            named[name]["warnings"] = [w.replace(str(path), name) for w in result.warnings]
    return named


class LocalServer:
    """``build_local_app`` under uvicorn in a thread, on a port the OS picked on 127.0.0.1."""

    def __init__(self, config: ServiceConfig, recognizer: Recognizer) -> None:
        import uvicorn

        self.config = config
        self.server = uvicorn.Server(uvicorn.Config(build_local_app(config, recognizer), host="127.0.0.1", port=0,
                                                    log_level="warning", timeout_keep_alive=5))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=TIMEOUT)

    def upload(self, name: str, data: bytes, **fields: str) -> httpx.Response:
        return self.client.post("/predict", files={"video": (name, data)}, data=fields)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def start_server(recognizer: Recognizer, k400_fast_dir: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalServer]]:
    """Start servers sharing the module's Recognizer (each with its own limits and upload folder);
    all are stopped at the end of the module."""
    servers: list[LocalServer] = []

    def start(**limits: Any) -> LocalServer:
        uploads = tmp_path_factory.mktemp("uploads")
        config = ServiceConfig(model=str(k400_fast_dir), upload_dir=uploads, **limits)
        servers.append(LocalServer(config, recognizer))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def served_root(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder --root serves: a clip and a link to it inside, and links that lead outside."""
    root = tmp_path_factory.mktemp("served")
    (root / "videos").mkdir()
    (root / "videos" / "dive.mp4").write_bytes(clips["hmdb51_dive.mp4"].read_bytes())
    (root / "link.mp4").symlink_to(root / "videos" / "dive.mp4")
    (root / "videos" / "outside_link.mp4").symlink_to(clips["hmdb51_dive.mp4"])
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.mp4").write_bytes(clips["hmdb51_dive.mp4"].read_bytes())
    (root / "videos" / "escape.mp4").symlink_to(outside / "secret.mp4")
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def server(start_server: Callable[..., LocalServer], served_root: Path) -> LocalServer:
    """The main server: a 1 MB upload limit (the larger clips exceed it) and a served root."""
    return start_server(root=served_root, max_upload_mb=1.0, timeout=120.0)


def assert_same_result(body: dict[str, Any], expected: dict[str, Any], top_k: int = 5) -> None:
    assert body["video"] == expected["video"]
    assert [p["label"] for p in body["predictions"]] == [p["label"] for p in expected["predictions"][:top_k]]
    for got, want in zip(body["predictions"], expected["predictions"]):
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)
    assert body.get("warnings") == expected.get("warnings") and "error" not in body


def assert_good_request(server: LocalServer, clips: dict[str, Path], reference: dict[str, Any]) -> None:
    """The service still answers a good upload correctly (after a bad one)."""
    response = server.upload("hmdb51_dive.mp4", clips["hmdb51_dive.mp4"].read_bytes(), top_k="1")
    assert response.status_code == 200, response.text
    assert_same_result(response.json(), reference["hmdb51_dive.mp4"], top_k=1)


# --- without Ray ----------------------------------------------------------------------------------------

def test_health_stats_and_openapi(server: LocalServer) -> None:
    health = server.client.get("/health").json()
    assert health == {"status": "ok", "model": server.config.model, "backend": "torch fp32", "labels": 400}
    stats = server.client.get("/stats").json()
    assert {"requests", "batches", "mean_batch_size", "batch_sizes", "held"} <= stats.keys()
    spec = server.client.get("/openapi.json").json()
    assert {"/predict", "/health", "/stats"} <= spec["paths"].keys()
    assert "multipart/form-data" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert server.client.get("/docs").status_code == 200
    missing = server.client.get("/nowhere")
    assert missing.status_code == 404 and "error" in missing.json()


def test_uploads_get_the_answers_of_recognizer_predict(server: LocalServer, clips: dict[str, Path],
                                                        reference: dict[str, Any]) -> None:
    """Concurrent uploads (batched onto the model) answer what ``Recognizer.predict`` gives in-process.
    Two clips are over the 1 MB limit of this server, so they go by their server-side path instead."""
    small = {n: p for n, p in clips.items() if p.stat().st_size <= 1 << 20}
    assert len(small) >= 2
    with ThreadPoolExecutor(len(small)) as pool:
        responses = dict(zip(small, pool.map(lambda n: server.upload(n, small[n].read_bytes()), small)))
    for name, response in responses.items():
        assert response.status_code == 200, response.text
        assert_same_result(response.json(), reference[name])
    response = server.upload("hmdb51_dive.mp4", clips["hmdb51_dive.mp4"].read_bytes(), top_k="2")
    assert_same_result(response.json(), reference["hmdb51_dive.mp4"], top_k=2)
    assert len(response.json()["predictions"]) == 2
    stats = server.client.get("/stats").json()
    print(f"\nbatch sizes the model saw: {stats['batch_sizes']}")
    assert stats["videos"] >= len(small) + 1 and stats["held"] == 0
    assert list(server.config.upload_dir.iterdir()) == []


def test_server_side_paths_stay_inside_the_root(server: LocalServer, start_server: Callable[..., LocalServer],
                                                clips: dict[str, Path], reference: dict[str, Any],
                                                served_root: Path) -> None:
    inside = server.client.post("/predict", data={"path": "videos/dive.mp4", "top_k": "3"})
    assert inside.status_code == 200, inside.text
    assert_same_result(inside.json(), {**reference["hmdb51_dive.mp4"], "video": "videos/dive.mp4"}, top_k=3)
    absolute = server.client.post("/predict", files={"path": (None, str(served_root / "link.mp4"))})
    assert absolute.status_code == 200, absolute.text
    assert absolute.json()["video"] == str(served_root / "link.mp4")
    for path in ["../outside/secret.mp4", "videos/escape.mp4", "videos/outside_link.mp4", "escape_dir/secret.mp4",
                 "/etc/passwd", str(clips["hmdb51_dive.mp4"])]:
        response = server.client.post("/predict", data={"path": path})
        assert response.status_code == 403, (path, response.text)
        assert response.json() == {"error": f"{path}: outside the served root"}
    assert server.client.post("/predict", data={"path": "videos/nope.mp4"}).status_code == 404
    assert server.client.post("/predict", data={"path": "videos"}).status_code == 400
    no_root = start_server()
    response = no_root.client.post("/predict", data={"path": "videos/dive.mp4"})
    assert response.status_code == 403 and "--root" in response.json()["error"]
    assert_good_request(server, clips, reference)


def test_each_bad_input_gets_its_4xx_and_the_service_keeps_serving(
        server: LocalServer, clips: dict[str, Path], reference: dict[str, Any], tmp_path: Path) -> None:
    real = clips["arm_wrestling.mp4"]
    truncated = truncate(real, tmp_path / "arm_wrestling_cut.mp4").read_bytes()
    big = clips["v_CricketShot_g04_c01_rgb.gif"].read_bytes()
    assert len(big) > 1 << 20

    def chunked_upload() -> Iterator[bytes]:  # no Content-Length: the limit is found while streaming
        yield b'--B0undary\r\nContent-Disposition: form-data; name="video"; filename="big.gif"\r\n\r\n'
        for i in range(0, len(big), 1 << 16):
            yield big[i:i + (1 << 16)]
        yield b"\r\n--B0undary--\r\n"

    corrupt = server.upload("arm_wrestling_cut.mp4", truncated)
    assert corrupt.status_code == 422
    assert corrupt.json().keys() == {"video", "predictions", "error"}
    assert corrupt.json()["video"] == "arm_wrestling_cut.mp4" and corrupt.json()["predictions"] == []
    assert corrupt.json()["error"].startswith("arm_wrestling_cut.mp4: cannot be opened: truncated or corrupt")
    assert "\n" not in corrupt.json()["error"] and "actionkit-upload" not in corrupt.json()["error"]
    assert_good_request(server, clips, reference)

    text = server.upload("notes.txt", b"this is a text file\n" * 20)
    assert text.status_code == 422
    assert text.json()["error"].startswith("notes.txt: not a video file")
    assert_good_request(server, clips, reference)

    oversized = server.upload("big.gif", big)
    assert (oversized.status_code, oversized.json()) == (413, {"error": "upload larger than the limit of 1 MB"})
    streamed = server.client.post("/predict", content=chunked_upload(),
                                  headers={"content-type": "multipart/form-data; boundary=B0undary"})
    assert (streamed.status_code, streamed.json()) == (413, {"error": "upload larger than the limit of 1 MB"})
    assert_good_request(server, clips, reference)

    outside = server.client.post("/predict", data={"path": "../../etc/passwd"})
    assert outside.status_code == 403
    assert_good_request(server, clips, reference)

    refusals = {
        "missing field": server.client.post("/predict", data={"top_k": "3"}),
        "wrong field": server.client.post("/predict", files={"file": ("a.mp4", b"data")}),
        "both fields": server.client.post("/predict", files={"video": ("a.mp4", b"data"), "path": (None, "x.mp4")}),
        "video not a file": server.client.post("/predict", files={"video": (None, "clip.mp4")}),
        "not a form": server.client.post("/predict", json={"video": "clip.mp4"}),
        "empty body": server.client.post("/predict"),
    }
    for case, response in refusals.items():
        assert response.status_code == 400, (case, response.text)
        assert set(response.json()) == {"error"} and response.json()["error"], case
    assert "'video'" in refusals["missing field"].json()["error"]
    assert "unexpected form field 'file'" in refusals["wrong field"].json()["error"]
    for top_k in ("0", "51", "five"):
        response = server.upload("hmdb51_dive.mp4", b"x", top_k=top_k)
        assert response.status_code == 422 and "top_k must be an integer from 1 to 50" in response.json()["error"]
    assert_good_request(server, clips, reference)

    stats = server.client.get("/stats").json()
    assert stats["held"] == 0 and {"400", "403", "413", "422"} <= stats["responses"].keys()
    assert list(server.config.upload_dir.iterdir()) == []  # every upload's temporary file is gone


def test_timeouts_answer_504_and_a_full_queue_503(start_server: Callable[..., LocalServer],
                                                 clips: dict[str, Path]) -> None:
    """A server whose batches wait 3 s for company and that holds 2 requests: of 4 concurrent uploads,
    2 are held and time out after 1 s (504), 2 find it full (503, at once). The timed-out jobs are
    skipped, not run, and the server takes requests again once they are answered."""
    tight = start_server(max_batch_size=8, batch_wait_ms=3000, max_queue=2, timeout=1.0)
    data = clips["hmdb51_dive.mp4"].read_bytes()
    barrier = threading.Barrier(4, timeout=30)

    def upload(i: int) -> tuple[int, dict[str, Any], float]:
        barrier.wait()
        started = time.monotonic()
        response = tight.upload(f"clip{i}.mp4", data)
        return response.status_code, response.json(), time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(upload, range(4)), key=lambda o: o[0])
    assert [status for status, *_ in outcomes] == [503, 503, 504, 504], outcomes
    assert outcomes[0][1]["error"].startswith("busy:") and outcomes[0][2] < 1.0
    assert outcomes[2][1] == {"error": "no answer within the 1 s timeout"}
    again = tight.upload("again.mp4", data)
    assert again.status_code == 504  # admitted again (held went back to 0), and timed out again
    assert tight.client.get("/health").status_code == 200
    time.sleep(3.5)  # the batch window closes on cancelled jobs only
    stats = tight.client.get("/stats").json()
    assert stats["batches"] == 0 and stats["held"] == 0, stats
    assert list(tight.config.upload_dir.iterdir()) == []


# --- load -----------------------------------------------------------------------------------------------

def test_load_without_ray(k400_fast_dir: Path, clips: dict[str, Path], reference: dict[str, Any],
                          tmp_path: Path) -> None:
    """``actionkit serve --no-ray`` in its own process under a bounded load: no failed request, the
    labels of one-at-a-time requests, batches larger than one; prints p50/p95/throughput both ways.
    (200 requests at concurrency 8 take ~10 min on 2 CPU cores: benchmarks/service_load.py runs them.)"""
    port = service_load.free_port()
    url = f"http://127.0.0.1:{port}"
    process = service_load.start_server(str(k400_fast_dir), port, "--timeout", "600", "--max-batch-size", "8",
                                        log=tmp_path / "server.log")
    try:
        service_load.wait_healthy(url, timeout=180, process=process)
        videos = [(name, clips[name].read_bytes()) for name in CLIP_NAMES]
        result = service_load.measure(url, videos, LOAD_REQUESTS, LOAD_CONCURRENCY, LOAD_SEQUENTIAL, timeout=600)
    finally:
        service_load.stop_server(process)
    print("\n" + service_load.report(result))
    sequential, concurrent = result["one_at_a_time"], result["concurrent"]
    assert sequential["failed"] == 0 and concurrent["failed"] == 0, (sequential["failures"], concurrent["failures"])
    assert concurrent["statuses"] == {"200": LOAD_REQUESTS}
    for name, label in concurrent["labels"].items():
        assert label == reference[name]["predictions"][0]["label"]
    assert sequential["mean_batch_size"] == 1.0
    assert concurrent["mean_batch_size"] > 1.5
    assert process.returncode is not None


# --- Ray Serve ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_service(k400_fast_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServiceConfig]]:
    """The Serve deployment (one replica, one CPU) on a local Ray instance of 2 CPUs made for this
    module, its proxy on a free loopback port; Serve and Ray are shut down afterwards."""
    ray = pytest.importorskip("ray")
    from ray import serve

    from actionkit.predict import serve_app

    ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False,
             object_store_memory=256 * 2**20)
    try:
        port = service_load.free_port()
        config = ServiceConfig(model=str(k400_fast_dir), max_batch_size=4, batch_wait_ms=100, timeout=300.0,
                               upload_dir=tmp_path_factory.mktemp("ray_uploads"))
        url = serve_app.start(config, "127.0.0.1", port, replicas=1, cpus_per_replica=1.0)
        service_load.wait_healthy(url, timeout=120)
        yield url, config
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def replica_pids() -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], timeout=30)
    return [a.pid for a in actors if a.class_name.startswith("ServeReplica:")]


def post_clip(url: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"video": (name, data)}, data={"top_k": "1"}, timeout=TIMEOUT)


@pytest.mark.slow
def test_ray_serve_batches_concurrent_requests(ray_service: tuple[str, ServiceConfig], clips: dict[str, Path],
                                               reference: dict[str, Any]) -> None:
    ray_service, config = ray_service
    health = httpx.get(f"{ray_service}/health", timeout=30).json()
    assert health["labels"] == 400 and health["backend"] == "torch fp32" and "replica" in health
    names = ["hmdb51_dive.mp4", "arm_wrestling.mp4", "hmdb51_dive.mp4", "ucf101_HeadMassage.avi"]
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda n: post_clip(ray_service, n, clips[n].read_bytes()), names))
    for name, response in zip(names, responses):
        assert response.status_code == 200, response.text
        assert_same_result(response.json(), reference[name], top_k=1)
    stats = httpx.get(f"{ray_service}/stats", timeout=30).json()
    print(f"\nRay Serve replica batch sizes: {stats['batch_sizes']}")
    assert stats["videos"] == 4 and stats["batches"] < 4  # at least two requests shared a model call
    bad = post_clip(ray_service, "notes.txt", b"plain text\n" * 30)
    assert bad.status_code == 422 and bad.json()["error"].startswith("notes.txt: not a video file")
    outside = httpx.post(f"{ray_service}/predict", data={"path": "/etc/passwd"}, timeout=30)
    assert outside.status_code == 403 and "--root" in outside.json()["error"]
    assert list(config.upload_dir.iterdir()) == []


@pytest.mark.slow
def test_ray_serve_replaces_a_killed_replica(ray_service: tuple[str, ServiceConfig], clips: dict[str, Path],
                                             reference: dict[str, Any]) -> None:
    """SIGKILL the replica's process while it predicts: Serve starts a new one, and requests sent once it
    is up succeed (those in flight on the dead one may fail: printed). The new replica deletes the
    uploads the killed one left."""
    ray_service, config = ray_service
    [pid] = replica_pids()
    before = httpx.get(f"{ray_service}/health", timeout=30).json()["replica"]
    data = clips["hmdb51_dive.mp4"].read_bytes()
    with ThreadPoolExecutor(4) as pool:
        in_flight = [pool.submit(post_clip, ray_service, f"inflight{i}.mp4", data) for i in range(4)]
        time.sleep(1.0)  # the uploads are in, the batch is running
        left = list(config.upload_dir.iterdir())
        os.kill(pid, signal.SIGKILL)
        outcomes = []
        for future in in_flight:
            try:
                response = future.result(timeout=TIMEOUT)
                outcomes.append(f"{response.status_code} {response.text[:60]!r}")
            except httpx.HTTPError as error:
                outcomes.append(type(error).__name__)
    print(f"\nrequests in flight when the replica was killed: {outcomes}; uploads it held: {len(left)}")
    deadline = time.monotonic() + 180
    while True:
        try:
            health = httpx.get(f"{ray_service}/health", timeout=10)
            if health.status_code == 200 and health.json()["replica"] != before:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "Serve did not replace the killed replica within 180 s"
        time.sleep(1.0)
    [new_pid] = replica_pids()
    assert new_pid != pid
    names = ["hmdb51_dive.mp4", "arm_wrestling.mp4", "hmdb51_dive.mp4"]
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda n: post_clip(ray_service, n, clips[n].read_bytes()), names))
    for name, response in zip(names, responses):
        assert response.status_code == 200, response.text
        assert_same_result(response.json(), reference[name], top_k=1)
    assert list(config.upload_dir.iterdir()) == []

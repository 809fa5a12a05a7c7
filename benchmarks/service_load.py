"""The HTTP service under load: latency and throughput of ``POST /predict`` with concurrent clients,
against the same requests sent one at a time, and the batch sizes the model saw.

    python benchmarks/service_load.py --model K400_FOLDER [--requests 200] [--concurrency 8]
        [--sequential 20] [--videos ../shared/data/clips] [--url http://HOST:PORT] [--out JSON]

Without ``--url`` it starts ``actionkit serve --no-ray`` (uvicorn, one model thread, the local
batcher) on a free loopback port in its own process and stops it at the end; with ``--url`` it loads
a service already running (Ray Serve or not). Each request uploads one real clip (cycling through
``--videos``, the optical-flow GIF left out) with ``top_k=1``. After one warm-up request it sends
``--sequential`` requests one at a time, then ``--requests`` requests from ``--concurrency`` client
threads (httpx, one connection each). For each phase: p50/p95/mean latency, requests per second,
failed requests (anything but 200, or a top-1 label that differs from the label the same clip got
one at a time) and the model's batches from ``GET /stats`` (its counters before and after the phase).
Writes ``benchmarks/results/service_load_<machine>_<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from result_files import cpu_name, result_path

DEFAULT_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str, port: int, *options: str, log: Path | None = None) -> subprocess.Popen:
    """``actionkit serve --no-ray --model MODEL --port PORT OPTIONS...`` on 127.0.0.1, in its own process
    (stderr to ``log`` when given)."""
    command = [sys.executable, "-m", "actionkit.cli", "serve", "--no-ray", "--model", model, "--host", "127.0.0.1",
               "--port", str(port), *options]
    stderr = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def wait_healthy(url: str, timeout: float = 180.0, process: subprocess.Popen | None = None) -> dict[str, Any]:
    """``GET /health``'s body once the service answers 200; RuntimeError past ``timeout`` seconds or when
    ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering")
        try:
            response = httpx.get(f"{url}/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer /health within {timeout:g} s")


def stop_server(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Ctrl-C the server (uvicorn shuts down cleanly), then kill it if it is still there after ``timeout``."""
    if process.poll() is None:
        process.send_signal(2)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def load_videos(folder: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of the RGB clips in ``folder`` (the optical-flow GIF left out), sorted by name."""
    suffixes = {".mp4", ".avi", ".gif", ".mkv", ".webm", ".mov"}
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and "flow" not in p.name)
    if not files:
        raise SystemExit(f"{folder}: no clips")
    return [(p.name, p.read_bytes()) for p in files]


def post_video(client: httpx.Client, url: str, name: str, data: bytes, timeout: float) -> tuple[int, Any, float]:
    """One ``POST /predict`` with ``top_k=1``: (status, JSON body or text, seconds); status 0 when the
    request itself failed (connection, timeout)."""
    started = time.perf_counter()
    try:
        response = client.post(f"{url}/predict", files={"video": (name, data)}, data={"top_k": "1"}, timeout=timeout)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:200]
        return response.status_code, body, time.perf_counter() - started
    except httpx.HTTPError as error:
        return 0, f"{type(error).__name__}: {error}", time.perf_counter() - started


def stats(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/stats", timeout=30).json()


def run_load(url: str, videos: list[tuple[str, bytes]], requests: int, concurrency: int,
             expected: dict[str, str] | None = None, timeout: float = 600.0) -> dict[str, Any]:
    """Send ``requests`` uploads (cycling through ``videos``) from ``concurrency`` threads and measure.
    ``expected``: clip name -> top-1 label; a different label counts as a failure. Returns the
    latencies' p50/p95/mean (s), the wall time, the throughput (requests/s), the failures (at most 10
    described), the statuses, the top-1 label each clip got, and the model's batches during the run
    (from /stats: ``batches``, ``videos``, ``mean_batch_size``; a service with several replicas
    answers for one of them)."""
    local = threading.local()

    def one(i: int) -> tuple[str, int, Any, float]:
        if not hasattr(local, "client"):
            local.client = httpx.Client()
            clients.append(local.client)
        name, data = videos[i % len(videos)]
        return (name, *post_video(local.client, url, name, data, timeout))

    clients: list[httpx.Client] = []
    before = stats(url)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    after = stats(url)
    for client in clients:
        client.close()
    latencies = np.array([latency for *_, latency in outcomes])
    labels: dict[str, str] = {}
    failures, statuses = [], {}
    for name, status, body, _ in outcomes:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        label = body["predictions"][0]["label"] if status == 200 and isinstance(body, dict) else None
        if status != 200 or (expected and expected.get(name) not in (None, label)):
            failures.append(f"{name}: {status} {body if status != 200 else label}")
        elif label is not None:
            labels.setdefault(name, label)
    batches = after["batches"] - before["batches"]
    videos_seen = after["videos"] - before["videos"]
    return {"requests": requests, "concurrency": concurrency, "seconds": seconds,
            "throughput_rps": requests / seconds, "p50_s": float(np.percentile(latencies, 50)),
            "p95_s": float(np.percentile(latencies, 95)), "mean_s": float(latencies.mean()),
            "failed": len(failures), "failures": failures[:10], "statuses": statuses, "labels": labels,
            "batches": batches, "videos_in_batches": videos_seen,
            "mean_batch_size": videos_seen / batches if batches else 0.0}


def measure(url: str, videos: list[tuple[str, bytes]], requests: int, concurrency: int,
            sequential: int, timeout: float = 600.0) -> dict[str, Any]:
    """A warm-up request, ``sequential`` requests one at a time, then ``requests`` at ``concurrency``
    (labels checked against the one-at-a-time ones). Returns both phases and the ratios."""
    with httpx.Client() as client:
        name, data = videos[0]
        status, body, _ = post_video(client, url, name, data, timeout)
        if status != 200:
            raise RuntimeError(f"warm-up request failed: {status} {body}")
    one_at_a_time = run_load(url, videos, sequential, 1, timeout=timeout)
    concurrent = run_load(url, videos, requests, concurrency, expected=one_at_a_time["labels"], timeout=timeout)
    return {"one_at_a_time": one_at_a_time, "concurrent": concurrent,
            "throughput_gain": concurrent["throughput_rps"] / one_at_a_time["throughput_rps"],
            "p50_ratio": concurrent["p50_s"] / one_at_a_time["p50_s"]}


def report(result: dict[str, Any]) -> str:
    """A small table of both phases."""
    lines = [f"{'phase':<16}{'requests':>9}{'failed':>8}{'p50 s':>8}{'p95 s':>8}{'req/s':>8}{'batch':>7}"]
    for phase in ("one_at_a_time", "concurrent"):
        r = result[phase]
        lines.append(f"{phase + ' x' + str(r['concurrency']):<16}{r['requests']:>9}{r['failed']:>8}{r['p50_s']:>8.2f}"
                     f"{r['p95_s']:>8.2f}{r['throughput_rps']:>8.3f}{r['mean_batch_size']:>7.2f}")
    lines.append(f"throughput {result['throughput_gain']:.2f}x one at a time, p50 latency {result['p50_ratio']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    args = _arguments()
    videos = load_videos(args.videos)
    process = None
    url = args.url
    if url is None:
        if args.model is None:
            raise SystemExit("--model (or --url of a running service) is needed")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(args.model, port, "--max-batch-size", str(args.max_batch_size),
                               "--batch-wait-ms", str(args.batch_wait_ms), "--timeout", str(args.timeout),
                               "--max-queue", str(max(64, 2 * args.concurrency)))
    try:
        health = wait_healthy(url, process=process)
        print(f"{url}: {health}", flush=True)
        result = measure(url, videos, args.requests, args.concurrency, args.sequential, timeout=args.timeout + 30)
    finally:
        if process is not None:
            stop_server(process)
    print(report(result))
    out = args.out or result_path("service_load")
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"measure": "service_load", "cpu": cpu_name(), "cores": os.cpu_count(), "url": args.url or "local --no-ray",
              "health": health, "videos": [name for name, _ in videos], "max_batch_size": args.max_batch_size,
              "batch_wait_ms": args.batch_wait_ms, "command": " ".join(sys.argv), **result}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder for the service this script starts")
    parser.add_argument("--url", help="load a service already running at this URL instead")
    parser.add_argument("--videos", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="the service's --timeout (s)")
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


if __name__ == "__main__":
    main()

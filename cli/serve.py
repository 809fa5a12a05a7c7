"""``actionkit serve``: the HTTP prediction service, on Ray Serve or (``--no-ray``) under uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from actionkit.predict.service import ServiceConfig

from ._common import DeviceOption, ModelOption, fail, user_errors


def serve(
    model: ModelOption,
    replicas: Annotated[int, typer.Option(min=1, help="Ray Serve replicas, each holding one copy of the model.")] = 1,
    gpus_per_replica: Annotated[float, typer.Option(min=0.0, help="GPUs per replica (fractions share a GPU).")] = 0.0,
    cpus_per_replica: Annotated[float, typer.Option(min=0.01, help="CPUs per replica (its torch threads).")] = 1.0,
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    backend: Annotated[str, typer.Option(help="torch, onnxruntime, tensorrt, openvino, or auto.")] = "auto",
    precision: Annotated[str, typer.Option(help="As for actionkit predict: auto, fp32, bf16, fp16, int8.")] = "auto",
    root: Annotated[Path | None, typer.Option(help="Allow the form field 'path' to name files inside this folder "
                                                    "(symlinks resolved); without it, paths are refused.")] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest upload accepted (413 past it).")] = 200.0,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds from a request's arrival to its answer "
                                                           "(504 past it).")] = 60.0,
    max_batch_size: Annotated[int, typer.Option(min=1, help="Videos per model call.")] = 8,
    batch_wait_ms: Annotated[float, typer.Option(min=0.0, help="How long a batch waits for more requests.")] = 20.0,
    max_queue: Annotated[int, typer.Option(min=1, help="Requests held at once per replica (503 past it).")] = 64,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join (auto, ray://head:10001); default: the "
                                                     "one `ray start` made here, else a new local one.")] = None,
    no_ray: Annotated[bool, typer.Option("--no-ray", help="One process with uvicorn, without Ray.")] = False,
    device: DeviceOption = None,
) -> None:
    """Serve predictions over HTTP: POST /predict (a video upload), GET /health, /stats, /docs."""
    if no_ray and (replicas != 1 or gpus_per_replica or address):
        raise fail("--replicas, --gpus-per-replica and --address need Ray: drop --no-ray")
    with user_errors():
        config = ServiceConfig(model=model, backend=backend, precision=precision, device=device, root=root,
                               max_upload_mb=max_upload_mb, timeout=timeout, max_batch_size=max_batch_size,
                               batch_wait_ms=batch_wait_ms, max_queue=max_queue)

        def ready(url: str) -> None:
            print(f"serving {model} at {url} (docs: {url}/docs); Ctrl-C stops", file=sys.stderr, flush=True)

        if no_ray:
            from actionkit.predict.service import serve_local

            serve_local(config, host, port, on_ready=ready)
        else:
            from actionkit.predict.serve_app import serve_cluster

            serve_cluster(config, host, port, replicas, cpus_per_replica, gpus_per_replica, address, on_ready=ready)

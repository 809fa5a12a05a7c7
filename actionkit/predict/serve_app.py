"""The prediction service as a Ray Serve deployment: the FastAPI app of
:mod:`actionkit.predict.service` (same endpoints, limits and errors) as the ingress of each replica,
which holds one model and batches concurrent requests with ``@serve.batch``.

Each replica loads ``config.model`` itself (a path must exist on every node that runs a replica, or be
a Hub repo id), stores uploads in its own temporary folder and answers ``/stats`` for itself (the
``replica`` field says which). Ray Serve's proxy spreads requests over the replicas and replaces a
replica whose process dies; a request in flight on that replica fails, later ones go to the others or
wait (bounded by ``max_queue``) for the replacement.

Importing this module needs Ray Serve; without it the import raises
:class:`~actionkit.errors.ActionkitError` saying ``pip install 'actionkit[serve]'``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from typing import Any, Callable

from actionkit.predict.recognizer import VideoResult
from actionkit.predict.service import Job, ModelRunner, ServiceConfig, create_app, import_extra

serve = import_extra("ray.serve")
APP_NAME = "actionkit"
HEADROOM = 8  # requests a replica takes beyond max_queue: /health, /stats and /docs while it is full


@serve.deployment(name="ActionkitService")
@serve.ingress()
class ActionkitService:
    """One replica: a :class:`ModelRunner` and the service's FastAPI app, whose ``submit`` is
    :meth:`predict_batch` (Ray Serve gathers up to ``max_batch_size`` jobs within ``batch_wait_ms``
    and calls it once with all of them)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.runner = ModelRunner(config)
        self.predict_batch.set_max_batch_size(config.max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(config.batch_wait_ms / 1000)
        try:
            replica_id = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001 - only a name for /health
            replica_id = "?"
        self.replica = f"{replica_id} (pid {os.getpid()} on {socket.gethostname()})"

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def predict_batch(self, jobs: list[Job]) -> list[VideoResult]:
        """The results of ``jobs``, in order, from one model call (run off the event loop)."""
        return await asyncio.to_thread(self.runner.predict_batch, jobs)

    def __serve_build_asgi_app__(self) -> Any:
        """The ingress app, built in the replica once the model is loaded (Ray Serve calls this)."""
        return create_app(self.runner, self.predict_batch, replica=self.replica)


def build_application(config: ServiceConfig, replicas: int = 1, cpus_per_replica: float = 1.0,
                      gpus_per_replica: float = 0.0) -> Any:
    """The bound Serve application: ``replicas`` copies of :class:`ActionkitService`, each with
    ``cpus_per_replica`` CPUs (its torch threads) and ``gpus_per_replica`` GPUs. Each replica holds up
    to ``max_queue`` predictions at once (its JSON 503 past that); the proxy queues at most
    ``max_queue`` more requests while every replica is full or being replaced (Ray Serve's own 503,
    not JSON, past that). A replica whose constructor fails (e.g. the model cannot load) is retried
    three times before the deployment fails."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if cpus_per_replica <= 0 or gpus_per_replica < 0:
        raise ValueError("cpus_per_replica must be positive and gpus_per_replica 0 or more")
    return ActionkitService.options(
        num_replicas=replicas,
        ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        # past max_queue the app answers /predict with its JSON 503; the rest leaves room for /health
        max_ongoing_requests=config.max_queue + HEADROOM,
        max_queued_requests=config.max_queue,
        health_check_period_s=5,
        max_constructor_retry_count=3,  # a model that cannot load fails the deployment soon, with its reason
    ).bind(config)


def start(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
          cpus_per_replica: float = 1.0, gpus_per_replica: float = 0.0) -> str:
    """Deploy the service on the Ray instance this process is connected to (``ray.init`` first) with
    its HTTP proxy on ``host:port``; returns the URL once every replica is up. Raises
    :class:`~actionkit.errors.ActionkitError` when the deployment fails (e.g. the model cannot load)."""
    from actionkit.errors import ActionkitError

    serve.start(http_options={"host": host, "port": port, "request_timeout_s": config.timeout + 30})
    app = build_application(config, replicas, cpus_per_replica, gpus_per_replica)
    try:
        serve.run(app, name=APP_NAME, route_prefix="/")
    except Exception as error:  # noqa: BLE001 - reported as one line: the replica's own error
        raise ActionkitError(f"the Serve deployment failed: {deployment_failure(error)}") from None
    return f"http://{host}:{port}"


def deployment_failure(error: Exception) -> str:
    """Why the deployment failed, in one line: the last ``SomeError: message`` of the replicas'
    traceback (from ``serve.status()``), else the first line of ``error``."""
    texts = []
    try:
        status = serve.status().applications[APP_NAME]
        texts = [deployment.message for deployment in status.deployments.values()] + [status.message]
    except Exception:  # noqa: BLE001 - the status is only a better message
        pass
    for text in [*texts, str(error)]:
        for line in reversed((text or "").splitlines()):
            found = re.match(r"\s*[\w.]*(?:Error|Exception)\w*: (.+)", line)
            if found:
                return found.group(1).strip()
    return (str(error).splitlines() or [repr(error)])[0]


def serve_cluster(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
                  cpus_per_replica: float = 1.0, gpus_per_replica: float = 0.0, address: str | None = None,
                  on_ready: Callable[[str], None] | None = None) -> None:
    """Connect to Ray (``address``: a cluster such as ``auto`` or ``ray://head:10001``; None joins the
    cluster ``ray start`` made on this machine, else starts a local one), :func:`start` the service and
    serve until interrupted (Ctrl-C / SIGTERM), then shut Serve down (and the local Ray, if started)."""
    import signal

    ray = import_extra("ray")
    ray.init(address=address, log_to_driver=False)
    stop = False

    def request_stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        url = start(config, host, port, replicas, cpus_per_replica, gpus_per_replica)
        if on_ready is not None:
            on_ready(url)
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()

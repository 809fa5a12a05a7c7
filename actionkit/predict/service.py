"""The HTTP prediction service: a FastAPI app in front of one :class:`~actionkit.predict.Recognizer`.

Endpoints (the same whether it runs under uvicorn alone or as a Ray Serve deployment,
:mod:`actionkit.predict.serve_app`):

- ``POST /predict`` (multipart form): field ``video`` (an uploaded file) or ``path`` (a file on the
  server, under the configured ``root``), optional ``top_k`` (1..50, default 5). 200 answers exactly the
  object ``actionkit predict --json`` prints for one video, ``video`` being the uploaded file's name (or
  the path as sent); a video that cannot be used answers that object with its ``error`` and status 422.
- ``GET /health``: the model, its backend and its number of labels.
- ``GET /stats``: requests by status, and the batches the model ran (count, mean size, histogram).
- ``/docs`` and ``/openapi.json``: FastAPI's OpenAPI documentation.

Every error is a JSON object ``{"error": "one line"}`` with a 4xx/5xx status, and the service keeps
serving: 400 a malformed form or a missing/unknown field, 403 a path outside the root (or any path
without a root), 404 a path that does not exist, 413 an upload over ``max_upload_mb`` (the upload is
streamed to a temporary file and reading stops at the limit), 422 a video that cannot be decoded or a
bad ``top_k``, 503 more than ``max_queue`` requests held at once (answered at once, before the upload is
read), 504 a request not answered within ``timeout`` seconds of its arrival. Uploaded temporary files
are deleted when their request ends, however it ends.

Concurrent requests are batched: each request becomes a :class:`Job`, and one
:meth:`Recognizer.predict <actionkit.predict.Recognizer.predict>` runs over the jobs that arrived within
``batch_wait_ms`` of the first (at most ``max_batch_size``) while the model is free. Without Ray that is
:class:`LocalBatcher` (an asyncio queue and one model thread); under Ray Serve, ``@serve.batch``.

FastAPI and uvicorn are imported when an app is built or served; without them those calls raise an
:class:`~actionkit.errors.ActionkitError` saying ``pip install 'actionkit[serve]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from actionkit.data.video import VIDEO_SUFFIXES
from actionkit.errors import ActionkitError
from actionkit.predict import optional_extra
from actionkit.predict.recognizer import Recognizer, VideoResult

INSTALL_HINT = "the prediction service needs FastAPI, uvicorn and Ray Serve: pip install 'actionkit[serve]'"
DEFAULT_TOP_K = 5
MAX_TOP_K = 50
FORM_FIELDS = ("video", "path", "top_k")
MAX_FIELD_BYTES = 4096  # a text field (path, top_k) longer than this is refused
MULTIPART_OVERHEAD = 64 * 1024  # headers and boundaries a form adds around the file, over max_upload_mb
UPLOAD_PREFIX = "actionkit-upload-"  # + the owning process id: actionkit-upload-<pid>-<random><suffix>


def import_extra(module: str) -> Any:
    """Import an optional package of the ``serve`` extra, or raise :class:`ActionkitError` naming the
    extra to install (one line)."""
    return optional_extra.import_extra(module, INSTALL_HINT)


@dataclass(frozen=True)
class ServiceConfig:
    """What a prediction service runs and its limits.

    ``model``/``backend``/``precision``/``device``: as :meth:`Recognizer.from_pretrained` takes them.
    ``root``: server-side ``path`` fields must resolve (symlinks followed) inside it; None refuses them.
    ``max_upload_mb``: largest accepted upload. ``timeout``: seconds from a request's arrival to its
    answer (504 past it). ``max_batch_size``: videos per model call; ``batch_wait_ms``: how long the
    first request of a batch waits for others. ``max_queue``: requests held at once (reading, waiting
    or being predicted); one more is answered 503. ``clip_batch_size``: clips per forward pass inside a
    model call (default: as many as the batch has videos, at least 4). ``upload_dir``: where uploads are
    stored while their request runs (default: the system's temporary folder). Raises ValueError on a
    value out of range, :class:`ActionkitError` for a ``root`` or ``upload_dir`` that is not a folder."""

    model: str
    backend: str = "auto"
    precision: str = "auto"
    device: str | None = None
    root: Path | None = None
    max_upload_mb: float = 200.0
    timeout: float = 60.0
    max_batch_size: int = 8
    batch_wait_ms: float = 20.0
    max_queue: int = 64
    clip_batch_size: int | None = None
    upload_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be positive, got {self.max_upload_mb}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.max_batch_size < 1 or self.max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be at least 1")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be 0 or more, got {self.batch_wait_ms}")
        if self.clip_batch_size is not None and self.clip_batch_size < 1:
            raise ValueError("clip_batch_size must be at least 1")
        if self.root is not None:
            root = Path(self.root).expanduser()
            if not root.is_dir():
                raise ActionkitError(f"{root}: --root must be an existing folder")
            object.__setattr__(self, "root", root.resolve())
        if self.upload_dir is not None and not Path(self.upload_dir).is_dir():
            raise ActionkitError(f"{self.upload_dir}: the upload folder must be an existing folder")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@dataclass(frozen=True)
class Job:
    """One video waiting for the model: ``path`` the file on this machine, ``name`` what the client
    calls it (the uploaded file's name or the path it sent), ``top_k`` the labels it asked for."""

    path: str
    name: str
    top_k: int = DEFAULT_TOP_K


class ServiceStats:
    """Counters a service keeps (thread-safe): requests by HTTP status, and the size of every batch
    the model ran. :meth:`snapshot` is what ``GET /stats`` answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: Counter[int] = Counter()
        self._batch_sizes: Counter[int] = Counter()
        self._model_seconds = 0.0

    def record_response(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def record_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self._batch_sizes[size] += 1
            self._model_seconds += seconds

    def snapshot(self) -> dict[str, Any]:
        """``requests`` (answered /predict requests), ``responses`` (count per status), ``batches``,
        ``videos`` (videos the model saw), ``mean_batch_size`` (videos per batch, 0 before the first),
        ``batch_sizes`` (histogram, size -> batches) and ``model_seconds`` (time inside model calls)."""
        with self._lock:
            batches = sum(self._batch_sizes.values())
            videos = sum(size * n for size, n in self._batch_sizes.items())
            return {"requests": sum(self._statuses.values()),
                    "responses": {str(s): n for s, n in sorted(self._statuses.items())},
                    "batches": batches, "videos": videos,
                    "mean_batch_size": videos / batches if batches else 0.0,
                    "batch_sizes": {str(s): n for s, n in sorted(self._batch_sizes.items())},
                    "model_seconds": round(self._model_seconds, 3)}


class ModelRunner:
    """The model side of a service: one :class:`Recognizer` (loaded from ``config.model`` unless one is
    given) and the statistics of the batches it ran. :meth:`predict_batch` is called from one thread
    at a time."""

    def __init__(self, config: ServiceConfig, recognizer: Recognizer | None = None) -> None:
        self.config = config
        if recognizer is None:
            recognizer = Recognizer.from_pretrained(config.model, device=config.device,
                                                    backend=config.backend,  # type: ignore[arg-type]
                                                    precision=config.precision)  # type: ignore[arg-type]
        self.recognizer = recognizer
        self.stats = ServiceStats()

    def info(self) -> dict[str, Any]:
        """``model``, ``backend`` (e.g. ``torch fp32``) and ``labels`` (how many)."""
        return {"model": self.config.model, "backend": self.recognizer.backend_description,
                "labels": len(self.recognizer.labels)}

    def predict_batch(self, jobs: Sequence[Job]) -> list[VideoResult]:
        """One :meth:`Recognizer.predict` over the jobs' files; each result is named and cut to its
        job's ``name`` and ``top_k`` (the temporary path is replaced by the name in errors and
        warnings too). A bad video gets its result with ``error``; the others are unaffected."""
        if not jobs:
            return []
        clip_batch = self.config.clip_batch_size or max(4, len(jobs))
        started = time.perf_counter()
        results = self.recognizer.predict([job.path for job in jobs], top_k=max(job.top_k for job in jobs),
                                          batch_size=clip_batch)
        self.stats.record_batch(len(jobs), time.perf_counter() - started)
        return [_renamed(result, job) for result, job in zip(results, jobs)]


def _renamed(result: VideoResult, job: Job) -> VideoResult:
    def rename(text: str) -> str:
        return text.replace(job.path, job.name)

    return VideoResult(job.name, result.predictions[:job.top_k], [rename(w) for w in result.warnings],
                       None if result.error is None else rename(result.error))


Submit = Callable[[Job], Awaitable[VideoResult]]


class LocalBatcher:
    """Batching without Ray: requests wait in an asyncio queue; a loop takes the first, gathers those
    that arrive within ``batch_wait_ms`` (up to ``max_batch_size``), and runs one
    :meth:`ModelRunner.predict_batch` over them in a single model thread while the next batch gathers.
    A job whose request gave up (timeout, disconnect) before its batch ran is skipped.

    Use :meth:`start` and :meth:`stop` in the event loop that calls :meth:`submit`."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[VideoResult]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batch: list[tuple[Job, asyncio.Future[VideoResult]]] = []  # gathering or running

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.runner.config.max_queue)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="actionkit-model")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        waiting = list(self._batch)
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for _, future in waiting:
            future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, job: Job) -> VideoResult:
        """The job's result once its batch ran. Raises what the model call raised."""
        if self._queue is None:
            raise RuntimeError("LocalBatcher.submit before start()")
        future: asyncio.Future[VideoResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))  # the app admits at most max_queue requests: never full
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        config = self.runner.config
        while True:
            self._batch = batch = [await self._queue.get()]
            deadline = loop.time() + config.batch_wait_ms / 1000
            while len(batch) < config.max_batch_size:
                while len(batch) < config.max_batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                remaining = deadline - loop.time()
                if len(batch) >= config.max_batch_size or remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.002))
            live = [(job, future) for job, future in batch if not future.done()]
            if not live:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self.runner.predict_batch,
                                                     [job for job, _ in live])
            except Exception as error:  # noqa: BLE001 - reported to each waiting request
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(live, results):
                if not future.done():
                    future.set_result(result)


class RequestError(Exception):
    """A request the service refuses: ``status`` and the one-line ``message`` it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Form:
    """What a /predict form carried: the upload (stored in ``upload``), its name, the text fields."""

    upload: Path | None = None
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


class _FormReader:
    """Streams a multipart body: the ``video`` part straight into a temporary file (refused past the
    limit), text fields into memory (a few KB at most). Raises :class:`RequestError`."""

    def __init__(self, boundary: bytes, limit: int, folder: str | None) -> None:
        from python_multipart.multipart import MultipartParser  # installed with the serve extra

        self.limit, self.folder = limit, folder
        self.form = _Form()
        self._file: Any = None
        self._written = 0
        self._headers: dict[bytes, bytes] = {}
        self._header_name = self._header_value = b""
        self._name: str | None = None
        self._text: bytearray | None = None
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_field_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end})

    def write(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> _Form:
        self._parser.finalize()
        if self._name is not None:
            raise RequestError(400, "the multipart body ends inside a part (incomplete upload)")
        return self.form

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_field_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name not in FORM_FIELDS:
            raise RequestError(400, f"unexpected form field {name!r}: send the video file as 'video' (or a "
                                    "server-side 'path'), optionally 'top_k'")
        if name in self.form.fields or (name == "video" and self.form.filename is not None):
            raise RequestError(400, f"form field {name!r} is given twice")
        self._name = name
        if name == "video":
            if b"filename" not in options:
                raise RequestError(400, "form field 'video' must be a file upload (multipart with a filename)")
            self.form.filename = _safe_name(options[b"filename"].decode("utf-8", "replace"))
            handle, path = tempfile.mkstemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-",
                                            suffix=_suffix(self.form.filename), dir=self.folder)
            self.form.upload = Path(path)
            self._file = os.fdopen(handle, "wb")
        else:
            if b"filename" in options:
                raise RequestError(400, f"form field {name!r} must be text, not a file")
            self._text = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._written += end - start
            if self._written > self.limit:
                raise RequestError(413, f"upload larger than the limit of {self.limit / 2**20:g} MB")
            self._file.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise RequestError(400, f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._file is not None:
            self.close()
        elif self._text is not None and self._name is not None:
            self.form.fields[self._name] = self._text.decode("utf-8", "replace")
        self._name, self._text = None, None


def remove_orphan_uploads(folder: str | os.PathLike | None = None) -> int:
    """Delete the uploads in ``folder`` (default: the system's temporary folder) left by service
    processes that no longer run (killed before their requests ended); returns how many. A process
    deletes its own uploads when each request ends; this is for the ones a SIGKILL left behind."""
    removed = 0
    for path in Path(folder or tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*-*"):
        owner = path.name[len(UPLOAD_PREFIX):].split("-", 1)[0]
        if not owner.isdigit() or _process_exists(int(owner)):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _safe_name(filename: str) -> str:
    """The last component of a client's file name (no folders), or ``upload`` when none is left."""
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    return name or "upload"


def _suffix(filename: str) -> str:
    """The upload's suffix when it is a video's (FFmpeg would otherwise pick a demuxer by it: a
    ``.txt`` opens as ANSI art), else none, so that the decoder goes by the content alone."""
    suffix = PurePosixPath(filename).suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ""


def parse_top_k(text: str | None) -> int:
    """The ``top_k`` form field: an integer 1..50 (default 5). Raises :class:`RequestError` (422)."""
    if text is None or not text.strip():
        return DEFAULT_TOP_K
    try:
        value = int(text.strip())
    except ValueError:
        raise RequestError(422, f"top_k must be an integer from 1 to {MAX_TOP_K}, got {text.strip()[:40]!r}") from None
    if not 1 <= value <= MAX_TOP_K:
        raise RequestError(422, f"top_k must be an integer from 1 to {MAX_TOP_K}, got {value}")
    return value


def resolve_server_path(root: Path | None, text: str) -> Path:
    """The file a ``path`` field names: relative paths are taken from ``root``; the result, symlinks
    resolved, must lie inside ``root``. Raises :class:`RequestError`: 403 without a root or outside it,
    404 when missing, 400 when not a file."""
    if root is None:
        raise RequestError(403, "server-side paths are disabled: start the service with --root DIR to allow them")
    if "\x00" in text or not text.strip():
        raise RequestError(400, "form field 'path' is empty or malformed")
    resolved = (root / Path(text.strip()).expanduser()).resolve()
    if resolved != root and root not in resolved.parents:
        raise RequestError(403, f"{text.strip()}: outside the served root")
    if not resolved.exists():
        raise RequestError(404, f"{text.strip()}: no such file under the served root")
    if not resolved.is_file():
        raise RequestError(400, f"{text.strip()}: not a file")
    return resolved


async def read_form(request: Any, config: ServiceConfig) -> _Form:
    """Stream a /predict request's multipart body: the upload goes to a temporary file in
    ``config.upload_dir`` (whose path is ``form.upload``; the caller deletes it; when this raises, the
    partial file is deleted here). A form without a file may also be urlencoded.
    Raises :class:`RequestError` for a body that is not a form, too large, or with wrong fields."""
    from python_multipart.multipart import parse_options_header

    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        return await _read_urlencoded(request)
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise RequestError(400, "send a multipart/form-data body with the video file in the field 'video' "
                                "(e.g. curl -F video=@clip.mp4 ...)")
    length = request.headers.get("content-length")
    limit = config.max_upload_bytes
    if length and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise RequestError(413, f"upload larger than the limit of {config.max_upload_mb:g} MB")
    reader = _FormReader(options[b"boundary"], limit, None if config.upload_dir is None else str(config.upload_dir))
    try:
        async for chunk in request.stream():
            reader.write(chunk)
        return reader.finish()
    except BaseException as error:
        reader.close()
        if reader.form.upload is not None:
            reader.form.upload.unlink(missing_ok=True)
        if isinstance(error, RequestError):
            raise
        if isinstance(error, Exception) and type(error).__module__.startswith("python_multipart"):
            raise RequestError(400, f"malformed multipart body: {error}") from None
        if type(error).__name__ == "ClientDisconnect":
            raise RequestError(400, "the client disconnected during the upload") from None
        raise


async def _read_urlencoded(request: Any) -> _Form:
    """A form without a file (``path`` and ``top_k`` only), at most a few KB."""
    from urllib.parse import parse_qsl

    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FIELD_BYTES * len(FORM_FIELDS):
            raise RequestError(400, "form body too long for the fields path and top_k")
    form = _Form()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise RequestError(400, "malformed form body") from None
    for name, value in pairs:
        if name == "video":
            raise RequestError(400, "form field 'video' must be a file: send a multipart/form-data body")
        if name not in FORM_FIELDS:
            raise RequestError(400, f"unexpected form field {name!r}: send the video file as 'video' (or a "
                                    "server-side 'path'), optionally 'top_k'")
        if name in form.fields:
            raise RequestError(400, f"form field {name!r} is given twice")
        form.fields[name] = value
    return form


def create_app(runner: ModelRunner, submit: Submit, *, replica: str | None = None,
               lifespan: Callable[[Any], Any] | None = None) -> Any:
    """The FastAPI app of the service (module docstring: endpoints and errors) over ``runner``:
    ``submit(job)`` returns a job's :class:`VideoResult` once the model ran it (the batching lives
    there: :class:`LocalBatcher` or Ray Serve's). ``replica`` names the process in ``/health``;
    ``lifespan`` is FastAPI's (e.g. starting the batcher). Uploads that dead service processes left
    in the upload folder are deleted here (:func:`remove_orphan_uploads`)."""
    fastapi = import_extra("fastapi")
    responses = import_extra("fastapi.responses")
    from starlette.exceptions import HTTPException as StarletteHTTPException

    config = runner.config
    stats = runner.stats
    remove_orphan_uploads(config.upload_dir)
    held = 0  # requests admitted and not yet answered (the event loop is single-threaded)
    JSONResponse = responses.JSONResponse

    app = fastapi.FastAPI(
        title="actionkit prediction service", version="1", lifespan=lifespan,
        description="Video action recognition over HTTP: POST a video to /predict, get the top-k labels "
                    "(the object `actionkit predict --json` prints). Errors are JSON {\"error\": ...}.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Any, error: Any) -> Any:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Any, error: Exception) -> Any:
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}".splitlines()[0]},
                            status_code=500)

    @app.get("/health", summary="Liveness and the model served")
    async def health() -> dict[str, Any]:
        body = {"status": "ok", **runner.info()}
        if replica:
            body["replica"] = replica
        return body

    @app.get("/stats", summary="Requests by status and the batch sizes the model saw")
    async def get_stats() -> dict[str, Any]:
        body = {**stats.snapshot(), "held": held, "max_queue": config.max_queue,
                "max_batch_size": config.max_batch_size}
        if replica:
            body["replica"] = replica
        return body

    form_schema = {"type": "object", "properties": {
        "video": {"type": "string", "format": "binary", "description": "the video file"},
        "path": {"type": "string", "description": "instead of video: a file under the server's --root"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": DEFAULT_TOP_K}}}
    error_schema = {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
    documented = {400: "malformed form, missing or unknown field", 403: "path outside the root",
                  404: "path not found", 413: "upload too large",
                  422: "the video cannot be used (predict --json's object with its error) or bad top_k",
                  503: "too many requests held", 504: "timed out"}

    async def predict(request):  # type: ignore[no-untyped-def]  # annotated below, for FastAPI
        """Top-k labels of one uploaded video (field `video`) or server-side file (field `path`)."""
        nonlocal held
        if held >= config.max_queue:
            stats.record_response(503)
            return JSONResponse({"error": f"busy: {held} requests held (limit {config.max_queue}); retry later"},
                                status_code=503, headers={"Retry-After": "1"})
        held += 1
        try:
            status, body = await asyncio.wait_for(_answer(request, config, submit), config.timeout)
        except asyncio.TimeoutError:
            status, body = 504, {"error": f"no answer within the {config.timeout:g} s timeout"}
        except RequestError as error:
            status, body = error.status, {"error": error.message}
        finally:
            held -= 1
        stats.record_response(status)
        headers = {"Connection": "close"} if status == 413 else None
        return JSONResponse(body, status_code=status, headers=headers)

    predict.__annotations__ = {"request": fastapi.Request}  # a real class: fastapi is imported in here
    app.post("/predict", summary="Top-k labels of one video",
             responses={code: {"description": text, **error_schema} for code, text in documented.items()},
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"multipart/form-data": {"schema": form_schema}}}})(predict)
    return app


async def _answer(request: Any, config: ServiceConfig, submit: Submit) -> tuple[int, dict[str, Any]]:
    """Read one /predict request, run it, and return (status, JSON body). The upload's temporary file
    is deleted before this returns or raises."""
    form = await read_form(request, config)
    try:
        top_k = parse_top_k(form.fields.get("top_k"))
        if form.upload is not None and "path" in form.fields:
            raise RequestError(400, "send either the file 'video' or a server-side 'path', not both")
        if form.upload is not None:
            job = Job(str(form.upload), form.filename or "upload", top_k)
        elif "path" in form.fields:
            job = Job(str(resolve_server_path(config.root, form.fields["path"])), form.fields["path"].strip(), top_k)
        else:
            raise RequestError(400, "no video: send the file in the multipart field 'video' "
                                    "(or a server-side 'path' under --root)")
        try:
            result = await submit(job)
        except (asyncio.CancelledError, asyncio.TimeoutError, RequestError):
            raise
        except Exception as error:  # noqa: BLE001 - the model failed on this batch: one line, 500
            raise RequestError(500, f"prediction failed: {type(error).__name__}: {error}".splitlines()[0]) from None
        return (200 if result.ok else 422), result.to_dict()
    finally:
        if form.upload is not None:
            form.upload.unlink(missing_ok=True)


def build_local_app(config: ServiceConfig, recognizer: Recognizer | None = None) -> Any:
    """The service without Ray: :func:`create_app` over a :class:`LocalBatcher`, which starts and stops
    with the app (its lifespan). ``recognizer``: use this one instead of loading ``config.model``."""
    runner = ModelRunner(config, recognizer)
    batcher = LocalBatcher(runner)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    return create_app(runner, batcher.submit, lifespan=lifespan)


def serve_local(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000,
                on_ready: Callable[[str], None] | None = None) -> None:
    """Load the model and serve :func:`build_local_app` with uvicorn on ``host:port`` until
    interrupted (Ctrl-C / SIGTERM). ``on_ready(url)`` is called once the server listens. Raises
    :class:`ActionkitError` when the model cannot be loaded or the port cannot be bound."""
    uvicorn = import_extra("uvicorn")
    import_extra("fastapi")
    import_extra("python_multipart")
    server = uvicorn.Server(uvicorn.Config(build_local_app(config), host=host, port=port, log_level="warning",
                                           timeout_keep_alive=5))
    if on_ready is not None:
        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                on_ready(f"http://{host}:{port}")

        threading.Thread(target=announce, daemon=True).start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind (it has logged why)
        raise ActionkitError(f"cannot serve on {host}:{port} (see the message above)") from None

"""Batch prediction over a Ray cluster (Ray Data): decoding in Ray tasks, the model in actors.

Videos are decoded, sampled, resized and cropped by :func:`~actionkit.predict.clip_loading.load_video`
in Ray tasks (the same load stage as :class:`~actionkit.predict.Recognizer`), at low priority beside the
model; actors each hold one :class:`~actionkit.predict.Recognizer` (any backend it runs) and score the
clips of several videos per model batch. Ray Data streams between the two with backpressure, retries
failed tasks and restarts dead actors, on one machine or many.

The driver appends one JSON line per video to the output as results arrive, in ``predict --json``'s
fields (``error`` filled for a video that could not be used), so a rerun with the same output skips
the videos it already has: a killed job loses only its work in flight, and each video is written once.
"""

from __future__ import annotations

import csv
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from actionkit.artifacts import CONFIG_FILE
from actionkit.config import PreprocessConfig
from actionkit.data.video import expand_video_paths
from actionkit.errors import ActionkitError, VideoError
from actionkit.files import ensure_writable_folder
from actionkit.hub import ModelConfig, load_pretrained, model_folder
from actionkit.predict.clip_loading import load_video
from actionkit.predict.load_ahead import lower_thread_priority
from actionkit.predict.onnx_metadata import read_onnx_config
from actionkit.predict.openvino_runtime import read_openvino_config
from actionkit.predict.optional_extra import import_extra
from actionkit.predict.recognizer import Recognizer, VideoResult
from actionkit.progress import progress_bar

INSTALL_HINT = "Ray is not installed: pip install 'actionkit[serve]'"
LIST_SUFFIXES = (".txt", ".lst")
GPU_WORKER_DECODERS = 4  # decoding tasks per GPU worker by default: a GPU scores clips faster than one decoder makes them


@dataclass(frozen=True)
class RayBatchConfig:
    """A batch job. ``address``: the Ray cluster (``"auto"`` or ``ray://host:10001``; None starts a
    local Ray on this machine). ``workers``: model actors, each with ``cpus_per_worker`` CPUs (the
    model's threads) and ``gpus_per_worker`` GPUs. ``batch_size``: clips per model call. ``decoders``:
    decoding tasks running at once per worker; None (the default) is 1 for a CPU worker, whose model
    already keeps its cores busy (a second decoder slowed the job on 2 cores, ``benchmarks/README.md``),
    and :data:`GPU_WORKER_DECODERS` for a GPU worker, whose model waits on decoding."""

    model: str
    out: Path
    address: str | None = None
    workers: int = 1
    cpus_per_worker: float = 2.0
    gpus_per_worker: float = 0.0
    batch_size: int = 4
    videos_per_task: int = 4
    decoders: int | None = None
    backend: str = "auto"
    precision: str = "auto"
    top_k: int = 5
    num_clips: int | None = None
    num_crops: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 1 or self.batch_size < 1 or self.top_k < 1 or self.videos_per_task < 1 or \
                (self.decoders is not None and self.decoders < 1):
            raise ValueError("workers, batch size, top-k, videos per task and decoders must be at least 1")
        if self.out.suffix != ".jsonl":
            raise ValueError(f"{self.out}: the output of a Ray batch job is a .jsonl file (one JSON object a line)")


    @property
    def decoders_per_worker(self) -> int:
        """``decoders``, or its default for this worker's kind (see the class docstring)."""
        if self.decoders is not None:
            return self.decoders
        return GPU_WORKER_DECODERS if self.gpus_per_worker > 0 else 1


@dataclass(frozen=True)
class RayBatchReport:
    """How the job went: videos asked for, already in the output before, written now, failed, seconds;
    ``first_result_seconds``: from the call to the first row written (connecting, starting the model
    actors, the first decoded videos), None when nothing was written."""

    videos: int
    done_before: int
    written: int
    failed: int
    seconds: float
    first_result_seconds: float | None = None


def import_ray() -> Any:
    """The ray module with Ray Data, or an :class:`ActionkitError` naming the extra to install."""
    ray = import_extra("ray", INSTALL_HINT)
    import_extra("ray.data", INSTALL_HINT)  # Ray Data is part of the extra
    return ray


def batch_videos(sources: Sequence[str | Path]) -> list[str]:
    """The videos of ``sources``: files and URLs as given, folders expanded to the videos inside, list
    files (``.txt``, one path a line, relative to the file's folder) and CSV files (a ``path`` or
    ``video`` column) read. Duplicates are kept once, in order."""
    videos: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            videos += [str(p) for p in expand_video_paths([path])]
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            videos += [_beside(path, line) for line in lines if line and not line.startswith("#")]
        elif path.suffix.lower() == ".csv" and path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                column = next((c for c in ("path", "video") if c in (reader.fieldnames or [])), None)
                if column is None:
                    raise ActionkitError(f"{path}: a CSV of videos needs a 'path' (or 'video') column")
                videos += [_beside(path, row[column]) for row in reader if row[column]]
        else:
            videos.append(str(source))
    return list(dict.fromkeys(videos))


def _beside(listing: Path, entry: str) -> str:
    return entry if "://" in entry or Path(entry).is_absolute() else str(listing.parent / entry)


def written_rows(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out``, one per video (unreadable lines are left out)."""
    rows = []
    for line in out.read_text(encoding="utf-8").splitlines() if out.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def written_videos(out: Path) -> set[str]:
    """The videos an earlier run already wrote to ``out``. A last line torn by a killed run is cut off,
    so the lines appended next start on a line of their own."""
    if not out.is_file():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(out, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
    return {row["video"] for row in written_rows(out) if isinstance(row, dict) and "video" in row}


def model_config(model: str) -> ModelConfig:
    """The labels and preprocessing of ``model`` (a model, run or export folder, an ``.onnx`` or ``.xml``
    file, a checkpoint or a repo id), read on the driver without loading a backend."""
    path = Path(model)
    if path.is_dir() and (model_folder(path) / CONFIG_FILE).is_file():
        return ModelConfig.load(model_folder(path) / CONFIG_FILE)
    if path.suffix in (".onnx", ".xml") and path.is_file():
        beside = path.parent / CONFIG_FILE
        if beside.is_file():
            return ModelConfig.load(beside)
        return read_onnx_config(path) if path.suffix == ".onnx" else read_openvino_config(path)
    return load_pretrained(model).pretrained_cfg


def decode_video(row: dict[str, Any], preprocessing: dict[str, Any], num_clips: int | None,
                 num_crops: int | None) -> dict[str, Any]:
    """A Ray task: ``row["video"]`` -> its views as bytes (with their shape), warnings, or the error.

    The work runs on a low-priority thread of the worker process (:func:`low_priority_thread`), so the
    model's threads keep precedence and the worker's own main thread keeps its priority: Ray may later
    make the same process a model actor, whose threads would otherwise inherit the lowered priority."""
    return low_priority_thread().submit(_decode, row["video"], preprocessing, num_clips, num_crops).result()


_LOW_PRIORITY: ThreadPoolExecutor | None = None


def low_priority_thread() -> ThreadPoolExecutor:
    """This process's one decoding thread, at low priority (made on first use, reused by later tasks)."""
    global _LOW_PRIORITY
    if _LOW_PRIORITY is None:
        _LOW_PRIORITY = ThreadPoolExecutor(max_workers=1, thread_name_prefix="actionkit-decode",
                                           initializer=lower_thread_priority)
    return _LOW_PRIORITY


def _decode(video: str, preprocessing: dict[str, Any], num_clips: int | None, num_crops: int | None) -> dict[str, Any]:
    try:
        loaded = load_video(video, video, PreprocessConfig(**preprocessing), num_clips, num_crops, threads="SLICE")
    except VideoError as error:
        return {"video": video, "clips": b"", "shape": [0], "warnings": "[]", "error": str(error)}
    except Exception as error:  # anything else a file can do to a decoder is this video's error, not the job's
        return {"video": video, "clips": b"", "shape": [0], "warnings": "[]", "error": f"{video}: {error}"}
    clips = loaded.clips.numpy()
    return {"video": video, "clips": clips.tobytes(), "shape": list(clips.shape),
            "warnings": json.dumps(loaded.warnings), "error": ""}


class VideoScorer:
    """A Ray actor holding one Recognizer: scores the decoded videos of a batch, clips of several videos
    sharing model batches, and returns each video's ``predict --json`` object as a JSON string."""

    def __init__(self, model: str, backend: str, precision: str, top_k: int, batch_size: int, threads: int) -> None:
        torch.set_num_threads(max(1, threads))
        self.recognizer = Recognizer.from_pretrained(model, backend=backend, precision=precision)  # type: ignore[arg-type]
        self.top_k, self.batch_size = top_k, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        owners: list[int] = []
        views: list[torch.Tensor] = []
        results: list[VideoResult] = []
        for i, (video, data, shape, warnings, error) in enumerate(zip(batch["video"], batch["clips"], batch["shape"],
                                                                      batch["warnings"], batch["error"])):
            results.append(VideoResult(str(video), warnings=json.loads(warnings), error=str(error) if error else None))
            if not error:
                clips = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).reshape([int(s) for s in shape]).copy())
                views += list(clips)
                owners += [i] * len(clips)
        probabilities = [self.recognizer.score_clips(torch.stack(views[start:start + self.batch_size]))
                         for start in range(0, len(views), self.batch_size)]
        if probabilities:
            table = torch.cat(probabilities)
            for i, result in enumerate(results):
                mine = table[[k for k, owner in enumerate(owners) if owner == i]]
                if len(mine):
                    result.predictions = self.recognizer.top_predictions(mine, self.top_k)
        return {"video": [r.video for r in results], "result": [json.dumps(r.to_dict()) for r in results]}


def predict_on_ray(sources: Sequence[str | Path], config: RayBatchConfig, progress: bool = True) -> RayBatchReport:
    """Predict every video of ``sources`` (see :func:`batch_videos`) on Ray and append one JSON line per
    video to ``config.out``; videos already there are skipped. Returns the :class:`RayBatchReport`."""
    started = time.perf_counter()
    videos = batch_videos(sources)
    if not videos:
        raise ActionkitError("no videos to predict")
    ensure_writable_folder(config.out.parent)  # before any work, not after it
    done = written_videos(config.out)
    todo = [v for v in videos if v not in done]
    pre = asdict(model_config(config.model).preprocessing)
    written = failed = 0
    first_result = None
    if todo:
        ray = import_ray()
        _connect(ray, config.address)
        dataset = ray.data.from_items([{"video": v} for v in todo],
                                      override_num_blocks=max(1, len(todo) // config.videos_per_task))
        decoded = dataset.map(decode_video, fn_kwargs={"preprocessing": pre, "num_clips": config.num_clips,
                                                       "num_crops": config.num_crops},
                              num_cpus=0, compute=ray.data.TaskPoolStrategy(size=config.decoders_per_worker * config.workers))
        scored = decoded.map_batches(  # Ray Data restarts dead actors and retries their batches by default
            VideoScorer, batch_size=config.videos_per_task, compute=ray.data.ActorPoolStrategy(size=config.workers),
            num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker or None,
            fn_constructor_kwargs={"model": config.model, "backend": config.backend,
                                   "precision": config.precision, "top_k": config.top_k,
                                   "batch_size": config.batch_size, "threads": int(config.cpus_per_worker)})
        config.out.parent.mkdir(parents=True, exist_ok=True)
        with open(config.out, "a", encoding="utf-8") as out, \
                progress_bar("predicting on Ray", len(todo), progress) as advance:
            for row in scored.iter_rows():
                if row["video"] in done:  # a retried batch: each video is written once
                    continue
                out.write(row["result"] + "\n")
                out.flush()
                os.fsync(out.fileno())
                done.add(row["video"])
                if first_result is None:
                    first_result = time.perf_counter() - started
                written += 1
                failed += "error" in json.loads(row["result"])
                advance()
    return RayBatchReport(len(videos), len(videos) - len(todo), written, failed, time.perf_counter() - started,
                          first_result)


def _connect(ray: Any, address: str | None) -> None:
    if ray.is_initialized():
        return
    import logging

    ray.init(address=address, ignore_reinit_error=True, logging_level=logging.WARNING, log_to_driver=False,
             **({"include_dashboard": False} if address is None else {}))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False


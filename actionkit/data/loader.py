"""Clips for training and evaluation, and a DataLoader that keeps up.

Samples travel through the loader's queue as uint8 (frames T×3×S×S, flow targets T×2×s×s); the value
range and the flow's geometric factors are applied by :func:`finish_batch` on the model's device.
Randomness comes from a generator seeded by (seed, epoch, sample index), so a run is reproducible
whatever the number of workers, and a resumed epoch sees the same clips. The epoch travels with each
request: the sampler yields ``(epoch, index)`` keys, so persistent workers (which hold their own copy
of the dataset) always know it.

Worker processes never outlive their use: each exits as soon as the process that made its loader ends,
however it ends (``kill -9`` included), and :func:`worker_processes` stops the workers, the fork server
and the resource tracker that a library call started when the call returns.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from actionkit.config import PreprocessConfig
from actionkit.data.flow import dequantize_flow, flow_between
from actionkit.data.sampling import random_clip
from actionkit.data.transforms import (
    AugmentConfig,
    CropBox,
    color_jitter,
    crop_and_resize,
    flow_geometry_scale,
    random_crop_box,
    to_model_input,
)
from actionkit.data.video import DecodeThreads, probe_video, read_frames
from actionkit.data.views import evaluation_views

if TYPE_CHECKING:
    from actionkit.data.flow import FlowCache


class LabelledVideo(Protocol):
    """What the loader needs of a dataset sample (``actionkit.data.datasets.VideoSample`` fits)."""

    path: Path
    label: int


FLOW_SPANS = ("clip", "frame")


def check_flow_span(flow_span: str) -> None:
    """Raise ValueError unless ``flow_span`` is one of :data:`FLOW_SPANS` (see :class:`ClipConfig`)."""
    if flow_span not in FLOW_SPANS:
        raise ValueError(f"flow_span must be one of {', '.join(FLOW_SPANS)}, got {flow_span!r}")


@dataclass
class ClipConfig:
    """Training clips: ``clip_len`` frames ``frame_stride`` apart (jittered), augmented; flow targets
    at ``flow_size`` (default half the crop, what the flow decoder predicts).

    ``flow_span`` says which motion a flow target holds: ``"clip"`` (the default) the motion from each
    clip frame to the clip's next one (:func:`~actionkit.data.flow.flow_between`: the sum of the video's
    frame-to-frame flows over the gap, ``frame_stride`` frames on average), the flow of the clip the
    encoder sees; ``"frame"`` the video's frame-to-frame flow leaving each clip frame (1/stride of that
    motion; actionkit's only target before this setting). With ``frame_stride`` 1 they are the same."""

    clip_len: int = 32
    frame_stride: int = 1
    jitter: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    flow_size: int | None = None
    flow_span: str = "clip"

    def __post_init__(self) -> None:
        check_flow_span(self.flow_span)

    @property
    def flow_side(self) -> int:
        return self.flow_size or self.augment.crop_size // 2


class ClipDataset(Dataset):
    """One random augmented clip per video per epoch (``train=True``), or the evaluation views of
    ``eval_preprocessing`` (K uniform clips × 1 or 3 crops, (K·C)×T×3×S×S, exactly as prediction
    makes them)."""

    def __init__(self, samples: Sequence[LabelledVideo], *, train: bool = True,
                 clips: ClipConfig | None = None, eval_preprocessing: PreprocessConfig | None = None,
                 flow_cache: "FlowCache | None" = None, num_frames: Mapping[str, int] | None = None,
                 seed: int = 0) -> None:
        self.samples = list(samples)
        self.train = train
        self.clips = clips or ClipConfig()
        self.eval_preprocessing = eval_preprocessing or PreprocessConfig(clip_len=self.clips.clip_len)
        self.flow_cache = flow_cache
        self._num_frames = {str(k): int(v) for k, v in (num_frames or {}).items()}
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def num_frames(self, path: Path) -> int:
        key = str(path)
        if key not in self._num_frames:  # normally known from the dataset check; else probe once
            self._num_frames[key] = probe_video(path).num_frames
        return self._num_frames[key]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key`` is a sample index (at the dataset's current epoch) or ``(epoch, index)``."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        sample = self.samples[index]
        total = self.num_frames(sample.path)
        if not self.train:
            views, _ = evaluation_views(lambda wanted: read_frames(sample.path, wanted, self._decode_threads), total,
                                        self.eval_preprocessing)
            return {"frames": views, "label": sample.label, "index": index}

        rng = np.random.default_rng([self.seed, epoch, index])
        indices = random_clip(total, self.clips.clip_len, self.clips.frame_stride, rng, self.clips.jitter).clips[0]
        raw = torch.from_numpy(read_frames(sample.path, indices, self._decode_threads)).permute(0, 3, 1, 2)  # T×3×H×W
        box = random_crop_box(raw.shape[-2], raw.shape[-1], self.clips.augment, rng)
        frames = color_jitter(crop_and_resize(raw, box, self.clips.augment.crop_size),
                              self.clips.augment.color_jitter, rng)
        item: dict[str, Any] = {"frames": frames.contiguous(), "label": sample.label, "index": index}
        if self.flow_cache is not None:
            item.update(self._flow_targets(sample.path, indices, box))
        return item

    @property
    def _decode_threads(self) -> DecodeThreads:
        """In a DataLoader worker (one of several decoding at once) without frame threads, which cost CPU."""
        return "SLICE" if get_worker_info() is not None else "AUTO"

    def _flow_targets(self, path: Path, indices: np.ndarray, box: CropBox) -> dict[str, torch.Tensor]:
        """Flow i of the clip: clip frame i -> i + 1 (``flow_span="clip"``) or video frame idx_i -> idx_i + 1
        (``"frame"``; the last frame of the video reuses the last flow)."""
        flows = self.flow_cache.get(path)  # (T_video - 1)×h×w×2 uint8, memory-mapped
        if self.clips.flow_span == "clip":
            clip_flows = flow_between(flows, indices, self.flow_cache.config.bound)
        else:
            clip_flows = np.ascontiguousarray(flows[np.minimum(indices, len(flows) - 1)])
        q = torch.from_numpy(clip_flows).permute(0, 3, 1, 2)  # T×2×h×w
        side = self.clips.flow_side
        return {"flow": crop_and_resize(q, box, side).contiguous(),
                "flow_scale": flow_geometry_scale(tuple(q.shape[-2:]), box, side)}


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)``: a fresh permutation each epoch from (seed, epoch) when shuffling
    (deterministic, so resume replays it), or the indices of ``base`` (e.g. a DistributedSampler)."""

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, base: Sampler[int] | None = None) -> None:
        self.size, self.seed, self.shuffle, self.base, self.epoch = size, seed, shuffle, base, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.base is not None:
            order = list(self.base)
        elif self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist()
        else:
            order = list(range(self.size))
        return iter([(self.epoch, i) for i in order])

    def __len__(self) -> int:
        return len(self.base) if self.base is not None else self.size


def _worker_init(owner: int, _: int) -> None:
    _exit_with(owner)
    torch.set_num_threads(1)  # workers resize with torch; one thread each avoids oversubscription
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _exit_with(owner: int) -> None:
    """In a loader worker: exit as soon as process ``owner`` (the one iterating the loader) has ended.

    A worker's parent is the fork server, not ``owner``, and the fork server stays up while any worker
    holds its "alive" pipe, so neither would notice a killed training process: they would live on,
    re-parented to init. A daemon thread waits on ``owner`` (a pidfd where Linux has one, else polling)
    and ends the worker at once (``os._exit``: no teardown, nothing left to flush); with no workers left,
    the fork server and the resource tracker then exit by themselves. On Linux the worker is also killed
    when the fork server dies (``PR_SET_PDEATHSIG``)."""
    _kill_me_with_my_parent()
    try:
        pidfd: int | None = os.pidfd_open(owner)
    except (AttributeError, OSError):  # no pidfd (macOS, old kernels), or owner already gone
        pidfd = None
    threading.Thread(target=_wait_then_exit, args=(owner, pidfd), name="actionkit-owner-watch", daemon=True).start()


def _wait_then_exit(owner: int, pidfd: int | None) -> None:
    if pidfd is not None:
        select.select([pidfd], [], [])  # readable once the process has ended (zombie or reaped)
    else:
        while _is_running(owner):
            time.sleep(0.5)
    os._exit(0)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_me_with_my_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_scopes: list[weakref.WeakSet] = []  # the open worker_processes() blocks: the loaders made inside each


def close_loader(loader: DataLoader) -> None:
    """Stop ``loader``'s worker processes now (persistent workers otherwise live until the loader is
    garbage collected, which a reference cycle or a traceback can put off); iterating it again starts
    new ones."""
    iterator = getattr(loader, "_iterator", None)
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    if iterator is not None:
        loader._iterator = None


@contextmanager
def worker_processes() -> Iterator[None]:
    """A block that leaves no child process behind: on leaving it (returning or raising), the workers of
    every loader :func:`make_loader` made inside are stopped, and so are the fork server and
    multiprocessing's resource tracker when they were started inside and no other process of ours uses
    them (on Linux, where ``/proc`` tells; elsewhere they stay up, idle, for the next block). A library
    call that iterates loaders (``finetune``) runs inside one.

    Leaving the outermost block also puts back the SIGCHLD handler that was in place when it was entered:
    PyTorch installs its own the first time a loader starts workers (to notice a worker's death) and keeps
    it for the life of the process, where it crashed later native work in the same process (an OpenVINO
    INT8 export: SIGSEGV)."""
    before = _helper_pids()
    sigchld = _sigchld_handler() if not _scopes else None
    made: weakref.WeakSet = weakref.WeakSet()
    _scopes.append(made)
    try:
        yield
    finally:
        _scopes.remove(made)
        for loader in list(made):
            close_loader(loader)
        _stop_helpers(before)
        if not _scopes:
            _restore_sigchld_handler(sigchld)


def _sigchld_handler() -> Any:
    """The current SIGCHLD handler (None off the main thread or where there is no SIGCHLD)."""
    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGCHLD)


def _restore_sigchld_handler(handler: Any) -> None:
    """Put ``handler`` back as the SIGCHLD handler if PyTorch's replaced it, and tell PyTorch its own is
    gone, so the next loader with workers installs it again."""
    if handler is None or _sigchld_handler() in (None, handler):
        return
    from torch.utils.data._utils import signal_handling

    signal.signal(signal.SIGCHLD, handler)
    signal_handling._SIGCHLD_handler_set = False  # PyTorch's flag: "installed"; checked before installing


def _helper_pids() -> tuple[int | None, int | None]:
    """The pids of multiprocessing's fork server and resource tracker (None: not running)."""
    from multiprocessing import forkserver, resource_tracker

    server = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    tracker = getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None)
    return server, tracker


def _stop_helpers(before: tuple[int | None, int | None]) -> None:
    """Stop the fork server and the resource tracker if they were started since ``before`` and nothing
    else uses them: the server has no live children, and this process no live child but the tracker
    (each holds the tracker's pipe). Their ``_stop`` waits for them to exit, hence the checks."""
    from multiprocessing import forkserver, resource_tracker

    server, tracker = _helper_pids()
    if server is not None and server != before[0] and _live_children(server) == []:
        forkserver._forkserver._stop()
    if tracker is not None and tracker != before[1] and _live_children(os.getpid()) == [tracker]:
        resource_tracker._resource_tracker._stop()


def _live_children(pid: int) -> list[int] | None:
    """The children of ``pid`` that have not exited (Linux ``/proc``), None where that cannot be read."""
    try:
        listed = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                  for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        return None
    live = []
    for child in listed:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            live.append(child)
    return live


def make_loader(dataset: ClipDataset, batch_size: int, *, shuffle: bool = True, workers: int = 2,
                drop_last: bool = False, prefetch: int = 4, shard: bool = True) -> DataLoader:
    """A DataLoader over ``dataset``: persistent worker processes, pinned memory when CUDA is present,
    uint8 batches, a deterministic per-epoch order (sharded by a DistributedSampler under torchrun
    unless ``shard`` is false). The loader has its own seeded generator, so starting workers never
    draws from the global torch RNG (which would change dropout and break resume equality).

    Workers come from a fork server: forking the training process itself inherits OpenCV's thread
    pool in whatever state the parent left it, which deadlocked; spawned workers start clean but run a
    full interpreter teardown on exit, which aborted workers stopped mid-clip ("terminate called without
    an active exception"). Forking from a clean server process avoids both. Workers persist across
    epochs, so their start-up is paid once per run. They exit when the calling process ends, and when
    a :func:`worker_processes` block around the loader's use ends (or :func:`close_loader`).
    """
    base = None
    if shard and torch.distributed.is_available() and torch.distributed.is_initialized():
        from torch.utils.data.distributed import DistributedSampler

        base = DistributedSampler(range(len(dataset)), shuffle=shuffle, seed=dataset.seed, drop_last=drop_last)
    sampler = EpochSampler(len(dataset), dataset.seed, shuffle=shuffle, base=base)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                        persistent_workers=workers > 0, prefetch_factor=prefetch if workers else None,
                        worker_init_fn=functools.partial(_worker_init, os.getpid()) if workers else None,
                        generator=torch.Generator().manual_seed(dataset.seed),
                        multiprocessing_context=_worker_context() if workers else None)
    if _scopes:
        _scopes[-1].add(loader)
    return loader


def _worker_context() -> multiprocessing.context.BaseContext:
    """A fork server with torch preloaded where the platform has one (Linux, macOS), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "actionkit.data.loader"])
    return context


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Start ``epoch``: the sampler's keys carry it to the workers (and the dataset, for direct use)."""
    loader.dataset.set_epoch(epoch)
    loader.sampler.set_epoch(epoch)


@dataclass
class DeviceBatch:
    """A training batch on the model's device: video N×3×T×H×W in the value range, labels N, and flow
    targets N×2×T×h×w in DeepMind's scale (pixels / bound, i.e. ±1 = ±bound px) when present."""

    video: torch.Tensor
    labels: torch.Tensor
    flow: torch.Tensor | None = None


def finish_batch(batch: Mapping[str, Any], device: torch.device | str,
                 value_range: tuple[float, float] = (-1.0, 1.0), flow_bound: float = 20.0) -> DeviceBatch:
    """uint8 batch from the loader -> float tensors on ``device`` (normalisation happens there)."""
    device = torch.device(device)
    frames = batch["frames"].to(device, non_blocking=True)
    if frames.ndim == 6:  # evaluation: N×K×T×3×H×W -> (N·K)×T×3×H×W
        frames = frames.flatten(0, 1)
    video = to_model_input(frames, value_range)
    labels = torch.as_tensor(batch["label"]).to(device, non_blocking=True)
    flow = None
    if "flow" in batch:
        q = batch["flow"].to(device, non_blocking=True).permute(0, 2, 1, 3, 4)  # N×2×T×h×w uint8
        px = dequantize_flow(q, flow_bound)  # affine, so resizing in uint8 only added rounding
        scale = batch["flow_scale"].to(device, non_blocking=True).view(-1, 2, 1, 1, 1)
        flow = px * scale / flow_bound
    return DeviceBatch(video, labels, flow)

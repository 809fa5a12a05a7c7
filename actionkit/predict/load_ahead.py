"""Loading videos ahead of the model: background threads decode and crop the next videos while the model
runs, and on a CPU they do it at low priority.

Why low priority: on a CPU the model's threads keep every core busy, and a decoder that preempts one of
them mid-layer stalls the others at the layer's barrier. At low priority the loaders run in the model's
gaps, and at full speed while it waits for them. Measurements are in benchmarks/README.md.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from actionkit.data.video import DecodeThreads

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")

# Niceness of the loading threads while the model runs on a CPU (Linux, where it is set per thread).
LOADER_NICENESS = 19


def load_workers() -> int:
    """Threads that decode and prepare videos."""
    return min(4, os.cpu_count() or 1)


def decode_threads() -> DecodeThreads:
    """FFmpeg threading for each loader's decoder: no frame threads when the loaders alone keep every
    core busy (they would cost CPU the model needs), frame threads when cores are left over."""
    return "SLICE" if load_workers() >= (os.cpu_count() or 1) else "AUTO"


def lower_thread_priority() -> None:
    """Make the calling thread (and the FFmpeg threads it starts later) yield to the model's threads."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICENESS)
    except OSError:  # a sandbox that forbids it: stay at normal priority
        pass


def load_ahead(load: Callable[[int, Item], Loaded], items: Iterable[Item], ahead: int,
               model_on_cpu: bool) -> Iterator[tuple[int, "Future[Loaded]"]]:
    """``(index, future of load(index, item))`` for each item in order, with up to ``ahead`` loading in
    background threads; with ``model_on_cpu`` (on Linux) those threads run at low priority. The caller
    may look at ``future.done()`` to decide whether to wait."""
    low_priority = model_on_cpu and sys.platform == "linux"
    with ThreadPoolExecutor(max_workers=load_workers(), thread_name_prefix="actionkit-load",
                            initializer=lower_thread_priority if low_priority else None) as pool:
        queue: deque[tuple[int, Future]] = deque()
        todo = iter(enumerate(items))
        for index, item in todo:
            queue.append((index, pool.submit(load, index, item)))
            if len(queue) >= ahead:
                break
        while queue:
            index, future = queue.popleft()
            following = next(todo, None)
            if following is not None:
                queue.append((following[0], pool.submit(load, *following)))
            yield index, future

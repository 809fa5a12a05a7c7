"""End-to-end speed: ``Recognizer.predict`` on real videos against the model-only time of exactly the
same clips and batches, which shows how much decoding the pipeline fails to hide."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from actionkit.benchmark.timing import synchronize
from actionkit.data.video import expand_video_paths
from actionkit.errors import ActionkitError
from actionkit.predict import Recognizer


@dataclass(frozen=True)
class EndToEndSpeed:
    """``Recognizer.predict`` over videos against the model alone on the same clips in the same batches:
    medians over rounds that time one after the other."""

    videos: int
    clips: int
    batch_size: int
    backend: str
    precision: str
    seconds: float
    model_only_seconds: float
    rounds: int = 1
    overhead_per_round: tuple[float, ...] = ()
    batch_sizes: tuple[int, ...] = ()  # the batches predict() ran in its median round
    load_cpu_seconds: float = 0.0  # CPU time decoding and cropping all the videos takes, timed alone
    device_type: str = "cpu"
    cores: int = 1

    @property
    def overhead_mean(self) -> float:
        """The mean of the rounds' own ratios (the median, :attr:`overhead`, shrugs off outliers; the mean
        does not, so the two together show how wide the rounds scattered)."""
        if self.overhead_per_round:
            return statistics.fmean(self.overhead_per_round)
        return self.overhead

    @property
    def overhead_floor(self) -> float:
        """What loading must add when the model runs on the CPU and keeps every core busy: its CPU time
        spread over all the cores, over the model's time (gaps the model leaves can bring the real
        overhead below this; contention pushes it above). 0 when the model runs on a GPU."""
        if self.device_type != "cpu" or not self.model_only_seconds:
            return 0.0
        return self.load_cpu_seconds / (self.cores * self.model_only_seconds)

    @property
    def overhead(self) -> float:
        """How much longer end to end takes than the model alone (0.1 = 10%): with several rounds, the
        median of each round's own ratio, which a slow spell hitting one side of one round does not move."""
        if self.overhead_per_round:
            return statistics.median(self.overhead_per_round)
        return self.seconds / self.model_only_seconds - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "overhead": self.overhead, "overhead_mean": self.overhead_mean,
                "overhead_floor": self.overhead_floor,
                "seconds_per_video": self.seconds / self.videos}


def end_to_end_speed(recognizer: Recognizer, videos: Sequence[str | os.PathLike], batch_size: int = 4,
                     repeats: int = 3) -> EndToEndSpeed:
    """Time ``recognizer.predict(videos)`` against the model alone, in ``repeats`` rounds (after one
    warm-up batch). Each round runs predict, then the model on the same clips (decoded beforehand) in
    the batches predict formed that round (it runs a batch early rather than idle while a video
    decodes), so both sides of a round see the same spell of a shared machine. The videos' loading is
    also timed alone, in CPU seconds, for :attr:`EndToEndSpeed.overhead_floor`."""
    paths = [str(p) for p in expand_video_paths([Path(v) for v in videos])]
    for path in paths:  # warm the file cache
        recognizer.load_clips(path)
    started = time.process_time()
    prepared = [recognizer.load_clips(path) for path in paths]
    load_cpu_seconds = time.process_time() - started
    clips = torch.cat(prepared)
    recognizer.score_clips(clips[:batch_size])  # warm-up: allocator, kernels, thread pools
    rounds: list[tuple[float, float, tuple[int, ...]]] = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        results = recognizer.predict(paths, batch_size=batch_size)
        seconds = time.perf_counter() - started
        failed = [r for r in results if not r.ok]
        if failed:
            raise ActionkitError(f"{failed[0].video}: {failed[0].error}")
        sizes = tuple(recognizer.last_batch_sizes)
        started = time.perf_counter()
        for batch in torch.split(clips, list(sizes)):
            recognizer.score_clips(batch)
        synchronize(recognizer.device)
        rounds.append((seconds, time.perf_counter() - started, sizes))
    median_round = sorted(rounds)[len(rounds) // 2]
    precision = getattr(recognizer.backend, "precision", "fp32")
    return EndToEndSpeed(len(paths), len(clips), batch_size, recognizer.backend_name, precision,
                         statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds),
                         len(rounds), tuple(e / m - 1.0 for e, m, _ in rounds), median_round[2],
                         load_cpu_seconds, recognizer.device.type, os.cpu_count() or 1)

"""Recognizer.stream: a prediction every ``stride`` frames over a live source (or a file)."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from actionkit.data.frame_source import FrameSource
from actionkit.predict.clip_scorer import ClipScorer
from actionkit.predict.timeline_result import WindowPrediction, window_predictions
from actionkit.predict.windows import WindowProducer, window_feed, window_settings


@dataclass(frozen=True)
class StreamPrediction:
    """One live prediction: the window's span and top-k, the seconds from its last frame being decoded
    to the prediction being ready, and how many windows were skipped before it to keep up."""

    window: WindowPrediction
    latency: float
    skipped: int

    @property
    def label(self) -> str:
        return self.window.label

    @property
    def score(self) -> float:
        return self.window.score


def stream(scorer: ClipScorer, source: str | Path, window: int | None = None, stride: int | None = None,
           top_k: int = 5, timeout: float = 10.0, realtime: bool | None = None, format: str | None = None,
           options: dict[str, str] | None = None) -> Iterator[StreamPrediction]:
    """See :meth:`actionkit.predict.Recognizer.stream`. Opens the source now (so an unreachable one fails
    here, within ``timeout``) and returns the generator of predictions."""
    window, stride, frame_stride = window_settings(scorer, window, stride)
    opened = FrameSource(source, timeout=timeout, format=format, options=options)
    live = opened.live if realtime is None else realtime
    out: queue.Queue = queue.Queue(maxsize=1 if live else 2)
    producer = WindowProducer(opened, scorer, window, stride, frame_stride, out, latest_only=live)
    return _predictions(scorer, producer, out, top_k)


def _predictions(scorer: ClipScorer, producer: WindowProducer, out: queue.Queue,
                 top_k: int) -> Iterator[StreamPrediction]:
    feed = window_feed(producer, out)
    skipped_before = 0
    try:
        for item, ready in feed:
            probs = scorer.score_clips(item.clip[None]).numpy()
            (prediction,) = window_predictions([(item.start, item.end)], probs, scorer.labels,
                                               producer.source.fps, top_k)
            skipped = producer.skipped - skipped_before
            skipped_before = producer.skipped
            yield StreamPrediction(prediction, time.perf_counter() - ready, skipped)
    except KeyboardInterrupt:  # Ctrl-C ends the stream cleanly
        return
    finally:  # also when the caller stops iterating: stop the decoder thread, close the source
        feed.close()
        if not producer.is_alive():
            producer.source.close()

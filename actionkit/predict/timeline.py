"""Recognizer.timeline: an action timeline of a whole video, its windows scored in batches.

The video is decoded by :class:`~actionkit.data.frame_source.FrameSource` under the strict rule prediction
follows (a decode error, or under 90% of the frames the header declares, is a
:class:`~actionkit.errors.CorruptVideoError`; no timeline is made from a partial video), with frames upright
as their display matrix says; the boundary refinement's second pass is held to the same rule."""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np
import torch

from actionkit.data.frame_source import FrameSource, is_live_source
from actionkit.data.sampling import clip_span, sliding_windows
from actionkit.errors import ActionkitError
from actionkit.predict.boundaries import DEFAULT_REFINE_WINDOW, refine_segments
from actionkit.predict.clip_scorer import ClipScorer
from actionkit.predict.timeline_result import (
    Timeline,
    merge_segments,
    summarise,
    window_predictions,
)
from actionkit.predict.windows import (
    Window,
    WindowProducer,
    default_timeline_batch,
    window_feed,
    window_settings,
)
from actionkit.progress import progress_bar


def timeline(scorer: ClipScorer, video: str | Path, window: int | None = None, stride: int | None = None,
             batch_size: int | None = None, top_k: int = 5, threshold: float = 0.5, progress: bool = False,
             refine_window: int | None = DEFAULT_REFINE_WINDOW) -> Timeline:
    """See :meth:`actionkit.predict.Recognizer.timeline`."""
    if is_live_source(video):
        raise ActionkitError(f"{video}: a live source has no end; use Recognizer.stream() for it")
    window, stride, frame_stride = window_settings(scorer, window, stride)
    batch_size = batch_size or default_timeline_batch(scorer.device)
    if batch_size < 1 or top_k < 1:
        raise ValueError("batch_size and top_k must be at least 1")
    if refine_window is not None and refine_window < 0:
        raise ValueError("refine_window must be positive (or 0 / None to keep window-level boundaries)")
    fixed = scorer.fixed_clip_len  # a fixed-length model gets short windows looped
    problem = scorer.clip_len_error(refine_window) if refine_window and not fixed else None
    if problem:
        raise ActionkitError(f"the {scorer.backend_name} model {problem}, not {refine_window}-frame windows "
                             "for refining boundaries: choose --refine-window accordingly (0 turns refinement off)")
    source = FrameSource(video)
    fps, declared = source.fps, source.declared_frames
    span = clip_span(window, frame_stride)
    expected = len(sliding_windows(declared, span, stride)) if declared else 0  # for the progress bar
    out: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    producer = WindowProducer(source, scorer, window, stride, frame_stride, out, latest_only=False)
    spans: list[tuple[int, int]] = []
    probabilities: list[np.ndarray] = []
    warnings: list[str] = []
    pending: list[Window] = []

    def flush() -> None:
        probs = scorer.score_clips(torch.stack([w.clip for w in pending]))
        probabilities.extend(probs.numpy())
        spans.extend((w.start, w.end) for w in pending)
        pending.clear()

    feed = window_feed(producer, out)
    with progress_bar(f"timeline of {Path(video).name}", expected, progress and expected > 0) as advance:
        try:
            for item, _ in feed:
                if item.looped:
                    warnings.append(f"{video}: {item.end} frames, shorter than one {span}-frame window; "
                                    "looped to fill it")
                pending.append(item)
                if len(pending) == batch_size:
                    flush()
                advance()
        finally:
            feed.close()
        if pending:
            flush()
    num_frames = source.decoded
    table = np.stack(probabilities).astype(np.float32)
    labels = scorer.labels
    windows = window_predictions(spans, table, labels, fps, top_k)
    segments = merge_segments(windows, num_frames, fps, threshold)
    refine = bool(refine_window) and refine_window < window and num_frames > span
    if refine:
        segments = refine_segments(scorer, video, segments, num_frames, fps, reach=span,
                                   short_window=refine_window, frame_stride=frame_stride, batch_size=2 * batch_size,
                                   progress=progress)
    return Timeline(str(video), fps, num_frames, window, stride, labels, windows, table,
                    summarise(table, labels, top_k), segments, threshold, warnings,
                    refine_window if refine else 0)

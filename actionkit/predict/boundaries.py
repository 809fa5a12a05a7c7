"""Boundary refinement for timelines: move each change of action to where short windows put it.

A window-level timeline places a change of action only within about a window of where it happens,
because a long window that holds a few frames of the next action can already call it.

So, for each boundary where a segment of label A meets a segment of label B, short windows (16 model
frames by default, one every 8 source frames) are scored over the region within one long window's span
either side of it (never past the start of A or the end of B). Only A and B compete: each short window
gets s = log p_A − log p_B, clipped to ±5 so that one confident outlier cannot outvote its neighbours,
and the boundary moves to the cut between short-window centres that maximises Σ s before the cut −
Σ s after it (the nearest such cut to the window-level boundary when several tie). The regions are
decoded in a second pass over the file that converts only their frames and holds one region at a time,
under the same strict decoding rule as the first (:class:`~actionkit.data.frame_source.FrameSource`).
A model whose file fixes the clip length (an ONNX export without a dynamic time axis) gets each short
window looped to that length, as prediction loops a video shorter than a clip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from actionkit.config import PreprocessConfig
from actionkit.data.frame_source import FrameSource
from actionkit.data.sampling import clip_span
from actionkit.data.transforms import resize_and_crop
from actionkit.predict.clip_scorer import ClipScorer
from actionkit.predict.timeline_result import Segment
from actionkit.progress import progress_bar

DEFAULT_REFINE_WINDOW = 16  # model frames per short window (0 / None turns refinement off)
SCORE_CLIP = 5.0  # |log p_A − log p_B| above this counts no more (one outlier cannot outvote its neighbours)


@dataclass(frozen=True)
class Boundary:
    """Where segment ``left`` (label ``before``) meets segment ``left + 1`` (label ``after``), in source
    frames (``frame``, possibly fractional), and the region [lo, hi) searched for the refined cut."""

    left: int
    before: str
    after: str
    frame: float
    lo: int
    hi: int


def boundaries_to_refine(segments: list[Segment], fps: float, num_frames: int, reach: int) -> list[Boundary]:
    """The boundaries between two touching segments of different labels, each with its search region:
    ``reach`` frames either side, kept inside the two segments."""
    rate = fps or 1.0
    found = []
    for i, (a, b) in enumerate(zip(segments, segments[1:])):
        if a.label == b.label or not np.isclose(a.end, b.start):
            continue
        frame = a.end * rate
        lo = max(0, int(np.floor(max(a.start * rate, frame - reach))))
        hi = min(num_frames, int(np.ceil(min(b.end * rate, frame + reach))))
        found.append(Boundary(i, a.label, b.label, frame, lo, hi))
    return found


def short_window_starts(boundary: Boundary, span: int, step: int, num_frames: int) -> list[int]:
    """Starts of the short windows (``span`` source frames, every ``step``) whose centres lie in the region."""
    first = max(0, boundary.lo - span // 2)
    last = min(num_frames - span, boundary.hi - span // 2)
    return list(range(first, last + 1, step)) if last >= first else []


def best_cut(centres: np.ndarray, scores: np.ndarray, lo: float, hi: float, near: float) -> float:
    """The cut (a frame) maximising Σ scores before it − Σ scores after it, for scores that are positive
    where the earlier label wins. Candidates are ``lo``, ``hi`` and the midpoints between consecutive
    centres; ties go to the candidate nearest ``near``."""
    order = np.argsort(centres)
    centres, scores = np.asarray(centres, float)[order], np.clip(np.asarray(scores, float)[order], -SCORE_CLIP, SCORE_CLIP)
    cuts = np.concatenate([[lo], (centres[1:] + centres[:-1]) / 2, [hi]])
    before = np.concatenate([[0.0], np.cumsum(scores)])  # Σ scores of the centres before each cut
    value = 2 * before - scores.sum()  # before − (total − before)
    best = np.flatnonzero(np.isclose(value, value.max()))
    return float(cuts[best[np.argmin(np.abs(cuts[best] - near))]])


def _region_frames(source: FrameSource, regions: list[tuple[int, int]],
                   pre: PreprocessConfig) -> Iterator[dict[int, torch.Tensor]]:
    """For each region [lo, hi) of frame indices, in order: its frames, resized and cropped like the
    timeline's. One pass over the video; frames outside every region are decoded but not converted."""
    wanted = sorted({i for lo, hi in regions for i in range(lo, hi)})
    held: dict[int, torch.Tensor] = {}
    region = 0
    for index, frame in source.frames_at(wanted):
        held[index] = resize_and_crop(frame[None], pre.resize_short_side, pre.crop_size)[0][0]
        while region < len(regions) and index >= regions[region][1] - 1:
            lo, hi = regions[region]
            yield {i: held[i] for i in range(lo, hi) if i in held}
            region += 1
            keep_from = regions[region][0] if region < len(regions) else index + 1
            held = {i: f for i, f in held.items() if i >= keep_from}
    while region < len(regions):  # the video ended early: what there is
        lo, hi = regions[region]
        yield {i: held[i] for i in range(lo, hi) if i in held}
        region += 1


def short_clip(frames: dict[int, torch.Tensor], start: int, window: int, frame_stride: int,
               model_len: int | None) -> torch.Tensor | None:
    """The ``window``-frame clip starting at ``start`` (frames ``frame_stride`` apart) from ``frames``, looped
    to ``model_len`` for a fixed-length model; None when a frame it needs is missing."""
    indices = [start + k * frame_stride for k in range(window)]
    if any(i not in frames for i in indices):
        return None
    clip = torch.stack([frames[i] for i in indices])
    if model_len and model_len != window:  # a fixed-length model: loop the short window to fill it
        clip = clip[torch.arange(model_len) % window]
    return clip


def refine_segments(scorer: ClipScorer, video: str | Path, segments: list[Segment], num_frames: int,
                    fps: float, reach: int, short_window: int, frame_stride: int, batch_size: int,
                    progress: bool = False) -> list[Segment]:
    """``segments`` with each boundary between two labels moved as the module docstring describes."""
    boundaries = boundaries_to_refine(segments, fps, num_frames, reach)
    if not boundaries:
        return segments
    span = clip_span(short_window, frame_stride)
    step = max(1, span // 2)
    model_len = scorer.fixed_clip_len
    labels = scorer.labels
    starts_of = [short_window_starts(b, span, step, num_frames) for b in boundaries]
    regions = [(min(starts), max(starts) + span) for starts in starts_of if starts]
    refined = list(segments)
    rate = fps or 1.0
    with FrameSource(video) as source, progress_bar("refining boundaries", len(boundaries), progress) as advance:
        region_frames = _region_frames(source, regions, scorer.config.preprocessing)
        for boundary, starts in zip(boundaries, starts_of):
            frames = next(region_frames) if starts else {}
            clips = [(s, c) for s in starts if (c := short_clip(frames, s, short_window, frame_stride, model_len)) is not None]
            advance()
            if not clips:
                continue
            probs = torch.cat([scorer.score_clips(torch.stack([c for _, c in clips[i:i + batch_size]]))
                               for i in range(0, len(clips), batch_size)]).numpy().astype(np.float64)
            a, b = labels.index(boundary.before), labels.index(boundary.after)
            tiny = np.finfo(np.float32).tiny
            scores = np.log(probs[:, a] + tiny) - np.log(probs[:, b] + tiny)
            centres = np.array([s + span / 2 for s, _ in clips])
            left, right = refined[boundary.left], refined[boundary.left + 1]
            cut = max(best_cut(centres, scores, boundary.lo, boundary.hi, boundary.frame) / rate, left.start)
            refined[boundary.left], refined[boundary.left + 1] = replace(left, end=cut), replace(right, start=cut)
    return [s for s in refined if s.end > s.start]  # a segment the short windows overruled entirely goes

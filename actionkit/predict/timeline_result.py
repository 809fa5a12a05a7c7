"""A timeline's result: per-window predictions, merged segments, and the files they are saved as.

A window's prediction is taken to describe the middle of its span: each window owns the time from
halfway between its centre and the previous window's centre to halfway to the next one's. Windows in a
row with the same top label merge into a segment, which is kept when its mean top probability
reaches the threshold. A short unconfident stretch between two kept segments (at most one window
long: typically the one window that straddles a change of action) is split between them at its
middle; longer ones stay unlabelled. These window-level boundaries land within about a window of
the change; :mod:`actionkit.predict.boundaries` then moves each to where short windows put it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actionkit.files import write_text_atomically
from actionkit.predict.timeline_plot import plot_timeline


@dataclass(frozen=True)
class WindowPrediction:
    """A window's span in seconds (and frames) and its top-k (label, probability)."""

    start: float
    end: float
    start_frame: int
    end_frame: int
    top_k: list[tuple[str, float]]

    @property
    def label(self) -> str:
        return self.top_k[0][0]

    @property
    def score(self) -> float:
        return self.top_k[0][1]


@dataclass(frozen=True)
class Segment:
    """Consecutive windows with the same top label above the threshold, merged: [start, end) seconds."""

    label: str
    start: float
    end: float
    score: float  # mean top-1 probability of its windows


@dataclass
class Timeline:
    """Per-window predictions, the video-level summary (mean over windows) and the merged segments.
    ``probabilities`` is windows × classes (float32) for plotting and analysis."""

    video: str
    fps: float
    num_frames: int
    window: int
    stride: int
    labels: list[str]
    windows: list[WindowPrediction]
    probabilities: np.ndarray
    summary: list[tuple[str, float]]
    segments: list[Segment]
    threshold: float
    warnings: list[str] = field(default_factory=list)
    refine_window: int = 0  # model frames of the short windows that placed the boundaries; 0: window-level

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"video": self.video, "fps": self.fps, "num_frames": self.num_frames, "duration": self.duration,
                "window": self.window, "stride": self.stride, "threshold": self.threshold,
                "refine_window": self.refine_window,
                "summary": [{"label": l, "score": s} for l, s in self.summary],
                "segments": [vars(s) for s in self.segments],
                "windows": [{"start": w.start, "end": w.end, "start_frame": w.start_frame, "end_frame": w.end_frame,
                             "top_k": [{"label": l, "score": s} for l, s in w.top_k]} for w in self.windows],
                "warnings": list(self.warnings)}

    def save(self, out_dir: str | Path, plot: bool = True) -> list[Path]:
        """``timeline.json`` (everything), ``windows.csv`` (one row per window and top-k rank) and, with
        ``plot``, ``timeline.png``, in ``out_dir``, each written atomically. A failed write is an
        :class:`~actionkit.errors.OutputError` naming the file."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out / "timeline.json", json.dumps(self.to_dict(), indent=2) + "\n")
        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["start_s", "end_s", "start_frame", "end_frame", "rank", "label", "score"])
        for w in self.windows:
            for rank, (label, score) in enumerate(w.top_k, 1):
                writer.writerow([f"{w.start:.3f}", f"{w.end:.3f}", w.start_frame, w.end_frame, rank, label,
                                 f"{score:.5f}"])
        write_text_atomically(out / "windows.csv", rows.getvalue())
        written = [out / "timeline.json", out / "windows.csv"]
        if plot:
            written.append(plot_timeline(self, out / "timeline.png"))
        return written


def window_predictions(spans: list[tuple[int, int]], probabilities: np.ndarray, labels: list[str], fps: float,
                       top_k: int) -> list[WindowPrediction]:
    rate = fps or 1.0
    k = min(top_k, probabilities.shape[1]) if len(spans) else 0
    out = []
    for (start, end), probs in zip(spans, probabilities):
        order = np.argsort(-probs)[:k]
        out.append(WindowPrediction(start / rate, end / rate, start, end, [(labels[i], float(probs[i])) for i in order]))
    return out


def merge_segments(windows: list[WindowPrediction], num_frames: int, fps: float, threshold: float) -> list[Segment]:
    """Segments of one top label with mean probability ≥ ``threshold`` (see the module docstring)."""
    if not windows:
        return []
    rate = fps or 1.0
    centres = [(w.start_frame + w.end_frame) / 2 for w in windows]
    bounds = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [float(num_frames)]
    runs: list[list[int]] = []
    for i, w in enumerate(windows):
        if runs and windows[runs[-1][-1]].label == w.label:
            runs[-1].append(i)
        else:
            runs.append([i])
    kept = [(bounds[r[0]], bounds[r[-1] + 1], windows[r[0]].label, float(np.mean([windows[i].score for i in r])))
            for r in runs]
    kept = [k for k in kept if k[3] >= threshold]
    longest = max(w.end_frame - w.start_frame for w in windows)
    segments: list[Segment] = []
    for i, (start, end, label, score) in enumerate(kept):
        if i > 0 and 0 < start - kept[i - 1][1] <= longest:  # a short doubtful gap: split it at its middle
            start = (start + kept[i - 1][1]) / 2
        if i + 1 < len(kept) and 0 < kept[i + 1][0] - end <= longest:
            end = (end + kept[i + 1][0]) / 2
        if segments and segments[-1].label == label and segments[-1].end == start / rate:  # doubt inside one action
            previous = segments.pop()
            start, score = previous.start * rate, (previous.score + score) / 2
        segments.append(Segment(label, start / rate, end / rate, score))
    return segments


def summarise(probabilities: np.ndarray, labels: list[str], top_k: int) -> list[tuple[str, float]]:
    """The video-level top-k: the mean of the window probabilities."""
    if len(probabilities) == 0:
        return []
    mean = probabilities.mean(axis=0)
    order = np.argsort(-mean)[:min(top_k, len(labels))]
    return [(labels[i], float(mean[i])) for i in order]

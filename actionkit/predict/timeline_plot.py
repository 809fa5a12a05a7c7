"""timeline.png: label probabilities over time, with the merged segments as a coloured band above."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from actionkit.plotting import pyplot


class _Span(Protocol):
    label: str
    start: float
    end: float


class PlottedTimeline(Protocol):
    """What the plot reads of a :class:`~actionkit.predict.timeline_result.Timeline`."""

    video: str
    labels: list[str]
    threshold: float
    probabilities: np.ndarray  # windows × classes

    @property
    def segments(self) -> Sequence[_Span]: ...

    @property
    def windows(self) -> Sequence[_Span]: ...

    @property
    def duration(self) -> float: ...


MAX_LINES = 6  # labels drawn: those of the segments first, then the highest mean probabilities


def plotted_labels(timeline: PlottedTimeline, limit: int = MAX_LINES) -> list[int]:
    """Class indices to draw: every segment's label (in order of appearance), then the classes with the
    highest mean probability, up to ``limit``."""
    index = {label: i for i, label in enumerate(timeline.labels)}
    chosen: list[int] = []
    for segment in timeline.segments:
        if index[segment.label] not in chosen:
            chosen.append(index[segment.label])
    for i in np.argsort(-timeline.probabilities.mean(axis=0)):
        if len(chosen) >= limit:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return chosen


def plot_timeline(timeline: PlottedTimeline, path: str | Path) -> Path:
    """Write the plot to ``path``: x is time in seconds; each drawn label's probability is a line through
    the window centres; segments are labelled bars in the same colours; the threshold is dashed."""
    plt = pyplot("plotting the timeline")
    path = Path(path)
    chosen = plotted_labels(timeline)
    colours = {i: plt.get_cmap("tab10")(k % 10) for k, i in enumerate(chosen)}
    index = {label: i for i, label in enumerate(timeline.labels)}
    centres = [(w.start + w.end) / 2 for w in timeline.windows]
    fig, (band, ax) = plt.subplots(2, 1, figsize=(11, 5), sharex=True, gridspec_kw={"height_ratios": [1, 5]})
    for segment in timeline.segments:
        colour = colours[index[segment.label]]
        band.barh(0, segment.end - segment.start, left=segment.start, color=colour, edgecolor="white")
        band.text((segment.start + segment.end) / 2, 0, segment.label, ha="center", va="center", fontsize=8,
                  clip_on=True)
    band.set_yticks([])
    band.set_title(f"{Path(timeline.video).name}: segments (top label ≥ {timeline.threshold:g})", fontsize=10)
    for i in chosen:
        ax.plot(centres, timeline.probabilities[:, i], marker="o", markersize=3, color=colours[i],
                label=timeline.labels[i])
    ax.axhline(timeline.threshold, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, max(timeline.duration, centres[-1] if centres else 1.0))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="label")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

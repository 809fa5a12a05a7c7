"""Frames of a video file or a live source (HTTP / RTSP URL, webcam device), decoded in order, a chunk
at a time, so nothing holds more than a chunk of full-size frames. Errors name the source.

Frames come upright (the display rotation applied, :func:`~actionkit.data.video.frame_to_rgb`). A file is
held to the strict rule of :func:`~actionkit.data.video.read_video`: a decode error, or a decode that
reaches the end with fewer than :data:`~actionkit.data.video.TRUNCATION_RATIO` of the frames the header
declares, is a :class:`~actionkit.errors.CorruptVideoError`. A live source has no declared length: a
failed read is a :class:`StreamError` and its end is the end of the stream."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np

from actionkit.data.video import (
    check_frame_count,
    decoded_frames,
    decoding_failed,
    error_reason,
    frame_rate,
    frame_to_rgb,
    open_video,
    video_stream,
)
from actionkit.errors import ActionkitError, EmptyVideoError, NotAVideoError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class StreamError(ActionkitError):
    """A live source could not be opened or read."""


def is_live_source(source: str | Path) -> bool:
    """URLs (http, rtsp, udp, ...) and capture devices (/dev/video*) are live; anything else is a file."""
    text = str(source)
    return bool(_URL.match(text)) or text.startswith("/dev/video")


class FrameSource:
    """An open video: ``fps``, ``declared_frames`` (0 when unknown, e.g. live) and :meth:`chunks`.

    ``timeout`` (seconds) bounds opening and each read of a live source; ``format`` picks an input
    format (e.g. ``"v4l2"`` for a webcam); ``options`` go to FFmpeg. Use as a context manager."""

    def __init__(self, source: str | Path, *, timeout: float = 10.0, format: str | None = None,
                 options: dict[str, str] | None = None) -> None:
        self.name = str(source)
        self.live = is_live_source(source)
        if self.live:
            if self.name.startswith("/dev/video") and format is None:
                format = "v4l2"
            try:
                self.container = av.open(self.name, format=format, options=options or {}, timeout=(timeout, timeout),
                                         metadata_errors="ignore")
            except (av.error.FFmpegError, OSError) as e:
                raise StreamError(f"{self.name}: cannot open the stream within {timeout:g} s ({error_reason(e)})") from None
        else:
            self.container = open_video(Path(source))
        try:
            self.stream = video_stream(self.container, self.name)
        except NotAVideoError:
            self.close()
            raise
        self.fps = frame_rate(self.stream)
        self.declared_frames = int(self.stream.frames or 0)
        self.decoded = 0

    def chunks(self, size: int = 16) -> Iterator[np.ndarray]:
        """size×H×W×3 uint8 RGB chunks (the last may be shorter) until the end of the video or stream; for
        a file, the truncation rule is applied when its end is reached (see the module docstring)."""
        chunk: list[np.ndarray] = []
        try:
            for frame in self.container.decode(self.stream):
                chunk.append(frame_to_rgb(frame))
                self.decoded += 1
                if len(chunk) == size:
                    yield np.stack(chunk)
                    chunk = []
        except av.error.FFmpegError as e:
            if self.live:
                raise StreamError(f"{self.name}: the stream failed after frame {self.decoded} ({error_reason(e)})"
                                  f"{self._index_last_hint()}") from None
            raise decoding_failed(self.name, self.decoded, self.declared_frames, e) from None
        if not self.decoded:
            raise EmptyVideoError(self.name, "has no decodable frames")
        if not self.live:
            check_frame_count(self.name, self.decoded, self.declared_frames)
        if chunk:
            yield np.stack(chunk)

    def frames_at(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, H×W×3 uint8 RGB)`` for the sorted frame ``indices`` (in decoding order), converting
        only those frames and stopping after the last; indices past the end of the video are not yielded.
        A file that ends before the last index is held to the truncation rule (module docstring)."""
        wanted, last = set(indices), max(indices, default=-1)
        if last < 0:
            return
        for index, frame in decoded_frames(self.container, self.stream, self.name, last):
            self.decoded = index + 1
            if index in wanted:
                yield index, frame_to_rgb(frame)
        if self.decoded <= last and not self.live:  # the file ended before the last index
            if not self.decoded:
                raise EmptyVideoError(self.name, "has no decodable frames")
            check_frame_count(self.name, self.decoded, self.declared_frames)

    def _index_last_hint(self) -> str:
        """Why an MP4 / MOV over HTTP can open and then fail at its first frame: its index (moov) sits at
        the end, and FFmpeg cannot seek back to the frames on a server without range requests."""
        if self.decoded or "mp4" not in self.container.format.name.split(","):
            return ""
        return ("; if the file's index (moov atom) is at its end, it cannot be played from a server without "
                "range requests: remux it with `ffmpeg -i IN -c copy -movflags +faststart OUT`, or serve it "
                "with range support")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

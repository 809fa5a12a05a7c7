"""Decoding videos with PyAV into uint8 RGB frames, with errors that name the file and the problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import av
import numpy as np

from actionkit.data.skip_decode import (
    SkippingUnsupported,
    can_skip_frames,
    frames_skipping_unwanted,
)
from actionkit.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    VideoError,
    VideoNotFoundError,
)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".gif",
                            ".flv", ".wmv", ".3gp", ".ts", ".ogv"})

# A video decoding to fewer frames than this share of what its header declares is truncated. (Headers
# are often off by a frame or two, e.g. AVI files with packed B-frames, so equality is not required.)
TRUNCATION_RATIO = 0.9

# Leading bytes of containers we know are video: a file that starts like one but fails to open is
# truncated or damaged rather than "not a video".
_CONTAINER_SIGNATURES = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"),  # MP4 / MOV
    (0, b"RIFF"), (0, b"GIF8"), (0, b"\x1a\x45\xdf\xa3"),  # AVI, GIF, Matroska/WebM
    (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"), (0, b"FLV"), (0, b"OggS"),  # MPEG-PS, FLV, Ogg
)


@dataclass
class DecodedVideo:
    """All frames of a video, T×H×W×3 uint8 RGB, and its frame rate."""

    path: str
    frames: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _looks_like_video_container(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return any(head[offset:offset + len(magic)] == magic for offset, magic in _CONTAINER_SIGNATURES)


def open_video(path: Path) -> av.container.InputContainer:
    """The opened container of ``path``, or the :class:`~actionkit.errors.VideoError` saying why not
    (missing, a folder, empty, corrupt, or not a video)."""
    if not path.exists():
        raise VideoNotFoundError(path, "no such file")
    if path.is_dir():
        raise NotAVideoError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise EmptyVideoError(path, "the file is empty (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if _looks_like_video_container(path):
            raise CorruptVideoError(path, f"cannot be opened: truncated or corrupt ({error_reason(e)})") from None
        raise NotAVideoError(path, "not a video file (no known container format)") from None


def error_reason(error: Exception) -> str:
    """The short reason FFmpeg (or the OS) gave for ``error``, for one-line messages."""
    text = getattr(error, "strerror", None) or str(error)
    return text.split(":")[0].strip() if text else type(error).__name__


@dataclass
class VideoInfo:
    """What a full decode of a video found: decodable frame count, frame rate and frame size."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0


# How FFmpeg threads one decoder: "AUTO" adds frame threads, the fastest way through one video; "SLICE"
# leaves them out and costs about a quarter less CPU (measured on the shared clips), which is what a caller
# decoding several videos at once in its own workers wants.
DecodeThreads = Literal["AUTO", "SLICE"]


def video_stream(container: av.container.InputContainer, name: str | Path,
                 threads: DecodeThreads = "AUTO") -> av.video.stream.VideoStream:
    """The container's first video stream, set to decode with ``threads``; :class:`NotAVideoError` if none."""
    if not container.streams.video:
        raise NotAVideoError(name, "has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = threads
    return stream


def frame_rate(stream: av.video.stream.VideoStream) -> float:
    """Frames per second from the stream's header (0.0 when it gives none)."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def decoding_failed(name: str | Path, count: int, declared: int, error: Exception) -> VideoError:
    """The error for FFmpeg failing after ``count`` good frames (of ``declared``, 0 if unknown)."""
    if not count:
        return EmptyVideoError(name, f"has no decodable frames ({error_reason(error)})")
    of = f" of {declared}" if declared else ""
    return CorruptVideoError(name, f"decoding failed after frame {count}{of}: truncated or damaged ({error_reason(error)})")


def decoded_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream, name: str | Path,
                   last: int | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` in decoding order, stopping after frame ``last`` if given; FFmpeg failing
    raises :func:`decoding_failed`'s error, naming the frame it stopped at. Frames are not converted:
    the caller converts (the costly step) only those it keeps."""
    count = 0
    try:
        for frame in container.decode(stream):
            yield count, frame
            count += 1
            if last is not None and count > last:
                return
    except av.error.FFmpegError as e:
        raise decoding_failed(name, count, stream.frames or 0, e) from None


def _decode(path: Path, keep: Callable[[int], bool], last: int | None = None,
            threads: DecodeThreads = "AUTO") -> tuple[VideoInfo, dict[int, np.ndarray]]:
    """Decode frames in order, converting to RGB those for which ``keep(index)`` holds, stopping after
    frame ``last`` if given. A full decode also applies the truncation rule of :func:`read_video`."""
    container = open_video(path)
    with container:
        stream = video_stream(container, path, threads)
        return _keep_frames(path, stream, decoded_frames(container, stream, path, last), keep, last)


def _keep_frames(path: Path, stream: av.video.stream.VideoStream, numbered: Iterator[tuple[int, av.VideoFrame]],
                 keep: Callable[[int], bool], last: int | None) -> tuple[VideoInfo, dict[int, np.ndarray]]:
    """Run through ``numbered`` ``(index, frame)`` pairs in display order, converting to RGB the frames
    ``keep`` wants; :class:`EmptyVideoError` without any frame, and (a full decode, ``last`` None) the
    truncation rule of :func:`read_video`."""
    frames: dict[int, np.ndarray] = {}
    count, width, height = 0, 0, 0
    for index, frame in numbered:
        width, height, count = frame.width, frame.height, index + 1
        if keep(index):
            frames[index] = frame.to_ndarray(format="rgb24")
    if not count:
        raise EmptyVideoError(path, "has no decodable frames")
    declared = stream.frames or 0
    if last is None and count < TRUNCATION_RATIO * declared:
        raise CorruptVideoError(path, f"truncated or damaged: only {count} of the {declared} frames "
                                      "its header declares could be decoded")
    return VideoInfo(str(path), count, frame_rate(stream), width, height), frames


def _decode_wanted(path: Path, wanted: set[int],
                   threads: DecodeThreads = "AUTO") -> tuple[VideoInfo, dict[int, np.ndarray]]:
    """Decode up to the last ``wanted`` frame, converting only the wanted ones (see :func:`_decode_wanted_in`)."""
    container = open_video(path)
    with container:
        decoded = _decode_wanted_in(path, container, video_stream(container, path, threads), wanted)
    return decoded or _decode_in_order(path, wanted, threads)


def _decode_in_order(path: Path, wanted: set[int], threads: DecodeThreads) -> tuple[VideoInfo, dict[int, np.ndarray]]:
    """The fallback when :func:`_decode_wanted_in` did not deliver: decode from the start up to the last
    ``wanted`` frame in order (a second open of ``path``), converting only the wanted ones."""
    return _decode(path, keep=wanted.__contains__, last=max(wanted), threads=threads)


def _decode_wanted_in(path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                      wanted: set[int]) -> tuple[VideoInfo, dict[int, np.ndarray]] | None:
    """Decode ``stream`` of the open ``container`` up to the last ``wanted`` frame, converting only the
    wanted ones. H.264 / HEVC frames that are neither wanted nor referenced are not decoded at all
    (:mod:`actionkit.data.skip_decode`); None when that did not deliver every wanted frame: the caller
    then decodes the video again in order, which also gives the exact error for a damaged video."""
    last = max(wanted)
    if not can_skip_frames(container, stream):
        return _keep_frames(path, stream, decoded_frames(container, stream, path, last), wanted.__contains__, last)
    try:
        info, frames = _keep_frames(path, stream, frames_skipping_unwanted(container, stream, wanted, last),
                                    wanted.__contains__, last)
        if len(frames) == len(wanted):
            return info, frames
    except (SkippingUnsupported, av.error.FFmpegError, VideoError):
        pass
    return None


def read_video(path: str | Path) -> DecodedVideo:
    """Decode every frame of ``path`` as RGB. Grayscale and other pixel formats are converted.

    Raises :class:`VideoNotFoundError`, :class:`NotAVideoError`, :class:`CorruptVideoError` (decoding
    failed: truncated or damaged data, with the frame where it stopped) or :class:`EmptyVideoError`.
    """
    info, frames = _decode(Path(path), keep=lambda i: True)
    return DecodedVideo(info.path, np.stack(list(frames.values())), info.fps)


def probe_video(path: str | Path) -> VideoInfo:
    """Decode ``path`` fully without keeping frames: the same checks (and errors) as :func:`read_video`,
    for scanning a dataset."""
    return _decode(Path(path), keep=lambda i: False)[0]


def read_frames(path: str | Path, indices: Sequence[int], threads: DecodeThreads = "AUTO") -> np.ndarray:
    """The frames at ``indices`` (any order, repeats allowed) as len(indices)×H×W×3 uint8 RGB.

    Decodes only up to the last index (and, in H.264 / HEVC, not the unrequested frames nothing
    references) and converts only the requested frames, which makes reading a training clip much cheaper
    than :func:`read_video`. ``threads``: see :data:`DecodeThreads`. Raises :class:`VideoError`
    subclasses, and :class:`CorruptVideoError` when the video ends before a requested frame.
    """
    wanted = {int(i) for i in indices}
    info, frames = _decode_wanted(Path(path), wanted, threads)
    if len(frames) < len(wanted):
        raise CorruptVideoError(path, f"frame {max(wanted)} was requested but the video has only "
                                      f"{info.num_frames} decodable frames")
    return np.stack([frames[int(i)] for i in indices])


def read_planned_frames(path: str | Path, wanted_for: Callable[[int], np.ndarray],
                        threads: DecodeThreads = "AUTO") -> tuple[int, dict[int, np.ndarray]]:
    """Decode only what a clip plan needs: ``(num_frames, {index: H×W×3 frame})`` for the indices
    ``wanted_for(num_frames)`` returns.

    The plan is made from the frame count in the container header, so decoding stops after the last
    wanted frame, H.264 / HEVC frames neither wanted nor referenced are skipped, and only wanted frames
    are converted to RGB. Without a count in the header, or when the video ends before the frames the
    header promised, it falls back to a full decode and plans with the real count, so the clips are those
    a full decode would give. ``threads``: see :data:`DecodeThreads`. Raises the :class:`VideoError`
    subclasses of :func:`read_video`.
    """
    path = Path(path)
    container = open_video(path)
    with container:  # one open: the header's count plans the clips, then the same container decodes them
        stream = video_stream(container, path, threads)
        declared = stream.frames or 0
        wanted = {int(i) for i in wanted_for(declared)} if declared > 0 else set()
        decoded = _decode_wanted_in(path, container, stream, wanted) if wanted else None
    if wanted:
        info, frames = decoded or _decode_in_order(path, wanted, threads)
        if len(frames) == len(wanted):
            return declared, frames
    info, everything = _decode(path, keep=lambda i: True, threads=threads)
    return info.num_frames, {int(i): everything[int(i)] for i in wanted_for(info.num_frames)}


def as_frames(video: np.ndarray, name: str) -> np.ndarray:
    """Validate a user's frame array: uint8 T×H×W×3 (T×H×W or T×H×W×1 grayscale is expanded)."""
    if not isinstance(video, np.ndarray):
        raise VideoError(name, f"expected a numpy array of frames, got {type(video).__name__}")
    if video.dtype != np.uint8:
        raise VideoError(name, f"frames must be uint8 T×H×W×3, got dtype {video.dtype}")
    if video.ndim == 3:
        video = video[..., None]
    if video.ndim != 4 or video.shape[-1] not in (1, 3):
        raise VideoError(name, f"frames must be T×H×W×3, got shape {video.shape}")
    if video.shape[0] == 0:
        raise EmptyVideoError(name, "has no frames")
    if video.shape[-1] == 1:
        video = np.repeat(video, 3, axis=-1)
    return video


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def expand_video_paths(paths: list[Path]) -> list[Path]:
    """Folders become the video files inside them (recursively, sorted); files are kept as given
    (a missing or non-video file is reported when it is decoded)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if is_video_file(p))
            if not found:
                raise VideoError(path, f"folder holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
            out.extend(found)
        else:
            out.append(path)
    return out

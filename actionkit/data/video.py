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
# Sizes of a BMP file's DIB header (the four bytes after its 14-byte file header), which tell a BMP from
# other data that happens to start with "BM".
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
# FFmpeg's still-image demuxers are named "<format>_pipe" (plus image2 / image2pipe); GIF is a video, and an
# animated WebP is told apart by its header before FFmpeg sees it.
_IMAGE_DEMUXERS_THAT_ARE_VIDEO = frozenset({"gif_pipe", "webp_pipe"})


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


def still_image_kind(path: Path) -> str | None:
    """The format of ``path`` when its leading bytes are a still image ("JPEG", "PNG", "BMP", "WebP",
    "TIFF"), else None. Animated PNG (APNG) and animated WebP are not still images; GIF is never one."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        image_data = head.find(b"IDAT")  # APNG: an animation control chunk comes before the image data
        return None if b"acTL" in (head[:image_data] if image_data >= 0 else head) else "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        animated = head[12:16] == b"VP8X" and len(head) > 20 and head[20] & 0x02
        return None if animated else "WebP"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def open_video(path: Path) -> av.container.InputContainer:
    """The opened container of ``path``, or the :class:`~actionkit.errors.VideoError` saying why not
    (missing, a folder, empty, corrupt, a still image, or not a video). A still image, which FFmpeg
    would open as a one-frame video, is a :class:`NotAVideoError` saying "is an image (JPEG), not a
    video" (or PNG, BMP, WebP, ...), whatever the file is called; GIF is a video."""
    if not path.exists():
        raise VideoNotFoundError(path, "no such file")
    if path.is_dir():
        raise NotAVideoError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise EmptyVideoError(path, "the file is empty (0 bytes)")
    image = still_image_kind(path)
    if image:
        raise NotAVideoError(path, f"is an image ({image}), not a video")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if _looks_like_video_container(path):
            raise CorruptVideoError(path, f"cannot be opened: truncated or corrupt ({error_reason(e)})") from None
        raise NotAVideoError(path, "not a video file (no known container format)") from None
    demuxer = container.format.name
    if demuxer in ("image2", "image2pipe") or (demuxer.endswith("_pipe")
                                                 and demuxer not in _IMAGE_DEMUXERS_THAT_ARE_VIDEO):
        container.close()
        kind = demuxer.removesuffix("_pipe").upper() if demuxer.endswith("_pipe") else "a still image format"
        raise NotAVideoError(path, f"is an image ({kind}), not a video")
    return container


def error_reason(error: Exception) -> str:
    """The short reason FFmpeg (or the OS) gave for ``error``, for one-line messages."""
    text = getattr(error, "strerror", None) or str(error)
    return text.split(":")[0].strip() if text else type(error).__name__


@dataclass
class VideoInfo:
    """What a full decode of a video found: decodable frame count, frame rate and frame size as shown
    (after the display rotation; see :func:`frame_to_rgb`)."""

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


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """``frame`` as H×W×3 uint8 RGB, the way players show it: turned by the rotation of its display matrix
    (a phone's portrait video, coded landscape with a -90° matrix, comes out portrait). Rotations are
    quarter turns; another angle is rounded to the nearest one."""
    image = frame.to_ndarray(format="rgb24")
    turns = display_turns(frame)
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def display_turns(frame: av.VideoFrame) -> int:
    """Quarter turns counter-clockwise (0-3) that the display matrix of ``frame`` asks for."""
    return round(frame.rotation / 90) % 4


def displayed_size(frame: av.VideoFrame) -> tuple[int, int]:
    """(width, height) of ``frame`` as :func:`frame_to_rgb` returns it."""
    return (frame.height, frame.width) if display_turns(frame) % 2 else (frame.width, frame.height)


def check_frame_count(name: str | Path, count: int, declared: int) -> None:
    """The strict rule for a file decoded to its end: :class:`CorruptVideoError` when it yielded fewer than
    :data:`TRUNCATION_RATIO` of the ``declared`` frames (0: the header declares none, nothing to check)."""
    if count < TRUNCATION_RATIO * declared:
        raise CorruptVideoError(name, f"truncated or damaged: only {count} of the {declared} frames "
                                      "its header declares could be decoded")


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
    """Run through ``numbered`` ``(index, frame)`` pairs in display order, converting to RGB (upright:
    :func:`frame_to_rgb`) the frames ``keep`` wants; :class:`EmptyVideoError` without any frame, and (a
    full decode, ``last`` None) the truncation rule of :func:`check_frame_count`."""
    frames: dict[int, np.ndarray] = {}
    count, width, height = 0, 0, 0
    for index, frame in numbered:
        count = index + 1
        if not width:
            width, height = displayed_size(frame)
        if keep(index):
            frames[index] = frame_to_rgb(frame)
    if not count:
        raise EmptyVideoError(path, "has no decodable frames")
    if last is None:
        check_frame_count(path, count, stream.frames or 0)
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
    """Decode every frame of ``path`` as RGB, upright (:func:`frame_to_rgb`), all held in memory: for
    short videos; :func:`read_planned_frames` and :func:`read_frames` hold only the frames they return.
    Grayscale and other pixel formats are converted.

    Raises :class:`VideoNotFoundError`, :class:`NotAVideoError`, :class:`CorruptVideoError` (decoding
    failed: truncated or damaged data, with the frame where it stopped) or :class:`EmptyVideoError`.
    """
    info, frames = _decode(Path(path), keep=lambda i: True)
    return DecodedVideo(info.path, np.stack(list(frames.values())), info.fps)


def probe_video(path: str | Path, threads: DecodeThreads = "AUTO") -> VideoInfo:
    """Decode ``path`` fully without keeping frames: the same checks (and errors) as :func:`read_video`,
    for scanning a dataset, in memory that does not grow with the video's length."""
    return _decode(Path(path), keep=lambda i: False, threads=threads)[0]


def count_packets(path: str | Path) -> int:
    """The frames of ``path``'s video stream counted from its packets, demuxed without decoding (a pass
    that reads the file but decodes and holds nothing): one packet per frame in the containers whose
    header gives no count (Matroska, WebM, MPEG-TS, ...). Packets the container marks to be discarded are
    not counted; a read error ends the count (the decode that follows reports the damage)."""
    path = Path(path)
    container = open_video(path)
    count = 0
    with container:
        stream = video_stream(container, path)
        try:
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:
                    count += 1
        except av.error.FFmpegError:
            pass
    return count


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
    ``wanted_for(num_frames)`` returns. Memory holds the wanted frames, never the whole video, in any
    container.

    The plan is made from the frame count in the container header or, in containers whose header has
    none (Matroska, WebM, MPEG-TS, ...), from the stream's packets (:func:`count_packets`). Decoding then
    stops after the last wanted frame, H.264 / HEVC frames neither wanted nor referenced are skipped, and
    only wanted frames are converted to RGB (upright: :func:`frame_to_rgb`). When the video ends before
    a wanted frame (the count promised frames it does not have), its frames are counted by a decode that
    keeps none, under the truncation rule of :func:`read_video`, and the plan made from that count is
    decoded, so the clips are those a full decode would give. ``threads``: see :data:`DecodeThreads`.
    Raises the :class:`VideoError` subclasses of :func:`read_video`.
    """
    path = Path(path)
    wanted: set[int] = set()
    decoded = None
    container = open_video(path)
    with container:  # one open: the header's count plans the clips, then the same container decodes them
        stream = video_stream(container, path, threads)
        count = int(stream.frames or 0)
        if count:
            wanted = {int(i) for i in wanted_for(count)}
            decoded = _decode_wanted_in(path, container, stream, wanted)
    if not count:  # no count in the header: count the packets, and decode what that plan wants
        count = count_packets(path)
        wanted = {int(i) for i in wanted_for(count)} if count else set()
        decoded = _decode_wanted(path, wanted, threads) if wanted else None
    if wanted:
        _, frames = decoded or _decode_in_order(path, wanted, threads)
        if len(frames) == len(wanted):
            return count, frames
    count = probe_video(path, threads).num_frames  # the real count, holding no frame
    wanted = {int(i) for i in wanted_for(count)}
    _, frames = _decode_wanted(path, wanted, threads)
    if len(frames) < len(wanted):
        raise CorruptVideoError(path, f"frame {max(wanted - set(frames))} of {count} could not be decoded "
                                      "a second time: damaged")
    return count, frames


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
    (a missing or non-video file is reported when it is decoded). A folder holding no video file raises
    :class:`NotAVideoError` naming it."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if is_video_file(p))
            if not found:
                raise NotAVideoError(path, f"folder holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
            out.extend(found)
        else:
            out.append(path)
    return out

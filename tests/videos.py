"""Writing small test videos with PyAV, and damaging real ones in known ways."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np


def write_video(path: Path, frames: np.ndarray | Iterable[np.ndarray], fps: int = 25, codec: str = "mpeg4",
                pix_fmt: str = "yuv420p", rotation: int = 0) -> Path:
    """frames: T×H×W×3 uint8 RGB (or T×H×W for gray pixel formats), or an iterable of H×W×3 (H×W) frames,
    encoded as they come (a long video needs no memory). ``rotation``: the display matrix's rotation in
    degrees counter-clockwise (as ``VideoFrame.rotation`` reads it back; a phone held upright writes -90),
    written to the container; the frames given are the coded ones."""
    images = iter(frames)
    first = next(images)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        fmt = "gray" if first.ndim == 2 else "rgb24"
        for image in itertools.chain([first], images):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format=fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, image: np.ndarray, codec: str) -> Path:
    """One H×W×3 uint8 RGB still image, written by FFmpeg's image muxer with ``codec`` ("mjpeg" for JPEG,
    "png", "bmp", "libwebp")."""
    pix_fmt = {"mjpeg": "yuvj420p", "png": "rgb24", "bmp": "bgr24", "libwebp": "yuv420p"}[codec]
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream(codec)
        stream.height, stream.width = image.shape[:2]
        stream.pix_fmt = pix_fmt
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_square_frames(num_frames: int, height: int, width: int) -> Iterator[np.ndarray]:
    """The frames of :func:`moving_square` one at a time, H×W×3 each."""
    size = max(2, min(height, width) // 4)
    for t in range(num_frames):
        frame = np.full((height, width, 3), 30, np.uint8)
        x = (t * max(1, width // num_frames)) % max(1, width - size)
        frame[height // 3:height // 3 + size, x:x + size] = (220, 180, 40)
        yield frame


def moving_square(num_frames: int, height: int, width: int) -> np.ndarray:
    """A bright square sliding across a dark background (something with motion), T×H×W×3."""
    return np.stack(list(moving_square_frames(num_frames, height, width)))


def write_undecodable(path: Path, num_packets: int = 10) -> Path:
    """A video stream whose packets are noise: the container opens, no frame decodes."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(num_packets):
            packet = av.Packet(rng.integers(0, 255, 500, dtype=np.uint8).tobytes())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 25)
            container.mux(packet)
    return path


def remux_faststart(src: Path, dst: Path) -> Path:
    """Copy a video's packets into an MP4 with its index first, so a truncated copy still opens."""
    return remux(src, dst, {"movflags": "faststart"})


def remux(src: Path, dst: Path, options: dict[str, str] | None = None) -> Path:
    """Copy a video's packets, unchanged, into the container ``dst``'s suffix names (e.g. the same stream
    as MP4 and as Matroska); ``options`` go to the muxer."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options or {}) as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        for packet in inp.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            out.mux(packet)
    return dst


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst

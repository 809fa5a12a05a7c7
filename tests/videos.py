"""Writing small test videos with PyAV, and damaging real ones in known ways."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str = "mpeg4",
                pix_fmt: str = "yuv420p") -> Path:
    """frames: T×H×W×3 uint8 RGB (or T×H×W for gray pixel formats)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        fmt = "gray" if frames.ndim == 3 else "rgb24"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format=fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_square(num_frames: int, height: int, width: int) -> np.ndarray:
    """A bright square sliding across a dark background (something with motion), T×H×W×3."""
    frames = np.full((num_frames, height, width, 3), 30, np.uint8)
    size = max(2, min(height, width) // 4)
    for t in range(num_frames):
        x = (t * max(1, width // num_frames)) % max(1, width - size)
        frames[t, height // 3:height // 3 + size, x:x + size] = (220, 180, 40)
    return frames


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
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
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

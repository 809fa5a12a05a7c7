"""Decoding only the frames that are wanted or that other frames need.

In H.264 and HEVC many frames (typically the B-frames) are never referenced by another frame. When
only some frames are wanted (a 64-frame clip spread over a 300-frame video, a training clip taking every
second frame), those unreferenced frames can be left undecoded: FFmpeg's ``skip_frame = "NONREF"`` is
set for each packet whose frame is not wanted and cleared for each one that is. On the shared Kinetics
clips this halves the decoding time of a B-frame-heavy video, and the frames returned are bit-identical
to a full decode.

A packet's frame index (its place in display order) is the rank of its presentation timestamp. Decode
order differs from display order only within the codec's reordering window, so a streaming sort over a
window of :data:`REORDER_LOOKAHEAD` packets ranks each packet before it is sent to the decoder, without
holding the whole video's packets. Containers whose packets may lack timestamps (AVI, raw streams) are
not planned this way: :func:`can_skip_frames` says which, and :class:`SkippingUnsupported` tells the
caller to decode plainly when a stream breaks the assumptions midway.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Collection, Iterator

import av

SKIPPABLE_CODECS = frozenset({"h264", "hevc"})
# Containers that timestamp every packet (MP4 / MOV and Matroska / WebM; PyAV names them by FFmpeg's list).
TIMESTAMPED_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm"})
# More packets than any H.264 / HEVC stream reorders over (both standards cap the reordering at 16 frames).
REORDER_LOOKAHEAD = 32


class SkippingUnsupported(Exception):
    """The stream does not allow planned skipping after all: a packet or frame without a timestamp, two
    packets with the same one, reordering deeper than the window, or packets the container marks to be
    discarded (an edit list starting after the first frame), which would shift the frame numbering."""


def can_skip_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> bool:
    """Whether :func:`frames_skipping_unwanted` applies: an H.264 / HEVC stream in a timestamped container."""
    formats = set(container.format.name.split(","))
    return stream.codec_context.name in SKIPPABLE_CODECS and bool(formats & TIMESTAMPED_CONTAINERS)


def frames_skipping_unwanted(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                             wanted: Collection[int], last: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` in display order for every frame decoded up to index ``last``: all wanted ones
    and the unwanted ones other frames reference (those FFmpeg cannot skip). A frame's index is its
    packet's rank in display order, which is its place in a full decode as long as the decoder drops no
    frame (the cases where the container says it will raise :class:`SkippingUnsupported`; a wanted
    frame missing at the end makes the caller decode plainly). FFmpeg's errors are let through.
    """
    codec = stream.codec_context
    index_of: dict[int, int] = {}  # pts -> display index, for packets ranked so far
    unranked: list[int] = []  # heap of the pts still waiting for their rank
    held: deque[av.Packet] = deque()  # packets in decode order, sent once ranked
    newest_ranked: int | None = None

    def rank_smallest() -> None:
        nonlocal newest_ranked
        pts = heapq.heappop(unranked)
        if pts in index_of:
            raise SkippingUnsupported("two packets share a timestamp")
        index_of[pts] = len(index_of)
        newest_ranked = pts

    def ranked_packets() -> Iterator[av.Packet | None]:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream marker; the decoder is flushed below
                continue
            if packet.pts is None:
                raise SkippingUnsupported("a packet has no timestamp")
            if packet.is_discard:
                raise SkippingUnsupported("the container discards some frames (an edit list)")
            if newest_ranked is not None and packet.pts < newest_ranked:
                raise SkippingUnsupported(f"frames reorder over more than {REORDER_LOOKAHEAD} packets")
            held.append(packet)
            heapq.heappush(unranked, packet.pts)
            if len(unranked) > REORDER_LOOKAHEAD:
                rank_smallest()
            while held and held[0].pts in index_of:
                yield held.popleft()
        while unranked:
            rank_smallest()
        yield from held
        yield None  # flush the decoder

    try:
        for packet in ranked_packets():
            if packet is not None:
                codec.skip_frame = "DEFAULT" if index_of[packet.pts] in wanted else "NONREF"
            for frame in codec.decode(packet):
                if frame.pts is None or frame.pts not in index_of:
                    raise SkippingUnsupported("a decoded frame has no known timestamp")
                yield index_of[frame.pts], frame
                if index_of[frame.pts] >= last:
                    return
    finally:
        codec.skip_frame = "DEFAULT"

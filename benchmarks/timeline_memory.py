"""Peak memory of ``Recognizer.timeline`` on a 10-minute 256p video: bounded by the window and the
batch, not by the video's length.

    python benchmarks/timeline_memory.py --model K400_FOLDER [--minutes 10] [--out JSON]

The video is made by cycling the shared clips, resized to 340×256, at 25 fps, and written frame by frame
(so making it needs no memory either). The timeline runs in a fresh process whose peak resident set
size is reported, next to what decoding the whole video into memory would take. Since the clips' lengths
give the true cuts between actions, it also reports how far the timeline's boundaries land from them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
WIDTH, HEIGHT, FPS = 340, 256, 25


def main() -> None:
    args = _arguments()
    if args.one:
        print(json.dumps(_timeline(args)))
        return
    video = args.video or Path("/tmp/actionkit-timeline-benchmark") / f"{args.minutes:g}min_256p.mp4"
    if not video.is_file():
        started = time.perf_counter()
        frames = _make_video(video, args.clips, round(args.minutes * 60 * FPS))
        print(f"wrote {video}: {frames} frames in {time.perf_counter() - started:.0f} s", flush=True)
    command = [sys.executable, __file__, "--one", "--model", args.model, "--video", str(video),
               "--window", str(args.window), "--stride", str(args.stride), "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    row = json.loads(done.stdout.strip().splitlines()[-1])
    full_decode_gib = row["num_frames"] * HEIGHT * WIDTH * 3 / 2**30
    row["full_decode_gib"] = full_decode_gib
    if args.video is None:  # made here from the clips: the true cuts are known
        row["boundaries"] = boundary_errors(row["segments"], true_cuts(args.clips, row["num_frames"]), args.stride / FPS)
        print("boundaries: " + ", ".join(f"{k} {v}" for k, v in row["boundaries"].items()))
    print(f"{row['duration'] / 60:.1f} min video, {row['windows']} windows of {args.window} frames every "
          f"{args.stride}: {row['seconds']:.0f} s ({row['backend']} {row['precision']}), peak RSS "
          f"{row['peak_rss_mib'] / 1024:.2f} GiB (decoding it whole would take {full_decode_gib:.1f} GiB of frames)")
    print("segments:", ", ".join(f"{s['label']} {s['start']:.0f}-{s['end']:.0f}s" for s in row["segments"][:8]),
          "..." if len(row["segments"]) > 8 else "")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(row, indent=2) + "\n")
        print(f"wrote {args.out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub or export folder")
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--video", type=Path, default=None, help="use this video instead of making one")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=0, help="windows per batch (0: the library's default)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def _sources(clips: Path) -> list[Path]:
    from actionkit.data.video import expand_video_paths

    return [p for p in expand_video_paths([clips]) if "flow" not in p.name]


def true_cuts(clips: Path, total: int) -> list[float]:
    """Seconds at which one clip ends and the next begins in the video :func:`_make_video` writes."""
    from actionkit.data.frame_source import FrameSource

    lengths = []
    for source in _sources(clips):
        with FrameSource(source) as frames:
            lengths.append(sum(len(chunk) for chunk in frames.chunks(64)))
    cuts, at = [], 0
    while at < total:
        for length in lengths:
            at += length
            if at < total:
                cuts.append(at / FPS)
    return cuts


def boundary_errors(segments: list[dict], cuts: list[float], stride_s: float) -> dict:
    """Each boundary between two segments against its nearest true cut, and each cut against its nearest
    boundary (a missed cut shows there)."""
    import numpy as np

    bounds = np.array([s["end"] for s, t in zip(segments, segments[1:]) if s["end"] == t["start"]])
    true = np.array(cuts)
    if not len(bounds) or not len(true):
        return {"boundaries": int(len(bounds)), "cuts": int(len(true))}
    to_cut = np.abs(bounds[:, None] - true[None]).min(axis=1)
    to_boundary = np.abs(true[:, None] - bounds[None]).min(axis=1)
    return {"boundaries": int(len(bounds)), "cuts": int(len(true)),
            "median_error_s": round(float(np.median(to_cut)), 3),
            "boundaries_within_a_stride": round(float(np.mean(to_cut <= stride_s)), 3),
            "cuts_within_a_stride_of_a_boundary": round(float(np.mean(to_boundary <= stride_s)), 3)}


def _make_video(path: Path, clips: Path, total: int) -> int:
    import av
    import cv2

    from actionkit.data.frame_source import FrameSource

    sources = _sources(clips)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = 2_000_000
        while written < total:
            for source in sources:
                with FrameSource(source) as frames:
                    for chunk in frames.chunks(16):
                        for image in chunk:
                            if written == total:
                                break
                            image = cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
                            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                                container.mux(packet)
                            written += 1
                if written == total:
                    break
        for packet in stream.encode():
            container.mux(packet)
    return written


def _timeline(args: argparse.Namespace) -> dict:
    from actionkit import Recognizer

    recognizer = Recognizer.from_pretrained(args.model, device="cpu")
    started = time.perf_counter()
    result = recognizer.timeline(args.video, window=args.window, stride=args.stride, batch_size=args.batch_size or None)
    seconds = time.perf_counter() - started
    return {"video": str(args.video), "num_frames": result.num_frames, "duration": result.duration,
            "window": args.window, "stride": args.stride, "batch_size": args.batch_size or "default", "windows": len(result.windows),
            "backend": recognizer.backend_name, "precision": getattr(recognizer.backend, "precision", "fp32"),
            "refine_window": result.refine_window,
            "seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "segments": [vars(s) for s in result.segments]}


if __name__ == "__main__":
    main()

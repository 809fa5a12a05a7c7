"""Peak memory of ``actionkit predict`` on the same 3-minute 340×256 stream as MP4 (its header counts the
frames) and as Matroska (its header does not): equal, since neither decodes the whole video into memory.

    python benchmarks/container_memory.py --model K400_FOLDER [--minutes 3] [--codec libx264] [--out JSON]

The video (a moving pattern, 25 fps) is encoded once, frame by frame, as MP4 with PyAV, and its packets
are copied unchanged into an MKV. Each file is predicted by ``python -m actionkit.cli predict`` in a fresh
process whose peak resident set size is read with ``os.wait4``; the script prints both peaks, their ratio
and what holding every decoded frame would take.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from result_files import cpu_name, result_path

WIDTH, HEIGHT, FPS = 340, 256, 25


def main() -> None:
    args = _arguments()
    folder = Path(tempfile.gettempdir()) / "actionkit-container-memory"
    folder.mkdir(parents=True, exist_ok=True)
    mp4 = folder / f"{args.minutes:g}min_{args.codec}.mp4"
    mkv = mp4.with_suffix(".mkv")
    num_frames = round(args.minutes * 60 * FPS)
    if not (mp4.is_file() and mkv.is_file()):
        started = time.perf_counter()
        _write(mp4, num_frames, args.codec)
        _remux(mp4, mkv)
        print(f"wrote {mp4} and {mkv}: {num_frames} frames in {time.perf_counter() - started:.0f} s", flush=True)
    rows = {video.suffix[1:]: _predict_peak(video, args.model) for video in (mp4, mkv)}
    whole_mib = num_frames * WIDTH * HEIGHT * 3 / 2**20
    report = {"cpu": cpu_name(), "cores": os.cpu_count(), "video": f"{args.minutes:g} min {WIDTH}×{HEIGHT} "
              f"{FPS} fps {args.codec}", "frames": num_frames, "all_frames_mib": round(whole_mib),
              **{f"{k}_peak_rss_mib": round(v["peak_rss_mib"]) for k, v in rows.items()},
              "mkv_over_mp4": round(rows["mkv"]["peak_rss_mib"] / rows["mp4"]["peak_rss_mib"], 3),
              "top1": {k: v["top1"] for k, v in rows.items()}}
    print(f"{report['cpu']} ({report['cores']} cores), {report['video']}, model {args.model}")
    for kind, row in rows.items():
        print(f"  {kind.upper()}: peak RSS {row['peak_rss_mib']:.0f} MiB, {row['seconds']:.1f} s, top-1 {row['top1']}")
    print(f"  MKV / MP4: {report['mkv_over_mp4']:.2f} (every decoded frame held would be {whole_mib:.0f} MiB)")
    out = args.out or result_path("container_memory")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder (e.g. models/i3d-kinetics-400)")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--codec", default="libx264", help="video codec PyAV encodes with (libx264, mpeg4, ...)")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default: benchmarks/results/...)")
    return parser.parse_args()


def _predict_peak(video: Path, model: str) -> dict:
    """Run ``actionkit predict`` on ``video`` in a fresh process: its peak RSS (MiB), seconds and top-1."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "actionkit.cli", "predict", str(video), "--model", model,
                                  "--json", "-k", "1"], stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            sys.exit(f"predict {video} failed:\n{err.read()[-3000:]}")
        (result,) = json.loads(out.read())
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "seconds": seconds, "top1": result["predictions"][0]["label"]}


def _write(path: Path, num_frames: int, codec: str) -> None:
    """A moving pattern: a diagonal gradient scrolling under a square that crosses the frame."""
    import av
    import numpy as np

    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for t in range(num_frames):
            image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            image[..., 0] = (xs + ys + 2 * t) % 256
            image[..., 1] = (xs - ys + t) % 256
            image[..., 2] = 96
            x = (4 * t) % (WIDTH - 64)
            image[96:160, x:x + 64] = (230, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _remux(src: Path, dst: Path) -> None:
    """Copy the packets of ``src`` unchanged into the container ``dst``'s suffix names."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        for packet in inp.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            out.mux(packet)


if __name__ == "__main__":
    main()

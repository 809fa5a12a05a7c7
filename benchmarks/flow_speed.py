"""Optical-flow speed per frame pair: DIS (ultrafast / fast / medium) and TV-L1, at Rev2Net's short side
128, on real UT-Interaction clips. One OpenCV thread (how precompute_flows' workers run), decoding not
timed; resizing and grayscale conversion are (they are part of compute_flow).

    python benchmarks/flow_speed.py --videos 3

Prints a table and writes benchmarks/results/flow_speed_<machine>_<date>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from result_files import result_path

from actionkit.data.flow import FlowConfig, compute_flow
from actionkit.data.video import read_video

HERE = Path(__file__).resolve().parent
UT = HERE.parent.parent / "shared" / "data" / "ut_interaction"
CONFIGS = {
    "dis ultrafast": FlowConfig(method="dis", dis_preset="ultrafast"),
    "dis fast": FlowConfig(method="dis", dis_preset="fast"),
    "dis medium": FlowConfig(method="dis", dis_preset="medium"),
    "tvl1": FlowConfig(method="tvl1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3, help="how many UT-Interaction clips (default 3)")
    parser.add_argument("--pairs", type=int, default=40, help="frame pairs timed per clip (default 40)")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="repeat a method until this much time was spent on it, report its best run")
    parser.add_argument("--data", type=Path, default=UT, help="the UT-Interaction folder (with labels.csv)")
    parser.add_argument("--out", type=Path, default=result_path("flow_speed"))
    args = parser.parse_args()

    labels = args.data / "labels.csv"
    if not labels.is_file():
        sys.exit(f"UT-Interaction not found: {labels} (the project's ../shared folder)")
    with open(labels, newline="") as f:
        rows = list(csv.DictReader(f))
    # Evenly spread over the list: both sets, various frame sizes.
    picked = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, args.videos).round()]
    clips, decode_seconds, decoded_frames = {}, 0.0, 0
    for row in picked:
        start = time.perf_counter()
        frames = read_video(args.data / row["path"]).frames
        decode_seconds += time.perf_counter() - start
        decoded_frames += len(frames)
        clips[row["path"]] = frames[:args.pairs + 1]
    total_frames = sum(int(row["frames"]) for row in rows)

    cv2.setNumThreads(1)
    results = []
    for name, config in CONFIGS.items():
        compute_flow(next(iter(clips.values()))[:2], config)  # warm-up
        pairs = sum(len(frames) - 1 for frames in clips.values())
        runs: list[float] = []
        while sum(runs) < args.min_seconds or not runs:  # fast methods are repeated; the best run counts
            start = time.perf_counter()
            for frames in clips.values():
                compute_flow(frames, config)
            runs.append(time.perf_counter() - start)
        seconds = min(runs)
        per_pair = seconds / pairs
        results.append({"method": name, "pairs": pairs, "runs": len(runs),
                        "ms_per_pair": round(1000 * per_pair, 2), "pairs_per_s": round(1 / per_pair, 1),
                        "ut_dataset_core_minutes": round(per_pair * (total_frames - len(rows)) / 60, 1)})

    sizes = {path: f"{frames.shape[2]}×{frames.shape[1]}" for path, frames in clips.items()}  # W×H
    decode_ms = 1000 * decode_seconds / decoded_frames
    print(f"UT-Interaction clips: {', '.join(f'{p} ({s})' for p, s in sizes.items())}")
    print(f"short side 128, 1 OpenCV thread, OpenCV {cv2.__version__}; "
          f"decoding (PyAV, for comparison): {decode_ms:.2f} ms/frame")
    print(f"{'method':<14} {'pairs':>6} {'ms/pair':>9} {'pairs/s':>8} {'all UT (core-min)':>18}")
    for r in results:
        print(f"{r['method']:<14} {r['pairs']:>6} {r['ms_per_pair']:>9.2f} {r['pairs_per_s']:>8.1f} "
              f"{r['ut_dataset_core_minutes']:>18.1f}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "videos": sizes, "short_side": 128, "opencv_threads": 1, "decode_ms_per_frame": round(decode_ms, 2),
        "opencv": cv2.__version__, "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "ut_dataset_pairs": total_frames - len(rows), "results": results,
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

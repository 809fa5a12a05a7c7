"""INT8 on the CPU: OpenVINO INT8 against torch, ONNX Runtime and OpenVINO in fp32, in one run.

    python benchmarks/int8_speed.py --model K400_FOLDER [--calibrate ../shared/data/clips] [--out JSON]

1. Export (not timed): the model with ``--int8 --dynamic-clip-len``, calibrated on the clips of
   ``--calibrate`` (``--export DIR`` reuses an earlier export instead).
2. Model only, 32×224² at batch 1 and 4: torch fp32, ONNX Runtime fp32, OpenVINO fp32 and OpenVINO
   INT8, timed in interleaved rounds by :func:`actionkit.benchmark.model_speed`, so a slow spell of the
   machine weighs on every row alike and the ratios hold.
3. End to end at the model's clip length: ``Recognizer.predict`` on the export folder (``auto``, which
   takes the INT8 model) against the naive loop of ``end_to_end.py`` (decode everything with PyAV,
   OpenCV resize, eager fp32 PyTorch, one clip at a time), with the top-1 labels of both.

The CPU's name is printed and saved beside every figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from end_to_end import DEFAULT_CLIPS, naive_loop
from result_files import cpu_name, result_path

from actionkit.benchmark import end_to_end_speed, format_model_speed, model_speed
from actionkit.data.video import expand_video_paths
from actionkit.export import CalibrationConfig, export_model
from actionkit.hub import load_pretrained
from actionkit.predict import Recognizer


def main() -> None:
    args = _arguments()
    videos = [p for p in expand_video_paths([args.videos]) if "flow" not in p.name]  # the flow GIF is not RGB video
    with tempfile.TemporaryDirectory(prefix="actionkit-int8-") as scratch:
        export = args.export or Path(scratch) / "export"
        if args.export is None:
            calibration = _only_rgb(args.calibrate, Path(scratch) / "calibration")
            export_model(args.model, export, int8=True, dynamic_clip_len=True, check=False,
                         calibration=CalibrationConfig(calibration, clips=args.calibration_clips),
                         log=lambda line: print(line, flush=True))
        rows = model_speed(str(export), backends=["torch", "onnxruntime", "openvino"], precisions=["fp32", "int8"],
                           batch_sizes=args.batch_sizes, clip_lens=[args.clip_len], device="cpu",
                           repeats=args.repeats, progress=True)
        measured = [r for r in rows if r.seconds_per_clip]
        print(format_model_speed(measured))
        per_clip = {(r.backend, r.precision, r.batch_size): r.seconds_per_clip for r in measured}
        ratios = {f"batch {b}": {f"{backend} {precision}": per_clip[("onnxruntime", "fp32", b)] / seconds
                                 for (backend, precision, size), seconds in per_clip.items() if size == b}
                  for b in args.batch_sizes}
        for batch, against in ratios.items():
            print(f"{batch}, × ONNX Runtime fp32: " + ", ".join(f"{k} {v:.2f}×" for k, v in against.items()))
        naive_seconds, naive_labels = naive_loop(load_pretrained(args.model), videos, torch.device("cpu"))
        recognizer = Recognizer.from_pretrained(str(export))
        speed = end_to_end_speed(recognizer, videos, batch_size=4, repeats=args.repeats)
        labels = [r.top1.label for r in recognizer.predict([str(v) for v in videos], top_k=1)]
    end_to_end = {**speed.to_dict(), "backend": recognizer.backend_description,
                  "naive_seconds": naive_seconds, "speedup_over_naive": naive_seconds / speed.seconds,
                  "top1": labels, "naive_top1": naive_labels,
                  "top1_same_as_naive": sum(a == b for a, b in zip(labels, naive_labels))}
    print(f"end to end, {len(videos)} videos at {recognizer.config.preprocessing.clip_len} frames: "
          f"Recognizer ({recognizer.backend_description}) {speed.seconds:.2f} s, naive loop {naive_seconds:.2f} s: "
          f"{end_to_end['speedup_over_naive']:.2f}×; same top-1 on {end_to_end['top1_same_as_naive']}/{len(videos)}")
    report = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "clip_len": args.clip_len,
              "model_only": [r.to_dict() for r in rows], "speedup_over_onnxruntime_fp32": ratios,
              "end_to_end": end_to_end, "videos": [str(v) for v in videos]}
    out = args.out or result_path("int8_speed")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"CPU: {report['cpu']}; wrote {out}")


def _only_rgb(source: Path, folder: Path) -> Path:
    """The calibration videos without the flow GIF (a picture of optical flow, not a video to classify)."""
    if source.is_file() or not list(source.glob("*flow*")):
        return source
    folder.mkdir()
    for video in expand_video_paths([source]):
        if "flow" not in video.name:
            (folder / video.name).symlink_to(video.resolve())
    return folder


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder (or checkpoint)")
    parser.add_argument("--export", type=Path, default=None, help="an earlier --int8 --dynamic-clip-len export")
    parser.add_argument("--calibrate", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--calibration-clips", type=int, default=32)
    parser.add_argument("--videos", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--clip-len", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


if __name__ == "__main__":
    main()

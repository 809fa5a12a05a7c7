"""End to end: ``Recognizer.predict`` on a folder of real clips against the loop a user would write.

    python benchmarks/end_to_end.py --model K400_FOLDER [--videos ../shared/data/clips] [--out JSON]

The naive loop, for each video: decode every frame with PyAV (``to_ndarray("rgb24")``), take the
config's frames, resize with OpenCV and normalise with numpy, then run the I3D in eager fp32 PyTorch one
clip at a time. The Recognizer runs with each backend asked for (default: ``auto``, which is bf16
channels-last PyTorch on a CPU with AMX, and ``onnxruntime`` fp32), and its model-only time on the same
clips in the same batches shows how much decoding the pipeline leaves exposed: each of ``--repeats``
rounds times predict and then the model alone, and the overhead is the median of the rounds' ratios.
The floor is what loading must add on a CPU the model keeps busy (its CPU time over all the cores).
Everything runs in one process, one after the other, so the ratios come from the same run. Top-1 labels
are compared with the naive loop's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from actionkit import Recognizer
from actionkit.benchmark import end_to_end_speed
from actionkit.data.video import expand_video_paths
from actionkit.hub import load_pretrained, model_config_of

DEFAULT_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    videos = [p for p in expand_video_paths([args.videos]) if "flow" not in p.name]  # the flow GIF is not RGB video
    model = load_pretrained(args.model)
    device = torch.device(args.device)
    naive_seconds, naive_labels = naive_loop(model, videos, device)
    print(f"naive loop: {len(videos)} videos in {naive_seconds:.2f} s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for backend in args.backends:
            recognizer = _recognizer(args.model, backend, Path(scratch), device)
            speed = end_to_end_speed(recognizer, videos, batch_size=args.batch_size, repeats=args.repeats)
            labels = [r.top1.label for r in recognizer.predict([str(v) for v in videos], top_k=1)]
            row = {**speed.to_dict(), "asked": backend, "speedup_over_naive": naive_seconds / speed.seconds,
                   "top1_same_as_naive": sum(a == b for a, b in zip(labels, naive_labels)) / len(videos)}
            rows.append(row)
            print(f"Recognizer {backend} ({speed.backend} {speed.precision}): {speed.seconds:.2f} s, model alone "
                  f"{speed.model_only_seconds:.2f} s ({100 * speed.overhead:+.1f}%, rounds "
                  f"{', '.join(f'{100 * o:+.0f}%' for o in speed.overhead_per_round)}; loading takes "
                  f"{speed.load_cpu_seconds:.2f} CPU-s, floor {100 * speed.overhead_floor:+.1f}%), "
                  f"{row['speedup_over_naive']:.2f}× the naive loop", flush=True)
    print()
    print(_table(naive_seconds, rows, len(videos)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"videos": [str(v) for v in videos], "threads": args.threads,
                                        "device": _device_name(device),
                                        "naive_seconds": naive_seconds, "naive_top1": naive_labels,
                                        "recognizer": rows}, indent=2) + "\n")
        print(f"\nwrote {args.out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub or export folder")
    parser.add_argument("--videos", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--backends", nargs="+", default=["auto", "onnxruntime"],
                        choices=["auto", "torch", "onnxruntime"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]: both pipelines run there")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _recognizer(model: str, backend: str, scratch: Path, device: torch.device) -> Recognizer:
    """``onnxruntime`` from a Hub folder without model.onnx: export one first (not timed)."""
    if backend == "onnxruntime" and not (Path(model) / "model.onnx").is_file():
        from actionkit.export.exporter import export_model

        export_model(model, scratch / "export", check=False, log=lambda line: None)
        model = str(scratch / "export")
    return Recognizer.from_pretrained(model, device=str(device), backend=backend)  # type: ignore[arg-type]


def naive_loop(model: torch.nn.Module, videos: list[Path], device: torch.device) -> tuple[float, list[str]]:
    """What a user would write: full decode, OpenCV resize, numpy normalisation, one eager fp32 clip at a time
    (on ``device``: the clip is copied there, the logits' argmax read back)."""
    config = model_config_of(model)
    pre = config.preprocessing
    model = model.eval().to(device)
    labels = []
    started = time.perf_counter()
    for path in videos:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        indices = np.linspace(0, len(frames) - 1, pre.clip_len).round().astype(int)  # uniform over the video
        clip = []
        for i in indices:
            h, w = frames[i].shape[:2]
            scale = pre.resize_short_side / min(h, w)
            resized = cv2.resize(frames[i], (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
            top, left = (resized.shape[0] - pre.crop_size) // 2, (resized.shape[1] - pre.crop_size) // 2
            clip.append(resized[top:top + pre.crop_size, left:left + pre.crop_size])
        x = np.stack(clip).astype(np.float32) / 255.0 * 2.0 - 1.0  # T×H×W×3 in [-1, 1]
        x = torch.from_numpy(x.transpose(3, 0, 1, 2)[None].copy()).to(device)
        with torch.no_grad():
            logits = model(x)
        labels.append(config.labels[int(logits.argmax())])
    return time.perf_counter() - started, labels


def _table(naive_seconds: float, rows: list[dict], count: int) -> str:
    lines = ["| pipeline | precision | s/video | vs naive | model alone | over the model: median / mean of rounds "
             "| floor: loading's CPU over all cores |", "|---|---|---|---|---|---|---|",
             f"| naive loop (PyAV full decode, OpenCV + numpy, eager fp32, 1 clip at a time) | fp32 | "
             f"{naive_seconds / count:.2f} | 1.00× | | | |"]
    for r in rows:
        lines.append(f"| Recognizer, backend {r['asked']} → {r['backend']} | {r['precision']} | "
                     f"{r['seconds'] / count:.2f} | {r['speedup_over_naive']:.2f}× | "
                     f"{r['model_only_seconds'] / count:.2f} s/video | {100 * r['overhead']:+.1f}% / "
                     f"{100 * r['overhead_mean']:+.1f}% | {100 * r['overhead_floor']:+.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

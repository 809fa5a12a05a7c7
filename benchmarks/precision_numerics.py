"""How far bf16 and fp16 move the Kinetics-400 I3D's outputs from fp32 on a device (a GPU, typically).

    python benchmarks/precision_numerics.py --model K400_FOLDER --device cuda [--out JSON]

Two inputs. DeepMind's reference tensor (``../shared/data/reference``, 64×224² frames with the logits
DeepMind's own model gives them) through the inference backend (:class:`~actionkit.predict.backends.TorchBackend`,
batch norms folded, channels-last, autocast at the precision): per precision, the largest absolute
logit difference from DeepMind's logits and from this device's fp32, and whether the top-1 and the
top-5 set match. And the real clips of ``../shared/data/clips`` through ``Recognizer.predict`` at each
precision: top-1 agreement with fp32 on the same device and with fp32 on the CPU, and the largest
difference of the top-1 probability.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from actionkit import Recognizer
from actionkit.data.video import expand_video_paths
from actionkit.hub import load_pretrained
from actionkit.predict.backends import TorchBackend

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--reference", type=Path, default=SHARED / "reference" / "arm_wrestling_64f.npz")
    parser.add_argument("--clips", type=Path, default=SHARED / "clips")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "reference": reference_tensor(args, device)}
    if args.clips.is_dir():
        result["clips"] = clips(args, device)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def reference_tensor(args: argparse.Namespace, device: torch.device) -> dict:
    reference = np.load(args.reference)
    x = (torch.from_numpy(reference["frames"]).float() / 127.5 - 1).permute(3, 0, 1, 2)[None]
    deepmind = reference["logits"]
    logits = {p: TorchBackend(load_pretrained(args.model), device, p)(x)[0].cpu().numpy() for p in args.precisions}
    fp32 = logits.get("fp32")
    rows = {}
    for precision, values in logits.items():
        rows[precision] = {
            "max_abs_diff_vs_deepmind": float(np.abs(values - deepmind).max()),
            "max_abs_diff_vs_fp32": float(np.abs(values - fp32).max()) if fp32 is not None else None,
            "top1_same_as_deepmind": bool(values.argmax() == deepmind.argmax()),
            "top5_same_as_deepmind": set(np.argsort(-values)[:5]) == set(np.argsort(-deepmind)[:5]),
        }
    return rows


def clips(args: argparse.Namespace, device: torch.device) -> dict:
    videos = [str(p) for p in expand_video_paths([args.clips]) if "flow" not in p.name]  # the flow GIF is not RGB
    cpu = Recognizer.from_pretrained(args.model, device="cpu", precision="fp32").predict(videos, top_k=1)
    runs = {p: Recognizer.from_pretrained(args.model, device=str(device), precision=p).predict(videos, top_k=1)
            for p in args.precisions}
    fp32 = runs.get("fp32", cpu)
    rows = {}
    for precision, predictions in runs.items():
        rows[precision] = {
            "top1_same_as_fp32_here": sum(a.top1.label == b.top1.label for a, b in zip(predictions, fp32)),
            "top1_same_as_cpu_fp32": sum(a.top1.label == b.top1.label for a, b in zip(predictions, cpu)),
            "max_top1_probability_diff_vs_cpu_fp32": max(abs(a.top1.score - b.top1.score)
                                                         for a, b in zip(predictions, cpu)),
            "videos": len(videos),
            "top1": {Path(v).name: p.top1.label for v, p in zip(videos, predictions)},
        }
    return rows


if __name__ == "__main__":
    main()

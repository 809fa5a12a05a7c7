"""Model-only throughput per backend and precision at batch 1, 4 and 8 for 32 and 64 frames at 224².

    python benchmarks/model_throughput.py --model K400_FOLDER [--out benchmarks/results/model_throughput_<machine>_<date>.json]

The same measurement as ``actionkit benchmark`` (see :mod:`actionkit.benchmark`), with the full grid by
default: torch fp32, torch bf16 (where the CPU has AMX) and ONNX Runtime fp32 (exported on the fly with
a dynamic clip length when the folder has no model.onnx), plus TensorRT where an engine and tensorrt
are present; ``torch-compile`` (asked for by name) is PyTorch under ``torch.compile``, CUDA graphs on a
GPU. Random input; medians of ``--repeats`` calls after ``--warmup`` warm-up calls. Below the table, each
row's achieved TFLOP/s (111 GFLOP per 32×224² clip, counted by PyTorch's FLOP counter) and, on a GPU
the peak table in :mod:`actionkit.benchmark` knows, its share of the data-sheet peak; on CPU, its share
of the matmul rate its library reaches, timed in the same rounds (:mod:`actionkit.benchmark.matmul_rate`).
One GPU configuration (batch 32, 32×224², bf16):

    python benchmarks/model_throughput.py --model K400_FOLDER --device cuda --backends torch \
        --precisions bf16 --batch-sizes 32 --clip-lens 32
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from actionkit.benchmark import (
    format_model_speed,
    format_roofline,
    model_speed,
    peak_tflops,
    roofline_inputs,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hub or export folder")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime", "tensorrt"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--clip-lens", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed rounds first (torch-compile on CUDA needs 3: compile, record the graph, replay)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = model_speed(args.model, args.backends, args.precisions, args.batch_sizes, args.clip_lens,
                       device=args.device, repeats=args.repeats, warmup=args.warmup)
    print(format_model_speed(rows))
    gpu, rates = roofline_inputs(rows, args.device)
    print("\n" + format_roofline(rows, gpu))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                   "gpu": gpu, "gpu_peak_tflops": {p: peak_tflops(gpu, p) for p in args.precisions} if gpu else None,
                   "cpu_matmul_gflops": rates, "torch": torch.__version__}
        args.out.write_text(json.dumps({"machine": machine, "rows": [r.to_dict() for r in rows]}, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

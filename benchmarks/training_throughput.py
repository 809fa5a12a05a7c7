"""Training throughput: clips/s and peak memory of plain fine-tuning, self-distillation and Rev2Net,
each in fp32, fp32 channels-last, bf16 and bf16 channels-last (``--settings`` picks), on real
UT-Interaction clips, on the CPU or a GPU (``--device``).

    python benchmarks/training_throughput.py --model K400_FOLDER [--out JSON]

Each configuration runs in a fresh process (so its peak resident memory is its own) through the same
pieces ``actionkit finetune`` uses: the clip loader with its worker processes, the task (with its teacher
or decoders), autocast, backward, gradient clipping and the optimizer step. Flow targets are computed
into the cache before timing. Reported per configuration:

- clips/s over the timed steps (after ``--warmup`` steps);
- loader wait: the share of the timed wall clock the training loop spent waiting for the next batch
  (near 0 means the loader keeps the model fed);
- peak RSS of the training process (the loader workers are separate processes);
- on a GPU (``--device cuda``), the peak GPU memory PyTorch allocated.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_UT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ut_interaction"
VARIANTS = ("plain", "self-distill", "rev2net")
SETTINGS = {"fp32": ("off", False), "fp32 channels-last": ("off", True), "bf16": ("bf16", False),
            "bf16 channels-last": ("bf16", True)}


def main() -> None:
    args = _arguments()
    if args.one:
        print(json.dumps(_measure(args)))
        return
    rows = []
    for variant in args.variants:
        for setting in args.settings:
            command = [sys.executable, __file__, "--one", "--variant", variant, "--setting", setting,
                       *_shared_flags(args)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{variant} {setting} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{variant:13} {setting:20} {row['clips_per_second']:6.2f} clips/s  loader wait "
                  f"{100 * row['loader_wait']:4.1f}%  peak RSS {row['peak_rss_mib']:6.0f} MiB{_gpu_memory(row)}",
                  flush=True)
    print()
    print(_table(rows, args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items() if k != "one"},
                                        "rows": rows}, indent=2) + "\n")
        print(f"\nwrote {args.out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder (actionkit convert ...)")
    parser.add_argument("--data", type=Path, default=DEFAULT_UT, help="UT-Interaction folder with labels.csv")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the rows")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--frame-stride", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--flow-cache", type=Path, default=Path("/tmp/actionkit-bench-flow"))
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--setting", default="fp32", help=argparse.SUPPRESS)
    return parser.parse_args()


def _shared_flags(args: argparse.Namespace) -> list[str]:
    return ["--model", str(args.model), "--data", str(args.data), "--clip-len", str(args.clip_len),
            "--frame-stride", str(args.frame_stride),
            "--crop-size", str(args.crop_size), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--workers", str(args.workers), "--flow-cache", str(args.flow_cache),
            "--device", args.device]


def _measure(args: argparse.Namespace) -> dict:
    import torch

    from actionkit.benchmark import synchronize
    from actionkit.data.check import check_dataset
    from actionkit.data.datasets import scan_dataset
    from actionkit.data.flow import FlowCache, FlowConfig
    from actionkit.data.loader import ClipConfig, ClipDataset, finish_batch, make_loader
    from actionkit.data.transforms import AugmentConfig
    from actionkit.hub import load_pretrained
    from actionkit.train.loop import (
        TrainConfig,
        autocast_for,
        build_optimizer,
        freeze_batch_norm_statistics,
    )
    from actionkit.train.tasks import Task, TaskConfig

    amp, channels_last = SETTINGS[args.setting]
    torch.manual_seed(0)
    encoder = load_pretrained(args.model)
    index = scan_dataset(args.data, split_by="sequence", val=["9", "10", "15", "16"])
    encoder.replace_classifier(len(index.classes))
    task_config = TaskConfig(self_distill=args.variant == "self-distill", rev2net=args.variant == "rev2net")
    task = Task(encoder, task_config)
    train = check_dataset(index, workers=args.workers, progress=False).training_samples("train")
    flow_cache = FlowCache(args.flow_cache, FlowConfig(method="dis")) if task.needs_flow else None
    steps = args.warmup + args.steps
    samples = train.samples[: steps * args.batch_size]
    dataset = ClipDataset(samples, clips=ClipConfig(clip_len=args.clip_len, frame_stride=args.frame_stride,
                                                    augment=AugmentConfig(crop_size=args.crop_size)),
                          flow_cache=flow_cache, num_frames=train.num_frames, seed=0)
    if flow_cache is not None:  # fill the flow cache first: its one-off cost is not training throughput
        for i in range(len(dataset)):
            dataset[i]
    loader = make_loader(dataset, args.batch_size, workers=args.workers)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, lr=1e-5, optimizer="adamw", amp=amp,  # type: ignore[arg-type]
                         channels_last=channels_last)
    device = torch.device(args.device)
    task.to(device)
    if channels_last:
        task.to(memory_format=torch.channels_last_3d)
    optimizer = build_optimizer(list(task.trainable_parameters()), config)
    task.train()
    freeze_batch_norm_statistics(task.encoder)  # as actionkit finetune trains by default
    waited, clips, started = 0.0, 0, None
    batches = iter(loader)
    for step in range(steps):
        if step == args.warmup:
            synchronize(device)
            started, waited, clips = time.perf_counter(), 0.0, 0
        before = time.perf_counter()
        batch = next(batches)
        waited += time.perf_counter() - before
        with autocast_for(device, config.amp):
            out = task(finish_batch(batch, device))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(task.trainable_parameters(), 40.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clips += len(batch["label"])
    synchronize(device)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": args.variant, "setting": args.setting, "clip_len": args.clip_len, "crop_size": args.crop_size,
            "batch_size": args.batch_size, "steps": args.steps, "clips_per_second": clips / seconds,
            "loader_wait": waited / seconds, "peak_rss_mib": peak_kib / 1024, "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None}


def _table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"{args.batch_size} clips of {args.clip_len}×{args.crop_size}² (stride {args.frame_stride}) per step, "
             f"{args.steps} timed steps",
             "", "| objective | precision / layout | clips/s | loader wait | peak RSS | peak GPU memory |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        gpu = f"{r['peak_gpu_mib'] / 1024:.2f} GiB" if r.get("peak_gpu_mib") is not None else ""
        lines.append(f"| {r['variant']} | {r['setting']} | {r['clips_per_second']:.2f} | "
                     f"{100 * r['loader_wait']:.1f}% | {r['peak_rss_mib'] / 1024:.2f} GiB | {gpu} |")
    return "\n".join(lines)


def _gpu_memory(row: dict) -> str:
    return f"  peak GPU {row['peak_gpu_mib']:6.0f} MiB" if row.get("peak_gpu_mib") is not None else ""


if __name__ == "__main__":
    main()

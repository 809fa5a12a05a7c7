"""Training-batch throughput: actionkit's loader against the loop a user would otherwise write.

Both produce the same thing per sample: a 32-frame 224×224 RGB clip with a random crop and flip, its
label, and its flow targets (32×2×112×112) read from the flow cache. The naive loop decodes each whole
video with PyAV per sample and preprocesses in numpy, in the main process; actionkit's loader decodes
only up to the clip's last frame, converts only the frames it uses, resizes in uint8 and runs in
worker processes. Flows are precomputed first (DIS), so both read the same cache.

    python benchmarks/loader_throughput.py --data ../shared/data/ut_interaction --batches 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import av
import numpy as np
import torch
from result_files import result_path

from actionkit.data.datasets import scan_dataset
from actionkit.data.flow import FlowCache, FlowConfig, precompute_flows
from actionkit.data.loader import ClipConfig, ClipDataset, make_loader, set_loader_epoch


def naive_clip(path: Path, label: int, cache: FlowCache, rng: np.random.Generator, clip_len: int = 32) -> dict:
    """What a user writes first: decode everything, then slice, crop and resize in numpy."""
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    start = int(rng.integers(0, max(1, len(frames) - clip_len + 1)))
    idx = (start + np.arange(clip_len)) % len(frames)
    clip = frames[idx]
    t, h, w, _ = clip.shape
    side = min(h, w)
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    ys = (top + np.arange(224) * side / 224).astype(int)  # nearest-neighbour resize in numpy
    xs = (left + np.arange(224) * side / 224).astype(int)
    clip = clip[:, ys][:, :, xs]
    flows = np.load(cache.entry_path(path))  # whole entry, no memory map
    fidx = np.minimum(idx, len(flows) - 1)
    fh, fw = flows.shape[1:3]
    fy = (top / h * fh + np.arange(112) * side / h * fh / 112).astype(int)
    fx = (left / w * fw + np.arange(112) * side / w * fw / 112).astype(int)
    flow = flows[fidx][:, np.minimum(fy, fh - 1)][:, :, np.minimum(fx, fw - 1)]
    if rng.random() < 0.5:
        clip, flow = clip[:, :, ::-1], flow[:, :, ::-1]
    return {"frames": torch.from_numpy(np.ascontiguousarray(clip)), "flow": torch.from_numpy(np.ascontiguousarray(flow)),
            "label": label}


def run_naive(samples, cache: FlowCache, batch_size: int, batches: int) -> float:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(samples))
    start, done = time.perf_counter(), 0
    for b in range(batches):
        items = [naive_clip(samples[i].path, samples[i].label, cache, rng)
                 for i in order[(np.arange(batch_size) + b * batch_size) % len(samples)]]
        torch.stack([it["frames"] for it in items]), torch.stack([it["flow"] for it in items])
        done += len(items)
    return done / (time.perf_counter() - start)


def run_actionkit(samples, cache: FlowCache, batch_size: int, batches: int, workers: int) -> float:
    dataset = ClipDataset(samples, clips=ClipConfig(clip_len=32), flow_cache=cache)
    loader = make_loader(dataset, batch_size, workers=workers)
    set_loader_epoch(loader, 0)
    iterator = iter(loader)
    next(iterator)  # worker start-up is paid once per run, not per batch: leave it out
    start, done = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            set_loader_epoch(loader, 1)
            iterator = iter(loader)
            batch = next(iterator)
        assert batch["frames"].shape[1:] == (32, 3, 224, 224) and batch["flow"].shape[1:] == (32, 2, 112, 112)
        done += len(batch["label"])
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ut_interaction")
    parser.add_argument("--split-by", default="sequence")
    parser.add_argument("--val", default="9,10,15,16")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    index = scan_dataset(args.data, split_by=args.split_by, val=args.val.split(","))
    samples = index.split("train")
    cache = FlowCache(args.cache_dir, FlowConfig(method="dis"))
    report = precompute_flows([s.path for s in samples], cache, workers=args.workers)
    print(f"flow cache: {report.computed} computed, {report.skipped} already cached")

    torch.set_num_threads(1)
    naive = run_naive(samples, cache, args.batch_size, max(2, args.batches // 3))
    ours = run_actionkit(samples, cache, args.batch_size, args.batches, args.workers)
    rows = {"naive loop (full PyAV decode per sample, numpy, main process)": naive,
            f"actionkit ClipDataset + make_loader ({args.workers} workers)": ours}
    width = max(map(len, rows))
    print(f"{'loader':<{width}}  clips/s")
    for name, rate in rows.items():
        print(f"{name:<{width}}  {rate:7.1f}")
    print(f"ratio: {ours / naive:.2f}x  (clips of 32×224×224 with 32×2×112×112 flow targets)")
    out = result_path("loader_throughput")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"clips_per_second": rows, "ratio": ours / naive, "args": vars(args)}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()

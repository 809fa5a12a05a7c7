"""Ray's overhead on one machine: the Ray batch job against single-process ``actionkit predict``.

    python benchmarks/ray_batch_overhead.py --model K400_FOLDER [--videos ../shared/data/ut_interaction]

Both predict the same videos with the same model and backend, in one run: first single-process
``Recognizer.from_pretrained(...).predict(videos)`` (what ``actionkit predict`` does: loading the model
and predicting are both timed), then :func:`actionkit.predict.ray_batch.predict_on_ray` on a local Ray
instance started beforehand and not timed, as ``ray start`` would be on a cluster (the model actors'
start, decoding tasks and the output file are timed). The labels of the two are compared. Writes
``results/ray_batch_overhead_<machine>_<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import ray
from result_files import cpu_name, result_path

from actionkit.predict import Recognizer
from actionkit.predict.ray_batch import RayBatchConfig, batch_videos, predict_on_ray

DEFAULT_UT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ut_interaction"


def main() -> None:
    args = _arguments()
    videos = batch_videos([args.videos])
    started = time.perf_counter()
    single = Recognizer.from_pretrained(args.model, backend=args.backend).predict(videos, batch_size=args.batch_size)
    single_seconds = time.perf_counter() - started
    print(f"single process: {len(videos)} videos in {single_seconds:.1f} s", flush=True)
    ray.init(num_cpus=args.cpus, logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "results.jsonl"
        config = RayBatchConfig(model=args.model, out=out, workers=args.workers, cpus_per_worker=args.cpus / args.workers,
                                batch_size=args.batch_size, backend=args.backend)
        report = predict_on_ray(videos, config, progress=False)
        rows = {row["video"]: row for row in map(json.loads, out.read_text().splitlines())}
    ray.shutdown()
    same = sum(bool(r.predictions) and rows[r.video]["predictions"][0]["label"] == r.top1.label for r in single)
    ratio = report.seconds / single_seconds
    print(f"Ray batch job: {report.written} videos in {report.seconds:.1f} s: {ratio:.2f}× the single process's "
          f"time ({100 * (ratio - 1):+.0f}%); same top-1 on {same}/{len(videos)}; CPU: {cpu_name()}")
    out_file = args.out or result_path("ray_batch_overhead")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({
        "cpu": cpu_name(), "videos": len(videos), "model": args.model, "backend": args.backend,
        "single_process_seconds": single_seconds, "ray_seconds": report.seconds, "ray_over_single": ratio,
        "ray_workers": args.workers, "ray_cpus": args.cpus, "same_top1": same, "ray_failed": report.failed,
        "single_failed": sum(not r.ok for r in single)}, indent=2) + "\n")
    print(f"wrote {out_file}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--videos", type=Path, default=DEFAULT_UT)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray instance's CPUs")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


if __name__ == "__main__":
    main()

"""Ray's overhead on one machine: the Ray batch job against single-process ``actionkit predict``.

    python benchmarks/ray_batch_overhead.py --model K400_FOLDER [--videos ../shared/data/ut_interaction]

Both predict the same videos with the same model and backend, in one run: first single-process
``Recognizer.from_pretrained(...).predict(videos)`` (what ``actionkit predict`` does: loading the model
and predicting are both timed), then :func:`actionkit.predict.ray_batch.predict_on_ray` on a local Ray
instance started beforehand and not timed, as ``ray start`` would be on a cluster (the model actors'
start, decoding tasks and the output file are timed), once per ``--decoders`` value (the first job
also starts Ray's worker processes). The labels are compared with the single process's. Writes
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
    jobs = []
    with tempfile.TemporaryDirectory() as scratch:
        for i, decoders in enumerate(args.decoders):
            out = Path(scratch) / f"results-{i}.jsonl"
            config = RayBatchConfig(model=args.model, out=out, workers=args.workers,
                                    cpus_per_worker=args.cpus / args.workers, batch_size=args.batch_size,
                                    backend=args.backend, decoders=None if decoders == "auto" else int(decoders))
            report = predict_on_ray(videos, config, progress=False)
            rows = {row["video"]: row for row in map(json.loads, out.read_text().splitlines())}
            same = sum(bool(r.predictions) and rows[r.video]["predictions"][0]["label"] == r.top1.label for r in single)
            ratio = report.seconds / single_seconds
            # after the first row: videos a second once the actors run, against the single process's whole rate
            steady = (report.written - 1) / (report.seconds - report.first_result_seconds)
            print(f"Ray batch job, {config.decoders_per_worker} decoder(s) per worker ({decoders}): {report.written} "
                  f"videos in {report.seconds:.1f} s (first result after {report.first_result_seconds:.1f} s): "
                  f"{ratio:.2f}× the single process's time, throughput {100 / ratio:.0f}% of its; after the first "
                  f"result {100 * steady * single_seconds / len(videos):.0f}%; same top-1 on {same}/{len(videos)}; "
                  f"CPU: {cpu_name()}", flush=True)
            jobs.append({"decoders": decoders, "decoders_per_worker": config.decoders_per_worker,
                         "ray_seconds": report.seconds, "ray_over_single": ratio, "throughput_of_single": 1 / ratio,
                         "first_result_seconds": report.first_result_seconds,
                         "steady_throughput_of_single": steady * single_seconds / len(videos),
                         "same_top1": same, "ray_failed": report.failed})
    ray.shutdown()
    out_file = args.out or result_path("ray_batch_overhead")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({
        "cpu": cpu_name(), "videos": len(videos), "model": args.model, "backend": args.backend,
        "single_process_seconds": single_seconds, "single_failed": sum(not r.ok for r in single),
        "ray_workers": args.workers, "ray_cpus": args.cpus,
        "note": "jobs run one after another on one local Ray instance started before them (not timed); "
                "the first job also starts Ray's worker processes",
        "ray_jobs": jobs}, indent=2) + "\n")
    print(f"wrote {out_file}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--videos", type=Path, default=DEFAULT_UT)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray instance's CPUs")
    parser.add_argument("--decoders", nargs="+", default=["auto", "2"],
                        help="decoding tasks per worker, one Ray job each, in order (auto: the library's default)")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


if __name__ == "__main__":
    main()

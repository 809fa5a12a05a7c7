"""``actionkit predict``: top-k labels for videos, as a table or JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from actionkit.files import ensure_writable_folder
from actionkit.predict import Recognizer, VideoResult
from actionkit.predict.boundaries import DEFAULT_REFINE_WINDOW
from actionkit.predict.ray_batch import RayBatchConfig

from ._common import DeviceOption, ModelOption, RevisionOption, default, fail, show_library_warnings, user_errors


def predict(
    videos: Annotated[list[Path], typer.Argument(help="Video files or folders (expanded to the videos inside).")],
    model: ModelOption,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels per video.")] = 5,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Clips per forward pass (default 4; with "
                                                              "--timeline 2 on CPU, 8 on a GPU).")] = None,
    num_clips: Annotated[int | None, typer.Option(min=1, help="Clips per video, averaged (default: the model's config).")] = None,
    num_crops: Annotated[int | None, typer.Option(help="Crops per clip: 1 (centre) or 3 (along the long side).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    backend: Annotated[str, typer.Option(help="torch, onnxruntime, tensorrt, openvino, or auto (the fastest the "
                                               "model folder and machine allow; stderr says which).")] = "auto",
    precision: Annotated[str, typer.Option(help="torch backend: auto (fp16 on CUDA, bf16 on AMX CPUs, else fp32), "
                                                 "fp32, bf16 or fp16; openvino: auto (INT8 when exported), int8 "
                                                 "or fp32.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch backend: torch.compile the model (CUDA graphs on a GPU).")] = False,
    timeline: Annotated[bool, typer.Option("--timeline", help="Sliding windows over the whole video: a table of "
                                               "segments, and with --out a JSON, CSV and PNG timeline.")] = False,
    window: Annotated[int | None, typer.Option(min=1, help="--timeline: model frames per window (default: the model's clip length).")] = None,
    stride: Annotated[int | None, typer.Option(min=1, help="--timeline: frames between window starts (default: half a window).")] = None,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="--timeline: a segment's top label needs at least this probability.")] = 0.5,
    refine_window: Annotated[int, typer.Option(min=0, help="--timeline: model frames of the short windows that refine each "
                                                      "boundary between two labels (0: keep window-level boundaries).")] = DEFAULT_REFINE_WINDOW,
    out: Annotated[Path | None, typer.Option(help="--timeline: folder for timeline.json, windows.csv and timeline.png; "
                                             "--ray: the .jsonl file of results (a rerun skips the videos in it).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Predict on a Ray cluster (Ray Data): decoding in Ray tasks, the "
                                                    "model in actors; one JSON line per video in --out.")] = False,
    address: Annotated[str | None, typer.Option(help="--ray: the cluster (auto, or ray://HEAD:10001); default: a local "
                                                     "Ray on this machine.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="--ray: model actors.")] = default(RayBatchConfig, "workers"),
    cpus_per_worker: Annotated[float, typer.Option(min=0.0, help="--ray: CPUs (model threads) per actor.")] = default(
        RayBatchConfig, "cpus_per_worker"),
    gpus_per_worker: Annotated[float, typer.Option(min=0.0, help="--ray: GPUs per actor.")] = default(
        RayBatchConfig, "gpus_per_worker"),
    decoders: Annotated[int | None, typer.Option(min=1, help="--ray: decoding tasks at once per actor (default: 1 per "
                                                             "CPU actor, 4 per GPU actor).")] = None,
    device: DeviceOption = None,
    revision: RevisionOption = None,
) -> None:
    """Recognise the action in each video (or, with --timeline, along each video)."""
    if ray:
        if timeline or out is None:
            raise fail("--ray writes one JSON line per video to --out FILE.jsonl, and does not make timelines")
        _predict_on_ray(videos, model, out, address, workers, cpus_per_worker, gpus_per_worker, batch_size or 4,
                        backend, precision, top_k, num_clips, num_crops, decoders)
        return
    if not timeline and (window or stride or out):
        raise fail("--window, --stride and --out go with --timeline (or --out with --ray)")
    show_library_warnings()
    with user_errors():
        if out is not None:
            ensure_writable_folder(out)  # before the timelines are computed, not after
        recognizer = Recognizer.from_pretrained(model, device=device, backend=backend, precision=precision,  # type: ignore[arg-type]
                                                compile=compile, revision=revision)
        if backend == "auto" and recognizer.backend_name != "torch":
            print(f"backend: {recognizer.backend_description}", file=sys.stderr)
        if timeline:
            _timelines(recognizer, videos, window, stride, batch_size, top_k, threshold, refine_window, out, as_json)
            return
        results = recognizer.predict([str(v) for v in videos], top_k=top_k, batch_size=batch_size or 4,
                                     num_clips=num_clips, num_crops=num_crops, progress=len(videos) > 1 or videos[0].is_dir())
    for result in results:
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if result.error:
            print(f"error: {result.error}", file=sys.stderr)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _print_table(results)
    if any(not r.ok for r in results):
        raise typer.Exit(1)


def _predict_on_ray(videos: list[Path], model: str, out: Path, address: str | None, workers: int,
                    cpus_per_worker: float, gpus_per_worker: float, batch_size: int, backend: str, precision: str,
                    top_k: int, num_clips: int | None, num_crops: int | None, decoders: int | None) -> None:
    from actionkit.predict.ray_batch import predict_on_ray, written_rows

    with user_errors():
        config = RayBatchConfig(model=model, out=out, address=address, workers=workers,
                                cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                                batch_size=batch_size, backend=backend, precision=precision, top_k=top_k,
                                num_clips=num_clips, num_crops=num_crops, decoders=decoders)
        report = predict_on_ray([str(v) for v in videos], config)
        failed = [row for row in written_rows(out) if row.get("error")]
    print(f"{report.written} videos predicted on Ray in {report.seconds:.1f} s, {report.done_before} already in "
          f"{out}; {len(failed)} in {out} failed (their error is in the file)", file=sys.stderr)
    if failed:
        raise typer.Exit(1)


def _print_table(results: list[VideoResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("video", "#", "label", "score", show_lines=False)
    for result in results:
        if not result.ok:
            table.add_row(result.video, "-", "[red]failed (see error)[/red]", "")
            continue
        for rank, p in enumerate(result.predictions, 1):
            table.add_row(result.video if rank == 1 else "", str(rank), p.label, f"{p.score:.3f}")
    Console(soft_wrap=True).print(table)


def _timelines(recognizer: Recognizer, videos: list[Path], window: int | None, stride: int | None, batch_size: int | None,
               top_k: int, threshold: float, refine_window: int, out: Path | None, as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from actionkit.data.video import expand_video_paths

    paths = expand_video_paths(videos)
    console = Console(soft_wrap=True)
    reports = []
    for path in paths:
        result = recognizer.timeline(path, window=window, stride=stride, batch_size=batch_size, top_k=top_k,
                                     threshold=threshold, progress=True, refine_window=refine_window)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if out is not None:
            folder = out if len(paths) == 1 else out / path.stem
            written = result.save(folder)
            print(f"wrote {', '.join(str(w) for w in written)}", file=sys.stderr)
        if as_json:
            reports.append(result.to_dict())
            continue
        table = Table("start (s)", "end (s)", "label", "mean probability",
                      title=f"{path}: {result.duration:.1f} s, {len(result.windows)} windows of {result.window} "
                            f"frames every {result.stride}"
                            + (f", boundaries refined with {result.refine_window}-frame windows" if result.refine_window else ""))
        for segment in result.segments:
            table.add_row(f"{segment.start:.2f}", f"{segment.end:.2f}", segment.label, f"{segment.score:.3f}")
        if not result.segments:
            table.add_row("", "", f"(no label reaches {threshold:g})", "")
        console.print(table)
        console.print("video: " + ", ".join(f"{label} {score:.3f}" for label, score in result.summary[:3]))
    if as_json:
        typer.echo(json.dumps(reports, indent=2))

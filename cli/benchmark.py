"""``actionkit benchmark``: how fast a model runs on this machine, per backend, precision and batch size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import DeviceOption, ModelOption, user_errors


def benchmark(
    model: ModelOption,
    backend: Annotated[list[str] | None, typer.Option(help="torch, torch-compile (torch.compile; CUDA graphs on a GPU), onnxruntime, tensorrt, openvino (repeatable; default torch and onnxruntime).")] = None,
    precision: Annotated[list[str] | None, typer.Option(help="fp32, bf16, fp16, int8 (openvino; repeatable; default fp32 and bf16, fp16 on CUDA, int8 with --backend openvino).")] = None,
    batch_size: Annotated[list[int] | None, typer.Option(min=1, help="Clips per forward pass (repeatable; default 1 4 8).")] = None,
    clip_len: Annotated[list[int] | None, typer.Option(min=8, help="Frames per clip (repeatable; default 32 64).")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per configuration (the median is reported).")] = 3,
    videos: Annotated[list[Path] | None, typer.Option(help="Also time Recognizer.predict end to end on these videos or folders.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every row to this JSON file.")] = None,
    device: DeviceOption = None,
) -> None:
    """Model-only seconds per clip for each backend × precision × clip length × batch size, and with
    --videos the end-to-end time of actionkit predict against the model alone on the same clips."""
    from rich.console import Console

    from actionkit.benchmark import (
        default_precisions,
        end_to_end_speed,
        format_model_speed,
        format_roofline,
        model_speed,
        roofline_inputs,
    )
    from actionkit.predict import Recognizer

    console = Console(soft_wrap=True)
    with user_errors():
        rows = model_speed(model, backends=backend or ["torch", "onnxruntime"], precisions=precision or default_precisions(device, backend or ()),
                           batch_sizes=batch_size or [1, 4, 8], clip_lens=clip_len or [32, 64], device=device,
                           repeats=repeats)
        console.print(format_model_speed(rows), markup=False)
        gpu, rates = roofline_inputs(rows, device)
        console.print("\n" + format_roofline(rows, gpu), markup=False)
        report: dict = {"model": model, "model_only": [r.to_dict() for r in rows]}
        if rates:
            report["cpu_matmul_gflops"] = rates
        if videos:
            recognizer = Recognizer.from_pretrained(model, device=device)
            speed = end_to_end_speed(recognizer, [str(v) for v in videos], batch_size=max(batch_size or [4]))
            console.print(f"\nend to end ({speed.backend} {speed.precision}, batch {speed.batch_size}): "
                          f"{speed.videos} videos, {speed.clips} clips in {speed.seconds:.2f} s; the model alone "
                          f"{speed.model_only_seconds:.2f} s ({100 * speed.overhead:+.0f}%)", markup=False)
            report["end_to_end"] = speed.to_dict()
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {json_out}", markup=False)

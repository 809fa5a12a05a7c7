"""``actionkit export``: the stripped I3D as ONNX (and TensorRT), checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actionkit.export.calibration import CalibrationConfig

from ._common import SplitByOption, TestOption, ValOption, default, split_values, user_errors


def export(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Hub folder, training run folder, checkpoint file "
                                              "or repo id (required unless --list).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the artifacts, created "
                                             "(required unless --list).")] = None,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="Write model.onnx (TensorRT needs it anyway).")] = True,
    trt: Annotated[bool, typer.Option("--trt", help="Also build a TensorRT engine (needs tensorrt and a GPU).")] = False,
    fp16: Annotated[bool | None, typer.Option("--fp16/--fp32", help="fp16: also model.fp16.onnx, and a fp16 engine "
                                              "(the engine's default); fp32: a fp32-only engine.")] = None,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (17-20; default 17).")] = None,
    dynamic_clip_len: Annotated[bool | None, typer.Option("--dynamic-clip-len", help="ONNX time axis dynamic (multiples of 8).")] = None,
    min_batch: Annotated[int | None, typer.Option(help="TensorRT profile: smallest batch (default 1).")] = None,
    opt_batch: Annotated[int | None, typer.Option(help="TensorRT profile: tuned batch (default 4).")] = None,
    max_batch: Annotated[int | None, typer.Option(help="TensorRT profile: largest batch (default 8).")] = None,
    workspace_gib: Annotated[float | None, typer.Option(help="TensorRT builder workspace in GiB (default 4).")] = None,
    openvino: Annotated[bool, typer.Option("--openvino", help="Also write the OpenVINO IR model.xml (CPU).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write model.int8.xml: OpenVINO INT8, calibrated on "
                                       "--calibrate (implies --openvino).")] = False,
    calibrate: Annotated[Path | None, typer.Option("--calibrate", help="--int8: videos to calibrate on, a dataset "
                                                   "in any --data layout (its train split; its val split is "
                                                   "scored in fp32 and INT8) or a folder of videos.")] = None,
    calibration_clips: Annotated[int, typer.Option(min=1, help="--int8: clips to calibrate on.")] = default(
        CalibrationConfig, "clips"),
    split_by: SplitByOption = None,
    val: ValOption = None,
    test: TestOption = None,
    check_videos: Annotated[list[Path] | None, typer.Option("--check-video", help="Real clips for the parity check "
                                                            "(repeatable; files or folders). Default: random frames.")] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare every artifact with PyTorch.")] = True,
    list_formats: Annotated[bool, typer.Option("--list", help="Print the table of formats and exit.")] = False,
) -> None:
    """Strip the decoders and export the I3D for ONNX Runtime, TensorRT, OpenVINO and Triton, then check it."""
    from actionkit.export import export_model, format_table

    if list_formats:
        typer.echo(f"{'format':<10}{'file':<20}{'devices':<10}options")
        for name, file, devices, options in format_table():
            typer.echo(f"{name:<10}{file:<20}{devices:<10}{options}")
        raise typer.Exit()
    for option, value in (("--model", model), ("--out", out)):
        if value is None:
            raise typer.BadParameter("required (only --list runs without it).", param_hint=f"'{option}'")
    with user_errors():
        calibration = None if calibrate is None else CalibrationConfig(
            calibrate, clips=calibration_clips, split_by=split_by, val=split_values(val), test=split_values(test))
        result = export_model(model, out, onnx=onnx, tensorrt=trt, fp16=fp16, opset=opset,
                              dynamic_clip_len=dynamic_clip_len, min_batch=min_batch, opt_batch=opt_batch,
                              max_batch=max_batch, workspace_gib=workspace_gib, openvino=openvino, int8=int8,
                              calibration=calibration, check_videos=check_videos,
                              check=check, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"exported to {result.out_dir}: " + ", ".join(str(p.relative_to(result.out_dir)) for p in result.files))

"""``actionkit finetune``, ``actionkit train`` and ``actionkit evaluate``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from actionkit.train import distributed
from actionkit.train.finetune import DataConfig, FinetuneConfig
from actionkit.train.finetune import finetune as run_finetune
from actionkit.train.loop import TrainConfig
from actionkit.train.tasks import TaskConfig
from actionkit.train.wise_ft import DEFAULT_ALPHAS

from ._common import (
    DeviceOption,
    SplitByOption,
    TestOption,
    ValOption,
    default,
    show_library_warnings,
    split_values,
    user_errors,
)

DataOption = Annotated[Path, typer.Option("--data", "-d", help="Dataset folder (folder per class, list files or CSV).")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoint, metrics, plots, best/ and last/ models.")]


def finetune(
    data: DataOption,
    out: OutOption,
    model: Annotated[str, typer.Option("--model", "-m", help="Pretrained model: Hub folder, training run folder "
                                                   "(its best/ model), checkpoint file or repo id.")],
    self_distill: Annotated[bool, typer.Option("--self-distill", help="Self-distillation: last epoch's frozen encoder teaches.")] = default(TaskConfig, "self_distill"),
    sd_weight: Annotated[float, typer.Option(help="λ of the self-distillation loss, in the paper's units: λ·‖f(x) − "
                                                  "f'(x)‖², squared L2 summed over the 1,024 features, averaged "
                                                  "over the batch.")] = default(TaskConfig, "sd_weight"),
    rev2net: Annotated[bool, typer.Option("--rev2net", help="Rev2Net multi-task objective (flow + reversed frames decoders).")] = default(TaskConfig, "rev2net"),
    flow_decoder: Annotated[bool, typer.Option(help="Rev2Net ablation: the optical-flow decoder.")] = default(TaskConfig, "flow_decoder"),
    frame_decoder: Annotated[bool, typer.Option(help="Rev2Net ablation: the reversed-frame decoder.")] = default(TaskConfig, "frame_decoder"),
    ddp: Annotated[bool, typer.Option("--ddp/--no-ddp", help="Rev2Net ablation: the Decoding Discrepancy Penalty.")] = default(TaskConfig, "ddp"),
    alpha: Annotated[float, typer.Option(help="Rev2Net α (KL between the decoders' Gaussians).")] = default(TaskConfig, "alpha"),
    beta: Annotated[float, typer.Option(help="Rev2Net β (Frobenius between decoder features).")] = default(TaskConfig, "beta"),
    lambda_flow: Annotated[float, typer.Option(help="Rev2Net λflow.")] = default(TaskConfig, "lambda_flow"),
    lambda_im: Annotated[float, typer.Option(help="Rev2Net λim.")] = default(TaskConfig, "lambda_im"),
    decoder_lr_scale: Annotated[float, typer.Option(help="Rev2Net: the decoders' lr is lr × this (1: the paper's "
                                                        "one rate; faster decoders' first layers die sooner, see "
                                                        "active_* in metrics.jsonl).")] = default(TrainConfig, "decoder_lr_scale"),
    epochs: Annotated[int, typer.Option(min=1)] = default(TrainConfig, "epochs"),
    batch_size: Annotated[int, typer.Option(min=1)] = default(TrainConfig, "batch_size"),
    accumulate: Annotated[int, typer.Option(min=1, help="Batches per optimizer step.")] = default(TrainConfig, "accumulate"),
    lr: Annotated[float, typer.Option(help="Base learning rate.")] = default(TrainConfig, "lr"),
    head_lr_scale: Annotated[float, typer.Option(help="The classifier's lr is lr × this (e.g. 10 for a new classifier).")] = default(TrainConfig, "head_lr_scale"),
    head_init: Annotated[str, typer.Option(help="New classifier: random, or linear-probe (fit on the frozen "
                                                "encoder's train features first: LP-FT).")] = default(DataConfig, "head_init"),
    optimizer: Annotated[str, typer.Option(help="sgd (momentum 0.9) or adamw.")] = default(TrainConfig, "optimizer"),
    weight_decay: Annotated[float, typer.Option()] = default(TrainConfig, "weight_decay"),
    schedule: Annotated[str, typer.Option(help="cosine, step or constant.")] = default(TrainConfig, "schedule"),
    warmup_epochs: Annotated[float, typer.Option(help="Linear warm-up length in epochs.")] = default(TrainConfig, "warmup_epochs"),
    step_epochs: Annotated[int, typer.Option(help="Step schedule: decay ×0.1 every N epochs.")] = default(TrainConfig, "step_epochs"),
    amp: Annotated[str, typer.Option(help="auto (bf16 on CUDA, fp16 on GPUs without bf16, off on CPU), off, bf16 or fp16 (fp16 scales the loss).")] = default(TrainConfig, "amp"),
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last 3D layout (faster convolutions).")] = default(TrainConfig, "channels_last"),
    clip_grad: Annotated[float, typer.Option(help="Clip the global gradient norm to this (0: off).")] = default(TrainConfig, "clip_grad_norm"),
    train_bn: Annotated[bool, typer.Option("--train-bn", help="Update batch-norm statistics (default: frozen; needs large batches).")] = not default(TrainConfig, "freeze_bn"),
    clip_len: Annotated[int, typer.Option(min=8, help="Frames per training clip.")] = default(DataConfig, "clip_len"),
    frame_stride: Annotated[int, typer.Option(min=1)] = default(DataConfig, "frame_stride"),
    crop_size: Annotated[int, typer.Option(min=32, help="Training and evaluation crop (224 for I3D's usual input).")] = default(DataConfig, "crop_size"),
    eval_clips: Annotated[int, typer.Option(min=1, help="Clips per validation video.")] = default(DataConfig, "eval_clips"),
    max_steps_per_epoch: Annotated[int | None, typer.Option(help="Cap the optimizer steps of each epoch (quick runs).")] = default(TrainConfig, "max_steps_per_epoch"),
    split_by: SplitByOption = None,
    val: ValOption = None,
    test: TestOption = None,
    strict: Annotated[bool, typer.Option("--strict", help="Unreadable videos are an error instead of skipped.")] = default(DataConfig, "strict"),
    workers: Annotated[int, typer.Option(min=0, help="Loader worker processes.")] = default(DataConfig, "workers"),
    flow: Annotated[str, typer.Option(help="Flow targets for Rev2Net: dis (fast) or tvl1 (the paper's).")] = default(DataConfig, "flow_method"),
    flow_cache: Annotated[Path | None, typer.Option(help="Flow cache folder (default $ACTIONKIT_CACHE/flow or ~/.cache/actionkit/flow).")] = default(DataConfig, "flow_cache"),
    flow_span: Annotated[str, typer.Option(help="Flow targets: clip (each clip frame to the next clip frame) or "
                                                "frame (to the next video frame; 1/stride of the motion).")] = default(DataConfig, "flow_span"),
    seed: Annotated[int, typer.Option()] = default(TrainConfig, "seed"),
    evaluate_start: Annotated[bool, typer.Option("--evaluate-start/--no-evaluate-start",
                                                 help="Validate the starting model as epoch 0 (saved as start/; "
                                                      "best/ until an epoch beats it).")] = default(TrainConfig, "evaluate_start"),
    wise_ft: Annotated[bool, typer.Option("--wise-ft", help="After training, WiSE-FT: interpolate every weight between "
                                                            "start/ and last/ at each --wise-ft-alphas value; the best "
                                                            "on val is saved as wise-ft/.")] = default(FinetuneConfig, "wise_ft"),
    wise_ft_alphas: Annotated[str, typer.Option(help="WiSE-FT's α grid, comma-separated, in [0, 1] (0: the "
                                                     "starting model, 1: the fine-tuned one).")] = ",".join(f"{a:g}" for a in DEFAULT_ALPHAS),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint "
                                                          "(a finished run: nothing to do).")] = default(FinetuneConfig, "resume"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete the run in --out (checkpoint, metrics, "
                                                                "run.json, best/, last/, plots/) and start again.")] = default(FinetuneConfig, "overwrite"),
    device: DeviceOption = None,
) -> None:
    """Fine-tune a pretrained encoder on labelled videos (plain, --self-distill, --rev2net or both)."""
    show_library_warnings()
    with user_errors():
        config = FinetuneConfig(
            data=DataConfig(root=data, split_by=split_by, val=split_values(val), test=split_values(test),
                            clip_len=clip_len, frame_stride=frame_stride, crop_size=crop_size, eval_clips=eval_clips,
                            strict=strict, workers=workers, flow_method=flow, flow_cache=flow_cache,
                            head_init=head_init, flow_span=flow_span),
            model=model, out=out, device=device, resume=resume, overwrite=overwrite, wise_ft=wise_ft,
            wise_ft_alphas=parse_alphas(wise_ft_alphas),
            task=TaskConfig(rev2net=rev2net, flow_decoder=flow_decoder, frame_decoder=frame_decoder, ddp=ddp,
                            alpha=alpha, beta=beta, lambda_flow=lambda_flow, lambda_im=lambda_im,
                            self_distill=self_distill, sd_weight=sd_weight),
            train=TrainConfig(epochs=epochs, batch_size=batch_size, accumulate=accumulate, lr=lr,
                              optimizer=optimizer, weight_decay=weight_decay, schedule=schedule,  # type: ignore[arg-type]
                              warmup_epochs=warmup_epochs, step_epochs=step_epochs, amp=amp,  # type: ignore[arg-type]
                              seed=seed, max_steps_per_epoch=max_steps_per_epoch, freeze_bn=not train_bn,
                              clip_grad_norm=clip_grad or None, head_lr_scale=head_lr_scale,
                              decoder_lr_scale=decoder_lr_scale, evaluate_start=evaluate_start,
                              channels_last=channels_last))
        result = run_finetune(config, log=lambda line: typer.echo(line, err=True))
    if not distributed.is_main() or result.already_finished:  # rank 0 reports; a finished run was said in one line
        return
    best = f"{100 * result.best_top1:.1f}%" if result.best_top1 is not None else "n/a (no val split)"
    if result.best_epoch is not None:
        best += f" (epoch {result.best_epoch}{': the starting model' if result.best_epoch == 0 else ''})"
    typer.echo(f"done: {result.epochs} epoch(s) in {result.seconds:.0f} s, best val top-1 {best}; "
               f"models in {out}/best and {out}/last" + (f", WiSE-FT's in {out}/wise-ft" if wise_ft else ""))


def parse_alphas(text: str) -> tuple[float, ...]:
    """``"0,0.5,1"`` -> ``(0.0, 0.5, 1.0)``; a value that is not a number is a ValueError naming it."""
    values = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"--wise-ft-alphas: {part!r} is not a number") from None
    return tuple(values)


def _rev2net_on(command):
    """``command`` with ``--rev2net`` on by default: ``actionkit train`` is Rev2Net training of an encoder."""

    def train(**kwargs):
        return command(**kwargs)

    signature = inspect.signature(command)
    train.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
        p.replace(default=True) if p.name == "rev2net" else p for p in signature.parameters.values()])
    train.__annotations__ = command.__annotations__
    train.__doc__ = "Rev2Net training of an encoder: finetune with --rev2net on (same options)."
    return train


train = _rev2net_on(finetune)


def evaluate(
    data: DataOption,
    model: Annotated[str, typer.Option("--model", "-m", help="Hub folder, training run folder (its best/ model), "
                                                             "checkpoint file or repo id.")],
    split: Annotated[str, typer.Option(help="train, val, test, or all: every video of the dataset (how a "
                                            "dataset that is not split, a CSV without a split column or class "
                                            "folders without train/ val/, is evaluated). Only this split need "
                                            "exist: a test set alone is a dataset.")] = "val",
    class_map: Annotated[Path | None, typer.Option(help="Map the model's classes onto the dataset's (JSON or TSV).")] = None,
    num_clips: Annotated[int | None, typer.Option(min=1, help="Clips per video (default: the model's config).")] = None,
    num_crops: Annotated[int | None, typer.Option(help="1 or 3 crops per clip.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Videos per batch.")] = 2,
    out: Annotated[Path | None, typer.Option(help="Write confusion.png and confusion.json here.")] = None,
    split_by: SplitByOption = None,
    val: ValOption = None,
    test: TestOption = None,
    workers: Annotated[int, typer.Option(min=0)] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    backend: Annotated[str, typer.Option(help="torch (the PyTorch model, fp32), or an export folder's onnxruntime, "
                                               "tensorrt or openvino model.")] = "torch",
    precision: Annotated[str, typer.Option(help="openvino: int8 or fp32; torch and the others: fp32.")] = "fp32",
    device: DeviceOption = None,
) -> None:
    """Top-1, top-5 and mean-class accuracy of a model on a dataset split, with a confusion matrix.

    The dataset may hold only the videos to evaluate (a test set, the target dataset of a cross-dataset
    evaluation): --split names the one it has, or --split all takes every video (a dataset without splits)."""
    from actionkit.train.evaluate import evaluate_model

    show_library_warnings()
    with user_errors():
        result, classes = evaluate_model(data, model, split=split, split_by=split_by, val=split_values(val),
                                         test=split_values(test), class_map=class_map, num_clips=num_clips,
                                         num_crops=num_crops, batch_size=batch_size, workers=workers,
                                         device=device, out=out, backend=backend, precision=precision)
    if as_json:
        typer.echo(json.dumps({**result.metrics(), "videos": result.videos, "classes": classes}, indent=2))
    else:
        typer.echo(f"{result.videos} videos: top-1 {100 * result.top1:.1f}%, top-5 {100 * result.top5:.1f}%, "
                   f"mean class {100 * result.mean_class:.1f}%")
        if out:
            typer.echo(f"confusion matrix: {out}/confusion.png, {out}/confusion.json")


def wise_ft(
    start: Annotated[Path, typer.Option("--start", help="The starting model's folder (a run's start/).")],
    finetuned: Annotated[Path, typer.Option("--finetuned", help="The fine-tuned model's folder (a run's last/).")],
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="The chosen model's folder; also gets wise-ft.json and wise-ft.png.")],
    alphas: Annotated[str, typer.Option(help="α grid, comma-separated, in [0, 1].")] = ",".join(f"{a:g}" for a in DEFAULT_ALPHAS),
    split: Annotated[str, typer.Option(help="The split that chooses α (val, or test).")] = "val",
    split_by: SplitByOption = None,
    val: ValOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Videos per batch.")] = 2,
    workers: Annotated[int, typer.Option(min=0)] = 2,
    device: DeviceOption = None,
) -> None:
    """WiSE-FT: interpolate every weight between a starting model and its fine-tuned self, keep the best α.

    θ(α) = (1 − α)·θ₀ + α·θ₁ is scored on the split for each α; the best is saved as a model folder with
    the table of α against accuracy (wise-ft.json) and its plot (wise-ft.png)."""
    from actionkit.train.wise_ft import wise_ft as run_wise_ft

    show_library_warnings()
    with user_errors():
        result = run_wise_ft(start, finetuned, data, out, alphas=parse_alphas(alphas), split=split, split_by=split_by,
                             val=split_values(val), batch_size=batch_size, workers=workers, device=device,
                             log=lambda line: typer.echo(line, err=True))
    typer.echo(f"α = {result.alpha:g}: val top-1 {100 * result.top1:.1f}%; model in {result.folder}, "
               f"table in {result.table}")

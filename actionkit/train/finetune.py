"""finetune: from a dataset folder and a pretrained model to a run folder, in one call.

The steps, in order: find the dataset's layout and classes; decode every video once (unreadable ones
are skipped with a warning and listed in ``run.json``, or are an error with ``strict``); load the
model and replace its classifier when the dataset's classes differ; build the task (plain, Rev2Net,
self-distillation or both), the loaders (with flow targets when the flow decoder needs them) and
train. ``actionkit finetune`` and ``actionkit train`` are thin faces over :func:`finetune`.

Before all that, the run folder is checked: it must be writable, and a new run needs an empty one
(``overwrite`` deletes an old run's files, ``resume`` continues it; a finished run resumes to nothing).
"""

from __future__ import annotations

import json
import logging
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from actionkit.config import PreprocessConfig
from actionkit.data.check import TrainingSamples, check_dataset
from actionkit.data.datasets import DatasetIndex, scan_dataset
from actionkit.data.flow import FlowCache, FlowConfig
from actionkit.data.loader import ClipConfig, ClipDataset, check_flow_span, make_loader, worker_processes
from actionkit.data.transforms import AugmentConfig
from actionkit.errors import ActionkitError
from actionkit.files import ensure_writable_folder, write_text_atomically
from actionkit.hub import ModelConfig, load_pretrained
from actionkit.models.i3d import I3D
from actionkit.train import distributed
from actionkit.train.checkpoint import START_NAME, WISE_FT_NAME, prepare_run_folder
from actionkit.train.evaluate import split_loader
from actionkit.train.loop import RunResult, TrainConfig, finished_line, finished_run, fit
from actionkit.train.tasks import Task, TaskConfig
from actionkit.train.wise_ft import DEFAULT_ALPHAS, check_alphas, search_alphas

_log = logging.getLogger("actionkit")


@dataclass
class DataConfig:
    """Where the videos are, how they split, and the clips made from them."""

    root: Path
    split_by: str | None = None
    val: list[str] | None = None
    test: list[str] | None = None
    clip_len: int = 32
    frame_stride: int = 1
    crop_size: int = 224
    eval_clips: int = 3
    strict: bool = False
    workers: int = 2
    flow_method: str = "dis"
    flow_cache: Path | None = None
    head_init: str = "random"  # or "linear-probe": start the new classifier from a probe fitted on train
    flow_span: str = "clip"  # flow targets: clip frame -> next clip frame, or "frame": video frame -> next (ClipConfig)

    def __post_init__(self) -> None:
        if self.head_init not in ("random", "linear-probe"):
            raise ValueError(f"head_init must be 'random' or 'linear-probe', got {self.head_init!r}")
        check_flow_span(self.flow_span)  # here too, so a bad value fails before any video is read


@dataclass
class FinetuneConfig:
    """Everything a run needs. ``model`` is a Hub folder, a checkpoint file or a repo id. ``out`` is the
    run folder: empty (or new) for a new run; ``resume`` continues the run in it, ``overwrite`` deletes
    that run's files and starts again (not both). ``wise_ft`` adds WiSE-FT after training
    (:mod:`actionkit.train.wise_ft`): the run's ``start/`` and ``last/`` interpolated at
    ``wise_ft_alphas``, the best on the validation split saved as ``wise-ft/`` with ``wise-ft.json`` and
    ``plots/wise-ft.png``; it needs a validation split and the starting model's evaluation (the default)."""

    data: DataConfig
    model: str
    out: Path
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    wise_ft: bool = False  # after training: WiSE-FT between start/ and last/, the best α saved as wise-ft/
    wise_ft_alphas: tuple[float, ...] = DEFAULT_ALPHAS


def finetune(config: FinetuneConfig, log: Callable[[str], None] = print) -> RunResult:
    """Run (or ``resume``) a training run into ``config.out``; see the module docstring.

    Before any work: an unwritable ``out`` raises :class:`~actionkit.errors.OutputError`, a non-empty one
    without ``resume`` or ``overwrite`` an :class:`~actionkit.errors.ActionkitError`
    (:func:`~actionkit.train.checkpoint.prepare_run_folder`), and resuming a run that has finished its
    epochs returns its result (``already_finished``) after logging one line, changing nothing. The loader
    workers (and the fork server they came from) are stopped when it returns or raises."""
    if config.train.decoder_lr_scale != 1.0 and not config.task.rev2net:
        raise ValueError("decoder_lr_scale applies to Rev2Net's decoders: turn rev2net on, or leave it at 1")
    if config.wise_ft:
        check_alphas(config.wise_ft_alphas)
        if not config.train.evaluate_start:
            raise ValueError("WiSE-FT interpolates from the starting model, which --no-evaluate-start does not save")
    out = Path(config.out)
    if distributed.is_main():  # rank 0 owns the folder; the others only read the checkpoint
        prepare_run_folder(out, resume=config.resume, overwrite=config.overwrite)
    if config.resume:
        finished = finished_run(out, config.train, settings=_settings(config), setting_defaults=_setting_defaults())
        if finished is not None:
            if distributed.is_main():
                log(finished_line(finished))
                if config.wise_ft and not (out / f"{WISE_FT_NAME}.json").exists():
                    with worker_processes():
                        _wise_ft(config, log)  # a finished run asked for WiSE-FT afterwards
            return finished
    device = distributed.device_for_rank(config.device)
    with distributed.process_group(device), worker_processes():
        say = log if distributed.is_main() else (lambda _: None)
        torch.manual_seed(config.train.seed)
        encoder = load_pretrained(config.model)
        index = _scan(config.data, encoder)
        say(index.describe())
        if config.wise_ft and not index.split("val"):
            raise ActionkitError(f"{config.data.root}: --wise-ft chooses α on the validation split, and the dataset "
                                 "has none (give it one, e.g. --split-by and --val)")
        report = check_dataset(index, workers=max(1, config.data.workers), progress=distributed.is_main())
        train = report.training_samples("train", strict=config.data.strict)
        val = report.training_samples("val", strict=config.data.strict) if index.split("val") else None
        _fit_classifier(encoder, index.classes, say)
        model_config = _model_config(encoder, index, config)
        if config.data.head_init == "linear-probe" and not config.resume:
            _probe_head(encoder, train, model_config, device, config.data.workers, say)
        task = Task(encoder, config.task, seed=config.train.seed)
        if task.needs_flow:
            say(f"flow targets: {config.data.flow_method}, computed on first use and cached")
        train_loader, val_loader = _loaders(config, task, train, val, model_config)
        skipped = train.skipped + (val.skipped if val else [])
        if distributed.is_main():
            _write_run_report(config, index, skipped, None)
        result = fit(task, train_loader, val_loader, config.train, config.out, model_config, device=device,
                     resume=config.resume, settings=_settings(config), setting_defaults=_setting_defaults(), log=say)
        if distributed.is_main():
            if result.beat_start is False:
                say(f"fine-tuning did not beat the starting model: no epoch validated above its "
                    f"{100 * result.start_top1:.1f}% (epoch 0), so best/ is the starting model")
            _write_run_report(config, index, skipped, result)
            if config.wise_ft:
                _wise_ft(config, say, val_loader, device)
        return result


def _wise_ft(config: FinetuneConfig, log: Callable[[str], None], val_loader=None,
             device: torch.device | None = None) -> None:
    """WiSE-FT between the run's start/ and last/, into wise-ft/ (see FinetuneConfig)."""
    out = Path(config.out)
    if not (out / START_NAME).is_dir():
        raise ActionkitError(f"{out}: WiSE-FT needs the starting model in {out / START_NAME}, which this run did "
                             "not save (it was started without evaluating its start, or before that existed)")
    if val_loader is None and device is None:
        device = distributed.device_for_rank(config.device)
    start, last = load_pretrained(out / START_NAME), load_pretrained(out / "last")
    if val_loader is None:
        data = config.data
        val_loader, _ = split_loader(data.root, last.pretrained_cfg.preprocessing, split="val", split_by=data.split_by,
                                     val=data.val, test=data.test, classes=last.pretrained_cfg.labels,
                                     batch_size=max(1, config.train.batch_size // data.eval_clips), workers=data.workers)
    search_alphas(start, last, val_loader, device, out / WISE_FT_NAME, out / f"{WISE_FT_NAME}.json",
                  out / "plots" / "wise-ft.png", alphas=config.wise_ft_alphas,
                  sources=(str(out / START_NAME), str(out / "last")), log=log)


def _scan(data: DataConfig, encoder: I3D) -> DatasetIndex:
    """The dataset's classes, in the model's order when the model already knows exactly these classes."""
    index = scan_dataset(data.root, split_by=data.split_by, val=data.val, test=data.test)
    labels = encoder.pretrained_cfg.labels
    if sorted(labels) == sorted(index.classes) and labels != index.classes:
        index = scan_dataset(data.root, split_by=data.split_by, val=data.val, test=data.test, classes=labels)
    return index


def _fit_classifier(encoder: I3D, classes: list[str], say: Callable[[str], None]) -> None:
    labels = encoder.pretrained_cfg.labels
    if labels == classes:
        say(f"keeping the model's {len(classes)}-class classifier (same classes as the dataset)")
        return
    say(f"replacing the model's {len(labels)}-class classifier with a new {len(classes)}-class one "
        f"for the dataset's classes ({', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''})")
    encoder.replace_classifier(len(classes))


def _probe_head(encoder: I3D, train: TrainingSamples, model_config: ModelConfig, device: torch.device, workers: int,
                say: Callable[[str], None]) -> None:
    """Linear probing, then fine-tuning (LP-FT, Kumar et al. 2022): the classifier starts as logistic
    regression on the frozen encoder's features of the training videos (their evaluation views), so
    fine-tuning starts from the probe's accuracy instead of from a random head that drags the trunk."""
    from actionkit.train.linear_probe import extract_features, fit_linear_probe

    features = extract_features(encoder, train.samples, model_config.preprocessing, device=device, workers=workers,
                                num_frames=train.num_frames, description="linear probe features",
                                progress=distributed.is_main())
    labels = torch.tensor([s.label for s in train.samples])
    probe = fit_linear_probe(features.double(), labels, encoder.num_classes)
    weight = probe.weight / probe.std  # fold the standardisation into the layer
    with torch.no_grad():
        encoder.classifier.weight.copy_(weight.float())
        encoder.classifier.bias.copy_((probe.bias - weight @ probe.mean).float())
    say(f"classifier initialised by a linear probe (L2 {probe.strength:g}, train CV top-1 "
        f"{100 * probe.cv_accuracy[probe.strength]:.1f}%)")


def _model_config(encoder: I3D, index: DatasetIndex, config: FinetuneConfig) -> ModelConfig:
    """config.json of the trained model: the dataset's labels, and clips sampled as in training."""
    base = encoder.pretrained_cfg
    preprocessing = evaluation_preprocessing(base.preprocessing, config.data)
    return ModelConfig(model=encoder.config, id2label=dict(enumerate(index.classes)), preprocessing=preprocessing,
                       source={"format": "actionkit-finetune", "base_model": config.model,
                               "dataset": index.describe(), "objective": _objective_name(config.task)},
                       license=base.license)


def evaluation_preprocessing(base: PreprocessConfig, data: DataConfig) -> PreprocessConfig:
    """How a model fine-tuned with ``data`` is evaluated (and how its config.json says to preprocess):
    ``eval_clips`` clips sampled as in training, centre crops of the training size, the base model's
    value range."""
    return PreprocessConfig(clip_len=data.clip_len, frame_sampling="consecutive", frame_stride=data.frame_stride,
                            num_clips=data.eval_clips, resize_short_side=_eval_short_side(base, data.crop_size),
                            crop_size=data.crop_size, value_range=base.value_range)


def _eval_short_side(base: PreprocessConfig, crop_size: int) -> int:
    """The evaluation resize for ``crop_size``, keeping the base model's short-side : crop ratio (256 : 224),
    so a reduced crop (e.g. 112) sees the same field of view as a full one rather than a zoomed-in centre."""
    return max(crop_size, round(crop_size * base.resize_short_side / base.crop_size))


def _objective_name(task: TaskConfig) -> str:
    parts = [name for name, on in (("rev2net", task.rev2net), ("self-distillation", task.self_distill)) if on]
    return " + ".join(parts) or "cross-entropy"


def _loaders(config: FinetuneConfig, task: Task, train, val, model_config: ModelConfig):
    data = config.data
    flow_cache = FlowCache(data.flow_cache, FlowConfig(method=data.flow_method)) if task.needs_flow else None  # type: ignore[arg-type]
    if flow_cache is not None and not all(flow_cache.has(s.path) for s in train.samples):
        ensure_writable_folder(flow_cache.directory)  # entries will be written: fail now, not in a worker
    clips = ClipConfig(clip_len=data.clip_len, frame_stride=data.frame_stride,
                       augment=AugmentConfig(crop_size=data.crop_size), flow_span=data.flow_span)
    train_set = ClipDataset(train.samples, clips=clips, flow_cache=flow_cache, num_frames=train.num_frames,
                            seed=config.train.seed)
    train_loader = make_loader(train_set, config.train.batch_size, workers=data.workers, drop_last=False)
    val_loader = None
    if val is not None and val.samples:
        val_set = ClipDataset(val.samples, train=False, eval_preprocessing=model_config.preprocessing,
                              num_frames=val.num_frames, seed=config.train.seed)
        val_loader = make_loader(val_set, max(1, config.train.batch_size // data.eval_clips), shuffle=False,
                                 workers=data.workers, shard=False)
    return train_loader, val_loader


def _settings(config: FinetuneConfig) -> dict[str, Any]:
    """What identifies a run (compared on --resume): not where it runs or how many workers load it."""
    data = {k: v for k, v in asdict(config.data).items() if k not in ("workers", "flow_cache")}
    return json.loads(json.dumps({"data": data, "model": config.model, "task": asdict(config.task)}, default=str))


def _setting_defaults() -> dict[str, Any]:
    """The defaults of the settings :func:`_settings` records, for resuming runs from older versions."""
    data = {f.name: f.default for f in fields(DataConfig) if f.default is not MISSING}
    return json.loads(json.dumps({"data": data, "task": asdict(TaskConfig())}, default=str))


def _write_run_report(config: FinetuneConfig, index: DatasetIndex, skipped: list[str], result: RunResult | None) -> None:
    """run.json: settings, dataset, classes, skipped videos and (when done) the result; written atomically."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    index.save_classes(out / "classes.json")
    report: dict[str, Any] = {"settings": _settings(config), "train": json.loads(json.dumps(asdict(config.train))),
                              "dataset": index.describe(), "classes": index.classes,
                              "skipped_unreadable": skipped, "world_size": distributed.world_size()}
    if result is not None:
        report["result"] = {"epochs": result.epochs, "best_top1": result.best_top1, "best_epoch": result.best_epoch,
                            "start_top1": result.start_top1, "beat_start": result.beat_start,
                            "last": result.last, "seconds": round(result.seconds, 1)}
    write_text_atomically(out / "run.json", json.dumps(report, indent=2) + "\n")

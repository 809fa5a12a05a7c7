"""fit: the training loop, readable top to bottom.

Before the first epoch of a new run, rank 0 validates the starting model (the pretrained encoder with its
new classifier) as epoch 0 and writes it to ``start/`` and ``best/``: a later epoch becomes ``best/`` only
by beating it, so a run whose fine-tuning made the model worse keeps its start. Per epoch: the task
starts the epoch (self-distillation refreshes its teacher), the loader replays the epoch's seeded order,
each batch is normalised on the device, the task returns its named losses, and the optimizer steps every
``accumulate`` batches. Then rank 0 validates, writes ``last/`` (and ``best/``) as Hub folders, plots,
and saves the checkpoint atomically. ``resume=True`` continues from the last
completed epoch with the same weights, optimizer, schedule, teacher and RNG state, so a killed run ends
where an uninterrupted one would; resuming a finished run changes nothing (:func:`finished_run`).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch.utils.data import DataLoader

from actionkit.data.loader import finish_batch, set_loader_epoch
from actionkit.errors import ActionkitError
from actionkit.files import ensure_writable_folder
from actionkit.hub import ModelConfig, save_pretrained
from actionkit.predict.backends import warn_if_bf16_is_emulated
from actionkit.progress import progress_bar
from actionkit.train import distributed
from actionkit.train.checkpoint import (
    CHECKPOINT_NAME,
    START_NAME,
    TrainingState,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from actionkit.train.evaluate import EvalResult, evaluate, save_confusion
from actionkit.train.metrics import MetricsLog, plot_metrics
from actionkit.train.schedule import Schedule, lr_factor


@dataclass
class TrainConfig:
    """Optimisation settings. ``amp="auto"`` is bf16 autocast on CUDA (fp16 with loss scaling on GPUs
    without bf16) and full fp32 on CPU; ``amp="fp16"`` always scales the loss (:func:`grad_scaler_for`).
    ``freeze_bn`` keeps the encoder's batch-norm statistics at their pretrained values (the layers run in
    eval mode; their scale and shift still train), as is usual when fine-tuning I3D with small batches:
    with a few clips per batch, train-mode statistics are noise, and the student would start far from
    its self-distillation teacher."""

    epochs: int = 10
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 0.01
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Schedule = "cosine"
    warmup_epochs: float = 0.0
    step_epochs: int = 0
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    seed: int = 0
    max_steps_per_epoch: int | None = None
    clip_grad_norm: float | None = 40.0  # max global gradient norm (None: no clipping)
    freeze_bn: bool = True  # BN statistics frozen (affine params train): batches of a few clips give poor statistics
    head_lr_scale: float = 1.0  # the classifier's lr = lr × this (a new classifier learns faster than the trunk)
    decoder_lr_scale: float = 1.0  # Rev2Net's decoders and Gaussian heads: lr × this (the paper: one lr for all)
    channels_last: bool = False  # channels-last 3D weights (faster convolutions: benchmarks/training_throughput.py)
    evaluate_start: bool = True  # validate the starting model as epoch 0 (start/; best/ until an epoch beats it)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.accumulate < 1:
            raise ValueError("epochs, batch_size and accumulate must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.head_lr_scale <= 0 or self.decoder_lr_scale <= 0:
            raise ValueError("head_lr_scale and decoder_lr_scale must be positive")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")


@dataclass
class RunResult:
    """Where the run lives and how it ended. ``already_finished``: a resume found the run finished and
    changed nothing (``last`` and ``best_top1`` are then those the run ended with; ``seconds`` this call's).
    ``start_top1``: the starting model's validation top-1 (None when it was not evaluated);
    ``best_epoch``: the epoch ``best/`` holds, 0 for the starting model (None without validation)."""

    run_dir: Path
    epochs: int
    best_top1: float | None
    last: dict[str, float]
    seconds: float
    already_finished: bool = False
    start_top1: float | None = None
    best_epoch: int | None = None

    @property
    def beat_start(self) -> bool | None:
        """Whether a trained epoch validated better than the starting model (None when either is unknown)."""
        if self.start_top1 is None or self.best_epoch is None:
            return None
        return self.best_epoch > 0


def build_optimizer(parameters: list[torch.nn.Parameter], config: TrainConfig,
                    head: list[torch.nn.Parameter] | None = None,
                    decoders: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW over ``parameters``. Those also in ``head`` (the classifier) get
    ``lr × head_lr_scale``, those in ``decoders`` (Rev2Net's training-only parts) ``lr × decoder_lr_scale``;
    a scale of 1 adds no group. The schedule scales every group alike."""
    scaled = [(head or [], config.head_lr_scale), (decoders or [], config.decoder_lr_scale)]
    groups, taken = [], set()
    for members, scale in scaled:
        ids = {id(p) for p in members} - taken
        if ids and scale != 1.0:
            groups.append({"params": [p for p in parameters if id(p) in ids], "lr": config.lr * scale})
            taken |= ids
    groups.insert(0, {"params": [p for p in parameters if id(p) not in taken], "lr": config.lr})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def resolve_amp(amp: str, device: torch.device) -> str:
    """The autocast precision a run uses: ``auto`` is bf16 on CUDA GPUs that have it (Ampere and newer),
    fp16 on older ones, and off on CPU; anything else as asked."""
    if amp != "auto":
        return amp
    if device.type != "cuda":
        return "off"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_for(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 or fp16 autocast as :func:`resolve_amp` says; nothing when it says off."""
    amp = resolve_amp(amp, device)
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler_for(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16, a pass-through scaler otherwise. fp16 gradients below about 6e-8 flush to
    zero, so the loss is multiplied before backward and the gradients divided back before clipping and
    the step; a step whose gradients overflowed is skipped and the scale lowered. bf16 has fp32's
    exponent range and needs none."""
    return torch.amp.GradScaler(device.type, enabled=resolve_amp(amp, device) == "fp16")


def fit(task: torch.nn.Module, train_loader: DataLoader, val_loader: DataLoader | None, config: TrainConfig,
        run_dir: str | Path, model_config: ModelConfig, *, device: torch.device, resume: bool = False,
        settings: dict[str, Any] | None = None, setting_defaults: dict[str, Any] | None = None,
        log: Callable[[str], None] = print) -> RunResult:
    """Train ``task`` (see :mod:`actionkit.train.tasks`) and write the run folder:

    ``checkpoint.pt`` (atomic, each epoch), ``metrics.jsonl``, ``plots/{loss,accuracy}.png``,
    ``last/`` and ``best/`` (Hub folders of the encoder with the class list and metrics) and, from
    validation, ``plots/confusion.{png,json}``. ``settings`` (JSON-able) identify the run: a resume with
    different settings is refused. ``setting_defaults`` (nested like ``settings``; TrainConfig's own are
    added) let a checkpoint written before a setting existed resume while it is left at its default.

    A new run refuses a folder that holds a checkpoint and starts ``metrics.jsonl`` afresh; resuming a run
    that has completed ``config.epochs`` writes nothing and returns its result (``already_finished``). A
    file that cannot be written (read-only, no space left) raises :class:`~actionkit.errors.OutputError`
    naming it; the previous checkpoint stays whole. The folder's policy for a whole command (refusing a
    non-empty folder, ``--overwrite``) is :func:`~actionkit.train.checkpoint.prepare_run_folder`'s.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    settings = _run_settings(config, settings)
    main = distributed.is_main()
    if main:
        ensure_writable_folder(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    if not resume and (run_dir / CHECKPOINT_NAME).exists():
        raise ActionkitError(f"{run_dir}: already holds a training run; pass --resume to continue it, "
                             "--overwrite to start it again, or choose another --out")
    task.to(device)
    if config.channels_last:
        task.to(memory_format=torch.channels_last_3d)
    optimizer = build_optimizer(list(task.trainable_parameters()), config,
                                head=list(task.encoder.classifier.parameters()), decoders=task.decoder_parameters())
    steps_per_epoch = _steps_per_epoch(train_loader, config)
    total_steps = steps_per_epoch * config.epochs
    warmup = round(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(
        step, total_steps, warmup, config.schedule, config.step_epochs * steps_per_epoch))
    scaler = grad_scaler_for(device, config.amp)
    warn_if_bf16_is_emulated(resolve_amp(config.amp, device), device)
    metrics = MetricsLog(run_dir)
    start_epoch, step, best = 0, 0, None
    if resume:
        state = load_checkpoint(run_dir, settings, _run_defaults(setting_defaults))
        if state.epoch >= config.epochs:
            log(_finished_line(run_dir, config.epochs))
            return _finished_result(run_dir, config, state.best_metric, started)
        task.load_state_dict(state.task)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        if state.grad_scaler:
            scaler.load_state_dict(state.grad_scaler)
        restore_rng(state.rng)
        task.restore_random_state(state.rng)
        start_epoch, step, best = state.epoch, state.step, state.best_metric
        if main:
            metrics.keep_epochs_before(start_epoch)
            log(f"resuming {run_dir} after epoch {start_epoch} of {config.epochs} (step {step})")
    elif main:
        metrics.start()  # a new run's log holds only its own steps
    if main and not resume and val_loader is not None and config.evaluate_start:
        best = _validate_start(task, val_loader, model_config, device, run_dir, metrics, log)
    model = _wrap_distributed(task, device)
    last: dict[str, float] = {}
    dead_decoders = DeadDecoderWarning(log)  # checked on rank 0, which logs

    for epoch in range(start_epoch, config.epochs):
        task.start_epoch(epoch)
        set_loader_epoch(train_loader, epoch)
        step = _train_one_epoch(model, task, train_loader, optimizer, scheduler, scaler, config, device, epoch,
                                step, steps_per_epoch, metrics if main else None, model_config, dead_decoders)
        if main:
            last = {"epoch": epoch + 1}
            if val_loader is not None:
                result = _validate(task, val_loader, model_config, device)
                last.update(result.metrics())
                metrics.append({"split": "val", "epoch": epoch, "step": step, **result.metrics()})
                log(f"epoch {epoch + 1}/{config.epochs}: val top-1 {100 * result.top1:.1f}%, top-5 "
                    f"{100 * result.top5:.1f}%, mean class {100 * result.mean_class:.1f}%")
                if best is None or result.top1 > best:
                    best = result.top1
                    save_pretrained(task.encoder, run_dir / "best", config=model_config, metrics=_card_metrics(last))
                    save_confusion(result, model_config.labels, run_dir / "plots", "best epoch")
            save_pretrained(task.encoder, run_dir / "last", config=model_config, metrics=_card_metrics(last))
            plot_metrics(metrics.records(), run_dir / "plots")
            rng = rng_state() | task.random_state()
            save_checkpoint(run_dir, TrainingState(epoch + 1, step, task.state_dict(), optimizer.state_dict(),
                                                   scheduler.state_dict(), rng, settings, best,
                                                   scaler.state_dict() if scaler.is_enabled() else None))
        distributed.barrier()
    start_top1, best_epoch = best_of_log(metrics.records()) if main else (None, None)
    return RunResult(run_dir, config.epochs, best, last, time.perf_counter() - started,
                     start_top1=start_top1, best_epoch=best_epoch)


def best_of_log(records: list[dict[str, Any]]) -> tuple[float | None, int | None]:
    """From a run's ``metrics.jsonl`` records: the starting model's validation top-1 (its record has
    ``epoch`` −1; None when absent) and the epoch ``best/`` holds (0: the starting model, N: after N
    epochs; the first of equal top-1s, as :func:`fit` keeps it; None without validation records)."""
    val = [r for r in records if r.get("split") == "val"]
    start = next((r["top1"] for r in val if r["epoch"] == -1), None)
    if not val:
        return start, None
    best = max(r["top1"] for r in val)
    return start, next(r["epoch"] + 1 for r in val if r["top1"] == best)


def _validate_start(task, val_loader: DataLoader, model_config: ModelConfig, device, run_dir: Path,
                    metrics: MetricsLog, log: Callable[[str], None]) -> float:
    """Epoch 0: validate the model before any step, log it (``epoch`` −1 in metrics.jsonl), save it as
    ``start/`` and as ``best/``. The random state is put back afterwards (iterating a loader draws from
    it), so the training that follows is the one a run without this validation would do."""
    state = rng_state() | task.random_state()
    result = _validate(task, val_loader, model_config, device)
    restore_rng(state)
    task.restore_random_state(state)
    metrics.append({"split": "val", "epoch": -1, "step": 0, **result.metrics()})
    log(f"epoch 0 (the starting model, before any step): val top-1 {100 * result.top1:.1f}%, top-5 "
        f"{100 * result.top5:.1f}%, mean class {100 * result.mean_class:.1f}%")
    card = _card_metrics({"epoch": 0, **result.metrics()})
    save_pretrained(task.encoder, run_dir / START_NAME, config=model_config, metrics=card)
    save_pretrained(task.encoder, run_dir / "best", config=model_config, metrics=card)
    save_confusion(result, model_config.labels, run_dir / "plots", "best epoch")
    return result.top1


def finished_run(run_dir: str | Path, config: TrainConfig, *, settings: dict[str, Any] | None = None,
                 setting_defaults: dict[str, Any] | None = None) -> RunResult | None:
    """For ``resume``, before any work: the result of the run in ``run_dir`` when its checkpoint has
    completed ``config.epochs`` (``already_finished``; nothing is written), None when it has epochs to go.
    Errors as :func:`fit`'s resume: no checkpoint, or one written with other settings (``settings`` and
    ``setting_defaults`` as :func:`fit` takes them). Reads the checkpoint memory-mapped (cheap)."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir, _run_settings(config, settings), _run_defaults(setting_defaults), mmap=True)
    if state.epoch < config.epochs:
        return None
    return _finished_result(run_dir, config, state.best_metric, started)


def finished_line(result: RunResult) -> str:
    """What to tell the user about an ``already_finished`` run, in one line."""
    return _finished_line(result.run_dir, result.epochs)


def _finished_line(run_dir: Path, epochs: int) -> str:
    return f"{run_dir}: the run is already finished ({epochs} of {epochs} epochs); nothing was changed"


def _finished_result(run_dir: Path, config: TrainConfig, best: float | None, started: float) -> RunResult:
    """A finished run's result as :func:`fit` returned it, from its log: ``last`` from its last validation."""
    last: dict[str, float] = {"epoch": config.epochs}
    records = MetricsLog(run_dir).records()
    for record in reversed(records):
        if record.get("split") == "val" and record.get("epoch") == config.epochs - 1:
            last.update({k: v for k, v in record.items() if k not in ("split", "epoch", "step")})
            break
    start_top1, best_epoch = best_of_log(records)
    return RunResult(run_dir, config.epochs, best, last, time.perf_counter() - started, already_finished=True,
                     start_top1=start_top1, best_epoch=best_epoch)


def _run_settings(config: TrainConfig, settings: dict[str, Any] | None) -> dict[str, Any]:
    """What identifies a run in its checkpoint: the caller's settings and the TrainConfig."""
    return {**(settings or {}), "train": _jsonable(asdict(config))}


def _run_defaults(setting_defaults: dict[str, Any] | None) -> dict[str, Any]:
    return {**(setting_defaults or {}), "train": _jsonable(asdict(TrainConfig()))}


def _steps_per_epoch(loader: DataLoader, config: TrainConfig) -> int:
    batches = len(loader)
    if config.max_steps_per_epoch is not None:
        batches = min(batches, config.max_steps_per_epoch * config.accumulate)
    return max(1, math.ceil(batches / config.accumulate))


def _wrap_distributed(task: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if distributed.world_size() == 1:
        return task
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(task, device_ids=ids)


def freeze_batch_norm_statistics(module: torch.nn.Module) -> None:
    """Put every batch norm in ``module`` in eval mode: running statistics stay fixed, scale and shift
    still train (``TrainConfig.freeze_bn``). Call after ``.train()``."""
    for child in module.modules():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            child.eval()


def _train_one_epoch(model, task, loader, optimizer, scheduler, scaler: torch.amp.GradScaler,
                     config: TrainConfig, device, epoch: int, step: int, steps_per_epoch: int,
                     metrics: MetricsLog | None, model_config: ModelConfig,
                     dead_decoders: "DeadDecoderWarning") -> int:
    task.train()
    if config.freeze_bn:
        freeze_batch_norm_statistics(task.encoder)
    optimizer.zero_grad(set_to_none=True)
    batches = steps_per_epoch * config.accumulate
    value_range = model_config.preprocessing.value_range
    with progress_bar(f"epoch {epoch + 1}/{config.epochs}", min(batches, len(loader)), metrics is not None) as advance:
        for i, batch in enumerate(loader):
            if i >= batches:
                break
            boundary = (i + 1) % config.accumulate == 0 or i + 1 == min(batches, len(loader))
            sync = contextlib.nullcontext() if boundary or model is task else model.no_sync()
            with sync:
                with autocast_for(device, config.amp):
                    out = model(finish_batch(batch, device, value_range))
                scaler.scale(out.loss / config.accumulate).backward()
            advance()
            if not boundary:
                continue
            if config.clip_grad_norm:
                scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16)
                torch.nn.utils.clip_grad_norm_(task.trainable_parameters(), config.clip_grad_norm)
            scaler.step(optimizer)  # skipped when fp16 gradients overflowed
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            if metrics is not None:  # rank 0 logs (reading values back waits for the device)
                diagnostics = {name: float(value) for name, value in out.diagnostics.items()}
                dead_decoders.check(diagnostics, step)
                record = {"split": "train", "epoch": epoch, "step": step, "lr": lr, "loss": float(out.loss.detach())}
                if scaler.is_enabled():
                    record["grad_scale"] = scaler.get_scale()
                record.update({f"loss_{name}": float(value) for name, value in out.terms.items()})
                metrics.append({**record, **diagnostics})
    return step


class DeadDecoderWarning:
    """Says once per decoder when a Rev2Net decoder's first layer goes dead (``active_*`` = 0 on a batch;
    see :func:`actionkit.train.tasks.decoder_activity`): the run goes on, but the user should know the
    DDP is being satisfied trivially."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.said: set[str] = set()

    def check(self, diagnostics: dict[str, float], step: int) -> None:
        for name, active in diagnostics.items():
            if name.startswith("active_") and active == 0.0 and name not in self.said:
                self.said.add(name)
                self.log(f"warning: step {step}: the Rev2Net {name.removeprefix('active_')} decoder's first layer is "
                         "dead (no unit active): the low-level DDP is trivially 0 and this decoder no longer trains "
                         "the encoder; lower --decoder-lr-scale or --beta")


def _validate(task, loader: DataLoader, model_config: ModelConfig, device) -> EvalResult:
    task.eval()
    return evaluate(task.evaluate_logits, loader, model_config.model.num_classes, device,
                    model_config.preprocessing.value_range)


def _card_metrics(last: dict[str, float]) -> dict[str, Any]:
    return {("val " + k if k != "epoch" else k): v for k, v in last.items()}


def _jsonable(value: Any) -> Any:
    """Dataclass dicts -> plain JSON types (tuples become lists), as they read back from a checkpoint."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

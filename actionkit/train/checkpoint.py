"""Training state on disk: written atomically each epoch, restored exactly by ``--resume``.

``checkpoint.pt`` holds the task (encoder, decoders, teacher), optimizer, scheduler, completed epochs,
optimizer steps, the torch RNG states (with the task's own generators: Rev2Net's Gaussian noise) and the
run's settings. It is written to a temporary file and renamed, so a kill at any moment leaves the previous
checkpoint intact (and a full disk too: the error names the file, and the temporary is removed). Loading
uses ``torch.load(weights_only=True)``: no code runs from a checkpoint file.

:func:`prepare_run_folder` is the rule for the run folder as a whole: a new run gets an empty one (or
``overwrite`` clears the old run's files), a resumed run keeps its own, and temporaries left by a kill are
removed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from actionkit.errors import ActionkitError, CheckpointError, OutputError
from actionkit.files import (
    describe_os_error,
    ensure_writable_folder,
    is_temporary,
    remove_stale_temporaries,
    write_atomically,
)
from actionkit.train.metrics import METRICS_NAME

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1
# What a run writes into its folder (fit and finetune): what ``overwrite`` clears.
START_NAME = "start"      # the starting model (epoch 0), what WiSE-FT interpolates from
WISE_FT_NAME = "wise-ft"  # WiSE-FT's chosen model folder; its table is wise-ft.json
RUN_FILES = (CHECKPOINT_NAME, METRICS_NAME, "run.json", "classes.json", f"{WISE_FT_NAME}.json")
RUN_FOLDERS = ("best", "last", START_NAME, WISE_FT_NAME, "plots")


@dataclass
class TrainingState:
    """What resuming needs: the epochs completed, optimizer steps taken, and every state dict."""

    epoch: int
    step: int
    task: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    settings: dict[str, Any]
    best_metric: float | None = None
    grad_scaler: dict[str, Any] | None = None  # fp16's loss scale (None without fp16; checkpoints before it)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, state: TrainingState) -> Path:
    """Write ``run_dir/checkpoint.pt`` atomically (temporary file in the same folder, then rename), first
    removing temporaries of earlier saves that were killed mid-write. On a full or read-only disk it raises
    :class:`~actionkit.errors.OutputError` naming the file, and the previous checkpoint stays as it was."""
    payload = {"format_version": FORMAT_VERSION, **state.__dict__}
    remove_stale_temporaries(run_dir, CHECKPOINT_NAME)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through Python's file: a full disk is an OSError, not torch's "enforce fail"
            torch.save(payload, f)

    return write_atomically(run_dir / CHECKPOINT_NAME, write)


def read_checkpoint_file(path: Path, mmap: bool = False) -> dict[str, Any]:
    """The dict in a ``checkpoint.pt`` (tensors only, no code run); an error naming the file otherwise.
    ``mmap``: tensors stay on disk until used (a quick look at the epoch and settings)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises many kinds for damaged files
        raise CheckpointError(path, f"unreadable checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, "not a training checkpoint")
    return data


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: ``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(flatten_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(saved: dict[str, Any], current: dict[str, Any],
                     defaults: dict[str, Any] | None = None) -> list[str]:
    """The dotted keys whose value differs between a checkpoint's ``saved`` settings and the ``current``
    ones. A key the checkpoint lacks counts as unchanged when its current value is its default (in
    ``defaults``, nested like the settings): a setting added by a later actionkit, left as it was."""
    old, new = flatten_settings(saved), flatten_settings(current)
    default = flatten_settings(defaults or {})
    return sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and not (k not in old and k in default and new.get(k) == default[k]))


def load_checkpoint(run_dir: Path, settings: dict[str, Any], defaults: dict[str, Any] | None = None,
                    mmap: bool = False) -> TrainingState:
    """The run's last checkpoint; an error naming the file when it is missing, unreadable, or was
    written with different settings (a resumed run must be the same run). Settings are compared one
    by one (see :func:`changed_settings`; ``defaults`` lets a checkpoint from before a setting existed
    resume when that setting is left at its default). ``mmap``: see :func:`read_checkpoint_file`."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(path, "no checkpoint to resume from (the run has not finished an epoch); "
                                    "pass --overwrite instead of --resume to start it again")
    data = read_checkpoint_file(path, mmap=mmap)
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(path, f"checkpoint format {data.get('format_version')} is not {FORMAT_VERSION}")
    saved = data["settings"]
    changed = changed_settings(saved, settings, defaults)
    if changed:
        old, new = flatten_settings(saved), flatten_settings(settings)
        detail = ", ".join(f"{k}: {old.get(k, '(not set)')!r} -> {new.get(k, '(not set)')!r}" for k in changed[:5])
        raise CheckpointError(path, f"--resume with different settings ({detail}); use a new --out folder")
    data.pop("format_version")
    return TrainingState(**data)


def prepare_run_folder(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a run, before any work: it must be writable (:class:`OutputError`
    otherwise); temporaries that a kill left in it (or in ``best/``, ``last/``, ``plots/``) are removed;
    with ``overwrite`` the previous run's files (:data:`RUN_FILES`, :data:`RUN_FOLDERS`) are deleted,
    others are left alone; without ``resume`` or ``overwrite`` a folder holding anything is refused, so a
    new run never mixes its records (``metrics.jsonl``, ``run.json``) with an old one's. Whether a resumed
    run has a checkpoint, and the same settings, is :func:`load_checkpoint`'s to say."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: --resume continues the run in "
                         f"{run_dir}, --overwrite deletes it and starts again")
    ensure_writable_folder(run_dir)
    if not run_dir.is_dir():
        return
    for folder in (run_dir, *(run_dir / name for name in RUN_FOLDERS)):
        if folder.is_dir():
            remove_stale_temporaries(folder)
    if overwrite:
        _clear_run(run_dir)
        return
    held = sorted(p.name for p in run_dir.iterdir() if not is_temporary(p))
    if held and not resume:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise ActionkitError(f"{run_dir}: not empty (it holds {shown}); pass --resume to continue the run in it, "
                             "--overwrite to delete its files and start again, or choose another --out")


def _clear_run(run_dir: Path) -> None:
    for name in RUN_FILES + RUN_FOLDERS:
        path = run_dir / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        except OSError as e:
            raise OutputError(path, f"cannot delete for --overwrite: {describe_os_error(e)}") from e

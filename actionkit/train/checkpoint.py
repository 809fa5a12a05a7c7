"""Training state on disk: written atomically each epoch, restored exactly by ``--resume``.

``checkpoint.pt`` holds the task (encoder, decoders, teacher), optimizer, scheduler, completed epochs,
optimizer steps, the torch RNG states (with the task's own generators: Rev2Net's Gaussian noise) and the
run's settings. It is written to a temporary file and renamed, so a kill at any moment leaves the previous
checkpoint intact. Loading uses ``torch.load(weights_only=True)``: no code runs from a checkpoint file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from actionkit.errors import CheckpointError
from actionkit.files import write_atomically

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


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
    """Write ``run_dir/checkpoint.pt`` atomically (temporary file in the same folder, then rename)."""
    payload = {"format_version": FORMAT_VERSION, **state.__dict__}
    return write_atomically(run_dir / CHECKPOINT_NAME, lambda tmp: torch.save(payload, tmp))


def read_checkpoint_file(path: Path) -> dict[str, Any]:
    """The dict in a ``checkpoint.pt`` (tensors only, no code run); an error naming the file otherwise."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
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


def load_checkpoint(run_dir: Path, settings: dict[str, Any], defaults: dict[str, Any] | None = None) -> TrainingState:
    """The run's last checkpoint; an error naming the file when it is missing, unreadable, or was
    written with different settings (a resumed run must be the same run). Settings are compared one
    by one (see :func:`changed_settings`; ``defaults`` lets a checkpoint from before a setting existed
    resume when that setting is left at its default)."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(path, "no checkpoint to resume from (the run has not finished an epoch)")
    data = read_checkpoint_file(path)
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

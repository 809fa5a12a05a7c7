"""Stripping: whatever a user points at, the plain I3D that gets deployed.

Sources, tried in this order:
- a Hub folder (``config.json`` + ``model.safetensors``): already a plain I3D;
- a training run folder (``checkpoint.pt``, ``best/``, ``last/``): its ``best/`` model (``last/`` when the
  run had no validation split), which the loop saves encoder-only;
- a training checkpoint file (``checkpoint.pt`` of a plain, self-distillation or Rev2Net run): the
  encoder's tensors are taken from the task's state dict; the decoders, the Gaussian heads and the
  teacher are dropped; labels and preprocessing come from the run folder's ``last/config.json``;
- anything :func:`actionkit.hub.load_pretrained` reads (a DeepMind or pytorch-i3d checkpoint, a repo id).

In memory, :func:`strip` turns a Rev2Net or a training task into its encoder.
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from actionkit.errors import CheckpointError
from actionkit.hub import (
    CONFIG_NAME,
    RUN_MODEL_FOLDERS,
    ModelConfig,
    load_pretrained,
    model_folder,
)
from actionkit.hub.state_dict import load_state_dict_strictly
from actionkit.models.i3d import I3D
from actionkit.train.checkpoint import read_checkpoint_file

RUN_CHECKPOINT = "checkpoint.pt"
ENCODER_PREFIXES = ("model.encoder.", "model.")  # Rev2Net task, plain task (see actionkit.train.tasks)


def strip(model: nn.Module) -> I3D:
    """The I3D inside ``model`` (a Rev2Net, a training task or an I3D), copied, in eval mode."""
    encoder = getattr(model, "encoder", model)
    if not isinstance(encoder, I3D):
        raise TypeError(f"expected an I3D, a Rev2Net or a training task, got {type(model).__name__}")
    stripped = copy.deepcopy(encoder).eval()
    if hasattr(encoder, "pretrained_cfg"):
        stripped.pretrained_cfg = encoder.pretrained_cfg  # type: ignore[attr-defined]
    return stripped


def load_for_export(source: str | Path, **hub_kwargs) -> tuple[I3D, str]:
    """The plain I3D of ``source`` and a one-line description of what was taken from it."""
    path = Path(source).expanduser()
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        return load_pretrained(path), f"Hub folder {path}"
    if path.is_dir() and any((path / name).exists() for name in (RUN_CHECKPOINT, *RUN_MODEL_FOLDERS)):
        folder = model_folder(path)
        if folder != path:
            return load_pretrained(folder), f"run folder {path}: its {folder.name}/ model (encoder only)"
        return encoder_from_checkpoint(path / RUN_CHECKPOINT), f"run checkpoint {path / RUN_CHECKPOINT}"
    if path.is_file() and path.suffix == ".pt" and _is_training_checkpoint(path):
        return encoder_from_checkpoint(path), f"run checkpoint {path} (decoders and teacher dropped)"
    return load_pretrained(source, **hub_kwargs), f"checkpoint {source}"


def encoder_from_checkpoint(path: Path) -> I3D:
    """The encoder of a training checkpoint, with the config of the run's ``last/`` model."""
    task_state = read_checkpoint_file(path)["task"]
    prefix = next((p for p in ENCODER_PREFIXES if any(k.startswith(p) for k in task_state)), None)
    if prefix is None:
        raise CheckpointError(path, "holds no encoder tensors (expected names starting with 'model.')")
    state = {k[len(prefix):]: v for k, v in task_state.items() if k.startswith(prefix)}
    config_path = path.parent / "last" / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(path, f"the run's {config_path.relative_to(path.parent)} is missing; its labels "
                                    "and preprocessing are needed to export")
    config = ModelConfig.load(config_path)
    model = I3D(config.model)
    load_state_dict_strictly(model, state, path)
    model.pretrained_cfg = config  # type: ignore[attr-defined]
    return model.eval()


def _is_training_checkpoint(path: Path) -> bool:
    try:
        return "task" in read_checkpoint_file(path)
    except CheckpointError:
        return False

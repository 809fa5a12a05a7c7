"""Hub-format model folders: config.json + model.safetensors + README.md (model card).

``load_pretrained`` accepts a local folder, a checkpoint file (converted in memory) or a Hugging Face
repo id, resolved through huggingface_hub's download functions (so its cache, ``revision=`` and
``HF_HUB_OFFLINE=1`` work as usual). Loading is strict: a missing or unexpected tensor is an error.
Every loader builds the model as ``model_class(config.model)`` (an :class:`~actionkit.models.I3D` or a
subclass), the way huggingface_hub's ``PyTorchModelHubMixin`` rebuilds with ``cls(...)``.
Uploads are in :mod:`actionkit.hub.upload`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from actionkit.artifacts import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE
from actionkit.errors import CheckpointError, ModelNotFoundError
from actionkit.files import write_atomically, write_text_atomically
from actionkit.hub.checkpoints import checkpoint_to_model
from actionkit.hub.model_card import render_model_card
from actionkit.hub.model_config import ModelConfig
from actionkit.hub.state_dict import load_state_dict_strictly
from actionkit.models.i3d import I3D

CONFIG_NAME, WEIGHTS_NAME, CARD_NAME = CONFIG_FILE, WEIGHTS_FILE, CARD_FILE  # the folder's three files
ModelT = TypeVar("ModelT", bound=I3D)
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".pkl", ".pickle", ".bin")


def model_config_of(model: I3D) -> ModelConfig:
    """The config saved with ``model``: its ``pretrained_cfg`` (labels, preprocessing, source) with
    the architecture as it is now."""
    config: ModelConfig | None = getattr(model, "pretrained_cfg", None)
    if config is None:
        return ModelConfig(model=model.config)
    if len(config.id2label) != model.num_classes:
        raise ValueError(f"the model has {model.num_classes} classes but its config lists "
                         f"{len(config.id2label)} labels: set model.pretrained_cfg.id2label")
    config.model = model.config
    return config


def save_pretrained(model: I3D, directory: str | Path, config: ModelConfig | None = None,
                    metrics: dict | None = None, repo_id: str | None = None) -> Path:
    """Write config.json, model.safetensors and README.md into ``directory`` (created if needed).
    Each file is written to a temporary name and renamed, so a crash never leaves half a file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if config is not None:
        model.pretrained_cfg = config  # type: ignore[attr-defined]
    config = model_config_of(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomically(directory / WEIGHTS_NAME, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    write_atomically(directory / CONFIG_NAME, config.save)
    card = render_model_card(config, repo_id=repo_id, metrics=metrics)
    write_text_atomically(directory / CARD_NAME, card)
    return directory


RUN_MODEL_FOLDERS = ("best", "last")  # what a training run folder holds, in the order they are taken


def model_folder(directory: Path) -> Path:
    """``directory`` when it is a model folder; for a training run folder (no ``config.json`` of its own)
    the model inside it: ``best/``, else ``last/``. Anything else is returned as is."""
    if (directory / CONFIG_NAME).is_file():
        return directory
    for name in RUN_MODEL_FOLDERS:
        if (directory / name / CONFIG_NAME).is_file():
            return directory / name
    return directory


def load_folder(directory: Path, source: str | None = None,
                model_class: type[ModelT] = I3D) -> ModelT:  # type: ignore[assignment]
    """An I3D from a Hub-format folder (or the two files a Hub download resolved to)."""
    if not (directory / CONFIG_NAME).is_file():
        raise CheckpointError(source or directory, f"{CONFIG_NAME} is missing: not a model folder, nor a training "
                                                   f"run (no {' or '.join(f'{n}/' for n in RUN_MODEL_FOLDERS)} model inside)")
    return _build(directory / CONFIG_NAME, directory / WEIGHTS_NAME, source or str(directory), model_class)


def _build(config_path: Path, weights_path: Path, source: str, model_class: type[ModelT]) -> ModelT:
    config = ModelConfig.load(config_path)
    if not weights_path.is_file():
        raise CheckpointError(source, f"{WEIGHTS_NAME} is missing")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(weights_path, f"unreadable safetensors file ({e})") from None
    model = model_class(config.model)
    load_state_dict_strictly(model, state, weights_path)
    model.pretrained_cfg = config  # type: ignore[attr-defined]
    return model.eval()


def _looks_like_local_path(source: str) -> bool:
    return (source.startswith((".", "/", "~")) or source.lower().endswith(CHECKPOINT_SUFFIXES)
            or source.count("/") != 1)


def load_pretrained(source: str | Path, *, revision: str | None = None, cache_dir: str | Path | None = None,
                    local_files_only: bool = False, token: str | bool | None = None,
                    model_class: type[ModelT] = I3D) -> ModelT:  # type: ignore[assignment]
    """An I3D (in eval mode, with ``pretrained_cfg``) from a Hub folder, a training run folder (its
    ``best/`` model, else ``last/``), a DeepMind / pytorch-i3d checkpoint file (converted in memory), or
    a Hugging Face repo id (``org/name``). Raises :class:`~actionkit.errors.ModelNotFoundError` when
    ``source`` is none of these, :class:`~actionkit.errors.CheckpointError` when its files are broken."""
    path = Path(source).expanduser()
    if path.is_dir():
        return load_folder(model_folder(path), model_class=model_class)
    if path.is_file():
        return checkpoint_to_model(path, model_class=model_class)
    source = str(source)
    if _looks_like_local_path(source):
        raise ModelNotFoundError(source, "no such file or folder (and not a Hub repo id of the form org/name)")
    parent = path.parent
    if parent.is_dir():  # "models/typo" beside a local models/ folder: a mistyped path, not a repo id to retry
        raise ModelNotFoundError(source, f"no such folder in {parent}/ (read as a local path because {parent}/ "
                                         "exists here; to fetch the Hub repo of that name, run from another folder)")
    return _download(source, model_class, revision=revision, cache_dir=cache_dir,
                     local_files_only=local_files_only, token=token)


def _download(repo_id: str, model_class: type[ModelT], **kwargs) -> ModelT:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    try:
        config_path = hf_hub_download(repo_id, CONFIG_NAME, **kwargs)
        weights_path = hf_hub_download(repo_id, WEIGHTS_NAME, **kwargs)
    except LocalEntryNotFoundError:
        offline = constants.HF_HUB_OFFLINE or kwargs.get("local_files_only")
        why = "not in the local Hugging Face cache and offline mode is on" if offline else \
            "not in the local Hugging Face cache and the Hub could not be reached"
        raise ModelNotFoundError(repo_id, f"no such local folder; as a Hub repo id: {why}") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, HFValidationError) as e:
        raise ModelNotFoundError(repo_id, f"not found on the Hugging Face Hub ({type(e).__name__})") from None
    except HfHubHTTPError as e:
        raise ModelNotFoundError(repo_id, f"Hub request failed ({e})") from None
    return _build(Path(config_path), Path(weights_path), repo_id, model_class)


def convert_checkpoint(src: str | Path, out: str | Path, labels: list[str] | None = None) -> Path:
    """``actionkit convert``: checkpoint file -> Hub-format folder ``out``."""
    return save_pretrained(checkpoint_to_model(src, labels), out)

"""``actionkit push``: a model folder, training run or checkpoint -> a Hugging Face Hub repo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actionkit.errors import ActionkitError, ModelNotFoundError
from actionkit.hub import load_pretrained
from actionkit.hub_upload import UPLOADED_FILES, push_folder, push_to_hub

from ._common import user_errors


def push(
    model: Annotated[str, typer.Argument(help="Model folder, training run folder (its best/ model), export folder, "
                                              "or DeepMind / pytorch-i3d checkpoint file.")],
    repo_id: Annotated[str, typer.Argument(help="Hub repo to upload to, org/name (created when missing).")],
    private: Annotated[bool, typer.Option(help="Create the repo private (an existing repo keeps its visibility).")] = False,
    revision: Annotated[str | None, typer.Option(help="Branch to commit to (default: main).")] = None,
    token: Annotated[str | None, typer.Option(help="Hub token with write access (default: HF_TOKEN or the saved login).")] = None,
    message: Annotated[str, typer.Option(help="Commit message.")] = "Upload I3D model with actionkit",
) -> None:
    """Upload a model to the Hugging Face Hub: config.json, model.safetensors and its model card."""
    with user_errors():
        url = upload(model, repo_id, private=private or None, revision=revision, token=token, message=message)
    typer.echo(f"uploaded {', '.join(UPLOADED_FILES)} to {repo_id}: {url}")


def upload(model: str, repo_id: str, *, private: bool | None, revision: str | None, token: str | None,
           message: str) -> str:
    path = Path(model).expanduser()
    if path.suffix in (".onnx", ".engine"):
        raise ActionkitError(f"{path}: push uploads the PyTorch model (config.json + model.safetensors); "
                             "pass the export folder it is in, or the model it was exported from")
    kwargs = {"private": private, "revision": revision, "token": token, "commit_message": message}
    if path.is_dir():
        return push_folder(path, repo_id, **kwargs)
    if path.is_file():  # a checkpoint, converted in memory
        return push_to_hub(load_pretrained(path), repo_id, **kwargs)
    raise ModelNotFoundError(model, "no such file or folder")

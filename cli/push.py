"""``actionkit push``: a model folder, training run or checkpoint -> a Hugging Face Hub repo."""

from __future__ import annotations

from typing import Annotated

import typer

from actionkit.hub.upload import UPLOADED_FILES
from actionkit.hub.upload import push as push_model

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
        url = push_model(model, repo_id, private=private or None, revision=revision, token=token,
                         commit_message=message)
    typer.echo(f"uploaded {', '.join(UPLOADED_FILES)} to {repo_id}: {url}")

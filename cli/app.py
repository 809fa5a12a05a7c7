"""The Typer application behind the ``actionkit`` console script."""

from __future__ import annotations

from typing import Annotated

import typer

from actionkit import __version__

from .benchmark import benchmark
from .convert import convert
from .data import data_app
from .export import export
from .flow import flow
from .predict import predict
from .push import push
from .serve import serve
from .train import evaluate, finetune, train, wise_ft

app = typer.Typer(name="actionkit", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Video action recognition: convert checkpoints, check datasets, precompute flow, train, evaluate, export, predict, benchmark, push to the Hub.")
app.command()(convert)
app.command()(predict)
app.command()(flow)
app.command()(finetune)
app.command()(train)
app.command()(evaluate)
app.command(name="wise-ft")(wise_ft)
app.command()(export)
app.command()(benchmark)
app.command()(push)
app.command()(serve)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"actionkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """actionkit: train, export and run I3D action recognition models."""


def main() -> None:
    app()

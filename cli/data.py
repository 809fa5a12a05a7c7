"""``actionkit data check``: recognise a dataset's layout, decode every video, report what is unusable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from actionkit.data.check import check_dataset
from actionkit.data.datasets import load_classes, scan_dataset

from ._common import SplitByOption, TestOption, ValOption, split_values, user_errors

data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets: layout, classes, splits and unreadable videos.")


@data_app.callback()
def _data() -> None:
    """Datasets: a folder per class (train/<class>/), list files (train.txt) or a CSV (path,label[,split])."""


@data_app.command()
def check(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder (or its CSV file).")],
    split_by: SplitByOption = None,
    val: ValOption = None,
    test: TestOption = None,
    classes: Annotated[Path | None, typer.Option(help="Class list to keep (classes.json or one name a line).")] = None,
    layout: Annotated[str | None, typer.Option(help="list, folders or csv (default: detected).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Videos decoded in parallel.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Decode every video of a dataset once, whatever its split; exit code 1 when any cannot be used.

    Checking needs no split: a dataset of one split only (a test set), a CSV without a split column and
    class folders without train/ val/ are checked whole (--split-by/--val/--test only show the splits)."""
    with user_errors():
        index = scan_dataset(data, split_by=split_by, val=split_values(val), test=split_values(test), layout=layout,
                             classes=load_classes(classes) if classes else None, split="all")
        report = check_dataset(index, workers=workers, progress=True)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo("\n".join([index.describe(), *report.summary_lines()]))
    if report.unreadable:
        raise typer.Exit(1)

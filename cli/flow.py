"""``actionkit flow``: precompute optical-flow targets for a dataset into the flow cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actionkit.data.datasets import scan_dataset
from actionkit.data.flow import FlowCache, FlowConfig, precompute_flows

from ._common import SplitByOption, TestOption, ValOption, split_values, user_errors


def flow(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder (folder per class, list files or CSV).")],
    method: Annotated[str, typer.Option(help="dis (fast, default) or tvl1 (the paper's TV-L1, slow).")] = "dis",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", "--flow-cache", help="Flow cache folder, as finetune's "
                                                   "--flow-cache (default: $ACTIONKIT_CACHE/flow or ~/.cache/actionkit/flow).")] = None,
    split_by: SplitByOption = None,
    val: ValOption = None,
    test: TestOption = None,
) -> None:
    """Compute the flow targets of every video once; an interrupted run resumes where it stopped."""
    with user_errors():
        if method not in ("dis", "tvl1"):
            raise ValueError(f"--method must be dis or tvl1, got {method!r}")
        index = scan_dataset(data, split_by=split_by, val=split_values(val), test=split_values(test), need_split=False)
        typer.echo(index.describe())
        cache = FlowCache(cache_dir, FlowConfig(method=method))  # type: ignore[arg-type]
        report = precompute_flows([s.path for s in index.samples], cache, workers=workers)
    typer.echo(f"flow ({method}): {report.computed} computed, {report.skipped} already cached, "
               f"{len(report.failed)} failed, {report.seconds:.1f} s; cache {cache.root}")
    for path, message in report.failed:
        typer.echo(f"error: {message}", err=True)
    if report.failed:
        raise typer.Exit(1)

"""One progress bar for long work (prediction, dataset checks, flow precomputation): rich, on stderr."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yields a function that advances a ``description`` bar of ``total`` steps on stderr; a no-op
    when ``enabled`` is false, so callers need no branch."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(description, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)

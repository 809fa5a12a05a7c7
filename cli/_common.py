"""Shared option types and error handling for the commands."""

from __future__ import annotations

import dataclasses
import sys
from contextlib import contextmanager
from typing import Annotated, Any, Iterator

import typer

from actionkit.errors import ActionkitError
from actionkit.files import describe_os_error

ModelOption = Annotated[str, typer.Option(
    "--model", "-m", help="Hub-format folder, training run folder (its best/ model), export folder, DeepMind / "
                          "pytorch-i3d checkpoint file, or Hub repo id (org/name).")]
RevisionOption = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) for a repo id.")]
SplitByOption = Annotated[str | None, typer.Option(
    help="CSV without a split column: the column whose values assign the splits (e.g. sequence).")]
ValOption = Annotated[str | None, typer.Option(help="With --split-by: comma-separated values that make the val split.")]
TestOption = Annotated[str | None, typer.Option(help="With --split-by: comma-separated values that make the test split.")]
DeviceOption = Annotated[str | None, typer.Option(help="torch device, e.g. cpu or cuda:0 (default: CUDA if present).")]


def show_library_warnings() -> None:
    """Print the library's logged warnings (e.g. skipped videos) on stderr as ``warning: ...`` lines."""
    import logging

    logger = logging.getLogger("actionkit")
    if not any(getattr(h, "_actionkit_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.setLevel(logging.WARNING)
        handler._actionkit_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def split_values(text: str | None) -> list[str] | None:
    """``"9,10, 15"`` -> ``["9", "10", "15"]`` (None stays None)."""
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn actionkit's errors (bad files, models, arguments) into one line and exit code 1; so too an
    OSError the library let through (a file it could not read or write): the file and the problem."""
    try:
        yield
    except ActionkitError as e:
        raise fail(str(e)) from None
    except ValueError as e:  # invalid argument values reported by the library
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(os_error_line(e)) from None


def os_error_line(error: OSError) -> str:
    """``path: problem`` for an OSError (its first line where it names no file)."""
    if error.filename is None:
        return (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{error.filename}: {describe_os_error(error)}"


def default(config_class: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config_class``: the library's configs own the
    defaults, and the commands' options take them from there."""
    for f in dataclasses.fields(config_class):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{config_class.__name__}.{name} has no default")
    raise ValueError(f"{config_class.__name__} has no field {name!r}")

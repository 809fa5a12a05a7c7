"""The export formats (the table in :mod:`actionkit.artifacts`) and the check of the options asked for.

An option a format does not accept is an error naming the format and the option, never silently
dropped or changed: asking for ``fp16`` with only the PyTorch format, for instance, fails.
"""

from __future__ import annotations

from typing import Any, Mapping

from actionkit.artifacts import FORMATS, ArtifactFormat
from actionkit.errors import ActionkitError

ExportFormat = ArtifactFormat  # one row of the table; the table itself lives in actionkit.artifacts


class ExportOptionError(ActionkitError):
    """An option a format does not accept, or an unknown format."""


def check_options(formats: list[str], options: Mapping[str, Any]) -> None:
    """Every format is known and every option given (not None) is accepted by at least one chosen
    format; otherwise an :class:`ExportOptionError` saying which formats accept it."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportOptionError(f"unknown export format {unknown[0]!r}; the formats: {', '.join(FORMATS)}")
    for option, value in options.items():
        if value is None:
            continue
        if not any(option in FORMATS[f].options for f in formats):
            takers = [f.name for f in FORMATS.values() if option in f.options]
            raise ExportOptionError(f"option {option!r} does not apply to {' + '.join(formats)}; "
                                    f"it is an option of {', '.join(takers) or 'no format'}")


def format_table() -> list[tuple[str, str, str, str]]:
    """(name, file, devices, options) rows, for ``actionkit export --list`` and the README."""
    return [(f.name, f.filename, "/".join(f.devices), ", ".join(f.options) or "-") for f in FORMATS.values()]

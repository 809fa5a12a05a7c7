"""The export formats, in one table: name, file, where it runs, and the options it accepts.

An option a format does not accept is an error naming the format and the option, never silently
dropped or changed: asking for ``fp16`` with only the PyTorch format, for instance, fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from actionkit.errors import ActionkitError


@dataclass(frozen=True)
class ExportFormat:
    """One row of the table. ``options`` maps each accepted option to what it means."""

    name: str
    filename: str
    devices: tuple[str, ...]
    options: Mapping[str, str]
    extra: str | None = None  # the pip extra that provides its runtime, when optional

    @property
    def suffix(self) -> str:
        return self.filename[self.filename.rindex("."):]


FORMATS: dict[str, ExportFormat] = {
    f.name: f for f in (
        ExportFormat("torch", "model.safetensors", ("cpu", "cuda"), {}),
        ExportFormat("onnx", "model.onnx", ("cpu", "cuda"), {
            "opset": "ONNX opset, 17-20 (TensorRT 10 reads up to 20)",
            "dynamic_clip_len": "the time axis is dynamic too (clip lengths that are multiples of 8)",
            "fp16": "also write model.fp16.onnx (fp16 weights and compute, float32 input and output)",
        }),
        ExportFormat("tensorrt", "model.engine", ("cuda",), {
            "fp16": "fp16 kernels allowed (default) or fp32 only",
            "min_batch": "smallest batch of the optimisation profile",
            "opt_batch": "batch the engine is tuned for",
            "max_batch": "largest batch of the optimisation profile",
            "workspace_gib": "builder workspace limit in GiB",
        }, extra="tensorrt"),
    )
}


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

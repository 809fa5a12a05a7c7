"""Errors users see. Each message names the file (or model) and the problem in one line."""

from __future__ import annotations

from pathlib import Path


class ActionkitError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero, without a traceback."""


class VideoError(ActionkitError):
    """A video could not be used. ``path`` is the file, ``reason`` what is wrong with it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class VideoNotFoundError(VideoError):
    """The path does not exist."""


class NotAVideoError(VideoError):
    """The file is not a container PyAV can open, or it has no video stream."""


class CorruptVideoError(VideoError):
    """The file opened but decoding failed (truncated or damaged data)."""


class EmptyVideoError(VideoError):
    """The video has no decodable frames."""


class CheckpointError(ActionkitError):
    """A checkpoint or model folder is unreadable or does not match the architecture."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ModelNotFoundError(CheckpointError):
    """Neither a local file/folder nor a model resolvable on the Hugging Face Hub (or its cache)."""


class OutputError(ActionkitError):
    """An output file or folder cannot be written: ``path`` is where, ``reason`` why (a read-only file
    system, no space left, a file where a folder should be, no permission)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # raised in worker processes too: rebuilt from both fields, not the message
        return type(self), (self.path, self.reason)

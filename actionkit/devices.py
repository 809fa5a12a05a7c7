"""Where work runs: one rule for turning a user's ``device`` argument into a :class:`torch.device`."""

from __future__ import annotations

import torch

DeviceLike = str | torch.device | None


def default_device() -> torch.device:
    """The first CUDA GPU when one is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: DeviceLike = None) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` (or an empty string) means :func:`default_device`.
    Raises ``RuntimeError`` (from torch) for a string that names no device type."""
    if device is None or device == "":
        return default_device()
    return torch.device(device)

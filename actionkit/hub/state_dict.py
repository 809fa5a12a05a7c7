"""Strict weight loading: every tensor accounted for, every shape checked, errors that name them."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from actionkit.errors import CheckpointError


def _preview(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_state_dict_strictly(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                             source: str | Path) -> None:
    """Load ``state_dict`` into ``model``; a missing, unexpected or mis-shaped tensor is a
    :class:`CheckpointError` naming ``source`` and the tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{name} {tuple(state_dict[name].shape)} (model expects {tuple(expected[name].shape)})"
        for name in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[name].shape) != tuple(expected[name].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_preview(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_preview(mismatched, 3)}")
    if problems:
        arch = type(model).__name__
        raise CheckpointError(source, f"does not match the {arch} architecture ({'; '.join(problems)})")
    model.load_state_dict(state_dict, strict=True)

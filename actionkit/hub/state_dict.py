"""Strict weight loading: every tensor accounted for, every shape and value checked, errors that name them."""

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
    :class:`CheckpointError` naming ``source`` and the tensors, and so is one the model holds in floating
    point that is not floating point (integers are refused, not cast) or holds NaN/inf values."""
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
    for name in sorted(expected):
        problem = weight_problem(state_dict[name]) if expected[name].is_floating_point() else None
        if problem:
            raise CheckpointError(source, f"tensor {name} {problem}")
    model.load_state_dict(state_dict, strict=True)


def weight_problem(tensor: torch.Tensor) -> str | None:
    """Why ``tensor`` cannot be floating-point weights (its dtype, or NaN/inf values), or None."""
    if not tensor.is_floating_point():
        return f"has dtype {tensor.dtype}, not a floating-point type"
    if not bool(torch.isfinite(tensor).all()):
        return "holds NaN/inf values"
    return None

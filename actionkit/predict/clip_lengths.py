"""Which clip lengths an exported model file takes: one fixed length, or multiples of a step."""

from __future__ import annotations


def clip_len_error(frames: int, fixed_clip_len: int | None, multiple: int) -> str | None:
    """Why a model that takes only ``fixed_clip_len`` frames (when set), or else multiples of
    ``multiple`` (at least two of them; 0: any length), cannot take ``frames``-frame clips; None if it can."""
    if fixed_clip_len:
        return None if frames == fixed_clip_len else f"takes clips of exactly {fixed_clip_len} frames"
    if multiple and (frames % multiple or frames < 2 * multiple):
        return f"takes clip lengths that are multiples of {multiple}, at least {2 * multiple}"
    return None

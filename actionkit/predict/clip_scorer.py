"""What timelines and streams need from a model: the :class:`ClipScorer` protocol.

:class:`~actionkit.predict.Recognizer` is one; anything with the same members (a remote model, a test
double) can be scored over windows by :func:`~actionkit.predict.timeline.timeline` and
:func:`~actionkit.predict.stream.stream`.
"""

from __future__ import annotations

from typing import Protocol

import torch

from actionkit.hub.model_config import ModelConfig


class ClipScorer(Protocol):
    """Scores preprocessed clips with a model whose labels and preprocessing are ``config``."""

    config: ModelConfig
    device: torch.device

    @property
    def labels(self) -> list[str]: ...

    @property
    def backend_name(self) -> str: ...

    @property
    def fixed_clip_len(self) -> int | None:
        """The only clip length the model takes (an ONNX without a dynamic time axis), else None."""
        ...

    def clip_len_error(self, frames: int) -> str | None:
        """Why the model cannot take ``frames``-frame clips, or None when it can."""
        ...

    def score_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """N×T×3×H×W uint8 clips, preprocessed as ``config`` says -> N×classes probabilities (CPU)."""
        ...

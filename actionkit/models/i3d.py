"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", 2017).

A faithful port of DeepMind's RGB I3D: TensorFlow "SAME" padding (asymmetric, the extra element goes
after), batch norm with eps 1e-3, a 2×7×7 average pool (stride 1) after Mixed_5c and the logits averaged
over time. Input is N×3×T×H×W in [-1, 1], T ≥ 8.

The file reads top to bottom: padding helper, building blocks, the architecture table, the model.
Stage names follow DeepMind's end points (``Conv3d_1a_7x7`` ... ``Mixed_5c``) so checkpoints map onto
them one to one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from actionkit.config import MIN_FRAMES

Triple = tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding for one dimension: (before, after), the odd element after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _same_pads(shape: Sequence[int], kernel: Triple, stride: Triple) -> list[tuple[int, int]]:
    return [same_padding(int(s), k, st) for s, k, st in zip(shape, kernel, stride)]


def as_f_pad(pads: list[tuple[int, int]]) -> list[int]:
    """(T, H, W) (before, after) pairs -> F.pad's order: W first, then H, then T."""
    return [p for before_after in reversed(pads) for p in before_after]


class ConvBNReLU3d(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d (eps 1e-3) -> ReLU, with "SAME" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1)) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(_conv_same(x, self.conv)))


def _conv_same(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    pads = _same_pads(x.shape[2:], conv.kernel_size, conv.stride)
    if all(before == after for before, after in pads):
        padding = tuple(before for before, _ in pads)
    else:
        x = F.pad(x, as_f_pad(pads))
        padding = (0, 0, 0)
    return F.conv3d(x, conv.weight, conv.bias, conv.stride, padding)


class FoldedConvReLU3d(nn.Module):
    """A :class:`ConvBNReLU3d` for inference: the batch norm folded into the convolution's weight and
    bias (one op fewer per layer; the same outputs up to rounding)."""

    def __init__(self, block: ConvBNReLU3d) -> None:
        super().__init__()
        conv, bn = block.conv, block.bn
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        self.conv = nn.Conv3d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1, 1))
            self.conv.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv.to(conv.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(_conv_same(x, self.conv))  # in place: the convolution output is fresh


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference with every :class:`ConvBNReLU3d` folded (``model`` is untouched)."""
    import copy

    folded = copy.deepcopy(model).eval()
    for name, module in list(folded.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, ConvBNReLU3d):
                setattr(module, child_name, FoldedConvReLU3d(child))
    return folded


class MaxPool3dSame(nn.Module):
    """Max pooling with "SAME" padding; padded positions never win (TF semantics)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _same_pads(x.shape[2:], self.kernel, self.stride)
        if all(before == after for before, after in pads):
            return F.max_pool3d(x, self.kernel, self.stride, tuple(b for b, _ in pads))
        x = F.pad(x, as_f_pad(pads), value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1×1; 1×1→3×3; 1×1→3×3; maxpool→1×1."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        b0, b1_reduce, b1, b2_reduce, b2, b3 = widths
        self.branch0 = ConvBNReLU3d(in_channels, b0)
        self.branch1_reduce = ConvBNReLU3d(in_channels, b1_reduce)
        self.branch1 = ConvBNReLU3d(b1_reduce, b1, (3, 3, 3))
        self.branch2_reduce = ConvBNReLU3d(in_channels, b2_reduce)
        self.branch2 = ConvBNReLU3d(b2_reduce, b2, (3, 3, 3))
        self.branch3_pool = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.branch3 = ConvBNReLU3d(in_channels, b3)
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch0(x),
            self.branch1(self.branch1_reduce(x)),
            self.branch2(self.branch2_reduce(x)),
            self.branch3(self.branch3_pool(x)),
        ], dim=1)


# Inception blocks: name -> (1×1, 3×3 reduce, 3×3, 3×3 reduce, 3×3, pool projection), as in the paper.
INCEPTION_WIDTHS: dict[str, tuple[int, ...]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# The trunk in order. Pools: name -> (kernel, stride); convs: name -> (out, kernel, stride).
STAGES: tuple[str, ...] = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
)
_CONVS: dict[str, tuple[int, Triple, Triple]] = {
    "Conv3d_1a_7x7": (64, (7, 7, 7), (2, 2, 2)),
    "Conv3d_2b_1x1": (64, (1, 1, 1), (1, 1, 1)),
    "Conv3d_2c_3x3": (192, (3, 3, 3), (1, 1, 1)),
}
_POOLS: dict[str, tuple[Triple, Triple]] = {
    "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}

FEATURE_DIM = 1024


@dataclass
class I3DConfig:
    """Architecture hyper-parameters, saved as the ``model`` part of config.json."""

    num_classes: int = 400
    in_channels: int = 3
    dropout: float = 0.5
    architecture: str = field(default="i3d", init=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "I3DConfig":
        known = {k: v for k, v in data.items() if k in ("num_classes", "in_channels", "dropout")}
        if data.get("architecture", "i3d") != "i3d":
            raise ValueError(f"config describes architecture {data['architecture']!r}, not 'i3d'")
        return cls(**known)


class I3DIntermediates(NamedTuple):
    """Pooled features (N×1024) and the requested trunk maps, by stage name."""

    features: torch.Tensor
    maps: dict[str, torch.Tensor]


class I3D(nn.Module):
    """Inflated Inception-v1. ``model(x)`` -> logits N×num_classes for x N×3×T×H×W in [-1, 1]."""

    def __init__(self, config: I3DConfig | None = None) -> None:
        super().__init__()
        self.config = config or I3DConfig()
        channels = self.config.in_channels
        for name in STAGES:
            if name in _CONVS:
                out, kernel, stride = _CONVS[name]
                self.add_module(name, ConvBNReLU3d(channels, out, kernel, stride))
                channels = out
            elif name in _POOLS:
                self.add_module(name, MaxPool3dSame(*_POOLS[name]))
            else:
                block = InceptionBlock(channels, INCEPTION_WIDTHS[name])
                self.add_module(name, block)
                channels = block.out_channels
        assert channels == FEATURE_DIM
        self.dropout = nn.Dropout(self.config.dropout)
        self.classifier = nn.Linear(FEATURE_DIM, self.config.num_classes)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier, N×1024."""
        return self.forward_intermediates(x, ()).features

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Classifier on pooled features (dropout in training mode)."""
        return self.classifier(self.dropout(features))

    def forward_intermediates(self, x: torch.Tensor,
                              stages: Sequence[str] = ("Conv3d_2c_3x3",)) -> I3DIntermediates:
        """Pooled features plus the trunk outputs named in ``stages`` (e.g. Conv3d_2c_3x3:
        N×192×T/2×H/4×W/4, what Rev2Net's decoders stand on)."""
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown I3D stage(s) {sorted(unknown)}; choose from {list(STAGES)}")
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"I3D expects N×{self.config.in_channels}×T×H×W, got {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]}")
        maps: dict[str, torch.Tensor] = {}
        for name in STAGES:
            x = getattr(self, name)(x)
            if name in stages:
                maps[name] = x
        # DeepMind: 2×7×7 average pool, stride 1, VALID, then the mean over time. The spatial window
        # is the whole map (7×7 at 224²) so other input sizes work; temporally 2 (1 when T' = 1).
        t, h, w = x.shape[2:]
        x = F.avg_pool3d(x, (min(2, int(t)), int(h), int(w)), stride=1)
        return I3DIntermediates(x.mean(dim=(2, 3, 4)), maps)

    def replace_classifier(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes`` classes (the trunk is kept)."""
        self.classifier = nn.Linear(FEATURE_DIM, num_classes).to(self.classifier.weight.device)
        self.config.num_classes = num_classes

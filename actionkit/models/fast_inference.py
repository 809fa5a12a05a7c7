"""Inference-only rewrites of I3D layers: the same outputs, fewer passes over memory.

:func:`inference_copy` is what :class:`~actionkit.predict.backends.TorchBackend` runs: a copy of the I3D with its
batch norms folded (:func:`~actionkit.models.i3d.fold_batch_norms`) and, on CPU, two layers rewritten
(their speed-ups are measured by ``benchmarks/model_throughput.py``):

- **The stem** (Conv3d_1a: 7×7×7, stride 2, 3 input channels). oneDNN's bf16 (AMX) kernels need many
  input channels; with 3 the stem runs far below the rest of the network. :class:`SpaceToDepthStem` regroups each 2×2×2 block of the input into channels (3 → 24) and runs a
  stride-1 4×4×4 convolution whose kernel is the original one zero-padded to 8×8×8 and regrouped the same
  way. The sums are the same (the padding adds multiplications by zero, 1.5× the work) and run at the
  rate of the network's other convolutions.
- **Max pooling.** ``F.max_pool3d`` also computes argmax indices, and "SAME" padding with -inf is a full
  copy of the input. :class:`SeparableMaxPool3dSame` takes the max one dimension at a time over strided
  views and clips the windows at the edges instead of padding: bit-identical outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from actionkit.models.i3d import (
    FoldedConvReLU3d,
    MaxPool3dSame,
    Triple,
    as_f_pad,
    fold_batch_norms,
    same_padding,
)

SPACE_TO_DEPTH_MAX_CHANNELS = 4  # stems with at most this many input channels are regrouped


def inference_copy(model: nn.Module, device: torch.device, precision: str) -> nn.Module:
    """A copy of ``model`` for inference on ``device`` (``model`` is untouched): batch norms folded; on CPU
    the max pools separable and, in bf16 / fp16, the stem regrouped by space-to-depth (in fp32 oneDNN's
    own kernels for the 3-channel stem are as fast, so it is left alone)."""
    runnable = fold_batch_norms(model)
    if torch.device(device).type != "cpu":
        return runnable  # cuDNN's pooling and stem were not measured against these rewrites
    for module in list(runnable.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, MaxPool3dSame):
                setattr(module, name, SeparableMaxPool3dSame(child.kernel, child.stride))
            elif precision != "fp32" and SpaceToDepthStem.applies_to(child):
                setattr(module, name, SpaceToDepthStem(child))
    return runnable


class SpaceToDepthStem(nn.Module):
    """A folded stride-2 convolution + ReLU with odd kernels and few input channels, computed as
    space-to-depth (2×2×2 blocks → channels) then a stride-1 convolution with (k+1)/2 taps per dimension.
    "SAME" padding as the original; the output is in the channels-last 3D layout."""

    def __init__(self, block: FoldedConvReLU3d) -> None:
        super().__init__()
        if not self.applies_to(block):
            raise ValueError("SpaceToDepthStem takes a folded stride-2 convolution with odd kernel sizes and at most "
                             f"{SPACE_TO_DEPTH_MAX_CHANNELS} input channels")
        conv = block.conv
        self.kernel: Triple = conv.kernel_size  # the original (odd) kernel, for the padding
        weight = F.pad(conv.weight.detach(), (0, 1, 0, 1, 0, 1))  # k -> k + 1 taps, the extra ones zero
        out_channels, in_channels, kt, kh, kw = weight.shape
        weight = weight.reshape(out_channels, in_channels, kt // 2, 2, kh // 2, 2, kw // 2, 2)
        weight = weight.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(out_channels, in_channels * 8, kt // 2, kh // 2,
                                                                 kw // 2)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last_3d))
        self.register_buffer("bias", conv.bias.detach().clone())

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        if not isinstance(module, FoldedConvReLU3d):
            return False
        conv = module.conv
        return (conv.stride == (2, 2, 2) and all(k % 2 == 1 for k in conv.kernel_size)
                and conv.in_channels <= SPACE_TO_DEPTH_MAX_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):  # regroup in the compute dtype: half the bytes moved
            x = x.to(torch.get_autocast_dtype(x.device.type))
        pads = []
        for size, kernel in zip(x.shape[2:], self.kernel):
            before, after = same_padding(int(size), kernel, 2)
            outputs = -(-int(size) // 2)
            after += 2 * (outputs - 1) + kernel + 1 - (int(size) + before + after)  # even, for k + 1 taps
            pads.append((before, after))
        x = F.pad(x, as_f_pad(pads))
        n, c, t, h, w = x.shape
        # (n, c·8, t/2, h/2, w/2) in the contiguous layout: copying straight into channels-last order moves
        # runs of 2 elements and measured 3× slower; the channels-last weight still makes the output
        # channels-last.
        x = x.reshape(n, c, t // 2, 2, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 7, 2, 4, 6)
        x = x.reshape(n, c * 8, t // 2, h // 2, w // 2)
        return F.relu_(F.conv3d(x, self.weight.to(x.dtype), self.bias.to(x.dtype)))


class SeparableMaxPool3dSame(nn.Module):
    """:class:`~actionkit.models.i3d.MaxPool3dSame` (TensorFlow "SAME", padded positions never win) as one
    max per dimension over strided views, each window clipped at the edges instead of padded."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Strided dimensions first: they shrink the tensor the later maxima read.
        order = sorted(range(3), key=lambda d: -self.stride[d])
        for d in order:
            if self.kernel[d] > 1 or self.stride[d] > 1:
                x = _max_along(x, d + 2, self.kernel[d], self.stride[d])
        return x


def _strided(x: torch.Tensor, dim: int, start: int, count: int, step: int) -> torch.Tensor:
    """``x``'s elements start, start + step, ... (``count`` of them) along ``dim``, as a view."""
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, start + (count - 1) * step + 1, step)
    return x[tuple(index)]


def _max_along(x: torch.Tensor, dim: int, kernel: int, stride: int) -> torch.Tensor:
    size = x.shape[dim]
    before, _ = same_padding(size, kernel, stride)
    outputs = -(-size // stride)
    # Output o's window covers inputs o·stride − before + j, j < kernel. Tap j = before (offset 0) is
    # inside the input for every output, so it starts the result; the others update the outputs whose
    # input they reach.
    result = _strided(x, dim, 0, outputs, stride).clone()
    for tap in range(kernel):
        offset = tap - before
        if offset == 0:
            continue
        first = (-offset + stride - 1) // stride if offset < 0 else 0  # ceil(-offset / stride)
        last = min(outputs - 1, (size - 1 - offset) // stride)
        if last < first:
            continue
        target = result.narrow(dim, first, last - first + 1)
        torch.maximum(target, _strided(x, dim, first * stride + offset, last - first + 1, stride), out=target)
    return result

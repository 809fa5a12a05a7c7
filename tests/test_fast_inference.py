"""The inference-only layer rewrites (actionkit.models.fast_inference) against the layers they replace."""

import numpy as np
import pytest
import torch

from actionkit.models.fast_inference import (
    SeparableMaxPool3dSame,
    SpaceToDepthStem,
    inference_copy,
)
from actionkit.models.i3d import (
    _POOLS,
    ConvBNReLU3d,
    FoldedConvReLU3d,
    MaxPool3dSame,
    fold_batch_norms,
)

from conftest import REFERENCE, require

SHAPES = [(1, 3, 1, 1, 1), (2, 5, 4, 9, 10), (1, 4, 7, 13, 14), (1, 3, 2, 3, 3), (1, 8, 16, 56, 57)]


@pytest.mark.parametrize("kernel,stride", [*_POOLS.values(), ((3, 3, 3), (1, 1, 1))])
@pytest.mark.parametrize("shape", SHAPES)
def test_separable_max_pool_is_bit_identical(kernel, stride, shape) -> None:
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
    expected = MaxPool3dSame(kernel, stride)(x)
    assert torch.equal(SeparableMaxPool3dSame(kernel, stride)(x), expected)
    assert torch.equal(SeparableMaxPool3dSame(kernel, stride)(x.contiguous()), expected)


def _folded_stem(kernel=(7, 7, 7), in_channels=3) -> FoldedConvReLU3d:
    block = ConvBNReLU3d(in_channels, 16, kernel, (2, 2, 2))
    with torch.no_grad():
        block.conv.weight.normal_(0, 0.1)
        block.bn.running_mean.uniform_(-0.2, 0.2)
        block.bn.running_var.uniform_(0.5, 2)
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-0.1, 0.1)
    return FoldedConvReLU3d(block.eval())


@pytest.mark.parametrize("shape", [(1, 3, 8, 32, 32), (2, 3, 9, 33, 31), (1, 3, 1, 5, 6), (1, 3, 16, 64, 64)])
@pytest.mark.parametrize("kernel", [(7, 7, 7), (3, 5, 1)])
def test_space_to_depth_stem_matches_the_strided_convolution(shape, kernel) -> None:
    folded = _folded_stem(kernel)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = folded(x)
        got = SpaceToDepthStem(folded)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_space_to_depth_applies_only_to_few_channel_stride2_odd_kernels() -> None:
    assert SpaceToDepthStem.applies_to(_folded_stem())
    assert not SpaceToDepthStem.applies_to(_folded_stem(in_channels=64))
    assert not SpaceToDepthStem.applies_to(_folded_stem(kernel=(2, 2, 2)))
    assert not SpaceToDepthStem.applies_to(FoldedConvReLU3d(ConvBNReLU3d(3, 8, (3, 3, 3)).eval()))
    with pytest.raises(ValueError, match="stride-2"):
        SpaceToDepthStem(FoldedConvReLU3d(ConvBNReLU3d(64, 8, (7, 7, 7), (2, 2, 2)).eval()))


def test_inference_copy_rewrites_per_device_and_precision(k400_model) -> None:
    def kinds(model):
        return {type(m).__name__ for m in model.modules()}

    bf16 = inference_copy(k400_model, torch.device("cpu"), "bf16")
    assert isinstance(bf16.Conv3d_1a_7x7, SpaceToDepthStem)
    assert "SeparableMaxPool3dSame" in kinds(bf16) and "MaxPool3dSame" not in kinds(bf16)
    fp32 = inference_copy(k400_model, torch.device("cpu"), "fp32")
    assert isinstance(fp32.Conv3d_1a_7x7, FoldedConvReLU3d) and "SeparableMaxPool3dSame" in kinds(fp32)
    gpu = inference_copy(k400_model, torch.device("cuda"), "bf16")  # nothing moves: only the plan is checked
    assert "MaxPool3dSame" in kinds(gpu) and "SpaceToDepthStem" not in kinds(gpu)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in bf16.modules())


def test_rewritten_k400_model_keeps_the_logits_on_a_real_clip(k400_model) -> None:
    """All rewrites together, in fp32 so that only the rewrites could move the logits."""
    frames = torch.from_numpy(np.load(require(REFERENCE))["frames"][:32])  # arm wrestling, 32 of 64 frames
    arm_wrestling_clip = (frames.float() / 127.5 - 1).permute(3, 0, 1, 2)[None]
    rewritten = inference_copy(k400_model, torch.device("cpu"), "bf16")
    with torch.no_grad():
        expected = fold_batch_norms(k400_model)(arm_wrestling_clip)
        got = rewritten(arm_wrestling_clip)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)
    assert got.argmax(1).tolist() == expected.argmax(1).tolist()

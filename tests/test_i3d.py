"""The I3D architecture: shapes, padding semantics, intermediate maps, classifier replacement."""

import pytest
import torch

from actionkit import I3D, I3DConfig
from actionkit.models.i3d import MaxPool3dSame, same_padding


@pytest.fixture(scope="module")
def model() -> I3D:
    torch.manual_seed(0)
    return I3D(I3DConfig(num_classes=7)).eval()


@pytest.mark.parametrize("frames,size", [(8, 64), (13, 72), (16, 96)])
def test_logits_and_features_shapes(model: I3D, frames: int, size: int) -> None:
    x = torch.rand(2, 3, frames, size, size + 8) * 2 - 1
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
    assert logits.shape == (2, 7)
    assert features.shape == (2, 1024)
    assert torch.allclose(model.forward_head(features), logits, atol=1e-5)


def test_conv3d_2c_map_on_request(model: I3D) -> None:
    x = torch.zeros(1, 3, 16, 64, 96)
    with torch.no_grad():
        out = model.forward_intermediates(x, ("Conv3d_2c_3x3", "Mixed_4f"))
    assert out.maps["Conv3d_2c_3x3"].shape == (1, 192, 8, 16, 24)  # 192 × T/2 × H/4 × W/4
    assert out.maps["Mixed_4f"].shape[1] == 832
    assert out.features.shape == (1, 1024)


def test_batch_items_are_independent(model: I3D) -> None:
    x = torch.rand(3, 3, 8, 64, 64)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_rejects_short_clips_and_wrong_layout(model: I3D) -> None:
    with pytest.raises(ValueError, match="at least 8 frames"):
        model(torch.zeros(1, 3, 7, 64, 64))
    with pytest.raises(ValueError, match="N×3×T×H×W"):
        model(torch.zeros(1, 64, 64, 8, 3))
    with pytest.raises(ValueError, match="unknown I3D stage"):
        model.forward_intermediates(torch.zeros(1, 3, 8, 64, 64), ("Conv3d_9z",))


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (224, 7, 2, (2, 3)),  # even input: the odd pixel goes after (TensorFlow)
    (223, 7, 2, (3, 3)),
    (112, 3, 2, (0, 1)),
    (7, 3, 1, (1, 1)),
    (8, 2, 2, (0, 0)),
    (1, 3, 2, (1, 1)),
])
def test_tensorflow_same_padding(size: int, kernel: int, stride: int, expected: tuple) -> None:
    assert same_padding(size, kernel, stride) == expected


def test_max_pool_padding_never_wins() -> None:
    # TF "SAME" max pooling ignores padded cells: an all-negative input must stay negative at borders,
    # for the symmetric (stride 1) and the asymmetric (stride 2, even size) cases alike.
    x = torch.full((1, 1, 4, 6, 6), -5.0)
    assert torch.equal(MaxPool3dSame((3, 3, 3), (1, 1, 1))(x), x)
    pooled = MaxPool3dSame((1, 3, 3), (1, 2, 2))(x)
    assert pooled.shape == (1, 1, 4, 3, 3) and torch.all(pooled == -5.0)


def test_replace_classifier_keeps_the_trunk(model: I3D) -> None:
    clone = I3D(I3DConfig(num_classes=7))
    clone.load_state_dict(model.state_dict())
    clone.replace_classifier(3)
    assert clone.num_classes == 3 and clone.config.num_classes == 3
    assert torch.equal(clone.Mixed_5c.branch1.conv.weight, model.Mixed_5c.branch1.conv.weight)
    with torch.no_grad():
        assert clone.eval()(torch.zeros(1, 3, 8, 64, 64)).shape == (1, 3)


def test_folding_batch_norms_keeps_the_outputs_and_leaves_the_model_alone(k400_model) -> None:
    from actionkit.models.i3d import fold_batch_norms

    x = torch.rand(2, 3, 16, 112, 112) * 2 - 1
    before = {k: v.clone() for k, v in k400_model.state_dict().items()}
    folded = fold_batch_norms(k400_model)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(x), k400_model(x), atol=1e-4)
    assert all(torch.equal(v, k400_model.state_dict()[k]) for k, v in before.items())

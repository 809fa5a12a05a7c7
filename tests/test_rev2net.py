"""Rev2Net: output shapes, the decoders' design (matching DDP layers, value ranges), sampling vs μ,
switched-off decoders, that the decoders stay weak, and that the seed fixes Rev2Net's own random streams."""

import copy

import pytest
import torch

from actionkit import I3D, I3DConfig
from actionkit.models import Rev2Net, Rev2NetConfig


def make(**config) -> Rev2Net:
    torch.manual_seed(0)
    return Rev2Net(I3D(I3DConfig(num_classes=5)), Rev2NetConfig(**config))


@pytest.fixture(scope="module")
def model() -> Rev2Net:
    return make()


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("frames", [8, 16])
@pytest.mark.parametrize("height,width", [(64, 64), (64, 96)])
def test_output_shapes(model: Rev2Net, frames: int, height: int, width: int) -> None:
    x = torch.rand(2, 3, frames, height, width) * 2 - 1
    with torch.no_grad():
        out = model.eval()(x)
    latent = model.config.latent_dim
    assert out.logits.shape == (2, 5)
    assert out.features.shape == (2, 1024)
    assert out.flow.shape == (2, 2, frames, height // 2, width // 2)  # the flow targets' size
    assert out.frames.shape == (2, 3, frames, height, width)
    assert len(out.flow_features) == len(out.frame_features) == 1
    for f1, f2 in zip(out.flow_features, out.frame_features):  # DDP layers pair up shape for shape
        assert f1.shape == f2.shape == (2, 64, frames // 2, height // 2, width // 2)
    for t in (out.mu_flow, out.logvar_flow, out.mu_frame, out.logvar_frame):
        assert t.shape == (2, latent)
    assert out.frames.min() >= -1 and out.frames.max() <= 1  # convex mix of tanh foreground/background


def test_encoder_is_the_i3d_inside(model: Rev2Net) -> None:
    x = torch.rand(1, 3, 8, 64, 64) * 2 - 1
    assert isinstance(model.encoder, I3D)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x).logits, model.encoder(x))


def test_eval_uses_mu_and_training_samples(model: Rev2Net) -> None:
    x = torch.rand(2, 3, 8, 64, 64) * 2 - 1
    with torch.no_grad():
        model.eval()
        a, b = model(x), model(x)
        for name in ("flow", "frames", "mu_flow", "logvar_frame"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        low = model.encoder.forward_intermediates(x).maps["Conv3d_2c_3x3"]
        assert torch.equal(model.flow_decoder(low, a.mu_flow)[0], a.flow)
        assert torch.equal(model.frame_decoder(low, a.mu_frame)[0], a.frames)
        model.train()
        c, d = model(x), model(x)  # z = μ + σ·ε: a fresh ε each call
        model.eval()
    assert torch.equal(c.mu_flow, d.mu_flow)
    assert not torch.equal(c.flow, d.flow)
    assert not torch.equal(c.frames, d.frames)


@pytest.mark.parametrize("off", ["flow", "frame"])
def test_switched_off_decoder_is_not_built(off: str) -> None:
    model = make(**{f"{off}_decoder": False}).eval()
    assert getattr(model, f"{off}_decoder") is None and getattr(model, f"{off}_head") is None
    assert not any(k.startswith((f"{off}_decoder", f"{off}_head")) for k in model.state_dict())
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 8, 64, 64))
    kept = "frame" if off == "flow" else "flow"
    assert getattr(out, "flow" if off == "flow" else "frames") is None
    assert getattr(out, f"mu_{off}") is None and getattr(out, f"logvar_{off}") is None
    assert getattr(out, f"{off}_features") == []
    assert getattr(out, f"mu_{kept}") is not None and len(getattr(out, f"{kept}_features")) == 1


def test_both_decoders_off_is_the_bare_encoder() -> None:
    model = make(flow_decoder=False, frame_decoder=False)
    assert count(model) == count(model.encoder)


def test_decoders_are_weak(model: Rev2Net) -> None:
    # The module docstring's numbers: 0.78 M (flow) and 0.85 M (frames) against a 12.3 M trunk.
    flow = count(model.flow_decoder) + count(model.flow_head)
    frame = count(model.frame_decoder) + count(model.frame_head)
    assert (flow, frame) == (775_890, 849_687)
    assert flow + frame < 0.15 * count(model.encoder)


@pytest.mark.parametrize("shape", [(1, 3, 9, 64, 64), (1, 3, 8, 66, 64), (1, 3, 8, 64, 62)])
def test_rejects_sizes_the_decoders_cannot_mirror(model: Rev2Net, shape: tuple) -> None:
    with pytest.raises(ValueError, match="T must be even and H, W divisible by 4"):
        model(torch.zeros(shape))


def test_seed_fixes_the_decoders_and_the_noise_and_leaves_the_global_generator_alone() -> None:
    encoder = I3D(I3DConfig(num_classes=5))
    before = torch.get_rng_state()
    a, b, c = (Rev2Net(copy.deepcopy(encoder), seed=seed).train() for seed in (1, 1, 2))
    assert torch.equal(torch.get_rng_state(), before)
    decoder = "flow_decoder.up1.weight"
    assert torch.equal(a.state_dict()[decoder], b.state_dict()[decoder])
    assert not torch.equal(a.state_dict()[decoder], c.state_dict()[decoder])
    x = torch.rand(1, 3, 8, 64, 64) * 2 - 1
    noise_before = a.noise.get_state()
    flows = []
    for model in (a, b, c):
        torch.set_rng_state(before)  # the encoder's dropout masks: the same for the three
        with torch.no_grad():
            flows.append(model(x).flow)
    assert torch.equal(flows[0], flows[1]) and not torch.equal(flows[0], flows[2])
    assert not torch.equal(a.noise.get_state(), noise_before)  # ε was drawn from model.noise

"""Rev2Net: an I3D encoder trained with two weak decoders (Pan et al., "Reversed Two-Stream Networks").

Section 4.1–4.2 of the paper: one RGB encoder (I3D, with its classifier), a flow decoder that predicts
the clip's optical flow and a frame decoder that reconstructs the input frames in reversed temporal
order. Both decoders stand on the encoder's low-level ``Conv3d_2c_3x3`` map (192×T/2×H/4×W/4,
16×56×56 for 32×224² clips) and are deliberately weak. Two Gaussian heads on the pooled features
(N×1024) give N(μ1, σ1²) for the flow decoder and N(μ2, σ2²) for the frame decoder, which the
high-level Decoding Discrepancy Penalty (a KL divergence) pulls together; the low-level penalty
compares the decoders' first-layer feature maps. The decoders exist only for training:
``rev2net.encoder`` IS the I3D that ships, so stripping them is taking that attribute.

Layers (T, H, W = the input clip; every layer below is followed by ReLU unless it is an output):

- Latent injection: the decoder's sample z (N×latent_dim; μ in eval mode) -> Linear -> N×16, tiled
  over the Conv3d_2c map and concatenated to it: 208×T/2×H/4×W/4 (a per-clip code each decoder reads).
- Flow decoder (2 transposed convs):
  ``up1`` ConvT (3,4,4)/(1,2,2) -> 64×T/2×H/2×W/2, ``up2`` ConvT (4,3,3)/(2,1,1) -> 2×T×H/2×W/2,
  linear output in the scale of ``DeviceBatch.flow`` (px / 20; no tanh: rescaled crops can pass ±1).
- Frame decoder (3 transposed convs + a Conv3d background generator):
  ``up1`` as above -> 64×T/2×H/2×W/2, ``up2`` ConvT (4,3,3)/(2,1,1) -> 32×T×H/2×W/2,
  ``up3`` ConvT (1,4,4)/(1,2,2) -> 4×T×H×W = foreground (3, tanh) and mask (1, sigmoid);
  ``background`` Conv3d 3×3×3 on the ``up2`` map -> 3×T×H/2×W/2, averaged over time (one static
  background per clip), bilinearly upsampled to H×W, tanh. Output: mask·fg + (1 − mask)·bg, in [-1, 1].
- Low-level DDP layers: the two ``up1`` outputs (after ReLU), 64×T/2×H/2×W/2 in both decoders; one
  layer, as the decoders' later layers have no counterpart of the same shape and meaning.

Parameters (defaults): flow decoder 0.78 M (Gaussian head 131 K, injection 1 K, up1 639 K, up2 5 K),
frame decoder 0.85 M (head 131 K, injection 1 K, up1 639 K, up2 74 K, up3 2 K, background 3 K),
against the encoder's 12.3 M (12.7 M with a 400-class classifier): weak, as the paper asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from actionkit.models.i3d import FEATURE_DIM, I3D

LOW_LEVEL_STAGE = "Conv3d_2c_3x3"
LOW_LEVEL_CHANNELS = 192


@dataclass
class Rev2NetConfig:
    """The training-only parts around the encoder."""

    flow_decoder: bool = True
    """Build the optical-flow decoder (and its Gaussian head)."""
    frame_decoder: bool = True
    """Build the reversed-frame decoder (and its Gaussian head)."""
    latent_dim: int = 64
    """Dimension of each Gaussian head (μ, log σ²): small next to the 1024 features, as in a VAE."""
    latent_channels: int = 16
    """Channels the latent sample is projected to before it is tiled onto the Conv3d_2c map."""
    width: int = 64
    """Channels of both decoders' first layer (the layer the low-level DDP compares)."""
    logvar_clamp: float = 10.0
    """|log σ²| is clamped to this (e^10 stays finite in float16 under AMP)."""


class Rev2NetOutput(NamedTuple):
    """Everything the Rev2Net objective reads; decoder outputs are None when that decoder is off."""

    logits: torch.Tensor                      # N×C
    features: torch.Tensor                    # N×1024 pooled encoder features
    flow: torch.Tensor | None                 # N×2×T×H/2×W/2, the scale of DeviceBatch.flow
    frames: torch.Tensor | None               # N×3×T×H×W in [-1, 1], the input in reversed time order
    flow_features: list[torch.Tensor]         # flow decoder maps of the low-level DDP layers
    frame_features: list[torch.Tensor]        # frame decoder maps of the same layers (same shapes)
    mu_flow: torch.Tensor | None              # N×latent_dim
    logvar_flow: torch.Tensor | None
    mu_frame: torch.Tensor | None
    logvar_frame: torch.Tensor | None


class GaussianHead(nn.Module):
    """Pooled features N×1024 -> (μ, log σ²), each N×latent_dim."""

    def __init__(self, latent_dim: int, logvar_clamp: float) -> None:
        super().__init__()
        self.linear = nn.Linear(FEATURE_DIM, 2 * latent_dim)
        self.logvar_clamp = logvar_clamp

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.linear(features).chunk(2, dim=1)
        return mu, logvar.clamp(-self.logvar_clamp, self.logvar_clamp)


class LatentInjection(nn.Module):
    """Concatenate a per-clip code to a map: z N×D -> Linear -> N×K, tiled to N×K×T×H×W."""

    def __init__(self, latent_dim: int, channels: int) -> None:
        super().__init__()
        self.project = nn.Linear(latent_dim, channels)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        code = self.project(z).to(x.dtype)[:, :, None, None, None].expand(-1, -1, *x.shape[2:])
        return torch.cat([x, code], dim=1)


def _upsample_space(in_channels: int, out_channels: int, kernel_t: int = 3) -> nn.ConvTranspose3d:
    """×2 in H and W, T kept (kernel_t odd)."""
    return nn.ConvTranspose3d(in_channels, out_channels, (kernel_t, 4, 4), stride=(1, 2, 2),
                              padding=(kernel_t // 2, 1, 1))


def _upsample_time(in_channels: int, out_channels: int) -> nn.ConvTranspose3d:
    """×2 in T, H and W kept."""
    return nn.ConvTranspose3d(in_channels, out_channels, (4, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1))


class FlowDecoder(nn.Module):
    """Conv3d_2c map (192×T/2×H/4×W/4) + z -> flow 2×T×H/2×W/2; also returns its ``up1`` map."""

    def __init__(self, config: Rev2NetConfig) -> None:
        super().__init__()
        self.inject = LatentInjection(config.latent_dim, config.latent_channels)
        self.up1 = _upsample_space(LOW_LEVEL_CHANNELS + config.latent_channels, config.width)
        self.up2 = _upsample_time(config.width, 2)

    def forward(self, low: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h1 = F.relu(self.up1(self.inject(low, z)))  # N×64×T/2×H/2×W/2
        return self.up2(h1), [h1]                   # N×2×T×H/2×W/2


class FrameDecoder(nn.Module):
    """Conv3d_2c map + z -> the clip in reversed order, 3×T×H×W, as mask·foreground + (1−mask)·background;
    also returns its ``up1`` map."""

    def __init__(self, config: Rev2NetConfig, hidden: int = 32) -> None:
        super().__init__()
        self.inject = LatentInjection(config.latent_dim, config.latent_channels)
        self.up1 = _upsample_space(LOW_LEVEL_CHANNELS + config.latent_channels, config.width)
        self.up2 = _upsample_time(config.width, hidden)
        self.up3 = _upsample_space(hidden, 4, kernel_t=1)
        self.background = nn.Conv3d(hidden, 3, 3, padding=1)

    def forward(self, low: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h1 = F.relu(self.up1(self.inject(low, z)))  # N×64×T/2×H/2×W/2
        h2 = F.relu(self.up2(h1))                   # N×32×T×H/2×W/2
        out = self.up3(h2)                          # N×4×T×H×W
        foreground, mask = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:])
        background = self.background(h2).mean(dim=2, keepdim=True)  # N×3×1×H/2×W/2
        background = torch.tanh(F.interpolate(background, size=(1, *out.shape[3:]), mode="trilinear",
                                              align_corners=False))  # N×3×1×H×W, broadcast over T
        return mask * foreground + (1 - mask) * background, [h1]


class Rev2Net(nn.Module):
    """An I3D encoder with the flow decoder, the reversed-frame decoder and their Gaussian heads.

    ``forward(x)`` for x N×3×T×H×W in [-1, 1] (T even, ≥ 8; H, W divisible by 4) -> :class:`Rev2NetOutput`.
    In training mode each decoder reads a sample z = μ + σ·ε (reparameterisation); in eval mode z = μ.
    ``seed`` fixes the decoders' initial weights and the stream of ε (``noise``, whose state a training
    checkpoint saves); neither touches torch's global generator.
    """

    def __init__(self, encoder: I3D, config: Rev2NetConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        self.config = config or Rev2NetConfig()
        self.encoder = encoder
        c = self.config
        # Own random streams: the training-only parts are initialised from ``seed`` on a fork of torch's
        # global generator (restored afterwards), and the Gaussian samples come from a generator of their
        # own. So adding Rev2Net leaves every other draw of a run (dropout masks, anything seeded after
        # it) as it would be without: with one seed, plain and Rev2Net runs see the same random numbers
        # and differ only by the objective.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.flow_head = GaussianHead(c.latent_dim, c.logvar_clamp) if c.flow_decoder else None
            self.flow_decoder = FlowDecoder(c) if c.flow_decoder else None
            self.frame_head = GaussianHead(c.latent_dim, c.logvar_clamp) if c.frame_decoder else None
            self.frame_decoder = FrameDecoder(c) if c.frame_decoder else None
            noise_seed = int(torch.randint(2**62, ()))
        self.noise = torch.Generator().manual_seed(noise_seed)  # ε of the reparameterisation (CPU)

    def forward(self, x: torch.Tensor) -> Rev2NetOutput:
        if x.ndim == 5 and (x.shape[2] % 2 or x.shape[3] % 4 or x.shape[4] % 4):
            raise ValueError("Rev2Net's decoders mirror the encoder's strides: T must be even and H, W "
                             f"divisible by 4, got T×H×W = {'×'.join(map(str, x.shape[2:]))}")
        out = self.encoder.forward_intermediates(x, (LOW_LEVEL_STAGE,))
        features, low = out.features, out.maps[LOW_LEVEL_STAGE]
        logits = self.encoder.forward_head(features)
        flow = frames = mu_flow = logvar_flow = mu_frame = logvar_frame = None
        flow_features: list[torch.Tensor] = []
        frame_features: list[torch.Tensor] = []
        if self.flow_decoder is not None:
            mu_flow, logvar_flow = self.flow_head(features)
            flow, flow_features = self.flow_decoder(low, self._sample(mu_flow, logvar_flow))
        if self.frame_decoder is not None:
            mu_frame, logvar_frame = self.frame_head(features)
            frames, frame_features = self.frame_decoder(low, self._sample(mu_frame, logvar_frame))
        return Rev2NetOutput(logits, features, flow, frames, flow_features, frame_features,
                             mu_flow, logvar_flow, mu_frame, logvar_frame)

    def _sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = μ + exp(log σ² / 2)·ε in training (reparameterisation trick); μ in eval mode."""
        if not self.training:
            return mu
        epsilon = torch.randn(mu.shape, generator=self.noise).to(mu)
        return mu + torch.exp(0.5 * logvar) * epsilon

"""The training objective as a module: the network being trained, its training-only parts and the loss.

One :class:`Task` covers the three objectives the product trains with, as independent switches:

- plain fine-tuning (both off): cross-entropy only;
- Rev2Net (``rev2net``): the encoder wrapped in :class:`~actionkit.models.rev2net.Rev2Net`, Eq. 3 of
  Pan et al.: L = CE + α·KL(N(μ1,σ1²) ‖ N(μ2,σ2²)) + β·Σ_l ‖f^l_D1 − f^l_D2‖_F
  + λflow·‖O − Ô‖_F + λim·‖I − Î‖_F. The DDP terms compare the two decoders, so they exist only when both are on;
  switching a decoder off removes it, its Gaussian head, its reconstruction term and the DDP terms;
- self-distillation (``self_distill``): L += λ·‖f(x) − f'(x)‖² (squared L2 over the 1,024 pooled
  features, averaged over the batch: λ in the paper's units), f' a frozen copy of the encoder taken
  at the start of each epoch (Algorithm 1: at the first epoch, the pretrained encoder).

The loop sees only ``forward(batch) -> TaskOutput``, ``start_epoch``, ``evaluate_logits``,
``trainable_parameters``, ``decoder_parameters``, ``random_state`` / ``restore_random_state`` (for
checkpoints) and ``encoder`` (the I3D that is saved and exported: no decoder, no teacher).
Reductions over the batch are documented in :mod:`actionkit.train.losses`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from actionkit.models.i3d import I3D
from actionkit.models.rev2net import Rev2Net, Rev2NetConfig, Rev2NetOutput
from actionkit.train import losses

_FROBENIUS_REDUCTIONS = ("mean", "rms", "sum")
_BATCH_REDUCTIONS = ("mean", "sum")


@dataclass
class TaskConfig:
    """Which objectives, and their weights. Defaults: Rev2Net's paper's α, β, λflow and λim; λ of
    self-distillation in its paper's units at the value the 4-fold sweep chose (docs/ut-interaction.md)."""

    rev2net: bool = False
    flow_decoder: bool = True      # ablation switches (only meaningful with rev2net)
    frame_decoder: bool = True
    ddp: bool = True               # Decoding Discrepancy Penalty terms on/off (need both decoders)
    alpha: float = 0.01            # KL (high-level DDP)
    beta: float = 0.1              # Frobenius (low-level DDP)
    lambda_flow: float = 0.1
    lambda_im: float = 0.1
    self_distill: bool = False
    sd_weight: float = 10.0        # λ in the paper's units, chosen by the 4-fold λ sweep (docs/ut-interaction.md)
    frobenius_reduction: str = "mean"  # flow, frame and low-level DDP norms: mean | rms | sum over the batch
    sd_reduction: str = "mean"         # self-distillation: mean (paper's units: summed over dims, batch mean) | sum | mse

    def __post_init__(self) -> None:
        if self.frobenius_reduction not in _FROBENIUS_REDUCTIONS:
            raise ValueError(f"frobenius_reduction must be one of {', '.join(_FROBENIUS_REDUCTIONS)}, "
                             f"got {self.frobenius_reduction!r}")
        if self.sd_reduction not in ("mse", *_BATCH_REDUCTIONS):
            raise ValueError(f"sd_reduction must be one of mse, {', '.join(_BATCH_REDUCTIONS)}, "
                             f"got {self.sd_reduction!r}")
        weights = {k: getattr(self, k) for k in ("alpha", "beta", "lambda_flow", "lambda_im", "sd_weight")}
        negative = [f"{k}={v}" for k, v in weights.items() if v < 0]
        if negative:
            raise ValueError(f"loss weights must be ≥ 0, got {', '.join(negative)}")
        if self.rev2net and not (self.flow_decoder or self.frame_decoder):
            raise ValueError("rev2net with both decoders off is plain fine-tuning: set rev2net=False, "
                             "or keep the flow or the frame decoder")

    @property
    def active_terms(self) -> tuple[str, ...]:
        """The names of the loss terms this configuration computes, in :class:`TaskOutput` order."""
        terms = ["ce"]
        if self.rev2net:
            if self.flow_decoder and self.frame_decoder and self.ddp:
                terms += ["kl", "ddp"]
            terms += ["flow"] if self.flow_decoder else []
            terms += ["frame"] if self.frame_decoder else []
        if self.self_distill:
            terms.append("sd")
        return tuple(terms)


@dataclass
class TaskOutput:
    """The total loss to backpropagate, each weighted term (detached, for logging), the logits, and
    diagnostics that are not losses (Rev2Net: :func:`decoder_activity`)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    logits: torch.Tensor
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


class Batch(Protocol):
    """What :meth:`Task.forward` reads (``actionkit.data.loader.DeviceBatch`` fits)."""

    video: torch.Tensor               # N×3×T×H×W in [-1, 1]
    labels: torch.Tensor              # N
    flow: torch.Tensor | None         # N×2×T×H/2×W/2 in px / 20, when the flow decoder is on


class Task(nn.Module):
    """An I3D encoder, the training-only parts its objective needs (Rev2Net's decoders, a teacher),
    and the loss. ``task.encoder`` is the I3D being trained."""

    def __init__(self, encoder: I3D, config: TaskConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        # The trained network: Rev2Net (encoder + decoders) or the bare I3D. One registration, so the
        # encoder's weights appear once in the state dict. ``seed`` seeds Rev2Net's own random streams
        # (decoder initialisation, Gaussian noise), which leave torch's global generator alone.
        self.model: Rev2Net | I3D = (
            Rev2Net(encoder, Rev2NetConfig(flow_decoder=config.flow_decoder, frame_decoder=config.frame_decoder),
                    seed=seed)
            if config.rev2net else encoder)
        self.teacher: I3D | None = None
        if config.self_distill:
            self.teacher = copy.deepcopy(encoder).requires_grad_(False).eval()
            for p in self.teacher.parameters():
                p.grad = None

    @property
    def encoder(self) -> I3D:
        """The I3D being trained (what is saved and exported): no decoders, no teacher."""
        return self.model.encoder if isinstance(self.model, Rev2Net) else self.model

    @property
    def needs_flow(self) -> bool:
        """True when the flow decoder is on: batches must carry flow targets."""
        return self.config.rev2net and self.config.flow_decoder

    @property
    def active_terms(self) -> tuple[str, ...]:
        return self.config.active_terms

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters to optimise (the teacher's are frozen and left out)."""
        return [p for p in self.parameters() if p.requires_grad]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Rev2Net's training-only parameters (decoders, Gaussian heads, latent projections): everything
        trained that is neither the encoder nor the teacher. Empty without Rev2Net."""
        if not isinstance(self.model, Rev2Net):
            return []
        encoder = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.model.parameters() if p.requires_grad and id(p) not in encoder]

    def train(self, mode: bool = True) -> "Task":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # always: running BN statistics, no dropout
        return self

    def random_state(self) -> dict[str, torch.Tensor]:
        """The states of the task's own generators (Rev2Net's Gaussian noise), for a checkpoint."""
        return {"rev2net_noise": self.model.noise.get_state()} if isinstance(self.model, Rev2Net) else {}

    def restore_random_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`random_state` returned (keys it does not know are ignored)."""
        if isinstance(self.model, Rev2Net) and "rev2net_noise" in state:
            self.model.noise.set_state(state["rev2net_noise"])

    def start_epoch(self, epoch: int) -> None:
        """Self-distillation: the teacher becomes a frozen copy of the encoder as it is now (the end of
        epoch ``epoch`` − 1; at the first epoch, the pretrained encoder). A no-op otherwise.
        Call it at each epoch start, not when resuming inside an epoch (the teacher is in the state dict)."""
        if self.teacher is not None:
            self.teacher.load_state_dict(self.encoder.state_dict())

    @torch.no_grad()
    def evaluate_logits(self, video: torch.Tensor) -> torch.Tensor:
        """The encoder's logits only (no decoders, no teacher), for validation."""
        return self.encoder(video)

    def forward(self, batch: Batch) -> TaskOutput:
        terms, logits, diagnostics = self._run(batch)
        loss = torch.stack(list(terms.values())).sum()
        return TaskOutput(loss, {k: v.detach() for k, v in terms.items()}, logits, diagnostics)

    def compute_terms(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Each weighted loss term (attached to the graph, named as in :attr:`active_terms`) and the logits."""
        terms, logits, _ = self._run(batch)
        return terms, logits

    def _run(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        video = batch.video
        diagnostics: dict[str, torch.Tensor] = {}
        if isinstance(self.model, Rev2Net):
            out = self.model(video)
            logits, features = out.logits, out.features
            terms = rev2net_terms(out, batch, self.config)
            diagnostics = decoder_activity(out)
        else:
            features = self.model.forward_features(video)
            logits = self.model.forward_head(features)
            terms = {"ce": losses.cross_entropy(logits, batch.labels)}
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher.forward_features(video)
            terms["sd"] = self.config.sd_weight * losses.self_distill_loss(features, target,
                                                                           self.config.sd_reduction)
        return terms, logits, diagnostics


def decoder_activity(out: Rev2NetOutput) -> dict[str, torch.Tensor]:
    """``active_flow`` / ``active_frame``: the share of each decoder's first-layer units (the maps the
    low-level DDP compares, after ReLU) that are positive on this batch. Zero means the layer is dead:
    the DDP is then trivially 0 (two all-zero maps agree) and that decoder no longer sends any gradient
    to the encoder, so Rev2Net has degenerated to its classifier and KL terms (decoders trained at a much
    higher learning rate than the trunk can reach that state)."""
    activity = {}
    for name, maps in (("active_flow", out.flow_features), ("active_frame", out.frame_features)):
        if maps:
            activity[name] = (maps[0].detach() > 0).float().mean()
    return activity


def rev2net_terms(out: Rev2NetOutput, batch: Batch, config: TaskConfig) -> dict[str, torch.Tensor]:
    """The weighted terms of Eq. 3 for one Rev2Net output: ``ce``; ``kl`` = α·KL and ``ddp`` = β·Σ_l‖·‖_F
    (both decoders on and ``config.ddp``); ``flow`` = λflow·‖O − Ô‖_F; ``frame`` = λim·‖I − Î‖_F with I
    the input reversed in time. Their sum is L(I, O, y)."""
    c = config
    terms = {"ce": losses.cross_entropy(out.logits, batch.labels)}
    if c.ddp and out.flow is not None and out.frames is not None:
        terms["kl"] = c.alpha * losses.ddp_high_level(out.mu_flow, out.logvar_flow, out.mu_frame, out.logvar_frame)
        terms["ddp"] = c.beta * losses.ddp_low_level(out.flow_features, out.frame_features, c.frobenius_reduction)
    if out.flow is not None:
        if batch.flow is None:
            raise ValueError("the flow decoder needs flow targets, but batch.flow is None "
                             "(give the training dataset a FlowCache)")
        terms["flow"] = c.lambda_flow * losses.flow_loss(out.flow, batch.flow, c.frobenius_reduction)
    if out.frames is not None:
        terms["frame"] = c.lambda_im * losses.frame_loss(out.frames, batch.video, c.frobenius_reduction)
    return terms

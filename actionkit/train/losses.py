"""The loss terms of Rev2Net (Eq. 1–3 of Pan et al.) and of self-distillation (Eq. 1–3 of the
self-distillation paper), as pure functions of tensors. Each computes in float32 (safe under AMP).

Reductions (the papers leave them open):

- Frobenius terms (flow, reversed frames, low-level DDP), ``reduction="mean"`` by default: the
  Frobenius norm of each sample's residual, averaged over the batch — Eq. 3 per clip, exactly, so the
  paper's weights (λflow = λim = β = 0.1) keep their meaning and the batch size does not change them.
  The norm is not squared, so its gradient with respect to a clip's residual has norm 1 whatever the
  resolution: the value is large (tens to hundreds at 32×224²) but the push it gives the decoders is
  bounded, the same order as cross-entropy's on the logits (docs/ut-interaction.md gives the gradient
  norms measured). ``"rms"`` divides each norm by √(elements per clip) (a root-mean-square error: values
  near CE's, but gradients √D times smaller, which leaves the auxiliary tasks far weaker than CE at
  these weights); ``"sum"`` sums over the batch (Eq. 3 summed over clips).
- Self-distillation, ``reduction="mean"`` by default: ‖f(x) − f'(x)‖² per clip (squared L2 summed over
  the feature dimensions), averaged over the batch. The paper's Eq. 1 (CE) and Eq. 2 (SD) both sum over
  samples; our cross-entropy averages, so averaging SD as well keeps the paper's ratio, and λ is in the
  paper's units. ``"sum"`` sums over the batch (Eq. 2 to the letter, N times larger next to a
  batch-mean CE); ``"mse"`` also averages over the D feature dimensions (λ_mse = D·λ_paper).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

FrobeniusReduction = Literal["mean", "rms", "sum"]
BatchReduction = Literal["mean", "sum"]
SelfDistillReduction = Literal["mse", "mean", "sum"]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_CE = −(1/N) Σ_i log softmax(c_i)[y_i], logits N×C, labels N (class indices)."""
    return F.cross_entropy(logits.float(), labels)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"unknown reduction {reduction!r}: choose mean or sum")


def frobenius(a: torch.Tensor, b: torch.Tensor, reduction: FrobeniusReduction = "mean") -> torch.Tensor:
    """‖a_i − b_i‖_F per sample i (over every dimension but the first), then reduced over the batch:
    mean: (1/N) Σ_i ‖a_i − b_i‖_F;  rms: (1/N) Σ_i ‖a_i − b_i‖_F / √D (D elements a sample);
    sum: Σ_i ‖a_i − b_i‖_F."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    norms = torch.linalg.vector_norm((a.float() - b.float()).flatten(1), dim=1)
    if reduction == "rms":
        return norms.mean() / math.sqrt(a[0].numel())
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r}: choose mean, rms or sum")
    return _reduce(norms, reduction)


def ddp_low_level(flow_features: Sequence[torch.Tensor], frame_features: Sequence[torch.Tensor],
                  reduction: FrobeniusReduction = "mean") -> torch.Tensor:
    """Eq. 1: L_DDP^low = Σ_{l∈L} ‖f^l_D1 − f^l_D2‖_F, the flow (D1) and frame (D2) decoders' maps at
    each layer l, paired in order; each norm per clip, reduced over the batch as :func:`frobenius`."""
    if len(flow_features) != len(frame_features) or not flow_features:
        raise ValueError(f"need the same, nonzero number of layers from both decoders, got "
                         f"{len(flow_features)} and {len(frame_features)}")
    return torch.stack([frobenius(f1, f2, reduction) for f1, f2 in zip(flow_features, frame_features)]).sum()


def ddp_high_level(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                   logvar2: torch.Tensor) -> torch.Tensor:
    """Eq. 2: L_DDP^high = KL(N(μ1, σ1²) ‖ N(μ2, σ2²)) for diagonal Gaussians, summed over the latent
    dimensions d and averaged over the batch:
    (1/N) Σ_i Σ_d ½ [log σ2² − log σ1² + (σ1² + (μ1 − μ2)²) / σ2² − 1]."""
    mu1, logvar1, mu2, logvar2 = (t.float() for t in (mu1, logvar1, mu2, logvar2))
    kl = 0.5 * (logvar2 - logvar1 + (logvar1.exp() + (mu1 - mu2) ** 2) / logvar2.exp() - 1)
    return kl.sum(dim=1).mean()


def flow_loss(pred: torch.Tensor, target: torch.Tensor, reduction: FrobeniusReduction = "mean") -> torch.Tensor:
    """‖O − Ô‖_F (Eq. 3): predicted flow ``pred`` and target ``target``, both N×2×T×h×w in the same
    scale (``DeviceBatch.flow``: px / 20); per clip, reduced over the batch as :func:`frobenius`."""
    return frobenius(pred, target, reduction)


def frame_loss(pred: torch.Tensor, video: torch.Tensor, reduction: FrobeniusReduction = "mean") -> torch.Tensor:
    """‖I − Î‖_F (Eq. 3) with I the input clip in reversed time order: ``pred`` is the decoder's output
    (N×3×T×H×W, already reversed); ``video`` is the model's input in its natural order, and this
    function flips it along T. Per clip, reduced over the batch as :func:`frobenius`."""
    return frobenius(pred, video.flip(2), reduction)


def self_distill_loss(student: torch.Tensor, teacher: torch.Tensor,
                      reduction: SelfDistillReduction = "mean") -> torch.Tensor:
    """Self-distillation Eq. 2: ‖f(x_i) − f'(x_i)‖² for student features f and teacher features f'
    (N×D, D = 1024 for I3D); the teacher is a constant (detached here). Reductions:

    * ``mean`` (default): squared distance summed over dimensions, averaged over samples,
      (1/N) Σ_i ‖f − f'‖²: the paper's units next to a batch-mean cross-entropy;
    * ``sum``: summed over samples too, Σ_i ‖f − f'‖² (Eq. 2 read literally);
    * ``mse``: the mean over samples *and* feature dimensions, (1/(N·D)) Σ_i ‖f − f'‖²
      (``F.mse_loss``), so λ_mse = D·λ_paper (λ_mse = 100 at D = 1024 is λ ≈ 0.098 in the paper's units).

    The term's stiffness is 2λ per feature; with plain SGD at a high rate a large λ can overshoot (λ = 100
    with SGD lr 0.005, momentum 0.9 diverged at 224²); AdamW normalises each step and stays stable
    (``docs/ut-interaction.md`` records the λ sweep).
    """
    per_sample = (student.float() - teacher.detach().float()).pow(2).sum(dim=1)
    if reduction == "mse":
        return per_sample.mean() / student.shape[1]
    return _reduce(per_sample, reduction)
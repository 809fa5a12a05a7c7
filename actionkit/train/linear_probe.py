"""Linear probe: multinomial logistic regression on a frozen encoder's pooled features.

The baseline any fine-tuning has to beat. Features are each video's evaluation views (K clips × crops,
exactly as prediction makes them) passed through the frozen encoder and averaged. The L2 strength is
chosen by cross-validation on the training set only, folds by group (e.g. recording sequence) when
groups are given, so the validation split never picks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from actionkit.config import PreprocessConfig
from actionkit.data.loader import ClipDataset, LabelledVideo, finish_batch, make_loader
from actionkit.models.i3d import I3D
from actionkit.progress import progress_bar

DEFAULT_STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1)


def extract_features(encoder: I3D, samples: Sequence[LabelledVideo], preprocessing: PreprocessConfig,
                     device: torch.device | str = "cpu", batch_size: int = 2, workers: int = 2,
                     num_frames: dict[str, int] | None = None, description: str = "features",
                     progress: bool = True) -> torch.Tensor:
    """N×D pooled encoder features, one row per sample (its evaluation views averaged)."""
    device = torch.device(device)
    was_training = encoder.training
    encoder.to(device).eval()
    dataset = ClipDataset(samples, train=False, eval_preprocessing=preprocessing, num_frames=num_frames)
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers, shard=False)
    rows = []
    with progress_bar(description, len(loader), progress) as advance:
        for batch in loader:
            rows.append(_pooled(encoder, batch, device, preprocessing))
            advance()
    encoder.train(was_training)
    return torch.cat(rows)


@torch.inference_mode()
def _pooled(encoder: I3D, batch: dict, device: torch.device, preprocessing: PreprocessConfig) -> torch.Tensor:
    views = batch["frames"].shape[1]
    video = finish_batch(batch, device, preprocessing.value_range).video
    features = encoder.forward_features(video).float()
    return features.view(-1, views, features.shape[-1]).mean(dim=1).cpu().clone()  # a normal tensor, not an inference one


@dataclass
class LinearProbe:
    """Standardisation and a linear classifier fitted on features; ``strength`` is the chosen L2 weight."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    strength: float
    cv_accuracy: dict[float, float]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return ((features - self.mean) / self.std) @ self.weight.T + self.bias

    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.logits(features).argmax(dim=1) == labels).float().mean())


def fit_logistic_regression(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                            strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (classes×D) and bias minimising mean cross-entropy + strength·‖W‖² (full-batch L-BFGS)."""
    weight = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=features.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=500, tolerance_grad=1e-7,
                                  tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight.T + bias, labels) + strength * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     groups: Sequence[str] | None = None, strengths: Sequence[float] = DEFAULT_STRENGTHS,
                     folds: int = 5) -> LinearProbe:
    """Standardise, choose the L2 strength by (group) k-fold accuracy on these training features, refit on all."""
    features = features.double()
    mean, std = features.mean(dim=0), features.std(dim=0).clamp_min(1e-6)
    z = (features - mean) / std
    fold_of = _folds(len(labels), groups, folds)
    scores: dict[float, float] = {}
    for strength in strengths:
        correct = 0
        for fold in sorted(set(fold_of)):
            held = torch.tensor([f == fold for f in fold_of])
            w, b = fit_logistic_regression(z[~held], labels[~held], num_classes, strength)
            correct += int(((z[held] @ w.T + b).argmax(dim=1) == labels[held]).sum())
        scores[strength] = correct / len(labels)
    best = max(strengths, key=lambda s: (scores[s], s))  # ties go to the stronger regulariser
    weight, bias = fit_logistic_regression(z, labels, num_classes, best)
    return LinearProbe(mean, std, weight, bias, best, scores)


def _folds(n: int, groups: Sequence[str] | None, folds: int) -> list[int]:
    """Fold number per sample: whole groups per fold (round-robin over sorted groups), else i mod folds."""
    if groups is None:
        return [i % folds for i in range(n)]
    names = sorted(set(groups))
    fold_of_group = {g: i % min(folds, len(names)) for i, g in enumerate(names)}
    return [fold_of_group[g] for g in groups]

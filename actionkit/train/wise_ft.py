"""WiSE-FT (Wortsman et al., 2022): weight-space ensembling of a starting model and its fine-tuned self.

Every weight is interpolated, θ(α) = (1 − α)·θ₀ + α·θ₁, between the starting model θ₀ (the pretrained
encoder with the classifier it started fine-tuning with: a run's ``start/``) and the fine-tuned model θ₁
(a run's ``last/``). Each α of a grid is scored on the validation split; the best becomes a model folder,
with the table of α against accuracy (``wise-ft.json``) and its plot (PNG). It costs evaluations only.
α = 0 is the starting model and α = 1 the fine-tuned one, exactly.

:func:`wise_ft` takes two model folders; :func:`search_alphas` takes loaded models and a loader (what
``finetune(..., wise_ft=True)`` uses on its run's ``start/`` and ``last/``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch.utils.data import DataLoader

from actionkit.data.loader import worker_processes
from actionkit.devices import resolve_device
from actionkit.errors import ActionkitError
from actionkit.files import ensure_writable_folder, write_atomically, write_text_atomically
from actionkit.hub import load_pretrained, save_pretrained
from actionkit.models.i3d import I3D
from actionkit.plotting import pyplot
from actionkit.train.evaluate import EvalResult, evaluate, split_loader

DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
TABLE_NAME = "wise-ft.json"
PLOT_NAME = "wise-ft.png"


@dataclass
class WiseFTResult:
    """The grid's scores (``rows``: α, top1, top5, mean_class, loss, each in the grid's order), the α
    chosen (highest top-1; among equal top-1s, the lowest validation loss) and where it was written."""

    rows: list[dict[str, float]]
    alpha: float
    top1: float
    folder: Path
    table: Path
    plot: Path


def interpolate_weights(start: Mapping[str, torch.Tensor], finetuned: Mapping[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """(1 − α)·start + α·finetuned for every floating-point tensor; other tensors (batch-norm step
    counters) are taken from ``finetuned``. α = 0 and α = 1 return the endpoints' values exactly. The
    two state dicts must have the same keys and shapes (:class:`ActionkitError` naming the first that
    differs)."""
    if set(start) != set(finetuned):
        different = sorted(set(start) ^ set(finetuned))
        raise ActionkitError(f"the two models have different weights (e.g. {different[0]}): not the same architecture")
    mixed = {}
    for name, end in finetuned.items():
        begin = start[name]
        if begin.shape != end.shape:
            raise ActionkitError(f"weight {name} is {tuple(begin.shape)} in the starting model and "
                                 f"{tuple(end.shape)} in the fine-tuned one: not the same architecture")
        if not end.is_floating_point() or alpha == 1.0:
            mixed[name] = end.clone()
        elif alpha == 0.0:
            mixed[name] = begin.to(end.dtype).clone()
        else:
            mixed[name] = torch.lerp(begin.to(end.dtype), end, alpha)
    return mixed


def wise_ft(start: str | Path, finetuned: str | Path, data: Path, out: Path, *,
            alphas: Sequence[float] = DEFAULT_ALPHAS, split: str = "val", split_by: str | None = None,
            val: list[str] | None = None, batch_size: int = 2, workers: int = 2, device: str | None = None,
            log: Callable[[str], None] = print) -> WiseFTResult:
    """WiSE-FT between two model folders with the same classes and architecture, scored on ``split`` of
    ``data`` with the fine-tuned model's preprocessing. ``out`` becomes the chosen model's folder (a
    Hub folder: config.json, model.safetensors, README.md) and holds ``wise-ft.json`` and ``wise-ft.png``.
    Raises :class:`ActionkitError` when the models differ in classes, architecture or preprocessing."""
    ensure_writable_folder(out)
    check_alphas(alphas)
    first, second = load_pretrained(start), load_pretrained(finetuned)
    check_compatible(first, second, str(start), str(finetuned))
    config = second.pretrained_cfg
    with worker_processes():  # the loader's workers end with the search
        loader, _ = split_loader(data, config.preprocessing, split=split, split_by=split_by, val=val,
                                 classes=config.labels, batch_size=batch_size, workers=workers)
        return search_alphas(first, second, loader, resolve_device(device), out, out / TABLE_NAME,
                             out / PLOT_NAME, alphas=alphas, sources=(str(start), str(finetuned)), log=log)


def search_alphas(start: I3D, finetuned: I3D, loader: DataLoader, device: torch.device, folder: Path, table: Path,
                  plot: Path, *, alphas: Sequence[float] = DEFAULT_ALPHAS, sources: tuple[str, str] = ("", ""),
                  log: Callable[[str], None] = print) -> WiseFTResult:
    """Score θ(α) for each of ``alphas`` on ``loader`` (evaluation batches), write the best to ``folder``,
    the table to ``table`` (JSON, atomically) and its plot to ``plot`` (PNG); see the module docstring.
    ``finetuned`` carries the config (labels, preprocessing) that the chosen model is saved with."""
    check_alphas(alphas)
    config = finetuned.pretrained_cfg
    start_state, end_state = start.state_dict(), finetuned.state_dict()
    model = copy.deepcopy(finetuned).to(device).eval()
    rows = []
    for alpha in alphas:
        model.load_state_dict(interpolate_weights(start_state, end_state, alpha))
        result: EvalResult = evaluate(model, loader, config.model.num_classes, device, config.preprocessing.value_range)
        rows.append({"alpha": alpha, **result.metrics()})
        log(f"WiSE-FT α = {alpha:g}: val top-1 {100 * result.top1:.1f}%, mean class {100 * result.mean_class:.1f}%")
    chosen = max(rows, key=lambda row: (row["top1"], -row["loss"]))
    alpha = chosen["alpha"]
    model.load_state_dict(interpolate_weights(start_state, end_state, alpha))
    source = {**config.source, "wise_ft": {"alpha": alpha, "start": sources[0], "finetuned": sources[1]}}
    save_pretrained(model.cpu(), folder, config=replace(config, source=source),
                    metrics={"wise-ft alpha": alpha, **{f"val {k}": v for k, v in chosen.items() if k != "alpha"}})
    write_text_atomically(table, json.dumps({"start": sources[0], "finetuned": sources[1], "rows": rows,
                                             "chosen_alpha": alpha, "chosen_top1": chosen["top1"],
                                             "model": str(folder)}, indent=2) + "\n")
    plot_alphas(rows, alpha, plot)
    log(f"WiSE-FT: α = {alpha:g} chosen (val top-1 {100 * chosen['top1']:.1f}%), saved to {folder}")
    return WiseFTResult(rows, alpha, chosen["top1"], folder, table, plot)


def check_alphas(alphas: Sequence[float]) -> None:
    """α values must be a non-empty grid of numbers in [0, 1] (ValueError otherwise)."""
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ValueError(f"WiSE-FT α values must lie in [0, 1], got {list(alphas)}")


def check_compatible(start: I3D, finetuned: I3D, start_name: str, finetuned_name: str) -> None:
    """Refuse two models that cannot be interpolated: other labels, architecture or preprocessing."""
    a, b = start.pretrained_cfg, finetuned.pretrained_cfg
    for what, left, right in (("classes", a.labels, b.labels), ("architecture", a.model, b.model),
                              ("preprocessing", a.preprocessing, b.preprocessing)):
        if left != right:
            raise ActionkitError(f"{start_name} and {finetuned_name} differ in their {what}: WiSE-FT interpolates "
                                 "a fine-tuned model with its own starting model (a run's start/ and last/)")


def plot_alphas(rows: list[dict[str, float]], chosen: float, path: Path) -> Path:
    """Validation top-1 and mean-class accuracy against α, the chosen α marked; written atomically."""
    plt = pyplot("plotting WiSE-FT")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    alphas = [row["alpha"] for row in rows]
    for key, label in (("top1", "top-1"), ("mean_class", "mean class")):
        ax.plot(alphas, [100 * row[key] for row in rows], marker="o", label=label)
    ax.axvline(chosen, color="grey", linestyle="--", linewidth=1, label=f"chosen α = {chosen:g}")
    ax.set_xlabel("α (0: starting model, 1: fine-tuned)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("WiSE-FT: θ(α) = (1 − α)·θ₀ + α·θ₁")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    written = write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return written

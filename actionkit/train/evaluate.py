"""Evaluation: top-1, top-5 and mean-class accuracy over each video's K clips × crops (probabilities
averaged, as prediction does), a confusion matrix (PNG and JSON), and class maps for cross-dataset
evaluation (a model's classes scored on another dataset's, Rev2Net's HMDB ↔ UCF protocol)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch.utils.data import DataLoader

from actionkit.config import PreprocessConfig
from actionkit.data.loader import finish_batch
from actionkit.devices import resolve_device
from actionkit.errors import ActionkitError
from actionkit.files import ensure_writable_folder, write_text_atomically
from actionkit.plotting import pyplot

Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalResult:
    """Accuracies in [0, 1], the mean cross-entropy, and confusion[true][predicted] counts."""

    top1: float
    top5: float
    mean_class: float
    loss: float
    confusion: list[list[int]]
    videos: int

    def metrics(self) -> dict[str, float]:
        return {"top1": self.top1, "top5": self.top5, "mean_class": self.mean_class, "loss": self.loss}


def class_map_matrix(mapping: Mapping[str, str], model_classes: list[str], data_classes: list[str],
                     source: str = "class map") -> torch.Tensor:
    """model classes × dataset classes, 1 where a model class counts as a dataset class. A dataset
    class's probability is the sum of its model classes'; unmapped model classes are ignored."""
    matrix = torch.zeros(len(model_classes), len(data_classes))
    for model_class, data_class in mapping.items():
        if model_class not in model_classes:
            raise ActionkitError(f"{source}: {model_class!r} is not one of the model's classes")
        if data_class not in data_classes:
            raise ActionkitError(f"{source}: {data_class!r} is not one of the dataset's classes")
        matrix[model_classes.index(model_class), data_classes.index(data_class)] = 1.0
    missing = [c for i, c in enumerate(data_classes) if matrix[:, i].sum() == 0]
    if missing:
        raise ActionkitError(f"{source}: no model class maps to dataset class(es) {', '.join(missing[:5])}")
    return matrix


def read_class_map(path: Path) -> dict[str, str]:
    """JSON ``{"model class": "dataset class"}``, or lines ``model class<TAB>dataset class``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ActionkitError(f"{path}: cannot read class map ({e.strerror})") from None
    if path.suffix == ".json":
        return {str(k): str(v) for k, v in json.loads(text).items()}
    pairs = [line.split("\t") for line in text.splitlines() if line.strip()]
    bad = [i + 1 for i, p in enumerate(pairs) if len(p) != 2]
    if bad:
        raise ActionkitError(f"{path}:{bad[0]}: expected 'model class<TAB>dataset class'")
    return {a.strip(): b.strip() for a, b in pairs}


@torch.inference_mode()
def evaluate(logits_of: Logits, batches: Iterable[dict[str, Any]], num_classes: int, device: torch.device,
             value_range: tuple[float, float] = (-1.0, 1.0), class_map: torch.Tensor | None = None) -> EvalResult:
    """Score every video of ``batches`` (evaluation batches: N×V×T×3×H×W uint8 views, N labels)."""
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    top5_hits, loss_sum, videos = 0, 0.0, 0
    for batch in batches:
        views = batch["frames"].shape[1]
        b = finish_batch(batch, device, value_range)
        probs = torch.softmax(logits_of(b.video).float(), dim=1)
        probs = probs.view(-1, views, probs.shape[-1]).mean(dim=1).cpu()  # N×classes, views averaged
        if class_map is not None:
            probs = probs @ class_map
        labels = torch.as_tensor(batch["label"])
        loss_sum += float(torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum"))
        ranked = probs.topk(min(5, num_classes), dim=1).indices
        top5_hits += int((ranked == labels[:, None]).any(dim=1).sum())
        for true, pred in zip(labels.tolist(), ranked[:, 0].tolist()):
            confusion[true, pred] += 1
        videos += len(labels)
    if videos == 0:
        raise ActionkitError("nothing to evaluate: the split has no videos")
    per_class = confusion.diag().float() / confusion.sum(dim=1).clamp_min(1).float()
    present = confusion.sum(dim=1) > 0
    return EvalResult(top1=float(confusion.diag().sum()) / videos, top5=top5_hits / videos,
                      mean_class=float(per_class[present].mean()), loss=loss_sum / videos,
                      confusion=confusion.tolist(), videos=videos)


def save_confusion(result: EvalResult, classes: list[str], out_dir: Path, title: str = "confusion matrix") -> list[Path]:
    """confusion.json (counts, classes, metrics) and confusion.png (row-normalised, counts printed)."""
    plt = pyplot("plotting the confusion matrix")

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = write_text_atomically(out_dir / "confusion.json", json.dumps(
        {"classes": classes, "confusion": result.confusion, **result.metrics(), "videos": result.videos}, indent=2))
    counts = torch.tensor(result.confusion, dtype=torch.float)
    rates = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 30:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(f"{title}: top-1 {100 * result.top1:.1f}%, mean class {100 * result.mean_class:.1f}%")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    png_path = out_dir / "confusion.png"
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return [json_path, png_path]


def evaluate_model(data: Path, model: str, *, split: str = "val", split_by: str | None = None,
                   val: list[str] | None = None, test: list[str] | None = None, class_map: Path | None = None,
                   num_clips: int | None = None, num_crops: int | None = None, batch_size: int = 2,
                   workers: int = 2, device: str | None = None, out: Path | None = None,
                   backend: str = "torch", precision: str = "fp32") -> tuple[EvalResult, list[str]]:
    """``actionkit evaluate``: a model on one split of a dataset, with the model's preprocessing (or
    ``num_clips`` × ``num_crops`` overrides). ``split`` is train, val or test, or ``"all"``: every video of
    the dataset, which is how a dataset that is not split (a CSV without a split column, class folders
    without train/ val/) is evaluated whole. Only that split is read and decoded: a dataset holding only
    the videos to evaluate (a test set; the target dataset of a cross-dataset evaluation) needs no train
    split. Without a class map the dataset's classes must be the model's (their order is taken from the
    model). Unreadable videos are skipped with a warning.
    ``backend`` other than ``"torch"`` (the PyTorch model in fp32) runs an export folder's artifact, as
    :meth:`actionkit.predict.Recognizer.from_pretrained` opens it with ``backend`` and ``precision``
    (e.g. ``"openvino"`` with ``"int8"``), so an exported model is scored on exactly the same clips."""
    from dataclasses import replace

    from actionkit.data.datasets import check_split_name
    from actionkit.hub import load_pretrained
    from actionkit.predict import Recognizer

    check_split_name(split)
    if out is not None:
        ensure_writable_folder(out)  # before the evaluation, not after it
    target = resolve_device(device)
    if backend == "torch":
        encoder = load_pretrained(model).to(target).eval()
        config, logits_of = encoder.pretrained_cfg, encoder
    else:
        recognizer = Recognizer.from_pretrained(model, device=target, backend=backend, precision=precision)  # type: ignore[arg-type]
        config, logits_of, target = recognizer.config, recognizer.backend, recognizer.device
    mapping = read_class_map(class_map) if class_map else None
    preprocessing = replace(config.preprocessing, **{k: v for k, v in
                                                    (("num_clips", num_clips), ("num_crops", num_crops)) if v})
    loader, classes = split_loader(data, preprocessing, split=split, split_by=split_by, val=val, test=test,
                                   classes=None if mapping else config.labels, batch_size=batch_size, workers=workers)
    matrix = class_map_matrix(mapping, config.labels, classes, str(class_map)) if mapping else None
    result = evaluate(logits_of, loader, len(classes), target, preprocessing.value_range, matrix)
    if out is not None:
        save_confusion(result, classes, out, f"{Path(model).name} on {Path(data).name} ({split})")
    return result, classes


def split_loader(data: Path, preprocessing: PreprocessConfig, *, split: str = "val", split_by: str | None = None,
                 val: list[str] | None = None, test: list[str] | None = None, classes: list[str] | None = None,
                 batch_size: int = 2, workers: int = 2) -> tuple[DataLoader, list[str]]:
    """Evaluation batches of one split of a dataset (every view ``preprocessing`` asks for) and the
    dataset's classes (in ``classes``' order when given: a model's labels). Only that split is read and
    decoded; unreadable videos are skipped with a warning."""
    from actionkit.data.check import check_dataset
    from actionkit.data.datasets import DatasetIndex, check_split_name, scan_dataset
    from actionkit.data.loader import ClipDataset, make_loader

    check_split_name(split)
    index = scan_dataset(data, split_by=split_by, val=val, test=test, classes=classes, split=split)
    scored = DatasetIndex(index.root, index.layout, index.classes, index.split(split), index.source)
    samples = check_dataset(scored, workers=max(1, workers)).training_samples(split)
    dataset = ClipDataset(samples.samples, train=False, eval_preprocessing=preprocessing, num_frames=samples.num_frames)
    return make_loader(dataset, batch_size, shuffle=False, workers=workers, shard=False), index.classes

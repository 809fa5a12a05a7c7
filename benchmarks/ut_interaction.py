"""UT-Interaction from the Kinetics-400 I3D: plain fine-tuning, self-distillation, Rev2Net and both,
against a linear probe on frozen Kinetics-400 features, on two splits.

    python benchmarks/ut_interaction.py --model K400_FOLDER --out runs/ut

Splits (UT's labels.csv columns):
- ``sequence``: train on sequences 1-8 and 11-14, validate on 9, 10, 15, 16 (72 / 24 clips; clips of one
  recording never straddle the split);
- ``cross-domain``: train on set 1 (parking lot), validate on set 2 (lawn, wind, camera jitter), 60 / 36;
- ``sequence-fold1`` to ``sequence-fold3`` (not run by default): the other three folds of a 4-fold
  cross-validation by sequence of which ``sequence`` is the fourth, validating on sequences 1, 2, 11, 12;
  3, 4, 13, 14; and 5-8 (24 clips each). ``ut_interaction_folds.py`` runs them and pools all four.

Every variant uses the same recipe (one fixed set of options below, chosen before the comparison, not per
variant). The defaults are reduced for a 2-core CPU: 16 frames every 4th frame (2.1 s of the 30 fps
videos), 112² crops (short side 128), validation on 3 clips per video, AdamW lr 2e-5 for 4 epochs, the
new classifier initialised by the linear probe (LP-FT) and learning at the trunk's lr
(``--head-lr-scale``). The baseline sees exactly the same evaluation views. Runs that
finished are not rerun; an interrupted run resumes from its checkpoint. Results: ``OUT/results.json``
and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from actionkit.data.check import check_dataset
from actionkit.data.datasets import scan_dataset
from actionkit.data.loader import FLOW_SPANS
from actionkit.files import write_text_atomically
from actionkit.hub import load_pretrained
from actionkit.train.distributed import device_for_rank
from actionkit.train.finetune import (
    DataConfig,
    FinetuneConfig,
    evaluation_preprocessing,
    finetune,
)
from actionkit.train.linear_probe import extract_features, fit_linear_probe
from actionkit.train.loop import TrainConfig
from actionkit.train.tasks import TaskConfig

DEFAULT_UT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ut_interaction"
SPLITS = {"sequence": ("sequence", ["9", "10", "15", "16"]), "cross-domain": ("set", ["set2"])}
SEQUENCE_FOLDS = {"sequence-fold1": ("sequence", ["1", "2", "11", "12"]),
                  "sequence-fold2": ("sequence", ["3", "4", "13", "14"]),
                  "sequence-fold3": ("sequence", ["5", "6", "7", "8"])}  # with "sequence", every clip validated once
VARIANTS = {"plain": TaskConfig(),
            "self-distill": TaskConfig(self_distill=True),
            "rev2net": TaskConfig(rev2net=True),
            "rev2net+self-distill": TaskConfig(rev2net=True, self_distill=True),
            "rev2net-no-ddp": TaskConfig(rev2net=True, ddp=False)}  # the paper's "w/o DDP" ablation (Table 2)
DEFAULT_VARIANTS = ["plain", "self-distill", "rev2net", "rev2net+self-distill"]  # the ablation runs on request
SWEEP_PATTERNS = {"self-distill-sd": "self-distillation at λ = VALUE (paper's units: squared L2 summed over "
                                     "the 1,024 features, averaged over the batch)",
                  "rev2net-x": "Rev2Net with α, β, λflow and λim all VALUE times the paper's values"}


def task_for(variant: str) -> TaskConfig:
    """The objective a variant name stands for: a name of ``VARIANTS``, or a sweep cell,
    ``self-distill-sdVALUE`` (λ = VALUE in the paper's units) or ``rev2net-xVALUE`` (the auxiliary
    weights' common scale). Raises ``ValueError`` for any other name."""
    if variant in VARIANTS:
        return VARIANTS[variant]
    for prefix in SWEEP_PATTERNS:
        if variant.startswith(prefix):
            try:
                value = float(variant[len(prefix):])
            except ValueError:
                break
            if prefix == "self-distill-sd":
                return TaskConfig(self_distill=True, sd_weight=value, sd_reduction="mean")
            paper = TaskConfig()
            return TaskConfig(rev2net=True, alpha=paper.alpha * value, beta=paper.beta * value,
                              lambda_flow=paper.lambda_flow * value, lambda_im=paper.lambda_im * value)
    raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}, "
                     f"or a sweep cell {' / '.join(p + 'VALUE' for p in SWEEP_PATTERNS)}")


def _variant_name(text: str) -> str:
    try:
        task_for(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def main() -> None:
    args = _arguments()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    torch.set_num_threads(args.threads)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.pop("_settings", None)  # the last invocation's options, written beside the runs' rows
    for split in args.splits:
        for variant in ["baseline", *args.variants]:
            key = f"{split}/{result_name(variant, args.decoder_lr_scale, args.flow_span)}"
            if key in results:
                print(f"{key}: done before, top-1 {100 * results[key]['top1']:.1f}%")
                continue
            started = time.perf_counter()
            row = _baseline(args, split) if variant == "baseline" else _finetune(args, split, variant)
            row.setdefault("seconds", round(time.perf_counter() - started, 1))
            results[key] = row
            record_result(results_path, key, row, _settings(args))
            print(f"{key}: top-1 {100 * row['top1']:.1f}% in {row['seconds']:.0f} s", flush=True)
    print(_table(results, args))


def record_result(path: Path, key: str, row: dict, settings: dict) -> None:
    """Adds ``key: row`` to the results file under a lock, re-reading it first, so processes running other
    splits into the same ``--out`` (``ut_interaction_folds.py --parallel``) keep each other's rows; the
    file is replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.exists() else {}
        results.pop("_settings", None)
        results[key] = row
        text = json.dumps({**results, "_settings": settings}, indent=2) + "\n"
        write_text_atomically(path, text)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder (actionkit convert ...)")
    parser.add_argument("--data", type=Path, default=DEFAULT_UT, help="UT-Interaction folder with labels.csv")
    parser.add_argument("--out", type=Path, default=Path("runs/ut_interaction"))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=[*SPLITS, *SEQUENCE_FOLDS])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, type=_variant_name,
                        help=f"any of {', '.join(VARIANTS)}; or sweep cells: "
                             + "; ".join(f"{p}VALUE, {d}" for p, d in SWEEP_PATTERNS.items()))
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--frame-stride", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=112)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--optimizer", default="adamw", choices=["sgd", "adamw"])
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--head-lr-scale", type=float, default=1.0, help="the new classifier's lr multiplier")
    parser.add_argument("--decoder-lr-scale", type=float, default=1.0,
                        help="Rev2Net variants: the decoders' lr multiplier; other than 1, their results and "
                             "run folders are named VARIANT-declrN beside the default ones")
    parser.add_argument("--flow-span", default="frame", choices=FLOW_SPANS,
                        help="Rev2Net's flow targets: frame (the video's frame-to-frame flow; what the committed "
                             "results used) or clip (clip frame to next clip frame, the library's default; "
                             "results named VARIANT-clipflow)")
    parser.add_argument("--head-init", default="linear-probe", choices=["random", "linear-probe"])
    parser.add_argument("--eval-clips", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--flow-cache", type=Path, default=None,
                        help="Rev2Net's flow targets (default OUT/flow-cache; runs in parallel can share one)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def _settings(args: argparse.Namespace) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def _data(args: argparse.Namespace, split: str) -> DataConfig:
    split_by, val = {**SPLITS, **SEQUENCE_FOLDS}[split]
    return DataConfig(args.data, split_by, val, clip_len=args.clip_len, frame_stride=args.frame_stride,
                      crop_size=args.crop_size, eval_clips=args.eval_clips, workers=args.workers,
                      flow_cache=args.flow_cache or args.out / "flow-cache", head_init=args.head_init,
                      flow_span=args.flow_span)


def result_name(variant: str, decoder_lr_scale: float, flow_span: str = "frame") -> str:
    """The variant's name in results and run folders: Rev2Net variants with decoders at their own lr get
    ``-declrN`` (N the scale) and with flow targets over the clip's frame gaps ``-clipflow``, so they sit
    beside the committed recipe's runs instead of replacing them."""
    if variant == "baseline" or not task_for(variant).rev2net:
        return variant
    name = f"{variant}-declr{decoder_lr_scale:g}" if decoder_lr_scale != 1.0 else variant
    return f"{name}-clipflow" if flow_span == "clip" and task_for(variant).flow_decoder else name


def _finetune(args: argparse.Namespace, split: str, variant: str) -> dict:
    name = result_name(variant, args.decoder_lr_scale, args.flow_span)
    run_dir = args.out / split / name
    rev2net = task_for(variant).rev2net
    config = FinetuneConfig(
        data=_data(args, split),
        model=args.model, out=run_dir, task=task_for(variant),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                          weight_decay=args.weight_decay, warmup_epochs=1.0,
                          head_lr_scale=args.head_lr_scale, seed=args.seed,
                          decoder_lr_scale=args.decoder_lr_scale if rev2net else 1.0),
        resume=(run_dir / "checkpoint.pt").exists())
    result = finetune(config, log=lambda line: print(f"[{split}/{name}] {line}", flush=True))
    last = result.last
    return {"top1": last["top1"], "mean_class": last["mean_class"], "best_top1": result.best_top1,
            "epochs": result.epochs, "seconds": round(result.seconds, 1), "run": str(run_dir)}


def _baseline(args: argparse.Namespace, split: str) -> dict:
    """Logistic regression on the frozen encoder's features of the same evaluation views (extracted where the
    fine-tuned runs train: CUDA when present)."""
    data = _data(args, split)
    encoder = load_pretrained(args.model)
    index = scan_dataset(data.root, split_by=data.split_by, val=data.val)
    report = check_dataset(index, workers=args.workers)
    preprocessing = evaluation_preprocessing(encoder.pretrained_cfg.preprocessing, data)  # as the fine-tuned runs
    sequence_of = sequence_of_clips(args.data)
    features, labels, groups = {}, {}, {}
    for part in ("train", "val"):
        samples = report.training_samples(part)
        features[part] = extract_features(encoder, samples.samples, preprocessing, device=device_for_rank(),
                                          workers=args.workers,
                                          num_frames=samples.num_frames, description=f"{split} {part} features")
        labels[part] = torch.tensor([s.label for s in samples.samples])
        groups[part] = [sequence_of[s.path.resolve()] for s in samples.samples]
    probe = fit_linear_probe(features["train"].double(), labels["train"], len(index.classes), groups["train"])
    logits = probe.logits(features["val"].double())
    predicted = logits.argmax(dim=1)
    per_class = [float((predicted[labels["val"] == c] == c).float().mean())
                 for c in range(len(index.classes)) if (labels["val"] == c).any()]
    return {"top1": probe.accuracy(features["val"].double(), labels["val"]),
            "mean_class": sum(per_class) / len(per_class), "l2": probe.strength,
            "cv_top1": {str(k): v for k, v in probe.cv_accuracy.items()},
            "preprocessing": asdict(preprocessing)}


def sequence_of_clips(root: Path) -> dict[Path, str]:
    """Each clip's resolved path -> its recording sequence, from UT's ``labels.csv``."""
    with open(root / "labels.csv", newline="") as f:
        return {(root / row["path"]).resolve(): row["sequence"] for row in csv.DictReader(f)}


def _table(results: dict, args: argparse.Namespace) -> str:
    lines = [f"clips {args.clip_len}×{args.crop_size}² (stride {args.frame_stride}), {args.epochs} epochs, "
             f"batch {args.batch_size}, {args.optimizer} lr {args.lr:g} (classifier ×{args.head_lr_scale:g}), "
             f"{torch.get_num_threads()} threads", "",
             "| split | variant | val top-1 | mean class | wall time |", "|---|---|---|---|---|"]
    for key, row in results.items():
        split, variant = key.split("/")
        label = "linear probe on frozen K400 features" if variant == "baseline" else variant
        lines.append(f"| {split} | {label} | {100 * row['top1']:.1f}% | {100 * row['mean_class']:.1f}% | "
                     f"{row['seconds'] / 60:.1f} min |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

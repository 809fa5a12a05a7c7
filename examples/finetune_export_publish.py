"""From a pretrained I3D to a published, exported model, in Python: what `actionkit finetune`, `evaluate`,
`export` and `predict` do on the command line, as calls a script of yours can own.

1. Fine-tune with self-distillation (the reduced CPU recipe of the README's UT-Interaction comparison:
   16 frames 4 apart, 112² crops, the classifier started from a linear probe, AdamW 2e-5, 4 epochs).
   Rerunning the script continues an interrupted run instead of starting over.
2. Evaluate the best epoch's model on the validation split (confusion matrix PNG + JSON).
3. Export it: ONNX with the preprocessing and labels inside, a Triton entry, and a TensorRT engine with
   ``--trt`` (needs the ``tensorrt`` extra), each checked against PyTorch on a validation video.
4. Recognise that video with the exported ONNX file through ONNX Runtime.
5. Upload the model folder to the Hugging Face Hub when ``--push org/name`` is given.

    python examples/finetune_export_publish.py ../shared/data/weights/i3d-kinetics-400.ckpt \\
        ../shared/data/ut_interaction --split-by sequence --val 9,10,15,16 --out runs/example

The model may also be a converted folder (``actionkit convert``) or a Hub repo id. On 2 CPU cores the
UT-Interaction run above took 5.6 minutes (3.9 of them training) and reached 79.2% validation top-1; on
a GPU raise --clip-len, --crop-size and --epochs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actionkit import I3D, ActionkitError, Recognizer
from actionkit.data.datasets import scan_dataset
from actionkit.export import export_model
from actionkit.hub.upload import push_to_hub
from actionkit.train.evaluate import evaluate_model
from actionkit.train.finetune import DataConfig, FinetuneConfig, finetune
from actionkit.train.loop import TrainConfig
from actionkit.train.tasks import TaskConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="checkpoint file, model folder or Hub repo id to start from")
    parser.add_argument("data", type=Path, help="labelled videos (class folders, a list file or labels.csv)")
    parser.add_argument("--out", type=Path, default=Path("runs/example"))
    parser.add_argument("--split-by", help="a labels.csv column that splits the data (e.g. sequence)")
    parser.add_argument("--val", help="comma-separated values of --split-by that form the validation split")
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--frame-stride", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=112)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--sd-weight", type=float, default=TaskConfig().sd_weight,
                        help="self-distillation weight λ, in the paper's units (the library's default)")
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trt", action="store_true", help="also build a TensorRT engine (needs tensorrt)")
    parser.add_argument("--push", metavar="ORG/NAME", help="upload the fine-tuned model to this Hub repo")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    val = args.val.split(",") if args.val else None
    run_dir, export_dir = args.out / "run", args.out / "export"

    # 1. Fine-tune. The run folder gets checkpoint.pt (each epoch, atomic), metrics.jsonl, plots/ and the
    #    best/ and last/ models as Hub folders; resume=True picks up an interrupted run.
    data = DataConfig(root=args.data, split_by=args.split_by, val=val, clip_len=args.clip_len,
                      frame_stride=args.frame_stride, crop_size=args.crop_size, head_init="linear-probe",
                      workers=args.workers)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer="adamw",
                        weight_decay=0.01, warmup_epochs=min(1, args.epochs - 1), seed=args.seed)
    task = TaskConfig(self_distill=True, sd_weight=args.sd_weight)
    run = finetune(FinetuneConfig(data, args.model, run_dir, task, train,
                                  resume=(run_dir / "checkpoint.pt").exists()))
    best = run_dir / "best"
    print(f"trained {run.epochs} epochs in {run.seconds / 60:.1f} min; best val top-1 "
          f"{100 * (run.best_top1 or 0):.1f}%; model in {best}")

    # 2. Evaluate the best model on the validation split, with its own preprocessing.
    result, classes = evaluate_model(args.data, str(best), split="val", split_by=args.split_by, val=val,
                                     workers=args.workers, out=args.out / "evaluation")
    print(f"validation ({result.videos} videos, {len(classes)} classes): top-1 {100 * result.top1:.1f}%, "
          f"mean class {100 * result.mean_class:.1f}%; confusion matrix in {args.out / 'evaluation'}")

    # 3. Export: the decoders and the teacher never reached best/, so this is exactly an I3D.
    video = scan_dataset(args.data, split_by=args.split_by, val=val).split("val")[0].path
    exported = export_model(best, export_dir, tensorrt=args.trt, check_videos=[video])
    print("exported:", ", ".join(p.name for p in exported.files))

    # 4. The exported file runs without the training code: preprocessing and labels are in the ONNX.
    recognizer = Recognizer.from_pretrained(export_dir / "model.onnx", backend="onnxruntime", device="cpu")
    (prediction,) = recognizer.predict([video], top_k=3)
    print(f"{video.name} with ONNX Runtime:",
          prediction.error or ", ".join(f"{p.label} {p.score:.2f}" for p in prediction.predictions))

    # 5. Publish: config.json + model.safetensors + a model card holding the validation metrics.
    metrics = {f"val {name}": value for name, value in result.metrics().items()}
    if args.push:
        print("uploaded:", push_to_hub(I3D.from_pretrained(str(best)), args.push, metrics=metrics))
    else:
        print(f"to publish: actionkit push {best} org/name  (or rerun this script with --push org/name)")


if __name__ == "__main__":
    try:
        main()
    except ActionkitError as error:  # bad data, a broken model, a failed upload: one line, no traceback
        sys.exit(f"error: {error}")

"""The UT-Interaction comparison by sequence as a 4-fold cross-validation: every clip validated once.

    python benchmarks/ut_interaction_folds.py --model K400_FOLDER --out runs/ut_interaction

The ``sequence`` split of ``ut_interaction.py`` validates on 24 clips (sequences 9, 10, 15, 16), so one
clip is 4.2 points. Its three sibling folds (``sequence-fold1`` to ``-fold3``: sequences 1, 2, 11, 12;
3, 4, 13, 14; 5-8) cover the other 72 clips, with the same recipe, the same baseline and the rule that
no recording straddles train and validation. This script runs the four folds through
``ut_interaction.py`` in one process (with ``--out`` of an earlier run, its finished folds are kept; with
``--parallel N``, N folds at once, each in its own process logging to ``OUT/FOLD.log``, as on a GPU that
one small run leaves mostly idle) and pools them: each variant's top-1 over all 96 clips, per fold, and
its lead over the linear probe.
Options after ``--`` go to ``ut_interaction.py`` unchanged. Results: ``OUT/folds.json`` and a Markdown
table on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ut_interaction import (
    DEFAULT_UT,
    SEQUENCE_FOLDS,
    SPLITS,
    VARIANTS,
    sequence_of_clips,
)

SCRIPT = Path(__file__).with_name("ut_interaction.py")
FOLDS = {"sequence": SPLITS["sequence"], **SEQUENCE_FOLDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_UT, help="UT-Interaction folder with labels.csv")
    parser.add_argument("--out", type=Path, default=Path("runs/ut_interaction"))
    parser.add_argument("--parallel", type=int, default=1, help="folds run at once, each in its own process")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then options for ut_interaction.py")
    args = parser.parse_args()
    extra = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    base = [sys.executable, str(SCRIPT), "--model", args.model, "--data", str(args.data), "--out", str(args.out)]
    if args.parallel <= 1:
        command = [*base, "--splits", *FOLDS, *extra]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
    else:
        run_in_parallel({fold: [*base, "--splits", fold, *extra] for fold in FOLDS}, args.out, args.parallel)
    results = json.loads((args.out / "results.json").read_text())
    pooled = pool_folds(results, fold_sizes(args.data))
    (args.out / "folds.json").write_text(json.dumps(pooled, indent=2) + "\n")
    print(format_folds(pooled))


def run_in_parallel(commands: dict[str, list[str]], out: Path, parallel: int) -> None:
    """Each named command, ``parallel`` at a time, its output in ``OUT/NAME.log``. Stops at the first that
    fails (the others are terminated; their finished runs are kept and resume), naming its log."""
    out.mkdir(parents=True, exist_ok=True)
    pending, running = list(commands.items()), []
    while pending or running:
        while pending and len(running) < parallel:
            name, command = pending.pop(0)
            log = out / f"{name}.log"
            print(f"{name}: {' '.join(command)}  (log: {log})", flush=True)
            with open(log, "a") as stream:  # the child keeps its own handle
                running.append((name, log, subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)))
        name, log, process = running.pop(0)
        if process.wait() != 0:
            for _, _, other in running:
                other.terminate()
            sys.exit(f"{name} failed (exit {process.returncode}); see {log}")
        print(f"{name}: done", flush=True)


def fold_sizes(root: Path) -> dict[str, int]:
    """Validation clips per fold, from UT's ``labels.csv``."""
    sequences = list(sequence_of_clips(root).values())
    return {fold: sum(sequence in val for sequence in sequences) for fold, (_, val) in FOLDS.items()}


def pool_folds(results: dict[str, dict], sizes: dict[str, int]) -> dict[str, dict]:
    """variant -> top-1 per fold, top-1 over the folds' pooled clips, and its lead over the baseline.

    A variant enters only when every fold has it. Pooled top-1 weights each fold by its clip count, so
    it is the share of all validation clips classified correctly.
    """
    present = {key.split("/", 1)[1] for key in results if "/" in key}
    order = ["baseline", *VARIANTS]  # the baseline, then the variants in ut_interaction.py's order
    pooled = {}
    for variant in sorted(present, key=lambda v: (order.index(v) if v in order else len(order), v)):
        per_fold = {fold: results.get(f"{fold}/{variant}", {}).get("top1") for fold in sizes}
        if any(value is None for value in per_fold.values()):
            continue
        correct = sum(per_fold[fold] * sizes[fold] for fold in sizes)
        pooled[variant] = {"top1_per_fold": per_fold, "top1": correct / sum(sizes.values()),
                           "clips": sum(sizes.values())}
    baseline = pooled.get("baseline")
    for variant, row in pooled.items():
        row["vs_baseline"] = row["top1"] - baseline["top1"] if baseline and variant != "baseline" else None
    return pooled


def format_folds(pooled: dict[str, dict]) -> str:
    first = next(iter(pooled.values()), {"top1_per_fold": {}, "clips": 0})
    folds = list(first["top1_per_fold"])
    lines = [f"| variant | {' | '.join(folds)} | all {first['clips']} clips | − baseline |",
             "|---|" + "---|" * len(folds) + "---|---|"]
    for variant, row in pooled.items():
        cells = " | ".join(f"{100 * v:.1f}%" for v in row["top1_per_fold"].values())
        lead = "" if row["vs_baseline"] is None else f"{100 * row['vs_baseline']:+.1f}"
        lines.append(f"| {variant} | {cells} | {100 * row['top1']:.1f}% | {lead} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

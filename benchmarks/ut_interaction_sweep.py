"""The sweeps that set the fine-tuning defaults: self-distillation's λ and Rev2Net's auxiliary scale.

    python benchmarks/ut_interaction_sweep.py --model K400_FOLDER --out runs/sweep

Every cell runs the README's CPU recipe over the 4 folds by sequence with each seed, paired with plain
fine-tuning of the same seed, through ``ut_interaction_paired.py`` (finished runs are kept, an
interrupted one resumes, so the command can be rerun until it is done; ``--parallel 2`` runs two folds
at once). Cells: ``self-distill-sdλ`` (λ in the paper's units) and ``rev2net-xS`` (α, β, λflow and λim
all S times the paper's values). The rule, declared in docs/ut-interaction.md before the runs: in each
sweep, the value with the best mean validation top-1 over folds and seeds becomes the default; a tie
goes to the value closest to the paper's (λ = 100, S = 1). Results: ``OUT/sweep.json`` (every cell,
its paired lead over plain and 95% interval, the chosen values), a Markdown table per sweep on stdout
and ``OUT/sweep.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

from result_files import cpu_name, result_path
from ut_interaction import DEFAULT_UT, result_name
from ut_interaction_folds import fold_sizes
from ut_interaction_paired import format_paired, pair_with_reference

from actionkit.plotting import pyplot
from actionkit.train.finetune import DataConfig

SCRIPT = Path(__file__).with_name("ut_interaction_paired.py")
FLOW_SPAN = DataConfig.flow_span  # Rev2Net's flow targets as `actionkit finetune` makes them by default
SWEEPS = {"self-distill-sd": ("λ", 100.0, [1.0, 10.0, 100.0, 1000.0]),
          "rev2net-x": ("scale", 1.0, [0.1, 1.0, 10.0])}  # prefix -> (name, the paper's value, the grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_UT, help="UT-Interaction folder with labels.csv")
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--parallel", type=int, default=2, help="folds of a seed run at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each fold's process")
    parser.add_argument("--summarize", action="store_true", help="only summarise the cells that have finished")
    parser.add_argument("--record", action="store_true",
                        help="also write benchmarks/results/ut_interaction_sweep_<machine>_<date>.json and .png, "
                             "with every fold's row")
    args = parser.parse_args()
    if not args.summarize:
        for prefix, (_, _, grid) in SWEEPS.items():  # the λ sweep first, then Rev2Net's (slower) scale
            cells = ["plain", *(variant(prefix, value) for value in grid)]
            command = [sys.executable, str(SCRIPT), "--model", args.model, "--data", str(args.data),
                       "--out", str(args.out), "--seeds", *map(str, args.seeds), "--parallel", str(args.parallel),
                       "--", "--variants", *cells, "--threads", str(args.threads),
                       "--flow-cache", str(args.out / "flow-cache"), "--flow-span", FLOW_SPAN]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True)
    summary = summarize(args.out, args.seeds, fold_sizes(args.data))
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_sweeps(summary, args.out / "sweep.png")
    print(format_sweeps(summary))
    if args.record:
        path = result_path("ut_interaction_sweep")
        path.write_text(json.dumps(record(args, summary), indent=2, ensure_ascii=False) + "\n")
        plot_sweeps(summary, path.with_suffix(".png"))
        print(f"wrote {path} and {path.with_suffix('.png').name}")


def variant(prefix: str, value: float) -> str:
    """The cell's variant name for ``ut_interaction.py --variants``, e.g. ``self-distill-sd10``."""
    return f"{prefix}{value:g}"


def row_name(prefix: str, value: float) -> str:
    """The name of the cell's rows in the results: its variant, with Rev2Net's flow-target suffix."""
    return result_name(variant(prefix, value), 1.0, FLOW_SPAN)


def record(args: argparse.Namespace, summary: dict[str, dict]) -> dict:
    """The committed record: the command, the machine, each sweep's summary and every fold's row of every
    seed (run folders left out: they are local)."""
    runs = {}
    for seed in args.seeds:
        path = args.out / f"seed-{seed}" / "results.json"
        rows = json.loads(path.read_text()) if path.is_file() else {}
        runs[str(seed)] = {key: {k: v for k, v in row.items() if k != "run"}
                           for key, row in sorted(rows.items()) if not key.startswith("_")}
    command = f"python benchmarks/ut_interaction_sweep.py --model {getattr(args, 'model', 'K400')} --out {args.out}"
    return {"command": command,
            "machine": f"{cpu_name()}, {os.cpu_count()} cores", "sweeps": summary, "runs": runs}


def summarize(out: Path, seeds: list[int], sizes: dict[str, int]) -> dict[str, dict]:
    """Per sweep: each finished cell's mean top-1 over the seeds (pooled over the folds), its paired lead
    over plain (``ut_interaction_paired.pair_with_reference``), and the value the rule chooses among
    the cells that finished every fold of every seed (``chosen``; None while none has)."""
    per_seed = {}
    for seed in seeds:
        path = out / f"seed-{seed}" / "results.json"
        if path.is_file():
            per_seed[seed] = json.loads(path.read_text())
    paired = pair_with_reference(per_seed, sizes) if per_seed else {}
    summary = {}
    for prefix, (name, paper, grid) in SWEEPS.items():
        cells = {}
        for value in grid:
            row = paired.get(row_name(prefix, value))
            if row is not None:
                cells[f"{value:g}"] = {"value": value, "mean_top1": statistics.mean(row["top1_per_seed"].values()),
                                       "complete": len(row["top1_per_seed"]) == len(seeds), **row}
        complete = [c for c in cells.values() if c["complete"]]
        chosen = choose(complete, paper)
        summary[prefix] = {"parameter": name, "paper_value": paper, "grid": grid, "seeds": seeds, "cells": cells,
                           "chosen": chosen, "all_cells_complete": len(complete) == len(grid)}
    return summary


def choose(cells: list[dict], paper: float) -> float | None:
    """The declared rule: the best mean top-1; among equal ones, the value closest to the paper's (in
    decades)."""
    if not cells:
        return None
    best = max(c["mean_top1"] for c in cells)
    tied = [c["value"] for c in cells if math.isclose(c["mean_top1"], best, abs_tol=1e-9)]
    return min(tied, key=lambda v: abs(math.log10(v) - math.log10(paper)))


def format_sweeps(summary: dict[str, dict]) -> str:
    parts = []
    for prefix, sweep in summary.items():
        cells = {row_name(prefix, row["value"]): row for row in sweep["cells"].values()}
        chosen = "none yet" if sweep["chosen"] is None else f"{sweep['chosen']:g}"
        state = "" if sweep["all_cells_complete"] else " (not every cell has finished)"
        parts.append(f"{sweep['parameter']} sweep, chosen: {chosen}{state}\n\n{format_paired(cells)}")
    return "\n\n".join(parts)


def plot_sweeps(summary: dict[str, dict], path: Path) -> Path:
    """One panel per sweep: mean top-1 over the seeds against the value (log axis), each seed's top-1
    as dots, plain fine-tuning's mean over the seeds as a line, the chosen value marked."""
    plt = pyplot("plotting the sweeps")
    fig, axes = plt.subplots(1, len(summary), figsize=(5.5 * len(summary), 4), squeeze=False)
    for ax, sweep in zip(axes[0], summary.values()):
        cells = sorted(sweep["cells"].values(), key=lambda c: c["value"])
        if cells:
            ax.plot([c["value"] for c in cells], [100 * c["mean_top1"] for c in cells], marker="o", label="mean over seeds")
            for c in cells:
                ax.scatter([c["value"]] * len(c["top1_per_seed"]), [100 * v for v in c["top1_per_seed"].values()],
                           color="tab:blue", alpha=0.4, s=14)
            plain_per_seed = {seed: v for c in cells for seed, v in c["reference_top1_per_seed"].items()}
            plain = statistics.mean(plain_per_seed.values())
            ax.axhline(100 * plain, color="grey", linestyle=":", label="plain fine-tuning")
        if sweep["chosen"] is not None:
            ax.axvline(sweep["chosen"], color="tab:green", linestyle="--", label=f"chosen {sweep['chosen']:g}")
        ax.set_xscale("log")
        ax.set_xlabel(sweep["parameter"])
        ax.set_ylabel("validation top-1, 96 clips (%)")
        unfinished = "" if sweep["all_cells_complete"] else ", not every cell finished"
        ax.set_title(f"{sweep['parameter']} sweep (paper: {sweep['paper_value']:g}{unfinished})")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()

"""The UT-Interaction comparison (``ut_interaction.py``) repeated over seeds, with the mean per variant.

    python benchmarks/ut_interaction_seeds.py --model K400_FOLDER --out runs/ut_seeds --seeds 0 1 2

With 24 (by sequence) and 36 (cross-domain) validation clips, one clip is 4.2 and 2.8 points, and one
seed's fine-tuning can land a few clips either way: the seed changes the training clips' sampling and
crops, dropout and Rev2Net's Gaussian samples, not the recipe. Each seed runs ``ut_interaction.py
--seed N --out OUT/seed-N`` in its own process (finished runs are kept, an interrupted one resumes);
the linear-probe baseline does not depend on the seed. Options after ``--`` go to ``ut_interaction.py``
unchanged. Results: ``OUT/summary.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("ut_interaction.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder")
    parser.add_argument("--out", type=Path, default=Path("runs/ut_seeds"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then options for ut_interaction.py")
    args = parser.parse_args()
    extra = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    for seed in args.seeds:
        command = [sys.executable, str(SCRIPT), "--model", args.model, "--out", str(args.out / f"seed-{seed}"),
                   "--seed", str(seed), *extra]
        print(f"seed {seed}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
    per_seed = {seed: _results(args.out / f"seed-{seed}") for seed in args.seeds}
    summary = summarise(per_seed)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary))


def _results(folder: Path) -> dict[str, float]:
    results = json.loads((folder / "results.json").read_text())
    return {key: row["top1"] for key, row in results.items() if key != "_settings"}


def summarise(per_seed: dict[int, dict[str, float]]) -> dict[str, dict]:
    """``split/variant`` -> top-1 per seed, their mean and the mean's lead over the split's baseline."""
    keys = [key for key in next(iter(per_seed.values())) if all(key in results for results in per_seed.values())]
    summary = {}
    for key in keys:
        values = [per_seed[seed][key] for seed in per_seed]
        summary[key] = {"top1_per_seed": dict(zip(map(str, per_seed), values)), "mean": statistics.mean(values),
                        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}
    for key, row in summary.items():
        baseline = summary.get(f"{key.split('/')[0]}/baseline")
        row["vs_baseline"] = row["mean"] - baseline["mean"] if baseline else None
    return summary


def format_summary(summary: dict[str, dict]) -> str:
    seeds = list(next(iter(summary.values()))["top1_per_seed"]) if summary else []
    lines = [f"| split | variant | {' | '.join(f'seed {s}' for s in seeds)} | mean ± sd | mean − baseline |",
             "|---|---|" + "---|" * len(seeds) + "---|---|"]
    for key, row in summary.items():
        split, variant = key.split("/")
        cells = " | ".join(f"{100 * v:.1f}%" for v in row["top1_per_seed"].values())
        lead = "" if variant == "baseline" else f"{100 * row['vs_baseline']:+.1f}"
        lines.append(f"| {split} | {variant} | {cells} | {100 * row['mean']:.1f} ± {100 * row['stdev']:.1f}% | {lead} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""The UT-Interaction 4-fold comparison over seeds, each variant paired with plain fine-tuning.

    python benchmarks/ut_interaction_paired.py --model K400_FOLDER --out runs/ut_paired --seeds 0 1 2 3 4

With one seed, every variant sees the same training clips, crops and dropout masks as plain fine-tuning
(the loader, Rev2Net's decoders and its Gaussian noise each have a random stream of their own), so the
difference between a variant and plain fine-tuning of the same seed measures the objective, and the
spread between seeds measures the noise. Each seed runs ``ut_interaction_folds.py --out OUT/seed-N``
(all 96 clips validated once; finished runs are kept, an interrupted one resumes; ``--parallel N`` runs
N folds of a seed at once). Options after ``--`` go to ``ut_interaction.py`` unchanged (``--seed`` is
set here). Results: ``OUT/paired.json``, a Markdown table on stdout and ``OUT/paired.png`` (each seed's
lead over plain fine-tuning, per variant, with a 95% bootstrap interval over the seeds' fold pairs).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

from ut_interaction import DEFAULT_UT
from ut_interaction_folds import fold_sizes, pool_folds

from actionkit.plotting import pyplot

SCRIPT = Path(__file__).with_name("ut_interaction_folds.py")
REFERENCE = "plain"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Kinetics-400 I3D Hub folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_UT, help="UT-Interaction folder with labels.csv")
    parser.add_argument("--out", type=Path, default=Path("runs/ut_paired"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, help="folds of a seed run at once (see ut_interaction_folds.py)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then options for ut_interaction.py")
    args = parser.parse_args()
    extra = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    for seed in args.seeds:
        command = [sys.executable, str(SCRIPT), "--model", args.model, "--data", str(args.data),
                   "--out", str(args.out / f"seed-{seed}"), "--parallel", str(args.parallel),
                   "--", *extra, "--seed", str(seed)]
        print(f"seed {seed}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
    sizes = fold_sizes(args.data)
    per_seed = {seed: json.loads((args.out / f"seed-{seed}" / "results.json").read_text()) for seed in args.seeds}
    paired = pair_with_reference(per_seed, sizes)
    (args.out / "paired.json").write_text(json.dumps(paired, indent=2) + "\n")
    plot_paired(paired, args.out / "paired.png")
    print(format_paired(paired))


def pair_with_reference(per_seed: dict[int, dict[str, dict]], sizes: dict[str, int],
                        reference: str = REFERENCE) -> dict[str, dict]:
    """variant -> pooled top-1 per seed and its lead over ``reference`` of the same seed.

    ``per_seed`` holds each seed's ``results.json`` (``fold/variant`` -> row with ``top1``). A variant
    enters with the seeds where it and the reference have every fold. Per variant: ``top1_per_seed``,
    ``lead_per_seed`` (its pooled top-1 minus the reference's, as a fraction), their mean and standard
    deviation, ``fold_pairs``: over every seed's folds, in how many the variant classified more, as
    many or fewer clips correctly than the reference, and the net number of clips; and ``lead_ci95``,
    a 95% bootstrap interval of the pooled lead (:func:`bootstrap_lead_interval` over those fold pairs).
    """
    pooled = {seed: pool_folds(results, sizes) for seed, results in per_seed.items()}
    variants = [v for v in dict.fromkeys(v for rows in pooled.values() for v in rows) if v != reference]
    paired = {}
    for variant in variants:
        seeds = [seed for seed, rows in pooled.items() if variant in rows and reference in rows]
        if not seeds:
            continue
        leads = {seed: pooled[seed][variant]["top1"] - pooled[seed][reference]["top1"] for seed in seeds}
        clips = [round(sizes[fold] * (pooled[seed][variant]["top1_per_fold"][fold]
                                      - pooled[seed][reference]["top1_per_fold"][fold]))
                 for seed in seeds for fold in sizes]
        fold_clips = [sizes[fold] for _ in seeds for fold in sizes]
        paired[variant] = {
            "top1_per_seed": {str(seed): pooled[seed][variant]["top1"] for seed in seeds},
            "reference_top1_per_seed": {str(seed): pooled[seed][reference]["top1"] for seed in seeds},
            "lead_per_seed": {str(seed): lead for seed, lead in leads.items()},
            "mean_lead": statistics.mean(leads.values()),
            "stdev_lead": statistics.stdev(leads.values()) if len(leads) > 1 else None,
            "fold_pairs": {"more": sum(c > 0 for c in clips), "same": sum(c == 0 for c in clips),
                           "fewer": sum(c < 0 for c in clips), "net_clips": sum(clips),
                           "predictions": sum(sizes.values()) * len(seeds)},
            "lead_ci95": bootstrap_lead_interval(clips, fold_clips),
        }
    return paired


def bootstrap_lead_interval(clip_differences: list[int], fold_clips: list[int], resamples: int = 10_000,
                            seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of a variant's pooled lead over the reference.

    Each fold pair (one seed's fold: its own training run of each variant, validated on its own clips)
    is one observation: ``clip_differences[i]`` more clips correct than the reference out of
    ``fold_clips[i]``. Resampling the pairs with replacement and pooling each resample (clips gained
    over clips validated) gives the lead's sampling spread with no assumption on its distribution. The
    pairs are treated as independent; folds of one seed share the seed, so the interval is a little
    narrow if seeds matter beyond their folds. Seeded, so the same results give the same interval.
    """
    rng = random.Random(seed)
    pairs = list(zip(clip_differences, fold_clips))
    leads = []
    for _ in range(resamples):
        sample = rng.choices(pairs, k=len(pairs))
        leads.append(sum(d for d, _ in sample) / sum(n for _, n in sample))
    leads.sort()
    return [leads[int(0.025 * resamples)], leads[-int(0.025 * resamples) - 1]]


def format_paired(paired: dict[str, dict], reference: str = REFERENCE) -> str:
    header = (f"| variant | seeds | mean top-1 | {reference} (same seeds) | lead per seed | mean lead ± sd | "
              "95% interval | folds more / same / fewer | net clips |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for variant, row in paired.items():
        mean = statistics.mean(row["top1_per_seed"].values())
        reference_mean = statistics.mean(row["reference_top1_per_seed"].values())
        leads = ", ".join(f"{100 * v:+.1f}" for v in row["lead_per_seed"].values())
        spread = "" if row["stdev_lead"] is None else f" ± {100 * row['stdev_lead']:.1f}"
        folds = row["fold_pairs"]
        low, high = row["lead_ci95"]
        interval = f"{100 * low:+.1f} to {100 * high:+.1f}"
        lines.append(f"| {variant} | {len(row['lead_per_seed'])} | {100 * mean:.1f}% | {100 * reference_mean:.1f}% | "
                     f"{leads} | {100 * row['mean_lead']:+.1f}{spread} | {interval} | "
                     f"{folds['more']} / {folds['same']} / "
                     f"{folds['fewer']} | {folds['net_clips']:+d} of {folds['predictions']} |")
    return "\n".join(lines)


def plot_paired(paired: dict[str, dict], path: Path, reference: str = REFERENCE) -> Path:
    """One column per variant: each seed's lead over ``reference`` in points (dots), their mean (bar) and
    the 95% bootstrap interval of the pooled lead (the black line beside the bar)."""
    plt = pyplot("plotting the paired leads")
    fig, ax = plt.subplots(figsize=(1.8 * max(len(paired), 2) + 1.5, 4))
    for x, row in enumerate(paired.values()):
        leads = [100 * v for v in row["lead_per_seed"].values()]
        ax.bar(x, 100 * row["mean_lead"], width=0.6, color="tab:blue", alpha=0.35)
        offsets = [0.12 * (i - (len(leads) - 1) / 2) for i in range(len(leads))]
        ax.scatter([x + o for o in offsets], leads, color="tab:blue", zorder=3, s=18)
        low, high = (100 * v for v in row["lead_ci95"])
        ax.plot([x + 0.36, x + 0.36], [low, high], color="black", linewidth=1.5)  # 95% interval, beside
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(paired)), [f"{v}\n({len(row['lead_per_seed'])} seeds)" for v, row in paired.items()])
    ax.set_ylabel(f"top-1 lead over {reference} (points)")
    ax.set_title(f"lead over {reference} fine-tuning: seeds (dots), mean (bars), 95% interval (lines)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()

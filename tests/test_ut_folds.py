"""The UT-Interaction benchmark scripts: folds partition the real clips, pooling and pairing count clips."""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, require

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from ut_interaction_folds import FOLDS, fold_sizes, format_folds, pool_folds  # noqa: E402

UT = DATA / "ut_interaction"


def test_the_four_sequence_folds_validate_every_real_clip_exactly_once() -> None:
    with open(require(UT / "labels.csv"), newline="") as f:
        sequences = [row["sequence"] for row in csv.DictReader(f)]
    held_out = [sequence for _, val in FOLDS.values() for sequence in val]
    assert sorted(held_out, key=int) == sorted(set(sequences), key=int)  # each sequence in one fold
    sizes = fold_sizes(UT)
    assert sum(sizes.values()) == len(sequences) == 96
    assert sizes == {"sequence": 24, "sequence-fold1": 24, "sequence-fold2": 24, "sequence-fold3": 24}


def test_pooled_top1_is_the_share_of_all_clips_and_needs_every_fold() -> None:
    sizes = {"sequence": 24, "sequence-fold1": 24, "sequence-fold2": 12, "sequence-fold3": 36}
    results = {f"{fold}/baseline": {"top1": 0.5} for fold in sizes}
    results |= {"sequence/plain": {"top1": 18 / 24}, "sequence-fold1/plain": {"top1": 12 / 24},
                "sequence-fold2/plain": {"top1": 12 / 12}, "sequence-fold3/plain": {"top1": 0.0},
                "sequence/rev2net": {"top1": 1.0}, "_settings": {}}  # rev2net: one fold only
    results |= {f"{fold}/self-distill": {"top1": 0.5} for fold in sizes}
    pooled = pool_folds(results, sizes)
    assert list(pooled) == ["baseline", "plain", "self-distill"]
    assert pooled["plain"]["top1"] == pytest.approx((18 + 12 + 12 + 0) / 96)
    assert pooled["plain"]["vs_baseline"] == pytest.approx(42 / 96 - 0.5)
    assert pooled["baseline"]["vs_baseline"] is None
    table = format_folds(pooled)
    assert "| plain | 75.0% | 50.0% | 100.0% | 0.0% | 43.8% | -6.2 |" in table


def test_pairing_with_plain_counts_each_seeds_lead_and_every_folds_clips(tmp_path: Path) -> None:
    from ut_interaction_paired import format_paired, pair_with_reference, plot_paired

    sizes = {"sequence": 24, "sequence-fold1": 24, "sequence-fold2": 24, "sequence-fold3": 24}
    folds = list(sizes)

    def results(**variants: list[int]) -> dict:  # variant -> correct clips per fold
        return {f"{fold}/{v}": {"top1": n / 24} for v, counts in variants.items() for fold, n in zip(folds, counts)}

    per_seed = {0: results(plain=[18, 20, 20, 22], rev2net=[19, 20, 18, 22], baseline=[18, 21, 18, 21]),
                1: results(plain=[17, 21, 21, 22], rev2net=[17, 21, 21, 22], baseline=[18, 21, 18, 21]),
                2: results(plain=[20, 20, 20, 20], rev2net=[21, 21, 21, 21])}  # seed 2: no baseline run
    paired = pair_with_reference(per_seed, sizes)
    assert list(paired) == ["baseline", "rev2net"]  # pool_folds order: the baseline first
    rev2net = paired["rev2net"]
    assert rev2net["lead_per_seed"] == pytest.approx({"0": -1 / 96, "1": 0.0, "2": 4 / 96})
    assert rev2net["mean_lead"] == pytest.approx(1 / 96)
    assert rev2net["stdev_lead"] == pytest.approx(statistics.stdev([-1 / 96, 0.0, 4 / 96]))
    assert rev2net["fold_pairs"] == {"more": 5, "same": 6, "fewer": 1, "net_clips": 3, "predictions": 288}
    baseline = paired["baseline"]  # the seeds where both ran
    assert baseline["lead_per_seed"] == pytest.approx({"0": -2 / 96, "1": -3 / 96})
    assert baseline["fold_pairs"]["predictions"] == 192
    low, high = rev2net["lead_ci95"]
    assert -1 / 24 <= low < 1 / 96 < high <= 1 / 24  # around the mean, inside the fold pairs' range
    assert f"| +1.0 ± 2.8 | {100 * low:+.1f} to {100 * high:+.1f} | 5 / 6 / 1 | +3 of 288 |" in format_paired(paired)
    assert "| rev2net | 3 | 84.7% | 83.7% | -1.0, +0.0, +4.2 |" in format_paired(paired)
    png = plot_paired(paired, tmp_path / "paired.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerunning_a_finished_comparison_prints_its_table_without_running_anything(tmp_path: Path) -> None:
    rows = {f"sequence/{v}": {"top1": top1, "mean_class": top1, "seconds": 90.0}
            for v, top1 in (("baseline", 0.75), ("plain", 0.875))}
    (tmp_path / "results.json").write_text(json.dumps({**rows, "_settings": {"seed": 0}}))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ut_interaction.py"
    done = subprocess.run([sys.executable, str(script), "--model", str(tmp_path / "unused"), "--out", str(tmp_path),
                           "--splits", "sequence", "--variants", "plain"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "sequence/plain: done before, top-1 87.5%" in done.stdout
    assert "| sequence | plain | 87.5% | 87.5% | 1.5 min |" in done.stdout


def test_the_lead_interval_pools_each_resample_of_fold_pairs() -> None:
    from ut_interaction_paired import bootstrap_lead_interval

    # Two pairs, one clip lost and one gained in 24: resamples pool to -1/24 (a quarter of them), 0 or +1/24.
    assert bootstrap_lead_interval([-1, 1], [24, 24]) == pytest.approx([-1 / 24, 1 / 24])
    assert bootstrap_lead_interval([3, 0], [12, 36]) == pytest.approx([0.0, 0.25])  # 6 of 24, or 0 of 72
    assert bootstrap_lead_interval([2, 2, 2], [24, 24, 24]) == pytest.approx([2 / 24, 2 / 24])


def test_folds_run_in_parallel_keep_every_row_and_a_failure_names_its_log(tmp_path: Path) -> None:
    """``--parallel``: each fold's process adds its rows to the one results file under a lock, so rows
    written by processes running at once all survive; a process that fails stops the rest, naming its log."""
    from ut_interaction import record_result
    from ut_interaction_folds import run_in_parallel

    results = tmp_path / "results.json"
    writer = ("import sys; sys.path.insert(0, {bench!r}); from pathlib import Path; "
              "from ut_interaction import record_result; "
              "[record_result(Path({path!r}), f'{{sys.argv[1]}}/v{{i}}', {{'top1': i}}, {{}}) for i in range(30)]")
    code = writer.format(bench=str(Path(__file__).resolve().parents[1] / "benchmarks"), path=str(results))
    run_in_parallel({fold: [sys.executable, "-c", code, fold] for fold in FOLDS}, tmp_path, parallel=4)
    rows = json.loads(results.read_text())
    assert {key for key in rows if key != "_settings"} == {f"{fold}/v{i}" for fold in FOLDS for i in range(30)}
    assert all((tmp_path / f"{fold}.log").exists() for fold in FOLDS)
    record_result(results, "sequence/v0", {"top1": 99}, {"seed": 1})  # a rerun replaces its own row only
    rows = json.loads(results.read_text())
    assert rows["sequence/v0"] == {"top1": 99} and rows["sequence/v1"] == {"top1": 1} and rows["_settings"] == {"seed": 1}

    with pytest.raises(SystemExit, match=r"broken failed \(exit 3\); see .*broken\.log"):
        run_in_parallel({"broken": [sys.executable, "-c", "raise SystemExit(3)"],
                         "slow": [sys.executable, "-c", "import time; time.sleep(30)"]}, tmp_path, parallel=2)


def test_the_sweep_rule_picks_the_best_mean_and_breaks_ties_towards_the_papers_value(tmp_path: Path) -> None:
    """The rule declared in docs/ut-interaction.md, on two seeds' results: each cell's mean top-1 over
    the seeds (pooled over the four folds), the best wins, a tie goes to the value nearest the paper's;
    a cell missing a seed's fold is reported but not chosen. Rev2Net's cells are the runs with the
    library's default flow targets."""
    from ut_interaction_sweep import choose, record, summarize

    sizes = {"sequence": 24, "sequence-fold1": 24, "sequence-fold2": 24, "sequence-fold3": 24}
    top1 = {"plain": [0.75, 0.75], "self-distill-sd10": [0.875, 0.75], "self-distill-sd100": [0.75, 0.875],
            "self-distill-sd1000": [0.5, 0.5], "self-distill-sd1": [1.0, 1.0],
            "rev2net-x0.1-clipflow": [0.875, 0.875], "rev2net-x1-clipflow": [0.75, 0.75],
            "rev2net-x10-clipflow": [0.5, 0.75], "rev2net-x10": [1.0, 1.0]}  # frame-flow rows are not the recipe's
    for seed in (0, 1):
        rows = {f"{fold}/{cell}": {"top1": values[seed], "run": "runs/x"} for cell, values in top1.items() for fold in sizes}
        if seed == 1:
            del rows["sequence-fold3/self-distill-sd1"]  # unfinished: λ = 1 lacks a fold of seed 1
        (tmp_path / f"seed-{seed}").mkdir()
        (tmp_path / f"seed-{seed}" / "results.json").write_text(json.dumps(rows))
    summary = summarize(tmp_path, [0, 1], sizes)
    sweep = summary["self-distill-sd"]
    assert sweep["cells"]["10"]["mean_top1"] == sweep["cells"]["100"]["mean_top1"] == pytest.approx(0.8125)
    assert not sweep["cells"]["1"]["complete"] and not sweep["all_cells_complete"]
    assert sweep["chosen"] == 100.0  # tied with 10; 100 is the paper's
    assert sweep["cells"]["1000"]["lead_per_seed"] == {"0": pytest.approx(-0.25), "1": pytest.approx(-0.25)}
    rev2net = summary["rev2net-x"]  # read from the clip-flow runs, as `actionkit finetune --rev2net` trains
    assert rev2net["cells"]["10"]["mean_top1"] == pytest.approx(0.625) and rev2net["chosen"] == 0.1
    assert rev2net["all_cells_complete"]
    recorded = record(argparse.Namespace(out=tmp_path, seeds=[0, 1]), summary)  # the committed file
    assert recorded["sweeps"] == summary and recorded["runs"]["0"]["sequence/plain"] == {"top1": 0.75}
    assert len(recorded["runs"]["1"]) == len(top1) * len(sizes) - 1
    assert choose([{"value": 1.0, "mean_top1": 0.8}, {"value": 10.0, "mean_top1": 0.9}], paper=1.0) == 10.0

"""The UT-Interaction 4-fold comparison: its folds partition the real clips and pooling counts clips."""

from __future__ import annotations

import csv
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

"""Checkpoint settings on --resume: compared field by field, and a setting newer than the checkpoint is
accepted while it stays at its default (a run started before an upgrade of actionkit can still resume)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from actionkit.errors import CheckpointError
from actionkit.train.checkpoint import (
    TrainingState,
    changed_settings,
    flatten_settings,
    load_checkpoint,
    rng_state,
    save_checkpoint,
)
from actionkit.train.loop import TrainConfig


def _save(run_dir: Path, settings: dict) -> None:
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    save_checkpoint(run_dir, TrainingState(1, 5, layer.state_dict(), optimizer.state_dict(), scheduler.state_dict(),
                                           rng_state(), settings))


def _current(**train: object) -> dict:
    return {"model": "k400", "train": {**asdict(TrainConfig()), **train}}


def _older(current: dict, missing: str) -> dict:
    """``current`` as a version of actionkit before the train setting ``missing`` existed wrote it."""
    return {**current, "train": {k: v for k, v in current["train"].items() if k != missing}}


DEFAULTS = {"train": asdict(TrainConfig())}


def test_settings_are_compared_field_by_field() -> None:
    assert flatten_settings({"a": {"b": 1, "c": {"d": [2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [2], "e": {}}
    assert changed_settings(_current(lr=0.1), _current(lr=0.2)) == ["train.lr"]
    assert changed_settings(_current(), _current()) == []


def test_a_checkpoint_older_than_a_setting_resumes_while_that_setting_is_at_its_default(tmp_path: Path) -> None:
    current = _current()
    _save(tmp_path, _older(current, "decoder_lr_scale"))
    state = load_checkpoint(tmp_path, current, DEFAULTS)
    assert (state.epoch, state.step) == (1, 5)
    with pytest.raises(CheckpointError, match="different settings"):  # without the defaults it is a difference
        load_checkpoint(tmp_path, current)


def test_a_setting_newer_than_the_checkpoint_but_not_at_its_default_is_refused(tmp_path: Path) -> None:
    _save(tmp_path, _older(_current(), "decoder_lr_scale"))
    with pytest.raises(CheckpointError, match=r"train\.decoder_lr_scale: '\(not set\)' -> 5\.0"):
        load_checkpoint(tmp_path, _current(decoder_lr_scale=5.0), DEFAULTS)


def test_a_changed_value_is_named_with_both_values(tmp_path: Path) -> None:
    _save(tmp_path, _current(lr=0.1))
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: --resume with different settings \(train\.lr: 0\.1 -> 0\.2\); use a new --out folder"):
        load_checkpoint(tmp_path, _current(lr=0.2), DEFAULTS)

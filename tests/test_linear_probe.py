"""The linear probe (the baseline fine-tuning must beat, and LP-FT's starting head) and the
classifier's own learning rate."""

from __future__ import annotations

from pathlib import Path

import torch
from test_training import tiny_data  # noqa: F401  (fixture)

from actionkit.config import PreprocessConfig
from actionkit.data.datasets import scan_dataset
from actionkit.hub import ModelConfig, load_pretrained
from actionkit.train.finetune import _probe_head
from actionkit.train.linear_probe import _folds, extract_features, fit_linear_probe
from actionkit.train.loop import TrainConfig, build_optimizer


def test_folds_keep_groups_together() -> None:
    groups = ["1", "1", "2", "3", "2", "4", "5", "6", "6"]
    folds = _folds(len(groups), groups, folds=5)
    for g in set(groups):
        assert len({f for f, h in zip(folds, groups) if h == g}) == 1
    assert len(set(folds)) == 5
    assert _folds(7, None, 3) == [0, 1, 2, 0, 1, 2, 0]


def test_probe_separates_separable_classes_and_reports_cv() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 32, generator=generator) * 4
    labels = torch.arange(3).repeat(20)
    features = centres[labels] + torch.randn(60, 32, generator=generator) + 100  # offset: standardisation matters
    probe = fit_linear_probe(features, labels, 3, strengths=(1e-3, 1e-1))
    assert probe.accuracy(features, labels) == 1.0
    assert set(probe.cv_accuracy) == {1e-3, 1e-1} and probe.cv_accuracy[probe.strength] == max(probe.cv_accuracy.values())
    shuffled = labels[torch.randperm(60, generator=generator)]
    assert fit_linear_probe(features, shuffled, 3).cv_accuracy[1e-1] < 0.6  # no signal: CV says so


def test_probe_head_puts_the_probe_into_the_classifier(tiny_data: Path, k400_dir: Path) -> None:  # noqa: F811
    from actionkit.data.check import check_dataset

    index = scan_dataset(tiny_data)
    train = check_dataset(index, workers=1).training_samples("train")
    pre = PreprocessConfig(clip_len=8, frame_sampling="consecutive", resize_short_side=73, crop_size=64)
    encoder = load_pretrained(k400_dir)
    encoder.replace_classifier(len(index.classes))
    features = extract_features(encoder, train.samples, pre, workers=0, num_frames=train.num_frames, progress=False)
    assert features.shape == (len(train.samples), 1024)
    labels = torch.tensor([s.label for s in train.samples])
    probe = fit_linear_probe(features.double(), labels, len(index.classes))
    config = ModelConfig(model=encoder.config, id2label=dict(enumerate(index.classes)), preprocessing=pre)
    _probe_head(encoder, train, config, torch.device("cpu"), 0, lambda _: None)
    with torch.no_grad():
        head = encoder.classifier(features)
    assert torch.allclose(head.double(), probe.logits(features.double()), atol=1e-3)
    assert encoder.training is False  # the probe left the encoder as it found it (eval after loading)


def test_head_lr_scale_gives_the_classifier_its_own_rate(k400_dir: Path) -> None:
    model = load_pretrained(k400_dir)
    params = list(model.parameters())
    head = list(model.classifier.parameters())
    optimizer = build_optimizer(params, TrainConfig(lr=0.01, head_lr_scale=10.0), head=head)
    trunk_group, head_group = optimizer.param_groups
    assert head_group["lr"] == 0.1 and trunk_group["lr"] == 0.01
    assert {id(p) for p in head_group["params"]} == {id(p) for p in head}
    assert len(trunk_group["params"]) + len(head_group["params"]) == len(params)
    (single,) = build_optimizer(params, TrainConfig(lr=0.01), head=head).param_groups
    assert len(single["params"]) == len(params)

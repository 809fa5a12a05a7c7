"""Acceptance: our port of DeepMind's Kinetics-400 I3D reproduces independently computed logits."""

import numpy as np
import torch

from actionkit import I3D

from conftest import REFERENCE, require


def test_logits_match_reference_from_hub_folder(k400_dir) -> None:
    reference = np.load(require(REFERENCE))
    frames = torch.from_numpy(reference["frames"])  # 64×224×224×3 uint8
    x = (frames.float() / 127.5 - 1).permute(3, 0, 1, 2)[None]  # N×C×T×H×W
    model = I3D.from_pretrained(str(k400_dir))
    with torch.no_grad():
        logits = model(x)[0].numpy()
    diff = np.abs(logits - reference["logits"]).max()
    assert diff < 1e-3, f"max abs logit difference {diff}"
    assert logits.argmax() == reference["logits"].argmax()
    assert model.pretrained_cfg.labels[int(logits.argmax())] == "arm wrestling"

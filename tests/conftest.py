"""Fixtures: the real material in ../shared (skipped cleanly when absent) and generated bad videos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ACTIONKIT_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
DATA = SHARED / "data"
CHECKPOINT = DATA / "weights" / "i3d-kinetics-400.ckpt"
CLIPS = DATA / "clips"
REFERENCE = DATA / "reference" / "arm_wrestling_64f.npz"

# ../shared/README.md: clip -> (expected label, rank it must reach)
EXPECTED_LABELS = {
    "arm_wrestling.mp4": ("arm wrestling", 1),
    "cleaning_pool.mp4": ("cleaning pool", 1),
    "hmdb51_dive.mp4": ("diving cliff", 1),
    "hmdb51_jump.mp4": ("parkour", 1),
    "ucf101_HeadMassage.avi": ("massaging person's head", 1),
    "hmdb51_punch.mp4": ("punching bag", 2),
    "ucf101_ApplyEyeMakeup.avi": ("filling eyebrows", 2),
    "v_CricketShot_g04_c01_rgb.gif": ("playing cricket", 1),
}


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the project's ../shared folder)")
    return path


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    return require(CHECKPOINT)


@pytest.fixture(scope="session")
def k400_dir(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DeepMind checkpoint converted once into a Hub-format folder."""
    from actionkit.hub import convert_checkpoint

    return convert_checkpoint(checkpoint, tmp_path_factory.mktemp("models") / "k400")


@pytest.fixture(scope="session")
def k400_model(k400_dir: Path):
    from actionkit import I3D

    return I3D.from_pretrained(str(k400_dir))


@pytest.fixture(scope="session")
def k400_fast_dir(k400_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights with 16-frame clips in config.json: for tests about inputs, not accuracy."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("models") / "k400_16f"
    shutil.copytree(k400_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["preprocessing"]["clip_len"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    return folder

"""Hub-format folders: bit-exact round trips, strict loading, an offline HF cache (uploads: test_hub_upload.py)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from actionkit import I3D, CheckpointError, ModelNotFoundError

REPO_ID = "acme/i3d-kinetics-400"
FILES = {"config.json", "model.safetensors", "README.md"}


def test_save_then_load_is_bit_exact(k400_model: I3D, tmp_path: Path) -> None:
    k400_model.save_pretrained(str(tmp_path / "copy"))
    assert {p.name for p in (tmp_path / "copy").iterdir()} == FILES
    loaded = I3D.from_pretrained(str(tmp_path / "copy"))
    ours, theirs = k400_model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert loaded.pretrained_cfg.to_dict() == k400_model.pretrained_cfg.to_dict()
    # saving again writes byte-identical weights and config
    loaded.save_pretrained(str(tmp_path / "again"))
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_config_and_model_card_describe_the_model(k400_dir: Path) -> None:
    config = json.loads((k400_dir / "config.json").read_text())
    assert config["model"] == {"num_classes": 400, "in_channels": 3, "dropout": 0.5, "architecture": "i3d"}
    assert config["id2label"]["6"] == "arm wrestling" and len(config["id2label"]) == 400
    assert config["preprocessing"] == {
        "clip_len": 64, "frame_sampling": "uniform", "frame_stride": 1, "num_clips": 1, "num_crops": 1,
        "resize_short_side": 256, "crop_size": 224, "value_range": [-1.0, 1.0],
        "channel_order": "RGB", "layout": "NCTHW"}
    assert config["source"]["format"] == "deepmind" and config["license"] == "apache-2.0"
    card = (k400_dir / "README.md").read_text()
    for needed in ("license: apache-2.0", "## Source", "DeepMind", "## Labels", "400 classes",
                   "## Intended input", "64 frames", "## How to use", "Recognizer.from_pretrained"):
        assert needed in card, needed


def test_strict_loading_names_missing_and_unexpected_tensors(k400_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(k400_dir, folder)
    state = load_file(str(folder / "model.safetensors"))
    state["decoder.weight"] = torch.zeros(2)
    del state["Mixed_3c.branch3.bn.running_var"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        I3D.from_pretrained(str(folder))
    message = str(err.value)
    assert "model.safetensors" in message
    assert "missing tensors: Mixed_3c.branch3.bn.running_var" in message
    assert "unexpected tensors: decoder.weight" in message


def test_folder_without_weights_or_config(tmp_path: Path, k400_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "only_config").mkdir()
    shutil.copy(k400_dir / "config.json", tmp_path / "only_config")
    with pytest.raises(CheckpointError, match="only_config: model.safetensors is missing"):
        I3D.from_pretrained(str(tmp_path / "only_config"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        I3D.from_pretrained(str(tmp_path / "empty"))
    # org/name where org/ is a local folder: a mistyped local path, refused at once without asking the Hub
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="empty/typo: no such folder in empty/"):
        I3D.from_pretrained("empty/typo")
    assert time.monotonic() - started < 1


def _fill_cache(cache: Path, repo_id: str, revisions: dict[str, Path]) -> None:
    """Lay out a Hugging Face hub cache as huggingface_hub writes it: snapshots per commit, refs."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for i, (ref, folder) in enumerate(revisions.items()):
        commit = f"{i + 1:040x}"
        shutil.copytree(folder, repo / "snapshots" / commit)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


_LOAD_SCRIPT = """
import sys
from actionkit import I3D
kwargs = {"revision": sys.argv[2]} if len(sys.argv) > 2 else {}
model = I3D.from_pretrained(sys.argv[1], **kwargs)
print(model.pretrained_cfg.labels[0], float(model.classifier.weight.detach().sum()))
"""


def _offline_python(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HOME=str(cache.parent / "hf_home"))
    return subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_repo_id_from_offline_cache_with_revision(k400_model: I3D, k400_dir: Path, tmp_path: Path) -> None:
    relabelled = tmp_path / "v2"
    shutil.copytree(k400_dir, relabelled)
    config = json.loads((relabelled / "config.json").read_text())
    config["id2label"]["0"] = "abseiling (v2)"
    (relabelled / "config.json").write_text(json.dumps(config))
    cache = tmp_path / "hub"
    _fill_cache(cache, REPO_ID, {"main": k400_dir, "v2": relabelled})

    expected_sum = float(k400_model.classifier.weight.detach().sum())
    main = _offline_python(cache, REPO_ID)
    assert main.returncode == 0, main.stderr
    label, weight_sum = main.stdout.split()[0], float(main.stdout.split()[-1])
    assert label == "abseiling" and weight_sum == pytest.approx(expected_sum, rel=0, abs=0)

    v2 = _offline_python(cache, REPO_ID, "v2")
    assert v2.returncode == 0, v2.stderr
    assert v2.stdout.startswith("abseiling (v2)")

    missing = _offline_python(cache, "acme/not-cached")
    assert missing.returncode != 0
    assert "acme/not-cached: no such local folder; as a Hub repo id: not in the local Hugging Face " \
           "cache and offline mode is on" in missing.stderr

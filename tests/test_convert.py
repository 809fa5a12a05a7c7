"""Importing DeepMind and pytorch-i3d checkpoints; refusing unsafe or mismatched files."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from actionkit import I3D, CheckpointError
from actionkit.cli.app import app
from actionkit.hub.checkpoints import (
    conv_units,
    import_checkpoint,
    read_numpy_pickle,
    state_dict_to_pytorch_i3d,
)

from conftest import REFERENCE, require

runner = CliRunner()


@pytest.fixture(scope="module")
def short_input() -> torch.Tensor:
    frames = torch.from_numpy(np.load(require(REFERENCE))["frames"][:16])
    return (frames.float() / 127.5 - 1).permute(3, 0, 1, 2)[None]


def test_deepmind_import_accounts_for_every_array(checkpoint: Path) -> None:
    imported = import_checkpoint(checkpoint)
    assert imported.source_format == "deepmind" and imported.num_classes == 400
    assert len(conv_units()) == 3 + 9 * 6  # stem convs + six branches per inception block
    sd = imported.state_dict
    assert sd["Conv3d_1a_7x7.conv.weight"].shape == (64, 3, 7, 7, 7)
    assert torch.all(sd["Mixed_4e.branch2.bn.weight"] == 1)  # DeepMind's BN has no scale
    assert set(sd) == set(I3D().state_dict())


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": Exploit()}))
    with pytest.raises(CheckpointError, match="refusing to load posix.system"):
        read_numpy_pickle(evil)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        import_checkpoint(evil)
    assert not marker.exists()


def test_pytorch_i3d_round_trip_through_cli(k400_model: I3D, short_input: torch.Tensor, tmp_path: Path) -> None:
    theirs = state_dict_to_pytorch_i3d(k400_model.state_dict())
    # pytorch-i3d's own module names and layouts, spelled out independently of our mapping
    assert theirs["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert theirs["Mixed_3b.b1a.bn.running_mean"].shape == (96,)
    assert theirs["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert theirs["Mixed_5c.b3b.bn.bias"].shape == (128,)
    assert theirs["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert theirs["logits.conv3d.bias"].shape == (400,)
    pt = tmp_path / "rgb_kinetics.pt"
    torch.save({k: v.clone() for k, v in theirs.items()}, pt)

    result = runner.invoke(app, ["convert", str(pt), "--out", str(tmp_path / "from_pt")])
    assert result.exit_code == 0, result.output
    converted = I3D.from_pretrained(str(tmp_path / "from_pt"))
    with torch.no_grad():
        assert torch.equal(converted(short_input), k400_model(short_input))
    assert converted.pretrained_cfg.source["format"] == "pytorch-i3d"
    assert converted.pretrained_cfg.labels == k400_model.pretrained_cfg.labels


def test_pytorch_i3d_without_num_batches_tracked(k400_model: I3D, tmp_path: Path) -> None:
    theirs = {k: v for k, v in state_dict_to_pytorch_i3d(k400_model.state_dict()).items()
              if not k.endswith("num_batches_tracked")}  # files saved by torch < 0.4.1
    torch.save(theirs, tmp_path / "old.pt")
    model = I3D.from_pretrained(str(tmp_path / "old.pt"))
    assert torch.equal(model.Mixed_4b.branch0.conv.weight, k400_model.Mixed_4b.branch0.conv.weight)


def test_mismatched_checkpoint_names_the_tensor(k400_model: I3D, tmp_path: Path) -> None:
    theirs = state_dict_to_pytorch_i3d(k400_model.state_dict())
    missing = dict(theirs)
    del missing["Mixed_4c.b2b.conv3d.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing.pt: .*'Mixed_4c\.b2b\.conv3d\.weight' is missing"):
        I3D.from_pretrained(str(tmp_path / "missing.pt"))

    wrong = dict(theirs, **{"Mixed_4c.b2b.conv3d.weight": torch.zeros(64, 24, 1, 1, 1)})
    torch.save(wrong, tmp_path / "wrong_shape.pt")
    with pytest.raises(CheckpointError, match=r"does not match the I3D architecture .*shape mismatch: "
                                              r"Mixed_4c\.branch2\.conv\.weight \(64, 24, 1, 1, 1\)"):
        I3D.from_pretrained(str(tmp_path / "wrong_shape.pt"))

    extra = dict(theirs, **{"logits.conv3d.extra": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected tensors for an I3D: logits\.conv3d\.extra"):
        I3D.from_pretrained(str(tmp_path / "extra.pt"))

    result = runner.invoke(app, ["convert", str(tmp_path / "wrong_shape.pt"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "error: " in result.output and "wrong_shape.pt" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x").exists()


def test_non_checkpoint_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("not weights")
    with pytest.raises(CheckpointError, match="notes.ckpt: not a checkpoint"):
        import_checkpoint(text)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: the checkpoint file is empty"):
        import_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="nope.ckpt: no such file or folder"):
        I3D.from_pretrained(str(tmp_path / "nope.ckpt"))


def test_convert_with_custom_labels(checkpoint: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"action {i}\n" for i in range(400)))
    result = runner.invoke(app, ["convert", str(checkpoint), "--out", str(tmp_path / "m"), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert I3D.from_pretrained(str(tmp_path / "m")).pretrained_cfg.labels[399] == "action 399"

    labels.write_text("a\nb\nc\n")
    result = runner.invoke(app, ["convert", str(checkpoint), "--out", str(tmp_path / "n"), "--labels", str(labels)])
    assert result.exit_code == 1
    assert "the checkpoint has 400 classes but 3 labels were given" in result.output

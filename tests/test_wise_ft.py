"""The starting model as a candidate (epoch 0) and WiSE-FT, on the tiny real UT-Interaction run of
test_training.py (8-frame 64×64 clips, the real Kinetics-400 I3D, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training import TINY, _cli, tiny_data  # noqa: F401  (tiny_data is a fixture)

from actionkit.hub import load_pretrained
from actionkit.train.wise_ft import interpolate_weights, wise_ft


@pytest.fixture(scope="module")
def tuned_run(tiny_data: Path, k400_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """One epoch of fine-tuning with WiSE-FT at α ∈ {0, 0.5, 1} afterwards."""
    out = tmp_path_factory.mktemp("wise") / "run"
    done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), "--epochs", "1",
                "--head-init", "linear-probe", "--wise-ft", "--wise-ft-alphas", "0,0.5,1", *TINY)
    assert done.returncode == 0, done.stderr
    assert "epoch 0 (the starting model, before any step): val top-1" in done.stderr
    return out


def _logits(folder: Path, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_pretrained(folder)(video)


def test_epoch_zero_becomes_best_when_no_epoch_beats_it(tiny_data: Path, k400_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """At a learning rate too small to change a prediction, no epoch validates above the start: best/
    stays the starting model (epoch 0), and the run says so on stderr and in run.json."""
    out = tmp_path / "run"
    done = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), "--epochs", "2",
                "--head-init", "linear-probe", *TINY[:-4], "--lr", "1e-12", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "fine-tuning did not beat the starting model" in done.stderr and "best/ is the starting model" in done.stderr
    assert "(epoch 0: the starting model)" in done.stdout
    val = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert [r["epoch"] for r in val] == [-1, 0, 1]
    assert val[0]["top1"] >= max(r["top1"] for r in val[1:])
    result = json.loads((out / "run.json").read_text())["result"]
    assert result["best_epoch"] == 0 and result["beat_start"] is False and result["start_top1"] == val[0]["top1"]
    start, best = load_file(out / "start" / "model.safetensors"), load_file(out / "best" / "model.safetensors")
    assert start.keys() == best.keys() and all(torch.equal(start[k], best[k]) for k in start)
    assert "| epoch | 0 |" in (out / "best" / "README.md").read_text().replace("`", "")
    # a finished run resumed with --wise-ft gets its WiSE-FT without training again
    again = _cli("finetune", "--data", str(tiny_data), "--model", str(k400_dir), "--out", str(out), "--epochs", "2",
                 "--head-init", "linear-probe", *TINY[:-4], "--lr", "1e-12", "--seed", "3", "--resume",
                 "--wise-ft", "--wise-ft-alphas", "0,1")
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stderr and "epoch 1/2" not in again.stderr
    assert [row["alpha"] for row in json.loads((out / "wise-ft.json").read_text())["rows"]] == [0.0, 1.0]


def test_wise_ft_endpoints_reproduce_the_two_models_exactly(tuned_run: Path) -> None:
    start, last = load_file(tuned_run / "start" / "model.safetensors"), load_file(tuned_run / "last" / "model.safetensors")
    assert any(not torch.equal(start[k], last[k]) for k in start)  # fine-tuning moved the weights
    model = load_pretrained(tuned_run / "last")
    video = torch.rand(2, 3, 8, 64, 64) * 2 - 1
    for alpha, folder in ((0.0, "start"), (1.0, "last")):
        model.load_state_dict(interpolate_weights(start, last, alpha))
        with torch.no_grad():
            assert torch.equal(model(video), _logits(tuned_run / folder, video)), alpha
    mixed = interpolate_weights(start, last, 0.5)
    name = next(k for k in start if start[k].is_floating_point() and not torch.equal(start[k], last[k]))
    assert torch.allclose(mixed[name], (start[name] + last[name]) / 2, atol=1e-7)


def test_finetune_wise_ft_writes_the_table_the_plot_and_the_chosen_model(tuned_run: Path) -> None:
    table = json.loads((tuned_run / "wise-ft.json").read_text())
    assert [row["alpha"] for row in table["rows"]] == [0.0, 0.5, 1.0]
    val = [json.loads(line) for line in (tuned_run / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    # α = 0 scores as epoch 0 did and α = 1 as the last epoch did: the same weights on the same clips
    assert table["rows"][0]["top1"] == val[0]["top1"] and table["rows"][0]["loss"] == pytest.approx(val[0]["loss"], rel=1e-5)
    assert table["rows"][-1]["top1"] == val[-1]["top1"] and table["rows"][-1]["loss"] == pytest.approx(val[-1]["loss"], rel=1e-5)
    best = max(table["rows"], key=lambda row: (row["top1"], -row["loss"]))
    assert table["chosen_alpha"] == best["alpha"]
    assert (tuned_run / "plots" / "wise-ft.png").stat().st_size > 5000
    chosen = load_file(tuned_run / "wise-ft" / "model.safetensors")
    expected = interpolate_weights(load_file(tuned_run / "start" / "model.safetensors"),
                                   load_file(tuned_run / "last" / "model.safetensors"), best["alpha"])
    assert all(torch.equal(chosen[k], expected[k]) for k in expected)
    assert json.loads((tuned_run / "wise-ft" / "config.json").read_text())["source"]["wise_ft"]["alpha"] == best["alpha"]


def test_wise_ft_on_two_folders_saves_an_intermediate_alpha_as_a_model(tuned_run: Path, tiny_data: Path,  # noqa: F811
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "half"
    result = wise_ft(tuned_run / "start", tuned_run / "last", tiny_data, out, alphas=[0.5], workers=0, log=lambda _: None)
    assert result.alpha == 0.5 and [row["alpha"] for row in result.rows] == [0.5]
    assert (out / "wise-ft.json").is_file() and (out / "wise-ft.png").is_file()
    ran = _cli("predict", str(tiny_data / "0_1_4.avi"), "--model", str(out), "--json")  # a loadable model folder
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)[0]["predictions"][0]["label"] in ("hugging", "kicking", "punching")
    table = json.loads((tuned_run / "wise-ft.json").read_text())
    assert result.rows[0]["top1"] == table["rows"][1]["top1"]  # the same α scores the same through both faces


def test_wise_ft_refuses_models_with_other_classes(tuned_run: Path, tiny_data: Path, k400_dir: Path,  # noqa: F811
                                                   tmp_path: Path) -> None:
    done = _cli("wise-ft", "--start", str(k400_dir), "--finetuned", str(tuned_run / "last"), "--data", str(tiny_data),
                "--out", str(tmp_path / "w"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "differ in their classes" in done.stderr
    bad = _cli("wise-ft", "--start", str(tuned_run / "start"), "--finetuned", str(tuned_run / "last"), "--data",
               str(tiny_data), "--out", str(tmp_path / "w"), "--alphas", "0,1.5")
    assert bad.returncode == 1 and "must lie in [0, 1]" in bad.stderr


def test_wise_ft_without_a_validation_split_is_refused_before_training(tiny_data: Path, k400_dir: Path,  # noqa: F811
                                                                        tmp_path: Path) -> None:
    data = tmp_path / "train_only"
    data.mkdir()
    rows = [line for line in (tiny_data / "labels.csv").read_text().splitlines() if not line.endswith(",val")]
    for row in rows[1:]:
        (data / row.split(",")[0]).symlink_to((tiny_data / row.split(",")[0]).resolve())
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    done = _cli("finetune", "--data", str(data), "--model", str(k400_dir), "--out", str(tmp_path / "run"),
                "--wise-ft", *TINY)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--wise-ft chooses α on the validation split" in done.stderr and "epoch 1" not in done.stderr

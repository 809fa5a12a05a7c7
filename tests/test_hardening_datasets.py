"""Adversarial datasets: labels outside the class list, labels that only look like numbers, and datasets
that hold only the videos a command uses (a test set, a CSV without splits, class folders without
train/ val/). Every failure is one line naming the file (and line), from the library and from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actionkit.data.check import check_dataset
from actionkit.data.datasets import DatasetError, scan_dataset

from conftest import CLIPS, DATA, EXPECTED_LABELS, require

UT = DATA / "ut_interaction"
UT_CLIPS = {"set1/0_1_4.avi": "punching", "set1/1_1_2.avi": "kicking", "set1/2_1_1.avi": "hugging"}
KINETICS = {name: label for name, (label, rank) in EXPECTED_LABELS.items()
            if rank == 1 and name in ("arm_wrestling.mp4", "cleaning_pool.mp4")}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionkit.cli", *args], capture_output=True, text=True, timeout=900,
                          check=False)


def _one_error_line(done: subprocess.CompletedProcess, *parts: str) -> str:
    """The command failed with exactly one ``error: ...`` line on stderr holding every part."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def _dataset(root: Path, files: dict[str, str], clips: dict[str, Path] | None = None) -> Path:
    """Write ``{relative path: text}`` under root and link ``{relative path: real video}`` into it."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    for name, target in (clips or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(require(target))
    return root


def _ut_clips(prefix: str = "") -> dict[str, Path]:
    return {f"{prefix}{Path(name).name}": UT / name for name in UT_CLIPS}


# --- 1. labels outside the class list ------------------------------------------------------------------

def test_a_label_missing_from_classes_txt_is_an_error_naming_the_line(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"classes.txt": "hugging\nkicking\n",
                                     "train.txt": "0_1_4.avi hugging\n1_1_2.avi waving\n",
                                     "val.txt": "2_1_1.avi 1\n"}, _ut_clips())
    with pytest.raises(DatasetError) as err:
        scan_dataset(root)
    assert str(err.value).startswith(f"{root}/train.txt:2: unknown label 'waving'")
    assert f"{root}/classes.txt" in str(err.value)
    done = _cli("data", "check", "--data", str(root))
    _one_error_line(done, f"{root}/train.txt:2: unknown label 'waving'")


def test_minus_one_is_not_a_class(tmp_path: Path) -> None:
    with_names = _dataset(tmp_path / "named", {"classes.txt": "hugging\nkicking\n",
                                               "train.txt": "0_1_4.avi 0\n1_1_2.avi -1\n"}, _ut_clips())
    with pytest.raises(DatasetError, match=r"train\.txt:2: label index -1 is out of range: .*classes\.txt has 2"):
        scan_dataset(with_names)
    bare = _dataset(tmp_path / "bare", {"train.txt": "0_1_4.avi 0\n1_1_2.avi 1\n2_1_1.avi -1\n"}, _ut_clips())
    with pytest.raises(DatasetError) as err:
        scan_dataset(bare)
    assert str(err.value).startswith(f"{bare}/train.txt:3: label '-1' is not a class index")
    _one_error_line(_cli("data", "check", "--data", str(bare)), f"{bare}/train.txt:3: label '-1'")


def test_a_huge_integer_label_does_not_make_a_million_classes(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"train.txt": "0_1_4.avi 0\n1_1_2.avi 1000000\n2_1_1.avi 1\n"}, _ut_clips())
    with pytest.raises(DatasetError) as err:
        scan_dataset(root)
    assert str(err.value).startswith(f"{root}/train.txt:2: label index 1000000 ")
    assert "classes.txt" in str(err.value)
    done = _cli("data", "check", "--data", str(root))
    _one_error_line(done, f"{root}/train.txt:2: label index 1000000")
    assert len(done.stdout.splitlines()) < 5
    # with the names, the same index is simply out of range
    (root / "classes.txt").write_text("hugging\nkicking\n")
    with pytest.raises(DatasetError, match=r"train\.txt:2: label index 1000000 is out of range: .* has 2 classes"):
        scan_dataset(root)
    # a number longer than int() converts (4300 digits) is out of range too, not a ValueError
    (root / "train.txt").write_text(f"0_1_4.avi 0\n1_1_2.avi {'9' * 5000}\n")
    with pytest.raises(DatasetError, match=r"train\.txt:2: label index 9{5000} is out of range"):
        scan_dataset(root)
    (root / "classes.txt").unlink()
    with pytest.raises(DatasetError, match=r"train\.txt:2: label index 9{5000} "):
        scan_dataset(root)


def test_classes_txt_is_the_class_list(tmp_path: Path) -> None:
    """Every class classes.txt names is a class, videos or not, as with ``classes=``."""
    root = _dataset(tmp_path / "d", {"classes.txt": "kicking\npunching\nhugging\n",
                                     "train.txt": "0_1_4.avi punching\n1_1_2.avi 0\n"}, {
        "0_1_4.avi": UT / "set1/0_1_4.avi", "1_1_2.avi": UT / "set1/1_1_2.avi"})
    index = scan_dataset(root)
    assert index.classes == ["hugging", "kicking", "punching"]
    assert [(s.path.name, index.classes[s.label]) for s in index.samples] == [("0_1_4.avi", "punching"),
                                                                            ("1_1_2.avi", "kicking")]


# --- 2. labels that look like numbers but are not ----------------------------------------------------

def test_a_unicode_digit_label_is_an_error_naming_the_line(tmp_path: Path) -> None:
    with_names = _dataset(tmp_path / "named", {"classes.txt": "hugging\nkicking\n",
                                               "train.txt": "0_1_4.avi 0\n1_1_2.avi ²\n"}, _ut_clips())
    with pytest.raises(DatasetError, match=rf"^{with_names}/train\.txt:2: unknown label '²'"):
        scan_dataset(with_names)
    _one_error_line(_cli("data", "check", "--data", str(with_names)), f"{with_names}/train.txt:2: unknown label '²'")
    bare = _dataset(tmp_path / "bare", {"train.txt": "0_1_4.avi 0\n1_1_2.avi ²\n2_1_1.avi 1\n"}, _ut_clips())
    with pytest.raises(DatasetError, match=rf"^{bare}/train\.txt:2: label '²' is not a class index"):
        scan_dataset(bare)
    _one_error_line(_cli("data", "check", "--data", str(bare)), f"{bare}/train.txt:2: label '²'")


def test_a_unicode_digit_in_a_split_column_is_listed_not_parsed(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"labels.csv": "path,label,sequence\n0_1_4.avi,punching,²\n"
                                                   "1_1_2.avi,kicking,10\n2_1_1.avi,hugging,9\n"}, _ut_clips())
    with pytest.raises(DatasetError, match=r"labels\.csv: no row has sequence = 09 \(its values: 9, 10, ²\)"):
        scan_dataset(root, split_by="sequence", val=["09"])
    (root / "labels.csv").write_text(f"path,label,sequence\n0_1_4.avi,punching,{'7' * 5000}\n1_1_2.avi,kicking,10\n")
    with pytest.raises(DatasetError, match=r"labels\.csv: no row has sequence = 09 \(its values: 10, 7{5000}\)"):
        scan_dataset(root, split_by="sequence", val=["09"])


# --- 3. each command needs only the split it uses -------------------------------------------------------

def test_a_test_only_dataset_scans_for_its_split(tmp_path: Path) -> None:
    listed = _dataset(tmp_path / "list", {"val.txt": "0_1_4.avi punching\n1_1_2.avi kicking\n"}, _ut_clips())
    index = scan_dataset(listed, split="val")
    assert index.layout == "list" and [s.split for s in index.samples] == ["val", "val"]
    with pytest.raises(DatasetError, match=f"^{listed}: the train split is empty"):
        scan_dataset(listed)  # training needs one
    folders = _dataset(tmp_path / "folders", {}, {f"test/{label}/{Path(name).name}": UT / name
                                                  for name, label in UT_CLIPS.items()})
    index = scan_dataset(folders, split="test")
    assert index.layout == "folders" and index.classes == ["hugging", "kicking", "punching"]
    with pytest.raises(DatasetError, match=f"^{folders}: the val split is empty"):
        scan_dataset(folders, split="val")


def test_an_unsplit_dataset_is_used_whole(tmp_path: Path) -> None:
    rows = "".join(f"{Path(name).name},{label}\n" for name, label in UT_CLIPS.items())
    flat = _dataset(tmp_path / "csv", {"labels.csv": "path,label\n" + rows}, _ut_clips())
    index = scan_dataset(flat, split="all")
    assert len(index.split("all")) == 3
    assert index.describe() == "csv: csv layout (labels.csv), 3 classes, 3 videos, not split"
    with pytest.raises(DatasetError, match=r"labels\.csv: no split column: .*split='all' \(CLI: --split all\)"):
        scan_dataset(flat, split="val")
    folders = _dataset(tmp_path / "folders", {}, {f"{label}/{Path(name).name}": UT / name
                                                  for name, label in UT_CLIPS.items()})
    index = scan_dataset(folders, split="all")
    assert index.layout == "folders" and index.classes == ["hugging", "kicking", "punching"]
    assert index.describe() == "folders: folders layout (<class>/), 3 classes, 3 videos, not split"
    with pytest.raises(DatasetError, match=f"^{folders}: the class folders are not split"):
        scan_dataset(folders)
    report = check_dataset(index)
    assert len(report.usable("all")) == 3 and report.counts() == {"all": {"hugging": 1, "kicking": 1, "punching": 1}}
    with pytest.raises(ValueError, match="unknown split 'everything': expected one of train, val, test, all"):
        scan_dataset(folders, split="everything")


def test_cli_data_check_needs_no_split(tmp_path: Path) -> None:
    rows = "".join(f"{Path(name).name},{label}\n" for name, label in UT_CLIPS.items())
    flat = _dataset(tmp_path / "csv", {"labels.csv": "path,label\n" + rows}, _ut_clips())
    done = _cli("data", "check", "--data", str(flat), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"] == {"all": {"hugging": 1, "kicking": 1, "punching": 1}} and report["unreadable"] == []
    test_only = _dataset(tmp_path / "list", {"test.txt": "0_1_4.avi punching\n1_1_2.avi kicking\n"}, _ut_clips())
    done = _cli("data", "check", "--data", str(test_only))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "list: list layout (test.txt), 2 classes, 0 train / 0 val / 2 test"


def _kinetics(root: Path, layout: str) -> Path:
    """The shared Kinetics clips (top-1 labels) as a val.txt-only list, or a CSV without a split column."""
    clips = {name: CLIPS / name for name in KINETICS}
    if layout == "list":
        return _dataset(root, {"val.txt": "".join(f"{n}\t{label}\n" for n, label in KINETICS.items())}, clips)
    return _dataset(root, {"labels.csv": "path,label\n" + "".join(f"{n},{label}\n" for n, label in KINETICS.items())},
                    clips)


def test_cli_evaluate_a_dataset_holding_only_what_it_scores(k400_fast_dir: Path, tmp_path: Path) -> None:
    fast = ("--model", str(k400_fast_dir), "--num-clips", "1", "--num-crops", "1", "--workers", "0", "--json")
    test_set = _kinetics(tmp_path / "val_only", "list")
    done = _cli("evaluate", "--data", str(test_set), "--split", "val", *fast)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["videos"] == len(KINETICS)
    whole = _kinetics(tmp_path / "unsplit", "csv")
    done = _cli("evaluate", "--data", str(whole), "--split", "all", *fast)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["videos"] == len(KINETICS) and metrics["top1"] == 1.0
    _one_error_line(_cli("evaluate", "--data", str(whole), *fast), f"{whole}/labels.csv: no split column",
                    "--split all")
    _one_error_line(_cli("evaluate", "--data", str(test_set), "--split", "test", *fast),
                    f"{test_set}: the test split is empty")
    _one_error_line(_cli("evaluate", "--data", str(test_set), "--split", "validation", *fast),
                    "unknown split 'validation'")

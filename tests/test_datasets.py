"""Datasets in three layouts give the same samples; every malformed dataset gives one clear error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actionkit.cli.data import data_app
from actionkit.data.datasets import (
    DatasetError,
    DatasetIndex,
    VideoSample,
    load_classes,
    scan_dataset,
)

from conftest import DATA, require

UT = DATA / "ut_interaction"
UT_VAL = ["9", "10", "15", "16"]  # split by sequence (../shared/README.md): 2 of set 1, 2 of set 2
UT_CLASSES = ["hand_shaking", "hugging", "kicking", "pointing", "punching", "pushing"]

runner = CliRunner()


def ut_rows() -> list[dict[str, str]]:
    """UT-Interaction's labels.csv rows, each with the split that UT_VAL gives it."""
    with open(require(UT / "labels.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["split"] = "val" if row["sequence"] in UT_VAL else "train"
    return rows


def ut_folder_copy(root: Path) -> Path:
    """UT-Interaction as train/<label>/<name>.avi and val/<label>/..., symbolic links to the real clips."""
    for row in ut_rows():
        link = root / row["split"] / row["label"] / Path(row["path"]).name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(UT / row["path"])
    return root


def ut_list_copy(root: Path, integer_labels: bool = False) -> Path:
    """train.txt / val.txt listing set1/... and set2/... (links to the real folders), labels by name or
    as indices into a classes.txt deliberately not in sorted order."""
    root.mkdir()
    for part in ("set1", "set2"):
        (root / part).symlink_to(UT / part, target_is_directory=True)
    names = UT_CLASSES[::-1]
    if integer_labels:
        (root / "classes.txt").write_text("\n".join(names) + "\n")
    for split in ("train", "val"):
        lines = [f"{row['path']} {names.index(row['label']) if integer_labels else row['label']}"
                 for row in ut_rows() if row["split"] == split]
        (root / f"{split}.txt").write_text("# UT-Interaction\n" + "\n".join(lines) + "\n")
    return root


def by_real_file(index: DatasetIndex) -> set[tuple[Path, str, int]]:
    return {(s.path.resolve(), s.split, s.label) for s in index.samples}


@pytest.fixture(scope="module")
def ut_csv() -> DatasetIndex:
    return scan_dataset(require(UT), split_by="sequence", val=UT_VAL)


def test_ut_interaction_csv_split_by_sequence(ut_csv: DatasetIndex) -> None:
    assert ut_csv.layout == "csv" and ut_csv.classes == UT_CLASSES
    assert ut_csv.describe() == ("ut_interaction: csv layout (labels.csv, split by sequence: val = 9,10,15,16), "
                                 "6 classes, 72 train / 24 val")
    assert len(ut_csv.split("train")) == 72 and len(ut_csv.split("val")) == 24 and ut_csv.split("test") == []
    val_sequences = {s.path.stem.split("_")[1] for s in ut_csv.split("val")}  # names are CLIP_SEQUENCE_LABEL
    assert val_sequences == set(UT_VAL)
    assert ut_csv.samples == sorted(ut_csv.samples, key=lambda s: (s.split != "train", str(s.path)))
    assert all(s.path.is_absolute() and s.path.is_file() for s in ut_csv.samples)


def test_three_layouts_give_the_same_samples(ut_csv: DatasetIndex, tmp_path: Path) -> None:
    folders = scan_dataset(ut_folder_copy(tmp_path / "folders"))
    named = scan_dataset(ut_list_copy(tmp_path / "list"))
    numbered = scan_dataset(ut_list_copy(tmp_path / "list_int", integer_labels=True))
    assert (folders.layout, named.layout, numbered.layout) == ("folders", "list", "list")
    for index in (folders, named, numbered):
        assert index.classes == UT_CLASSES
        assert by_real_file(index) == by_real_file(ut_csv)
        assert index.describe().endswith("6 classes, 72 train / 24 val")
    assert folders.describe() == "folders: folders layout (train/<class>/ val/<class>/), 6 classes, 72 train / 24 val"
    assert named.describe().startswith("list: list layout (train.txt, val.txt)")
    assert folders.samples[0].path.parent == tmp_path / "folders" / "train" / "hand_shaking"  # links kept


def test_given_class_list_keeps_its_order(ut_csv: DatasetIndex, tmp_path: Path) -> None:
    order = ["pushing", "hugging", "kicking", "pointing", "punching", "hand_shaking"]
    index = scan_dataset(UT, split_by="sequence", val=UT_VAL, classes=order)
    assert index.classes == order
    expected = {(s.path, s.split, order.index(ut_csv.classes[s.label])) for s in ut_csv.samples}
    assert {(s.path, s.split, s.label) for s in index.samples} == expected
    folders = scan_dataset(ut_folder_copy(tmp_path / "folders"), classes=order)
    assert {(s.path.resolve(), s.split, s.label) for s in folders.samples} == expected
    with pytest.raises(DatasetError, match=r"labels.csv:\d+: unknown label 'pushing' \(classes: hugging, "):
        scan_dataset(UT, split_by="sequence", val=UT_VAL, classes=order[1:])
    with pytest.raises(DatasetError, match=r"train/pushing: class 'pushing' is not in the given class list"):
        scan_dataset(tmp_path / "folders", classes=order[1:])


def test_integer_labels_index_the_given_classes_or_name_themselves(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").touch(), (tmp_path / "b.mp4").touch()
    (tmp_path / "train.txt").write_text("a.mp4 2\nb.mp4 0\n")
    index = scan_dataset(tmp_path)
    assert index.classes == ["0", "1", "2"]  # no names anywhere: index i is class "i"
    assert [(s.path.name, s.label) for s in index.samples] == [("a.mp4", 2), ("b.mp4", 0)]
    index = scan_dataset(tmp_path, classes=["x", "y", "z"])
    assert [(s.path.name, index.classes[s.label]) for s in index.samples] == [("a.mp4", "z"), ("b.mp4", "x")]


def test_folders_layout_details(tmp_path: Path) -> None:
    """Nested sub-folders count, files without a video suffix and hidden names are ignored."""
    for name in ["train/cat/a.mp4", "train/cat/day2/b.MKV", "train/dog/c.avi", "train/dog/notes.txt",
                 "train/.cache/d.mp4", "train/dog/.e.mp4", "test/cat/f.webm", "train/README.md"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    index = scan_dataset(tmp_path)
    assert index.classes == ["cat", "dog"]
    assert [(s.path.relative_to(tmp_path).as_posix(), s.label, s.split) for s in index.samples] == [
        ("train/cat/a.mp4", 0, "train"), ("train/cat/day2/b.MKV", 0, "train"), ("train/dog/c.avi", 1, "train"),
        ("test/cat/f.webm", 0, "test")]
    assert index.describe() == (f"{tmp_path.name}: folders layout (train/<class>/ test/<class>/), 2 classes, "
                                "3 train / 0 val / 1 test")


def test_layout_detection_order_and_override(tmp_path: Path) -> None:
    """List files win over class folders (they often list the files in them); ``layout=`` overrides."""
    root = _files(tmp_path, {"train/cat/a.mp4": "", "train.txt": "train/cat/a.mp4 kitten\n"})
    assert scan_dataset(root).classes == ["kitten"]
    assert scan_dataset(root, layout="folders").classes == ["cat"]
    with pytest.raises(ValueError, match="unknown layout 'tree': expected one of list, folders, csv"):
        scan_dataset(root, layout="tree")


def test_list_paths_with_spaces_and_tabs(tmp_path: Path) -> None:
    (tmp_path / "my clips").mkdir()
    (tmp_path / "my clips" / "a b.mp4").touch(), (tmp_path / "my clips" / "c.mp4").touch()
    (tmp_path / "train.txt").write_text("my clips/a b.mp4   jumping\nmy clips/c.mp4\tlong jump\n\n")
    index = scan_dataset(tmp_path)
    assert index.classes == ["jumping", "long jump"]
    assert [(s.path, s.label) for s in index.samples] == [(tmp_path / "my clips" / "a b.mp4", 0),
                                                          (tmp_path / "my clips" / "c.mp4", 1)]


def test_classes_saved_atomically_and_loaded(ut_csv: DatasetIndex, tmp_path: Path) -> None:
    target = tmp_path / "run" / "classes.json"
    ut_csv.save_classes(target)
    assert json.loads(target.read_text()) == {"classes": UT_CLASSES}
    assert load_classes(target) == UT_CLASSES and [p.name for p in target.parent.iterdir()] == ["classes.json"]
    (tmp_path / "classes.txt").write_text("b\n\na\n")
    assert load_classes(tmp_path / "classes.txt") == ["b", "a"]
    (tmp_path / "bad.json").write_text('["a", "b"]')
    with pytest.raises(DatasetError, match=r'bad.json: expected JSON \{"classes"'):
        load_classes(tmp_path / "bad.json")
    (tmp_path / "twice.txt").write_text("a\nb\na\n")
    with pytest.raises(DatasetError, match="twice.txt: the class list repeats 'a'"):
        load_classes(tmp_path / "twice.txt")


def _files(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` under root; videos are empty files (scanning does not decode)."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


CSV_HEAD = "path,label,split\n"

# case -> (files in the dataset folder, message the error must contain; {root} is the folder)
BAD_DATASETS = {
    "no_layout": ({"x.mp4": ""}, "{root}: no dataset layout found: looked for train.txt/val.txt list files, "
                                 "train/<class>/ val/<class>/ folders"),
    "empty_class_folder": ({"train/cat/a.mp4": "", "train/dog/notes.txt": ""},
                           "{root}/train/dog: class folder holds no video files (.3gp, .avi"),
    "video_outside_class_folder": ({"train/a.mp4": ""}, "{root}/train/a.mp4: video directly in train/"),
    "malformed_list_line": ({"a.mp4": "", "train.txt": "a.mp4 cat\nb.mp4\n"},
                            "{root}/train.txt:2: expected 'PATH LABEL', got 'b.mp4'"),
    "missing_listed_file": ({"a.mp4": "", "d.mp4": "", "val.txt": "d.mp4 cat\n",
                             "train.txt": "a.mp4 cat\nb.mp4 cat\nc.mp4 dog\n"},
                            "{root}/train.txt:2: 'b.mp4' does not exist ({root}/b.mp4) "
                            "(and 1 more listed files are missing)"),
    "path_traversal": ({"a.mp4": "", "train.txt": "a.mp4 cat\n../outside.mp4 cat\n"},
                       "{root}/train.txt:2: path '../outside.mp4' points outside the dataset folder {root}"),
    "absolute_path_elsewhere": ({"train.txt": "/etc/hostname cat\n"},
                                "{root}/train.txt:1: path '/etc/hostname' points outside the dataset folder"),
    "listed_in_two_splits": ({"a.mp4": "", "train.txt": "a.mp4 cat\n", "val.txt": "./a.mp4 cat\n"},
                             "{root}/val.txt:1: './a.mp4' is listed again (first at train.txt:1)"),
    "label_index_out_of_range": ({"a.mp4": "", "classes.txt": "cat\ndog\n", "train.txt": "a.mp4 1\na.mp4 2\n"},
                                 "{root}/train.txt:2: label index 2 is out of range: {root}/classes.txt has 2 classes"),
    "empty_train_split": ({"a.mp4": "", "train.txt": "# nothing yet\n", "val.txt": "a.mp4 cat\n"},
                          "{root}: the train split is empty (list layout)"),
    "csv_without_columns": ({"data.csv": "file,class\na.mp4,cat\n"},
                            "{root}/data.csv: no path or label column (columns: file, class)"),
    "csv_malformed_row": ({"a.mp4": "", "labels.csv": CSV_HEAD + "a.mp4,cat,train\na.mp4,cat\n"},
                          "{root}/labels.csv:3: expected 3 values (path,label,split)"),
    "csv_bad_split_value": ({"a.mp4": "", "labels.csv": CSV_HEAD + "a.mp4,cat,training\n"},
                            "{root}/labels.csv:2: split 'training' is not one of train, val, test"),
    "csv_without_split_info": ({"a.mp4": "", "labels.csv": "path,label\na.mp4,cat\n"},
                               "{root}/labels.csv: no split column: pass split_by=COLUMN and val=[values]"),
    "several_csv_files": ({"a.csv": CSV_HEAD, "b.csv": CSV_HEAD},
                          "{root}: several CSV files (a.csv, b.csv) and no labels.csv: pass the CSV file itself"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_bad_dataset_errors_name_the_file_and_problem(case: str, tmp_path: Path) -> None:
    files, message = BAD_DATASETS[case]
    root = _files(tmp_path / case, files)
    with pytest.raises(DatasetError) as err:
        scan_dataset(root)
    assert message.format(root=root) in str(err.value)
    assert str(err.value).startswith(str(root))


def test_missing_root_and_split_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"^{tmp_path}/nowhere: no such dataset folder$"):
        scan_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"labels.csv: no row has sequence = 09 \(its values: 1, 2, 3, .*, 16\)"):
        scan_dataset(require(UT), split_by="sequence", val=["09"])
    with pytest.raises(DatasetError, match="labels.csv: no column 'seq' to split by"):
        scan_dataset(UT, split_by="seq", val=UT_VAL)
    with pytest.raises(ValueError, match="values in both val and test: 9"):
        scan_dataset(UT, split_by="sequence", val=["9"], test=["9", "10"])
    root = _files(tmp_path / "split_column", {"a.mp4": "", "labels.csv": CSV_HEAD + "a.mp4,cat,train\n"})
    with pytest.raises(DatasetError, match="labels.csv: has a split column: split_by/val/test would override it"):
        scan_dataset(root, split_by="path", val=["a.mp4"])
    with pytest.raises(ValueError, match="split_by/val/test assign splits in a CSV; .* has the list layout"):
        scan_dataset(_files(tmp_path / "list", {"a.mp4": "", "train.txt": "a.mp4 cat\n"}), split_by="x", val=["1"])


def test_csv_choice_and_test_split(tmp_path: Path) -> None:
    root = _files(tmp_path / "d", {"a.mp4": "", "b.mp4": "", "c.mp4": "", "stats.csv": "n\n1\n",
                                   "labels.csv": "path,label,fold\nc.mp4,dog,1\nb.mp4,cat,2\na.mp4,cat,3\n"})
    index = scan_dataset(root, split_by="fold", val=["2"], test=["3"])  # labels.csv preferred
    assert [(s.path.name, s.split, s.label) for s in index.samples] == [
        ("c.mp4", "train", 1), ("b.mp4", "val", 0), ("a.mp4", "test", 0)]
    assert index.describe() == ("d: csv layout (labels.csv, split by fold: val = 2, test = 3), 2 classes, "
                                "1 train / 1 val / 1 test")
    assert scan_dataset(root / "labels.csv", split_by="fold", val=["2"]).samples == [
        VideoSample(root / "a.mp4", 0, "train"), VideoSample(root / "c.mp4", 1, "train"),
        VideoSample(root / "b.mp4", 0, "val")]


def test_cli_dataset_error_is_one_line_with_exit_code_1(tmp_path: Path) -> None:
    root = _files(tmp_path, {"a.mp4": "", "train.txt": "a.mp4 cat\n../b.mp4 cat\n"})
    result = runner.invoke(data_app, ["check", "--data", str(root)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines() == [f"error: {root}/train.txt:2: path '../b.mp4' points outside the dataset "
                                          f"folder {root}"]
    result = runner.invoke(data_app, ["check", "--data", str(require(UT)), "--split-by", "sequence"])  # no values
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "--split-by COLUMN" in result.stderr
    assert len(result.stderr.splitlines()) == 1

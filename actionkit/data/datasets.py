"""Datasets in the layouts users have: a folder per class, list files, or a CSV; one sample list out.

``scan_dataset(DIR)`` recognises the layout (first match wins, or pass ``layout=``):

- ``list``: ``DIR/train.txt``, ``val.txt`` and ``test.txt`` (any of them), one ``PATH LABEL`` per line. The
  label is the last whitespace-separated token and the path everything before it, so paths may contain
  spaces; when a line holds a tab, the last tab separates them instead, so labels may contain spaces too.
  Blank lines and lines starting with ``#`` are skipped.
- ``folders``: ``DIR/train/<class>/...``, ``val/`` and ``test/`` (any of them); the videos anywhere below a
  class folder (sub-folders allowed). Only files with a video suffix (:data:`VIDEO_SUFFIXES`) count: other
  files are ignored, as are hidden names (``.DS_Store``, ``.ipynb_checkpoints``).
- ``csv``: a ``*.csv`` in ``DIR`` (``labels.csv`` when there are several; or pass the CSV file itself as
  ``root``) with ``path`` and ``label`` columns and an optional ``split`` column (train, val or test). Without
  one, ``split_by=COLUMN, val=[values]`` (and/or ``test=``) assigns the split by that column; the rest is train.
- a dataset that is not split: a CSV without a split column (and no ``split_by``), or class folders
  directly in ``DIR`` (``DIR/<class>/...``, detected last). It serves only ``split="all"`` (every video, as
  checking a dataset or evaluating a whole test set wants); its samples are in the split ``"all"``.

Each caller names the split it uses (``scan_dataset(split=...)``): only that split must hold videos, so a
dataset holding only a test set, or only the target videos of a cross-dataset evaluation, is a dataset.

Labels (list and CSV) are class names or integer indices (ASCII digits; 0 is the first class):

- with ``DIR/classes.txt`` (one name a line), that file is the dataset's class list, as ``classes=`` is: a
  label is one of its names or an index into it, and anything else (``waving``, ``-1``, ``²``) is an error
  naming the file and line. The class list is its names, sorted, whether or not each has videos.
- else with ``classes=``, integer labels index it and names must be in it.
- else labels are class names, or, when every label is an integer, indices into the classes ``"0"``…``"N"``
  (``N`` the largest label), as long as at least half of those occur: a sparse or huge index (``1000000``)
  needs ``classes.txt`` to say what it counts, and so does a mix of integer and other labels.

The class list is the sorted names of the classes that occur in any split (or those of ``classes.txt``),
unless ``classes=`` is given: then its order is kept and any other label is an error.

Listed paths are relative to ``DIR`` (an absolute path must lie inside it): a path that leaves ``DIR``
(``../``) is an error, as is a file listed twice (in one split or in two). Symbolic links inside ``DIR``
are followed wherever they point, and sample paths keep them (absolute and normalised, not resolved), so
messages name files as the dataset lists them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from actionkit.data.video import VIDEO_SUFFIXES, is_video_file
from actionkit.errors import ActionkitError
from actionkit.files import write_text_atomically

SPLITS = ("train", "val", "test")
ALL = "all"  # every sample, whatever its split; the split of every sample of a dataset that is not split
SPLIT_NAMES = (*SPLITS, ALL)
LAYOUTS = ("list", "folders", "csv")
CLASSES_FILE = "classes.txt"
PREFERRED_CSV = "labels.csv"


class DatasetError(ActionkitError):
    """A dataset could not be read. ``path`` is the file or folder, ``line`` the line in it (if any)."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class VideoSample:
    """One labelled video. ``path`` is absolute; ``label`` indexes :attr:`DatasetIndex.classes`; ``split``
    is train, val or test, or ``"all"`` in a dataset that is not split."""

    path: Path
    label: int
    split: str


@dataclass
class DatasetIndex:
    """Every sample of a dataset, its class list and how it was read (``layout``, ``source``)."""

    root: Path
    layout: str
    classes: list[str]
    samples: list[VideoSample]
    source: str = ""  # what was read, for describe(): "labels.csv, split by sequence: val = 9,10"

    def split(self, name: str) -> list[VideoSample]:
        """The samples of split ``name`` (train, val or test); ``"all"``: every sample, whatever its split."""
        check_split_name(name)
        return list(self.samples) if name == ALL else [s for s in self.samples if s.split == name]

    def counts(self) -> dict[str, int]:
        """Samples per split, in SPLITS order (test only when it has samples); ``{"all": n}`` for a
        dataset that is not split."""
        counts = Counter(s.split for s in self.samples)
        if counts[ALL]:
            return {ALL: counts[ALL]}
        return {name: counts[name] for name in SPLITS if name != "test" or counts[name]}

    def describe(self) -> str:
        """One line for the log: where, which layout, how many classes and samples per split."""
        source = f" ({self.source})" if self.source else ""
        counts = self.counts()
        splits = (f"{counts[ALL]} videos, not split" if ALL in counts
                  else " / ".join(f"{n} {name}" for name, n in counts.items()))
        return f"{self.root.name}: {self.layout} layout{source}, {len(self.classes)} classes, {splits}"

    def save_classes(self, path: str | Path) -> None:
        """Write ``{"classes": [...]}`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        write_text_atomically(path, json.dumps({"classes": self.classes}, indent=2, ensure_ascii=False) + "\n")


def load_classes(path: str | Path) -> list[str]:
    """A class list from JSON ``{"classes": [...]}`` (as :meth:`DatasetIndex.save_classes` writes) or,
    for any other suffix, a text file with one class name a line (blank lines skipped)."""
    path = Path(path)
    text = _read_text(path)
    if path.suffix.lower() == ".json":
        try:
            classes = json.loads(text).get("classes")
        except (json.JSONDecodeError, AttributeError):
            classes = None
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DatasetError(path, 'expected JSON {"classes": ["name", ...]}')
    else:
        classes = [line.strip() for line in text.splitlines() if line.strip()]
    return _checked_classes(classes, path)


def _read_text(path: Path) -> str:
    """A list, CSV or class file as text (UTF-8, a leading byte-order mark dropped), or a DatasetError."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except UnicodeDecodeError as e:
        raise DatasetError(path, f"not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DatasetError(path, f"cannot be read ({e.strerror})") from None


def _checked_classes(classes: Sequence[str], source: str | Path) -> list[str]:
    classes = [str(c) for c in classes]
    if not classes:
        raise DatasetError(source, "the class list is empty")
    repeated = sorted(name for name, n in Counter(classes).items() if n > 1)
    if repeated:
        raise DatasetError(source, f"the class list repeats {', '.join(map(repr, repeated))}")
    return classes


def scan_dataset(root: str | Path, *, split_by: str | None = None, val: Sequence[str] | None = None,
                 test: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                 layout: str | None = None, need_split: bool = True, split: str = "train") -> DatasetIndex:
    """Index the dataset at ``root`` (a folder, or a CSV file): see the module docstring for the layouts.

    ``split_by``/``val``/``test`` assign splits in a CSV without a ``split`` column. ``classes`` fixes the
    class list and its order (a model's labels); ``layout`` ("list", "folders" or "csv") skips detection.
    ``split`` is the split the caller uses: "train" (the default: training), "val" or "test" (evaluating
    one split), or "all" (every video, whatever its split: checking a dataset, evaluating it whole). That
    split must hold videos; nothing is asked of the others, so a dataset of test videos alone serves
    ``split="test"``. Only "all" accepts a dataset that is not split (a CSV without a split column and
    without ``split_by``, class folders directly in ``root``): its samples are in the split "all".
    ``need_split=False`` is ``split="all"`` (for work done on every video, such as flow targets).
    Raises :class:`DatasetError` naming the file (and line) and the problem; ``ValueError`` for an
    unknown ``split`` or ``layout``.
    """
    split = ALL if not need_split else split
    check_split_name(split)
    root = Path(os.path.normpath(Path(root).expanduser().absolute()))
    if not root.exists():
        raise DatasetError(root, "no such dataset folder")
    csv_file = None
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(root, "expected a dataset folder or a .csv file")
        root, csv_file, layout = root.parent, root, layout or "csv"
    layout = layout or _detect_layout(root)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if layout != "csv" and (split_by or val or test):
        raise ValueError(f"split_by/val/test assign splits in a CSV; {root} has the {layout} layout")
    known = _checked_classes(classes, "classes=") if classes is not None else None
    if layout == "folders":
        index = _scan_folders(root, known, split)
    else:
        rows, source = (_read_lists(root) if layout == "list"
                        else _read_csv(csv_file or _find_csv(root), split_by, val, test, split))
        index = _index_rows(root, layout, rows, known, source)
    if not index.split(split):
        empty = "the dataset holds no videos" if split == ALL else f"the {split} split is empty"
        raise DatasetError(root, f"{empty} ({index.layout} layout)")
    return index


def check_split_name(name: str) -> None:
    """A ``ValueError`` unless ``name`` is a split a caller can ask for: train, val, test or all."""
    if name not in SPLIT_NAMES:
        raise ValueError(f"unknown split {name!r}: expected one of {', '.join(SPLIT_NAMES)}")


def _whole_hint(split: str) -> str:
    """For a caller evaluating one split of a dataset that is not split: the way to use all of it."""
    return "" if split in ("train", ALL) else "; or use every video as one set, split='all' (CLI: --split all)"


def _detect_layout(root: Path) -> str:
    if any((root / f"{split}.txt").is_file() for split in SPLITS):
        return "list"
    if any((root / split).is_dir() for split in SPLITS):
        return "folders"
    if any(_csv_files(root)):
        return "csv"
    if any(entry.is_dir() and _holds_video(entry) for entry in filter(_visible, root.iterdir())):
        return "folders"  # class folders directly in root: a dataset that is not split
    raise DatasetError(root, "no dataset layout found: looked for train.txt/val.txt list files, "
                             "train/<class>/ val/<class>/ folders of videos, a .csv with path,label columns, "
                             "and <class>/ folders of videos")


def _holds_video(folder: Path) -> bool:
    return any(is_video_file(p) for p in folder.rglob("*"))


def _sorted_samples(samples: list[VideoSample]) -> list[VideoSample]:
    return sorted(samples, key=lambda s: (SPLIT_NAMES.index(s.split), str(s.path)))


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


# --- folder per class -------------------------------------------------------------------------------

def _scan_folders(root: Path, known: list[str] | None, split: str) -> DatasetIndex:
    present = [name for name in SPLITS if (root / name).is_dir()]
    if not present and split != ALL:
        raise DatasetError(root, "the class folders are not split: put them in train/<class>/ and "
                                 f"val/<class>/ (and test/<class>/){_whole_hint(split)}")
    found: list[tuple[Path, str, str]] = []  # (video, class name, split)
    for name, folder in ([(name, root / name) for name in present] or [(ALL, root)]):
        where = f"{name}/" if name != ALL else "the dataset folder"
        for entry in sorted(filter(_visible, folder.iterdir())):
            if is_video_file(entry):
                inside = f"{name}/<class>/" if name != ALL else "<class>/"
                raise DatasetError(entry, f"video directly in {where}: put it in a class folder {inside}")
            if entry.is_dir():
                found.extend((video, entry.name, name) for video in _class_videos(entry))
    classes = known or sorted({name for _, name, _ in found})
    position = {name: i for i, name in enumerate(classes)}
    samples = []
    for video, name, in_split in found:
        if name not in position:
            folder = root / in_split / name if in_split != ALL else root / name
            raise DatasetError(folder, f"class {name!r} is not in the given class list")
        samples.append(VideoSample(video, position[name], in_split))
    source = " ".join(f"{name}/<class>/" for name in present) or "<class>/"
    return DatasetIndex(root, "folders", classes, _sorted_samples(samples), source)


def _class_videos(folder: Path) -> list[Path]:
    videos = sorted(p for p in folder.rglob("*")
                    if is_video_file(p) and all(map(_visible, p.relative_to(folder).parents)) and _visible(p))
    if not videos:
        raise DatasetError(folder, f"class folder holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return videos


# --- list files and CSV: rows of (file, line, path text, label text, split) ----------------------------

@dataclass(frozen=True)
class _Row:
    file: Path
    line: int
    path: str
    label: str
    split: str


def _read_lists(root: Path) -> tuple[list[_Row], str]:
    rows: list[_Row] = []
    names = []
    for split in SPLITS:
        list_file = root / f"{split}.txt"
        if list_file.is_file():
            names.append(list_file.name)
            rows.extend(_read_list_file(list_file, split))
    return rows, ", ".join(names)


def _read_list_file(list_file: Path, split: str) -> list[_Row]:
    rows = []
    for number, raw in enumerate(_read_text(list_file).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit("\t", 1) if "\t" in line else line.rsplit(None, 1)
        if len(parts) != 2 or not parts[0].strip():
            raise DatasetError(list_file, f"expected 'PATH LABEL', got {line!r}", number)
        rows.append(_Row(list_file, number, parts[0].strip(), parts[1].strip(), split))
    return rows


def _csv_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*") if p.suffix.lower() == ".csv" and p.is_file() and _visible(p))


def _find_csv(root: Path) -> Path:
    files = _csv_files(root)
    if not files:
        raise DatasetError(root, "no .csv file found for the csv layout")
    if len(files) == 1:
        return files[0]
    if (root / PREFERRED_CSV).is_file():
        return root / PREFERRED_CSV
    names = ", ".join(p.name for p in files)
    raise DatasetError(root, f"several CSV files ({names}) and no {PREFERRED_CSV}: pass the CSV file itself "
                             "as the dataset path")


def _read_csv(path: Path, split_by: str | None, val: Sequence[str] | None,
              test: Sequence[str] | None, split: str) -> tuple[list[_Row], str]:
    reader = csv.DictReader(io.StringIO(_read_text(path)), skipinitialspace=True)
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise DatasetError(path, f"no {' or '.join(missing)} column (columns: {', '.join(columns) or 'none'})")
    assign, source = _split_rule(path, columns, split_by, val, test, split)
    rows, seen = [], set()
    for record in _csv_records(path, reader):
        if None in record or any(record[c] is None for c in columns):
            raise DatasetError(path, f"expected {len(columns)} values ({','.join(columns)})", reader.line_num)
        record = {k: v.strip() for k, v in record.items()}
        if not record["path"] or not record["label"]:
            raise DatasetError(path, "empty path or label", reader.line_num)
        rows.append(_Row(path, reader.line_num, record["path"], record["label"], assign(record, reader.line_num)))
        if split_by:
            seen.add(record[split_by])
    if split_by:
        _check_split_values(path, split_by, [*(val or ()), *(test or ())], seen)
    return rows, source


def _csv_records(path: Path, reader: csv.DictReader) -> Iterator[dict]:
    """The reader's rows, with a malformed CSV (a stray quote, a NUL byte) reported by file and line."""
    try:
        yield from reader
    except csv.Error as e:
        raise DatasetError(path, f"not valid CSV ({e})", reader.line_num) from None


def _split_rule(path: Path, columns: list[str], split_by: str | None, val: Sequence[str] | None,
                test: Sequence[str] | None, split: str) -> tuple[Callable[[dict, int], str], str]:
    """How a CSV row gets its split: its ``split`` column, or ``split_by``'s value in ``val``/``test``, or,
    for a caller that uses every video (``split="all"``) of a CSV without either, "all"."""
    if "split" in columns:
        if split_by or val or test:
            raise DatasetError(path, "has a split column: split_by/val/test would override it; leave them out")

        def from_column(record: dict, line: int) -> str:
            if record["split"] not in SPLITS:
                raise DatasetError(path, f"split {record['split']!r} is not one of {', '.join(SPLITS)}", line)
            return record["split"]
        return from_column, path.name
    if split == ALL and not split_by and not val and not test:
        return (lambda record, line: ALL), path.name
    if not split_by or not (val or test):
        raise DatasetError(path, "no split column: pass split_by=COLUMN and val=[values] "
                                 "(CLI: --split-by COLUMN --val V1,V2) to choose the validation rows"
                                 + _whole_hint(split))
    if split_by not in columns:
        raise DatasetError(path, f"no column {split_by!r} to split by (columns: {', '.join(columns)})")
    val_set, test_set = {str(v) for v in val or ()}, {str(v) for v in test or ()}
    if val_set & test_set:
        raise ValueError(f"values in both val and test: {', '.join(sorted(val_set & test_set))}")

    def by_value(record: dict, line: int) -> str:
        value = record[split_by]
        return "val" if value in val_set else "test" if value in test_set else "train"
    rule = ", ".join(f"{name} = {','.join(map(str, values))}" for name, values in (("val", val), ("test", test))
                     if values)
    return by_value, f"{path.name}, split by {split_by}: {rule}"


def _check_split_values(path: Path, split_by: str, wanted: list, seen: set[str]) -> None:
    """A val/test value that no row has is a typo (``09`` for ``9``): say so rather than an empty split."""
    absent = [str(v) for v in wanted if str(v) not in seen]
    if absent:
        values = ", ".join(sorted(seen, key=_natural_key))
        raise DatasetError(path, f"no row has {split_by} = {', '.join(absent)} (its values: {values})")


def _natural_key(text: str) -> tuple:
    """``"set10"`` after ``"set9"``: runs of ASCII digits compare as numbers (other digits, such as
    ``"²"``, as text; they pass ``str.isdigit()`` but not ``int()``)."""
    return tuple(_number_key(t) if i % 2 else t for i, t in enumerate(re.split(r"([0-9]+)", text)))


def _number_key(digits: str) -> tuple[int, str]:
    """ASCII digits in numeric order without ``int()`` (which refuses over 4300 digits)."""
    significant = digits.lstrip("0")
    return len(significant), significant


def _index_rows(root: Path, layout: str, rows: list[_Row], known: list[str] | None, source: str) -> DatasetIndex:
    names, implied = _label_names(root, rows, known)
    classes = known or implied or sorted(set(names))
    position = {name: i for i, name in enumerate(classes)}
    samples, missing, first_row = [], [], {}
    for row, name in zip(rows, names):
        if name not in position:
            raise DatasetError(row.file, f"unknown label {row.label!r} (classes: {_short_list(classes)})", row.line)
        path = _inside(root, row)
        first = first_row.setdefault(path, row)
        if first is not row:  # in two splits it would leak; twice in one it would weigh double
            raise DatasetError(row.file, f"{row.path!r} is listed again (first at {first.file.name}:{first.line})",
                               row.line)
        if not path.is_file():
            missing.append((row, path))
        samples.append(VideoSample(path, position[name], row.split))
    if missing:
        (row, path), more = missing[0], len(missing) - 1
        extra = f" (and {more} more listed files are missing)" if more else ""
        raise DatasetError(row.file, f"{row.path!r} does not exist ({path}){extra}", row.line)
    return DatasetIndex(root, layout, classes, _sorted_samples(samples), source)


_INDEX = re.compile(r"[0-9]+")  # a class index: ASCII digits only ("²" and "٣" pass str.isdigit())
_SIGNED = re.compile(r"[+-][0-9]+")
_HUGE = 10 ** 18


def _index_of(label: str) -> int:
    """The value of an ASCII-digit label, at most 10**18 (``int()`` refuses over 4300 digits)."""
    significant = label.lstrip("0")
    return int(significant or "0") if len(significant) <= 18 else _HUGE


def _label_names(root: Path, rows: list[_Row], known: list[str] | None) -> tuple[list[str], list[str] | None]:
    """Each row's class name (an integer label becomes the name it indexes) and the class list the
    dataset itself gives, if any: its classes.txt (sorted), or "0"…"N" for bare integer labels."""
    names_file = root / CLASSES_FILE
    if names_file.is_file():
        table = load_classes(names_file)
        return _names_in(rows, table, names_file), sorted(table)
    if known is not None:
        return _names_in(rows, known, None), None
    return _bare_names(root, rows)


def _names_in(rows: list[_Row], table: list[str], source: Path | None) -> list[str]:
    """The rows' labels as names of ``table`` (``source``'s classes; None: ``classes=``): each label is a
    name in it or an index into it; anything else is an error naming the row's file and line."""
    named, names = set(table), []
    for row in rows:
        if row.label in named:
            names.append(row.label)
        elif _INDEX.fullmatch(row.label) and _index_of(row.label) < len(table):
            names.append(table[_index_of(row.label)])
        elif _INDEX.fullmatch(row.label) or _SIGNED.fullmatch(row.label):
            raise DatasetError(row.file, f"label index {row.label} is out of range: {source or 'classes='} "
                                         f"has {len(table)} classes", row.line)
        else:
            where = f": not in {source}" if source else ""
            raise DatasetError(row.file, f"unknown label {row.label!r}{where} (classes: {_short_list(table)})",
                               row.line)
    return names


def _bare_names(root: Path, rows: list[_Row]) -> tuple[list[str], list[str] | None]:
    """Labels with no class list to read them by: names, or all integers indexing "0"…"N" when at least
    half of those occur (a label of 1000000 would otherwise invent a million classes). A number that is
    no index (``-1``) and a mix of numbers and names are errors: only a classes.txt can say what they mean."""
    numeric = [bool(_INDEX.fullmatch(row.label) or _SIGNED.fullmatch(row.label)) for row in rows]
    if not any(numeric):
        return [row.label for row in rows], None
    names_file = root / CLASSES_FILE
    advice = f"without {names_file} (one class name a line) to name the indices, labels are all names or all indices"
    first, where = rows[0], f"{rows[0].file.name}:{rows[0].line}"
    odd = next((row for row, number in zip(rows, numeric) if number != numeric[0]), None)
    if odd is not None:  # numbers and names mixed
        kind = (f"is not a class index (0, 1, 2, …), while {where} is a number ({first.label})" if numeric[0]
                else f"is a number, while {where} names its class ({first.label!r})")
        raise DatasetError(odd.file, f"label {odd.label!r} {kind}: {advice}", odd.line)
    odd = next((row for row in rows if not _INDEX.fullmatch(row.label)), None)
    if odd is not None:  # -1, +2
        raise DatasetError(odd.file, f"label {odd.label!r} is not a class index (0, 1, 2, …): {advice}", odd.line)
    values = [_index_of(row.label) for row in rows]
    top, used = max(values), len(set(values))
    if top + 1 > 2 * used:
        row = rows[values.index(top)]
        raise DatasetError(row.file, f"label index {row.label} would make that many classes (\"0\" onwards) for "
                                     f"{used} label(s) in use: add {names_file} (one class name a line) to name the "
                                     "classes the indices count", row.line)
    return [str(v) for v in values], [str(i) for i in range(top + 1)]


def _inside(root: Path, row: _Row) -> Path:
    """The listed path as an absolute, normalised path that must stay inside ``root`` (links are kept)."""
    path = Path(os.path.normpath(root / row.path))
    if path != root and root not in path.parents:
        raise DatasetError(row.file, f"path {row.path!r} points outside the dataset folder {root}", row.line)
    return path


def _short_list(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", … ({len(names)} in all)" if len(names) > most else "")

"""Detects a DATA folder's layout and lists its labelled and test images, checking every row and file name."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from visionsweep.datasets.errors import DataError, bullet_list
from visionsweep.datasets.labelcheck import check_classes, check_csv_labels, csv_line_numbers, near_misses
from visionsweep.datasets.spec import DatasetSpec

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
# Binary label pairs whose positive member is not in doubt.
_POSITIVE_OF_PAIR = {("0", "1"): "1", ("false", "true"): "true", ("no", "yes"): "yes", ("neg", "pos"): "pos",
                     ("negative", "positive"): "positive", ("n", "y"): "y", ("f", "t"): "t"}


@dataclass(frozen=True)
class Listing:
    """Every image visionsweep will read, in a fixed order, with labels and the submission's ids."""

    layout: str                      # csv | folders | filenames
    classes: list[str]               # sorted (numerically when all labels are integers)
    train: list[tuple[Path, str]]    # (image, label)
    valid: list[tuple[Path, str]] | None  # a given valid/ folder; None -> random holdout split
    test: list[tuple[Path, str]]     # (image, submission id), in the sample submission's order when there is one
    id_col: str                      # the submission's id column
    label_col: str                   # the label column (csv layout) or "label"
    sample: pd.DataFrame | None      # sample_submission.csv as read (strings)
    sample_path: Path | None
    warnings: list[str] = field(default_factory=list)

    def all_images(self) -> list[Path]:
        return [p for p, _ in self.train] + [p for p, _ in (self.valid or [])] + [p for p, _ in self.test]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _list_dir(folder: Path, root: Path) -> list[os.DirEntry]:
    try:
        return sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError:
        raise DataError(f"cannot read folder {_rel(folder, root)}: permission denied; fix its permissions "
                        f"(chmod +rx) and run again") from None
    except NotADirectoryError:
        raise DataError(f"{_rel(folder, root)} is a file, expected a folder of images") from None
    except OSError as err:  # a symlink loop (ELOOP), a dangling mount, ...
        raise DataError(f"cannot list folder {_rel(folder, root)}: {err.strerror or err}; fix or remove it") from None


def _entry_is(entry: os.DirEntry, kind: str, root: Path) -> bool:
    """entry.is_file() / is_dir(), with a symlink loop reported by name instead of a traceback."""
    try:
        return entry.is_file() if kind == "file" else entry.is_dir()
    except OSError as err:
        raise DataError(f"{_rel(Path(entry.path), root)} cannot be followed ({err.strerror or err}: a symlink loop?); "
                        f"remove or fix the link") from None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _files_in(folder: Path, root: Path, warnings: list[str]) -> list[Path]:
    """Image files directly inside `folder`; other visible files become one warning, never a silent skip."""
    images, others = [], []
    for entry in _list_dir(folder, root):
        if entry.name.startswith("."):
            continue
        if _entry_is(entry, "file", root):
            (images if is_image(Path(entry.name)) else others).append(Path(entry.path))
    if others:
        warnings.append(f"{len(others)} non-image file(s) in {_rel(folder, root)}/ ignored "
                        f"(extensions other than {', '.join(sorted(IMAGE_EXTENSIONS))}):\n"
                        + bullet_list([_rel(p, root) for p in others], limit=5))
    return images


def _subdirs(folder: Path, root: Path) -> list[Path]:
    return [Path(e.path) for e in _list_dir(folder, root) if not e.name.startswith(".") and _entry_is(e, "dir", root)]


def _nested_images(folder: Path, root: Path) -> list[Path]:
    """Images in sub-folders of `folder` (any depth, symlinks not followed): the layouts read only one level,
    and an image that is there but not read must never go unmentioned."""
    found = []
    for sub in _subdirs(folder, root):
        for dirpath, dirnames, filenames in os.walk(sub, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [Path(dirpath) / f for f in sorted(filenames) if is_image(Path(f)) and not f.startswith(".")]
    return found


def sort_classes(labels) -> list[str]:
    uniq = set(labels)
    try:
        return sorted(uniq, key=lambda s: (int(s), s))
    except ValueError:
        return sorted(uniq)


def _natural_key(name: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def read_csv(path: Path, root: Path) -> pd.DataFrame:
    try:
        # index_col=False: rows that end in a trailing comma must not turn the first column into the index
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{_rel(path, root)} is empty; it needs a header row and one row per image") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{_rel(path, root)} is not a readable CSV file ({err}); fix or re-download it") from None
    except PermissionError:
        raise DataError(f"cannot read {_rel(path, root)}: permission denied; fix its permissions") from None
    frame.columns = [c.strip() for c in frame.columns]
    # A header that also ends in a comma adds an unnamed column that is empty on every row: not data.
    empty = [c for c in frame.columns if c.startswith("Unnamed: ") and not frame[c].str.strip().any()]
    return frame.drop(columns=empty).reset_index(drop=True)


def detect_layout(spec: DatasetSpec) -> str:
    root = spec.root
    try:
        root.stat()
    except PermissionError:
        raise DataError(f"cannot reach DATA folder {root}: permission denied on it or on a folder above it; "
                        f"fix the permissions (chmod +x on each parent folder)") from None
    except OSError:
        pass  # does not exist: said below
    if not root.exists():
        raise DataError(f"DATA folder {root} does not exist; pass the folder that holds train/ (and train.csv)")
    if not root.is_dir():
        raise DataError(f"DATA {root} is a file; pass the folder that holds train/ (and train.csv)")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DataError(f"cannot read DATA folder {root}: permission denied; fix its permissions (chmod +rx)")
    if spec.layout != "auto":
        return spec.layout
    train = root / spec.train_dir
    if (root / spec.train_csv).is_file():
        return "csv"
    if not train.is_dir():
        raise DataError(f"{root} has neither {spec.train_csv} nor a {spec.train_dir}/ folder; supported layouts: "
                        f"{spec.train_csv} + {spec.train_dir}/ (Kaggle CSV), {spec.train_dir}/<class>/ folders, "
                        f"or {spec.train_dir}/ with labels in file names (cat.1.jpg); see README 'Data layouts'")
    if _subdirs(train, root):
        return "folders"
    return "filenames"


def list_dataset(spec: DatasetSpec) -> Listing:
    """Detect the layout and list every image with its label; raise DataError on the first problem found."""
    layout = detect_layout(spec)
    warnings: list[str] = []
    lister = {"csv": _list_csv, "folders": _list_folders, "filenames": _list_filenames}[layout]
    train, valid, label_col, id_style = lister(spec, warnings)
    classes = sort_classes([lab for _, lab in train])
    where = spec.train_csv if layout == "csv" else f"{spec.train_dir}/"
    check_classes(train, valid, layout=layout, where=where, root=spec.root, train_csv=spec.train_csv,
                  sample_csv=spec.sample_csv, label_regex=spec.label_regex, warnings=warnings)
    if len(classes) < 2:
        where = spec.train_csv if layout == "csv" else f"{spec.train_dir}/"
        raise DataError(f"{where} holds a single class ({classes[0]!r}); a classifier needs at least two. "
                        f"Check the label column / class folders")
    if valid is not None:
        extra = sorted({lab for _, lab in valid} - set(classes))
        if extra:
            raise DataError(f"{spec.valid_dir}/ has class folder(s) {', '.join(extra)} that {spec.train_dir}/ "
                            f"does not; add training images for them or remove them from {spec.valid_dir}/")
    test, sample, sample_path, id_col = _list_test(spec, id_style, warnings)
    return Listing(layout=layout, classes=classes, train=train, valid=valid, test=test, id_col=id_col,
                   label_col=label_col, sample=sample, sample_path=sample_path, warnings=warnings)


def _list_csv(spec: DatasetSpec, warnings: list[str]):
    root, csv_path, train_dir = spec.root, spec.root / spec.train_csv, spec.root / spec.train_dir
    if not csv_path.is_file():
        raise DataError(f"--layout csv needs {spec.train_csv} in {root}")
    if not train_dir.is_dir():
        raise DataError(f"{spec.train_csv} found but no {spec.train_dir}/ folder of images next to it in {root}")
    frame = read_csv(csv_path, root)
    cols = list(frame.columns)
    id_col = spec.id_col or cols[0]
    if id_col not in cols:
        raise DataError(f"{spec.train_csv} has no column {id_col!r} (columns: {', '.join(cols)}); fix --id-col")
    if spec.label_col:
        label_col = spec.label_col
    else:
        others = [c for c in cols if c != id_col]
        if len(others) != 1:
            raise DataError(f"{spec.train_csv} has columns {', '.join(cols)}: cannot tell which is the label; "
                            f"name it with --label-col" if others else
                            f"{spec.train_csv} has no label column (columns: {', '.join(cols)}); it needs an id "
                            f"column and a label column, e.g. id,has_cactus")
        label_col = others[0]
    if label_col not in cols:
        raise DataError(f"{spec.train_csv} has no label column {label_col!r} (columns: {', '.join(cols)}); "
                        f"fix --label-col")
    if frame.empty:
        raise DataError(f"{spec.train_csv} has a header but no rows; it needs one row per training image")
    ids = frame[id_col].str.strip()
    labels = frame[label_col].str.strip()
    rows = pd.Index(csv_line_numbers(csv_path, len(frame)) or (frame.index + 2))  # lines in the file, header 1
    empty = [f"line {r}: id {i!r}, {label_col} {lab!r}" for r, i, lab in zip(rows, ids, labels) if not i or not lab]
    if empty:
        raise DataError(f"{spec.train_csv} has {len(empty)} row(s) with an empty id or label; fill or delete them:\n"
                        + bullet_list(empty))
    check_csv_labels(list(labels), list(rows), csv_name=spec.train_csv, label_col=label_col)
    dup_mask = ids.duplicated(keep=False)
    if dup_mask.any():
        dups = [f"line {r}: {i}" for r, i in zip(rows[dup_mask], ids[dup_mask])]
        raise DataError(f"{spec.train_csv} has duplicate ids in column {id_col!r}; each image must appear once:\n"
                        + bullet_list(dups))
    files = _files_in(train_dir, root, warnings)
    by_name = {p.name: p for p in files}
    by_stem: dict[str, list[Path]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p)
    train, missing, used, line_of = [], [], set(), {}
    for r, i, lab in zip(rows, ids, labels):
        path = by_name.get(i)
        if path is None and len(by_stem.get(i, [])) == 1:
            path = by_stem[i][0]
        if path is None and "/" in i and _inside(train_dir / i, train_dir) and os.path.isfile(train_dir / i):
            path = train_dir / i  # ids with sub-folders (never outside train/: "/etc/x" or "../x")
        if path is None:
            # hints for the lines the message shows (each one scans the folder's names)
            hint = near_misses(i, files, by_stem) if len(missing) < 10 else None
            if hint is None and len(missing) < 10 and "/" in i and os.path.isfile(train_dir / i):
                hint = f"found {spec.train_dir}/{i}, but it leads outside {spec.train_dir}/ (a symlinked folder?)"
            missing.append(f"line {r}: {i}" + (f" ({hint})" if hint else ""))
        elif path in line_of:
            raise DataError(f"{spec.train_csv} lists the image {_rel(path, root)} twice (line {line_of[path][0]}: "
                            f"{line_of[path][1]!r}, line {r}: {i!r}; once by name and once by stem?); each image "
                            f"needs one row: delete one of them")
        else:
            line_of[path] = (r, i)
            train.append((path, lab))
            used.add(path)
    if missing:
        raise DataError(f"{len(missing)} id(s) in {spec.train_csv} have no image in {spec.train_dir}/; "
                        f"add the files or delete the rows:\n" + bullet_list(missing))
    nested = [p for p in _nested_images(train_dir, root) if p not in used]
    if nested:
        warnings.append(f"{len(nested)} image(s) in sub-folders of {spec.train_dir}/ have no row in {spec.train_csv} "
                        f"and are not used:\n" + bullet_list([_rel(p, root) for p in nested], limit=5))
    unlabelled = [p for p in files if p not in used]
    if unlabelled:
        warnings.append(f"{len(unlabelled)} image(s) in {spec.train_dir}/ have no row in {spec.train_csv} and are "
                        f"not used for training:\n" + bullet_list([p.name for p in unlabelled], limit=5))
    id_style = "name" if all(Path(i).suffix for i in ids) else "stem"
    return train, None, label_col, id_style


def _list_class_folders(folder: Path, root: Path, warnings: list[str]) -> list[tuple[Path, str]]:
    items = []
    for sub in _subdirs(folder, root):
        images = _files_in(sub, root, warnings)
        if not images:
            raise DataError(f"class folder {_rel(sub, root)}/ holds no images; add images or remove the folder")
        items += [(p, sub.name) for p in images]
        deeper = _nested_images(sub, root)
        if deeper:
            raise DataError(f"class folder {_rel(sub, root)}/ has {len(deeper)} image(s) in sub-folders, which the "
                            f"class-folders layout does not read; move them up into {_rel(sub, root)}/ (or delete "
                            f"them):\n" + bullet_list([_rel(p, root) for p in deeper], limit=5))
    loose = [p for p in _files_in(folder, root, []) if is_image(p)]
    if loose:
        warnings.append(f"{len(loose)} image(s) directly in {_rel(folder, root)}/, outside any class folder, are "
                        f"not used:\n" + bullet_list([p.name for p in loose], limit=5))
    return items


def _list_folders(spec: DatasetSpec, warnings: list[str]):
    root, train_dir = spec.root, spec.root / spec.train_dir
    if not train_dir.is_dir() or not _subdirs(train_dir, root):
        raise DataError(f"--layout folders needs {spec.train_dir}/<class>/ sub-folders in {root}")
    train = _list_class_folders(train_dir, root, warnings)
    valid_dir = root / spec.valid_dir
    valid = _list_class_folders(valid_dir, root, warnings) if valid_dir.is_dir() else None
    return train, valid, "label", "stem"


def _list_filenames(spec: DatasetSpec, warnings: list[str]):
    root, train_dir = spec.root, spec.root / spec.train_dir
    try:
        pattern = re.compile(spec.label_regex)
    except re.error as err:
        raise DataError(f"--label-regex {spec.label_regex!r} is not a valid regular expression: {err}") from None
    if "label" not in pattern.groupindex and pattern.groups < 1:
        raise DataError(f"--label-regex {spec.label_regex!r} needs a group for the label, e.g. "
                        r"'^(?P<label>[a-z]+)\.'")
    files = _files_in(train_dir, root, warnings)
    if not files:
        raise DataError(f"{spec.train_dir}/ holds no images")
    train, unmatched = [], []
    for p in files:
        m = pattern.search(p.name)
        label = (m.group("label") if "label" in pattern.groupindex else m.group(1)) if m else None
        if label:
            train.append((p, label))
        else:
            unmatched.append(p.name)
    if unmatched:
        raise DataError(f"{len(unmatched)} file name(s) in {spec.train_dir}/ do not match --label-regex "
                        f"{spec.label_regex!r}; rename them or change the regex:\n" + bullet_list(unmatched))
    return train, None, "label", "stem"


def _list_test(spec: DatasetSpec, id_style: str, warnings: list[str]):
    root, test_dir, sample_path = spec.root, spec.root / spec.test_dir, spec.root / spec.sample_csv
    files = _files_in(test_dir, root, warnings) if test_dir.is_dir() else []
    deeper = _nested_images(test_dir, root) if test_dir.is_dir() else []
    if deeper:
        raise DataError(f"{spec.test_dir}/ has {len(deeper)} image(s) in sub-folders, which are not read (the "
                        f"submission would miss them); move them up into {spec.test_dir}/:\n"
                        + bullet_list([_rel(p, root) for p in deeper], limit=5))
    if test_dir.is_dir() and not files:
        raise DataError(f"{spec.test_dir}/ holds no images; add the test images or remove the empty folder")
    if not sample_path.is_file():
        ids = [p.name if id_style == "name" else p.stem for p in files]
        if len(set(ids)) != len(ids):
            raise DataError(f"{spec.test_dir}/ has files that share a name stem (e.g. a.jpg and a.png); "
                            f"their submission ids would clash; rename them")
        test = sorted(zip(files, ids), key=lambda t: _natural_key(t[1]))
        return test, None, None, "id"
    sample = read_csv(sample_path, root)
    if sample.shape[1] < 2:
        raise DataError(f"{spec.sample_csv} needs an id column and at least one value column, "
                        f"has {', '.join(sample.columns)}")
    id_col = sample.columns[0]
    sample_ids = sample[id_col].str.strip()
    dup = sample_ids[sample_ids.duplicated()]
    if len(dup):
        lines = csv_line_numbers(sample_path, len(sample)) or [r + 2 for r in range(len(sample))]
        raise DataError(f"{spec.sample_csv} has duplicate ids, e.g. {dup.iloc[0]!r} (line {lines[dup.index[0]]}); "
                        f"re-download it")
    if not files:
        warnings.append(f"{spec.sample_csv} found but no {spec.test_dir}/ folder: there is nothing to predict")
        return [], sample, sample_path, id_col
    by_name = {p.name: p for p in files}
    by_stem = {p.stem: p for p in files}
    index = by_name if sum(i in by_name for i in sample_ids) >= sum(i in by_stem for i in sample_ids) else by_stem
    lines = csv_line_numbers(sample_path, len(sample)) or [r + 2 for r in range(len(sample))]
    stems = _stems(files)
    missing = [f"line {r}: {i}" for r, i in zip(lines, sample_ids) if i not in index]
    missing = [m + (f" ({h})" if n < 10 and (h := near_misses(m.split(": ", 1)[1], files, stems)) else "")
               for n, m in enumerate(missing)]
    extra = sorted(set(index) - set(sample_ids))
    if missing or extra or len(index) != len(files):
        parts = []
        if missing:
            parts.append(f"{len(missing)} id(s) in {spec.sample_csv} have no image in {spec.test_dir}/:\n"
                         + bullet_list(missing, limit=5))
        if extra or len(index) != len(files):
            extra = extra or ["(files that share a name stem)"]
            parts.append(f"{len(extra)} image(s) in {spec.test_dir}/ have no row in {spec.sample_csv}:\n"
                         + bullet_list(extra, limit=5))
        raise DataError(f"the test images differ from the ids in {spec.sample_csv}; the submission needs exactly "
                        f"one image per id. Restore the missing files or re-download the competition data.\n"
                        + "\n".join(parts))
    test = [(index[i], i) for i in sample_ids]
    return test, sample, sample_path, id_col


def _stems(files: list[Path]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in files:
        out.setdefault(p.stem, []).append(p)
    return out


def positive_class(classes: list[str], *, requested: str | None, value_col: str | None) -> str | None:
    """The class whose probability a binary submission holds: asked for, obvious, named by the column, or last."""
    if len(classes) != 2:
        if requested is not None:
            raise DataError(f"--positive-class is for binary tasks; this one has {len(classes)} classes")
        return None
    if requested is not None:
        if requested not in classes:
            raise DataError(f"--positive-class {requested!r} is not a class; classes: {', '.join(classes)}")
        return requested
    lowered = tuple(sorted(c.lower() for c in classes))
    if lowered in _POSITIVE_OF_PAIR:
        return next(c for c in classes if c.lower() == _POSITIVE_OF_PAIR[lowered])
    if value_col is not None and value_col in classes:
        return value_col
    return sort_classes(classes)[-1]

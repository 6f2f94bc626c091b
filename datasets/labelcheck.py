"""Checks on labels and classes that `check` runs before anything trains: every class `train` or `sweep` would
reject, or silently mistrain on, is found here, with the CSV lines or files that cause it."""

from __future__ import annotations

import csv
import math
import unicodedata
from collections import Counter
from pathlib import Path

from visionsweep.datasets.errors import DataError, bullet_list

# Spellings of "no value" that pandas, R, Excel and SQL exports write; as labels they would become classes.
NAN_LIKE = {"nan", "-nan", "null", "none", "na", "n/a", "#n/a", "<na>", "nat", "missing", "?"}
# A class that holds fewer images than this share of the median class is named in a warning (stray files).
STRAY_SHARE = 0.05


def csv_line_numbers(path: Path, n_rows: int) -> list[int] | None:
    """The line in the file on which each data row starts (blank lines and quoted newlines counted), or None
    when the file cannot be read the way pandas read it (then the caller falls back to row + 2)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            starts, prev = [], 0
            for row in reader:
                start = prev + 1
                prev = reader.line_num
                if row and any(cell.strip() for cell in row):
                    starts.append(start)
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    lines = starts[1:]  # the first non-blank record is the header
    return lines if len(lines) == n_rows else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def check_csv_labels(labels: list[str], lines: list[int], *, csv_name: str, label_col: str) -> None:
    """NaN-like labels, one number spelled two ways (1 / 1.0, 3 / 03), and continuous values."""
    nan_rows = [f"line {r}: {lab!r}" for r, lab in zip(lines, labels) if lab.strip().lower() in NAN_LIKE]
    if nan_rows:
        raise DataError(f"{csv_name} has {len(nan_rows)} row(s) whose {label_col!r} is a missing-value marker "
                        f"(it would become a class of its own); fill in the label or delete the rows:\n"
                        + bullet_list(nan_rows))
    numbers = {lab: _number(lab) for lab in set(labels)}
    spellings: dict[float, set[str]] = {}
    for lab, value in numbers.items():
        if value is not None:
            spellings.setdefault(value, set()).add(lab)
    clashes = {v: s for v, s in spellings.items() if len(s) > 1}
    if clashes:
        counts = Counter(labels)
        shown = []
        for value, names in sorted(clashes.items()):
            main = max(names, key=lambda n: (counts[n], n))
            rare = sorted(names - {main})
            rows = [r for r, lab in zip(lines, labels) if lab in rare]
            shown.append(f"{' / '.join(repr(n) for n in [main, *rare])} are the same number {value:g}: "
                         f"{', '.join(repr(n) for n in rare)} on line(s) {', '.join(map(str, rows[:10]))}"
                         + (f" and {len(rows) - 10} more" if len(rows) > 10 else ""))
        raise DataError(f"{csv_name}: labels in column {label_col!r} spell the same number in more than one way, "
                        f"which would make them different classes; write each class one way (fix the rows "
                        f"named below):\n" + bullet_list(shown))
    values = [numbers[lab] for lab in labels]
    distinct = set(labels)
    if all(v is not None for v in values) and any(v != int(v) for v in values) and len(distinct) > 10:
        raise DataError(f"{csv_name}: column {label_col!r} holds {len(distinct)} distinct fractional numbers "
                        f"(e.g. {', '.join(sorted(distinct)[:3])}): a continuous value, not class labels; "
                        f"visionsweep classifies. Name the class column with --label-col, or bin the values "
                        f"into classes")


def check_classes(train: list[tuple[Path, str]], valid: list[tuple[Path, str]] | None, *, layout: str,
                  where: str, root: Path, train_csv: str, sample_csv: str, label_regex: str,
                  warnings: list[str]) -> None:
    """Absurd class sets (an id column, a wrong layout guess), classes a holdout split cannot take, strays."""
    counts = Counter(lab for _, lab in train)
    n = len(train)
    singles = [c for c, k in counts.items() if k == 1]
    valid_counts = Counter(lab for _, lab in (valid or []))
    if layout != "folders" and len(counts) > 2 and len(singles) * 2 > n:  # class folders are explicit
        found = f"{len(counts)} classes from {n} images, {len(singles)} of them with a single image"
        if layout == "filenames":
            csvs = sorted(p.name for p in root.glob("*.csv") if p.name != sample_csv)
            offer = (f"; DATA has {', '.join(csvs)}: if that holds the labels, pass --train-csv {csvs[0]}"
                     if csvs else "")
            raise DataError(f"labels were guessed from file names in {where} (--label-regex {label_regex!r}), "
                            f"which gave {found}: these are not class labels. No {train_csv} was found{offer}; "
                            f"or give --label-regex / class folders")
        raise DataError(f"{where}: {found}; that looks like an id or a continuous value, not a class label. "
                        f"Name the label column with --label-col")
    if valid is None:
        lonely = [c for c in singles]
        if lonely:
            files = {lab: p for p, lab in train}
            lines = [f"class {c!r}: only {files[c].name}" for c in sorted(lonely)]
            hint = (f"; in the file-name layout a stray name (e.g. IMG_0001.png) makes a class of its own: rename "
                    f"or move those files, or change --label-regex" if layout == "filenames" else "")
            raise DataError(f"{len(lonely)} class(es) in {where} have a single image; the holdout split needs at "
                            f"least 2 per class (one to train on, one to validate). Add images, delete them, or "
                            f"give a valid/ folder{hint}:\n" + bullet_list(lines))
    else:
        lonely = [c for c in singles if valid_counts[c] == 0]
        if lonely:
            warnings.append(f"{len(lonely)} class(es) have a single training image and none in validation; they "
                            f"can hardly be learnt and are never measured: " + ", ".join(map(repr, sorted(lonely))))
    if layout == "filenames" and len(counts) > 2:
        typical = sorted(counts.values())[len(counts) // 2]
        strays = sorted(c for c, k in counts.items() if k < STRAY_SHARE * typical)
        if strays:
            files = {}
            for p, lab in train:
                files.setdefault(lab, []).append(p.name)
            warnings.append(f"{len(strays)} class(es) from file names hold under {STRAY_SHARE:.0%} of a typical "
                            f"class ({typical} images); stray file names?\n"
                            + bullet_list([f"{c!r} ({counts[c]}): {', '.join(files[c][:3])}" for c in strays]))


def near_misses(name: str, files: list[Path], by_stem: dict[str, list[Path]]) -> str | None:
    """What was found for an id that matches no file exactly: another case, another Unicode form, several
    files with the stem. None when nothing resembles it."""
    if len(by_stem.get(name, [])) > 1:
        return f"its stem matches {len(by_stem[name])} files: {', '.join(p.name for p in by_stem[name][:4])}; " \
               f"write the id with its extension"
    nfc = unicodedata.normalize("NFC", name)
    lower = nfc.lower()
    for p in files:
        other = unicodedata.normalize("NFC", p.name)
        if nfc in (other, unicodedata.normalize("NFC", p.stem)):
            return f"found {p.name!r}, the same name in another Unicode form (NFC vs NFD); rename the file or the id"
        if lower in (other.lower(), unicodedata.normalize("NFC", p.stem).lower()):
            return f"found {p.name!r}, which differs in upper/lower case; rename the file or the id"
    return None

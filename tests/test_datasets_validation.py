"""Bad input: each problem is one message naming the file, CSV line or flag; exit 2; DATA left untouched."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from visionsweep.datasets import DataError, DatasetSpec
from visionsweep.datasets.load import load_dataset
from imagefolders import (check_as_user, cli, csv_dataset, filenames_dataset, folders_dataset, read_lines,
                          snapshot, write_image)


def _load(root, **kw):
    return load_dataset(DatasetSpec(root=root, **kw), log=lambda *a: None)


def _edit_csv(path: Path, edit) -> None:
    lines = read_lines(path)
    path.write_text("\n".join(edit(lines)) + "\n")


def _first_train_id(root: Path) -> str:
    return read_lines(root / "train.csv")[1].split(",")[0]


# ---------------------------------------------------------------- the bad-input matrix, through the CLI
# Each case builds a small, otherwise valid folder, breaks one thing, and names what the message must say.

def _missing_image(root):
    csv_dataset(root)
    name = _first_train_id(root)
    (root / "train" / name).unlink()
    return [], ["1 id(s) in train.csv have no image in train/", f"line 2: {name}"]


def _zero_byte(root):
    csv_dataset(root)
    name = _first_train_id(root)
    (root / "train" / name).write_bytes(b"")
    return [], [f"train/{name} is empty (0 bytes)"]


def _truncated_jpeg(root):
    csv_dataset(root, size=(32, 32))
    name = _first_train_id(root)
    path = root / "train" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    # a second, different problem in the same folder: both must be in the one message
    (root / "test" / sorted(os.listdir(root / "test"))[0]).write_bytes(b"")
    return [], [f"train/{name} is truncated or corrupt", "2 image file(s) cannot be used", "is empty (0 bytes)"]


def _text_named_png(root):
    filenames_dataset(root)
    (root / "train" / "cat.99.png").write_text("this is not a picture\n")
    return [], ["train/cat.99.png is not an image PIL can read"]


def _duplicate_ids(root):
    csv_dataset(root)
    _edit_csv(root / "train.csv", lambda lines: lines + [lines[3]])
    dup = read_lines(root / "train.csv")[3].split(",")[0]
    return [], ["duplicate ids in column 'id'", f"line 4: {dup}", f"line 14: {dup}"]


def _missing_label_column(root):
    csv_dataset(root)
    _edit_csv(root / "train.csv", lambda lines: [line.split(",")[0] for line in lines])
    return [], ["train.csv has no label column (columns: id)"]


def _ambiguous_label_column(root):
    csv_dataset(root)
    _edit_csv(root / "train.csv", lambda lines: [lines[0] + ",source"] + [line + ",drone" for line in lines[1:]])
    return [], ["train.csv has columns id, has_cactus, source: cannot tell which is the label", "--label-col"]


def _single_class(root):
    csv_dataset(root)
    _edit_csv(root / "train.csv", lambda lines: [lines[0]] + [line.rsplit(",", 1)[0] + ",1" for line in lines[1:]])
    return [], ["train.csv holds a single class ('1')"]


def _test_file_without_sample_row(root):
    filenames_dataset(root, n_test=4)
    write_image(root / "test" / "77.jpg")
    return [], ["1 image(s) in test/ have no row in sample_submission.csv", "77"]


def _sample_row_without_test_file(root):
    filenames_dataset(root, n_test=4)
    (root / "test" / "3.jpg").unlink()
    return [], ["1 id(s) in sample_submission.csv have no image in test/", "line 4: 3"]


def _empty_class_folder(root):
    folders_dataset(root)
    (root / "train" / "horse").mkdir()
    return [], ["class folder train/horse/ holds no images"]


def _empty_cells(root):
    csv_dataset(root)
    _edit_csv(root / "train.csv", lambda lines: lines[:2] + [lines[2].split(",")[0] + ","] + lines[3:] + [",1"])
    return [], ["2 row(s) with an empty id or label", "line 3:", "line 14: id ''"]


def _bad_flag(root):
    csv_dataset(root)
    return ["--positive-class", "maybe"], ["--positive-class 'maybe' is not a class"]


CASES = [_missing_image, _zero_byte, _truncated_jpeg, _text_named_png, _duplicate_ids, _missing_label_column,
         _ambiguous_label_column, _single_class, _test_file_without_sample_row, _sample_row_without_test_file,
         _empty_class_folder, _empty_cells, _bad_flag]


def _assert_one_error(stderr: str, expected: list[str]) -> None:
    assert stderr.startswith("visionsweep check: error: "), stderr
    assert stderr.count("error:") == 1 and "Traceback" not in stderr and "Warning" not in stderr, stderr
    for text in expected:
        assert text in stderr, f"{text!r} not in:\n{stderr}"


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_cli_bad_input_exits_2_with_one_message_and_touches_nothing(tmp_path, case):
    root = tmp_path / "data"
    args, expected = case(root)
    before = snapshot(root)
    cache = tmp_path / "cache"
    r = cli("check", root, *args, cwd=tmp_path, cache=cache)
    assert r.returncode == 2, (r.stdout, r.stderr)
    _assert_one_error(r.stderr, expected)
    assert snapshot(root) == before
    assert not cache.exists() or not any(cache.iterdir()), "a failed check left a cache entry"


# ---------------------------------------------------------------- unreadable folders and files

def _world_readable(build) -> Path:
    """DATA under a fresh /tmp folder that an unprivileged user can reach (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="visionsweep-perm-"))
    base.chmod(0o755)
    root = base / "data"
    build(root)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return root


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX permissions only")
def test_unreadable_folder_and_file_are_named(tmp_path):
    """As root chmod 000 denies nothing, so the check then runs in a child that setuid()s to nobody;
    as any other user it is the real command line in a subprocess."""
    roots = [_world_readable(folders_dataset), _world_readable(folders_dataset), _world_readable(folders_dataset)]
    targets = [roots[0] / "train" / "dog", roots[1] / "train" / "cat" / "cat.1.jpg", roots[2].parent]
    expected = [["cannot read folder train/dog: permission denied", "chmod"],
                ["train/cat/cat.1.jpg cannot be read: permission denied"],
                [f"cannot reach DATA folder {roots[2]}: permission denied on it or on a folder above it"]]
    before = [snapshot(r) for r in roots]
    cache = roots[0].parent / "cache"
    try:
        cache.mkdir(mode=0o777)
        cache.chmod(0o777)
        for t in targets:
            t.chmod(0)
        if os.geteuid() == 0:
            results = check_as_user(roots, cache)
        else:
            results = [(r.returncode, r.stderr) for r in (cli("check", root, cwd=tmp_path, cache=cache)
                                                          for root in roots)]
    finally:
        targets[0].chmod(0o755)
        targets[1].chmod(0o644)
        targets[2].chmod(0o755)
        after = [snapshot(r) for r in roots]
        for r in roots:
            shutil.rmtree(r.parent)
    for (code, stderr), texts in zip(results, expected):
        assert code == 2, stderr
        _assert_one_error(stderr, texts)
    assert after == before


# ---------------------------------------------------------------- in-process cases (cheaper than a subprocess)

def test_load_truncated_images_stays_false(tmp_path):
    root = csv_dataset(tmp_path / "data", size=(32, 32))
    name = _first_train_id(root)
    data = (root / "train" / name).read_bytes()
    (root / "train" / name).write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(DataError, match=f"train/{name} is truncated or corrupt"):
        _load(root)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    (root / "train" / name).write_bytes(data)
    _load(root)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_header_is_reported_as_truncated(tmp_path):
    root = csv_dataset(tmp_path / "data", size=(32, 32))
    name = _first_train_id(root)
    (root / "train" / name).write_bytes((root / "train" / name).read_bytes()[:200])
    with pytest.raises(DataError, match=f"train/{name} is truncated or corrupt"):
        _load(root)


def test_every_bad_file_is_listed_once(tmp_path):
    """Twelve broken files: the message counts them all and shows the first ten, then how many more."""
    root = filenames_dataset(tmp_path / "data", per_class=8, n_test=0)
    for i in range(6):
        (root / "train" / f"cat.{i}.jpg").write_bytes(b"")
        (root / "train" / f"dog.{i}.jpg").write_text("not a jpeg")
    with pytest.raises(DataError) as info:
        _load(root)
    msg = str(info.value)
    assert msg.startswith("12 image file(s) cannot be used")
    assert msg.count("  - ") == 10 and "... and 2 more" in msg


def test_oversized_image_is_an_error_not_a_crash(tmp_path, monkeypatch):
    root = csv_dataset(tmp_path / "data")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 16x16 = 256 px > 2 * 50: a "decompression bomb"
    with pytest.raises(DataError, match="is too large to decode safely"):
        _load(root)


def test_cache_inside_data_is_refused(tmp_path):
    root = csv_dataset(tmp_path / "data")
    before = snapshot(root)
    with pytest.raises(DataError, match="inside DATA; visionsweep never writes into DATA"):
        _load(root, cache_dir=root / ".cache")
    with pytest.raises(DataError, match="inside DATA"):
        _load(root, cache_dir=root)
    assert snapshot(root) == before


def test_unwritable_cache_is_a_data_error(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=0)
    (tmp_path / "blocker").write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match="cannot write the decode cache.*--cache-dir"):
        _load(root, cache_dir=tmp_path / "blocker" / "cache")


def test_sample_problems(tmp_path):
    root = filenames_dataset(tmp_path / "data", n_test=3)
    (root / "sample_submission.csv").write_text("id,label\n1,0.5\n2,0.5\n1,0.5\n")
    with pytest.raises(DataError, match=r"sample_submission.csv has duplicate ids, e.g. '1' \(line 4\)"):
        _load(root)
    (root / "sample_submission.csv").write_text("id\n1\n2\n3\n")
    with pytest.raises(DataError, match="needs an id column and at least one value column"):
        _load(root)
    (root / "sample_submission.csv").write_text("")
    with pytest.raises(DataError, match="sample_submission.csv is empty"):
        _load(root)
    (root / "sample_submission.csv").write_text("id,a,b,c\n1,0,0,0\n2,0,0,0\n3,0,0,0\n")
    with pytest.raises(DataError, match="not one column nor one column per class"):
        _load(root)


def test_empty_test_folder_and_stem_clash(tmp_path):
    root = filenames_dataset(tmp_path / "data", n_test=2, sample=False)
    write_image(root / "test" / "1.png")
    with pytest.raises(DataError, match="share a name stem"):
        _load(root)
    shutil.rmtree(root / "test")
    (root / "test").mkdir()
    with pytest.raises(DataError, match="test/ holds no images"):
        _load(root)


def test_csv_ids_cannot_escape_train(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=0)
    outside = write_image(tmp_path / "outside.jpg")
    _edit_csv(root / "train.csv", lambda lines: lines + [f"{outside},0", "../outside.jpg,1"])
    with pytest.raises(DataError, match="2 id.*have no image in train/") as info:
        _load(root)
    assert str(outside) in str(info.value) and "../outside.jpg" in str(info.value)


def test_ids_with_sub_folders_are_found(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=0)
    write_image(root / "train" / "extra" / "a.jpg")
    _edit_csv(root / "train.csv", lambda lines: lines + ["extra/a.jpg,0"])
    assert _load(root).summary["train"] == 13


def test_unreadable_csv_is_a_data_error(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=0)
    (root / "train.csv").write_bytes(b"id,label\n\xff\xfe\x00bad,1\n")
    with pytest.raises(DataError, match="train.csv is not a readable CSV file"):
        _load(root)
    (root / "train.csv").write_text("")
    with pytest.raises(DataError, match="train.csv is empty"):
        _load(root)


def test_csv_layout_needs_its_parts(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "train.csv").write_text("id,label\na.jpg,1\n")
    with pytest.raises(DataError, match="train.csv found but no train/ folder"):
        _load(root)
    with pytest.raises(DataError, match="--layout folders needs train/<class>/"):
        _load(root, layout="folders")
    (root / "train.csv").unlink()
    with pytest.raises(DataError, match="--layout csv needs train.csv"):
        _load(root, layout="csv")


def test_loading_changes_no_mode_bits_or_mtimes(tmp_path):
    """Loading reads only: no file's permission bits or mtime change either."""
    root = folders_dataset(tmp_path / "data", per_class=3, n_test=2)
    before = {p: (p.stat().st_mode, p.stat().st_mtime_ns) for p in root.rglob("*")}
    _load(root)
    assert {p: (p.stat().st_mode, p.stat().st_mtime_ns) for p in root.rglob("*")} == before

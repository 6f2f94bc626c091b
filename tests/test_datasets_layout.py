"""Layout detection and listing for every supported layout, with each override, in-process and via `check`."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from visionsweep.datasets import DataError, DatasetSpec, spec_from_dict
from visionsweep.datasets.layout import detect_layout, list_dataset
from visionsweep.datasets.load import load_dataset
from imagefolders import cli, csv_dataset, filenames_dataset, folders_dataset, read_lines, write_image


def _load(root, **kw):
    return load_dataset(DatasetSpec(root=root, **kw), log=lambda *a: None)


# ---------------------------------------------------------------- Kaggle CSV (Aerial Cactus)

def test_csv_layout_ids_with_extension(tmp_path):
    root = csv_dataset(tmp_path / "data", per_class=6, n_test=4)
    data = _load(root)
    s = data.summary
    assert s["layout"] == "csv"
    assert data.classes == ["0", "1"]
    assert s["classes"] == {"0": {"train": 6, "valid": 0}, "1": {"train": 6, "valid": 0}}
    assert (s["train"], s["valid"], s["test"]) == (12, None, 4)
    assert (s["id_col"], s["label_col"]) == ("id", "has_cactus")
    assert data.x_train.shape == (12, 16, 16, 3) and data.x_train.dtype == np.uint8
    assert data.x_valid is None and data.y_valid is None
    # Labels follow train.csv's rows, in order: 0, 1, 0, 1, ...
    assert data.y_train.tolist() == [i % 2 for i in range(12)]
    # Test ids and order are the sample's, ids keep their extension like the sample's.
    sample_ids = [line.split(",")[0] for line in read_lines(root / "sample_submission.csv")[1:]]
    assert data.test_ids == sample_ids and all(i.endswith(".jpg") for i in data.test_ids)
    assert data.positive_class == "1"
    assert data.submission.kind == "probability" and data.submission.value_cols == ["has_cactus"]


def test_csv_rows_map_to_the_right_files(tmp_path):
    """The array row for a CSV line holds that line's image (not the directory order)."""
    root = csv_dataset(tmp_path / "data", per_class=3, n_test=0)
    lines = read_lines(root / "train.csv")
    reversed_rows = [lines[0]] + lines[1:][::-1]
    (root / "train.csv").write_text("\n".join(reversed_rows) + "\n")
    data = _load(root)
    from PIL import Image
    for row, line in enumerate(reversed_rows[1:]):
        name, label = line.split(",")
        expected = np.asarray(Image.open(root / "train" / name).convert("RGB"))
        assert np.array_equal(data.x_train[row], expected)
        assert data.classes[data.y_train[row]] == label


def test_csv_ids_without_extension(tmp_path):
    root = csv_dataset(tmp_path / "data", with_ext=False, ext=".png", per_class=4, n_test=3)
    data = _load(root)
    assert data.summary["train"] == 8 and data.summary["test"] == 3
    assert all("." not in i for i in data.test_ids)


def test_csv_without_sample_lists_test_in_natural_order(tmp_path):
    root = csv_dataset(tmp_path / "data", per_class=3, n_test=0)
    for i in (10, 2, 1):
        write_image(root / "test" / f"{i}.jpg", seed=i)
    data = _load(root)
    assert data.test_ids == ["1.jpg", "2.jpg", "10.jpg"]
    assert data.submission.describe().startswith("id,has_cactus")


def test_csv_id_and_label_column_overrides(tmp_path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    rows = ["notes,label,file"]
    for i in range(8):
        write_image(root / "train" / f"img{i}.png", seed=i)
        rows.append(f"n{i},{'yes' if i % 2 else 'no'},img{i}.png")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="cannot tell which is the label.*--label-col"):
        _load(root)
    data = _load(root, id_col="file", label_col="label")
    assert data.classes == ["no", "yes"] and data.positive_class == "yes"
    # Without a sample file the submission is `id,<label column>`.
    assert (data.summary["id_col"], data.summary["label_col"]) == ("id", "label")
    with pytest.raises(DataError, match=r"no column 'nope'.*--id-col"):
        _load(root, id_col="nope", label_col="label")
    with pytest.raises(DataError, match=r"no label column 'nope'.*--label-col"):
        _load(root, id_col="file", label_col="nope")
    r = cli("check", root, "--id-col", "file", "--label-col", "label", cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "layout:      csv" in r.stdout and "classes:     2" in r.stdout and "positive:    'yes'" in r.stdout
    assert re.search(r"^  no\s+train 4$", r.stdout, re.M) and re.search(r"^  yes\s+train 4$", r.stdout, re.M)


def test_csv_positive_class_override(tmp_path):
    root = csv_dataset(tmp_path / "data", per_class=3, n_test=2)
    assert _load(root).positive_class == "1"
    assert _load(root, positive_class="0").positive_class == "0"
    with pytest.raises(DataError, match=r"--positive-class '7' is not a class; classes: 0, 1"):
        _load(root, positive_class="7")


def test_csv_unlabelled_and_non_image_files_warn(tmp_path):
    root = csv_dataset(tmp_path / "data", per_class=3, n_test=2)
    write_image(root / "train" / "extra.jpg", seed=99)
    (root / "train" / "notes.txt").write_text("hello")
    data = _load(root)
    warnings = "\n".join(data.summary["warnings"])
    assert "1 image(s) in train/ have no row in train.csv" in warnings and "extra.jpg" in warnings
    assert "non-image file(s) in train/" in warnings and "notes.txt" in warnings
    assert data.summary["train"] == 6


# ---------------------------------------------------------------- class folders (dogs-vs-cats)

def test_folders_layout_holdout(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=5, n_test=3)
    data = _load(root)
    s = data.summary
    assert s["layout"] == "folders" and data.classes == ["cat", "dog"]
    assert (s["train"], s["valid"], s["test"]) == (10, None, 3)
    assert data.y_train.tolist() == [0] * 5 + [1] * 5
    assert data.test_ids == ["1", "2", "3"]  # stems: dogs-vs-cats ids
    assert data.positive_class == "dog"     # no obvious pair, no column name: the last class
    assert data.submission.describe().startswith("id,label")


def test_folders_layout_with_valid(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=4, valid_per_class=2, n_test=0)
    data = _load(root)
    s = data.summary
    assert (s["train"], s["valid"], s["test"]) == (8, 4, 0)
    assert s["classes"] == {"cat": {"train": 4, "valid": 2}, "dog": {"train": 4, "valid": 2}}
    assert data.x_valid.shape == (4, 16, 16, 3) and data.y_valid.tolist() == [0, 0, 1, 1]
    assert data.x_test.shape[0] == 0


def test_folders_valid_class_unknown_to_train(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=3, n_test=0)
    write_image(root / "valid" / "cat" / "a.jpg")
    write_image(root / "valid" / "fox" / "b.jpg")
    with pytest.raises(DataError, match=r"valid/ has class folder\(s\) fox"):
        _load(root)


def test_folders_custom_folder_names(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=3, valid_per_class=1, n_test=2)
    (root / "train").rename(root / "training")
    (root / "valid").rename(root / "val")
    (root / "test").rename(root / "holdout")
    with pytest.raises(DataError, match="neither train.csv nor a train/ folder"):
        _load(root)
    data = _load(root, train_dir="training", valid_dir="val", test_dir="holdout")
    assert (data.summary["train"], data.summary["valid"], data.summary["test"]) == (6, 2, 2)


def test_folders_loose_images_warn(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=3, n_test=0)
    write_image(root / "train" / "stray.jpg")
    data = _load(root)
    assert any("outside any class folder" in w and "stray.jpg" in w for w in data.summary["warnings"])


# ---------------------------------------------------------------- labels in file names (Redux)

def test_filenames_layout(tmp_path):
    root = filenames_dataset(tmp_path / "data", per_class=4, n_test=5)
    data = _load(root)
    s = data.summary
    assert s["layout"] == "filenames" and data.classes == ["cat", "dog"]
    assert s["classes"] == {"cat": {"train": 4, "valid": 0}, "dog": {"train": 4, "valid": 0}}
    assert data.test_ids == ["1", "2", "3", "4", "5"]
    assert data.submission.value_cols == ["label"] and data.positive_class == "dog"


def test_filenames_test_order_follows_sample(tmp_path):
    root = filenames_dataset(tmp_path / "data", per_class=2, n_test=3)
    (root / "sample_submission.csv").write_text("id,label\n3,0.5\n1,0.5\n2,0.5\n")
    data = _load(root)
    assert data.test_ids == ["3", "1", "2"]
    from PIL import Image
    assert np.array_equal(data.x_test[0], np.asarray(Image.open(root / "test" / "3.jpg").convert("RGB")))


def test_filenames_label_regex_override(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        write_image(root / "train" / f"img_{i}_cat.png", seed=i)
        write_image(root / "train" / f"img_{i}_dog.png", seed=10 + i)
    with pytest.raises(DataError, match="single class"):  # default regex reads 'img' from every name
        _load(root)
    data = _load(root, label_regex=r"_(?P<label>[a-z]+)\.png$")
    assert data.classes == ["cat", "dog"] and data.summary["train"] == 6
    assert _load(root, label_regex=r"_([a-z]+)\.png$").classes == ["cat", "dog"]  # unnamed group
    with pytest.raises(DataError, match=r"--label-regex .* is not a valid regular expression"):
        _load(root, label_regex="(")
    with pytest.raises(DataError, match=r"--label-regex .* needs a group"):
        _load(root, label_regex="cat")
    with pytest.raises(DataError, match=r"6 file name\(s\) in train/ do not match --label-regex"):
        _load(root, label_regex=r"^(?P<label>zzz)")


def test_explicit_layout_override(tmp_path):
    """A folder with both train.csv and class folders: --layout picks."""
    root = folders_dataset(tmp_path / "data", per_class=3, n_test=0)
    (root / "train.csv").write_text("id,label\n")
    with pytest.raises(DataError, match="train.csv has a header but no rows"):
        _load(root)
    assert detect_layout(DatasetSpec(root=root)) == "csv"
    assert detect_layout(DatasetSpec(root=root, layout="folders")) == "folders"
    assert _load(root, layout="folders").summary["layout"] == "folders"


def test_missing_or_wrong_data_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_dataset(DatasetSpec(root=tmp_path / "nope"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        list_dataset(DatasetSpec(root=tmp_path / "f"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither train.csv nor a train/ folder"):
        list_dataset(DatasetSpec(root=tmp_path / "empty"))


# ---------------------------------------------------------------- the spec

def test_spec_from_dict_rejects_unknown_keys_by_name(tmp_path):
    with pytest.raises(DataError, match=r"unknown dataset option\(s\) lable_col, sise; known: .*label_col"):
        spec_from_dict({"root": tmp_path, "lable_col": "x", "sise": 3})
    with pytest.raises(DataError, match="DATA folder is required"):
        spec_from_dict({})
    spec = spec_from_dict({"root": str(tmp_path), "label_col": "y"})
    assert spec.root == tmp_path.resolve() and spec.label_col == "y"


@pytest.mark.parametrize("kw, flag", [({"layout": "zip"}, "--layout"), ({"resize_method": "pad"}, "--resize-method"),
                                      ({"valid_pct": 1.0}, "--valid-pct"), ({"cache_size": 4}, "--cache-size"),
                                      ({"max_cache_size": 9999}, "--max-cache-size")])
def test_spec_rejects_bad_values_naming_the_flag(tmp_path, kw, flag):
    with pytest.raises(DataError, match=re.escape(flag)):
        DatasetSpec(root=tmp_path, **kw)


# ---------------------------------------------------------------- the real command line

def test_cli_check_csv(tmp_path):
    root = csv_dataset(tmp_path / "data", per_class=5, n_test=3)
    write_image(root / "train" / "gray.jpg", mode="L")  # unlabelled: a warning, not used
    lines = read_lines(root / "train.csv")
    (root / "train.csv").write_text("\n".join(lines + ["gray.jpg,1"]) + "\n")
    r = cli("check", root, cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "layout:      csv" in out
    assert "images:      train 11, valid random stratified holdout at train time, test 3" in out
    assert re.search(r"^  0\s+train 5$", out, re.M) and re.search(r"^  1\s+train 6$", out, re.M)
    assert "image sizes: 16x16 (14)" in out
    assert "columns:     id 'id', label 'has_cactus'" in out
    assert "positive:    '1'" in out
    assert "submission:  id,has_cactus  (probability of class '1')" in out
    assert "converted:   1 grayscale image(s) converted to RGB" in out
    assert "(written," in out
    again = cli("check", root, cwd=tmp_path, cache=tmp_path / "cache")
    assert again.returncode == 0 and "hit, nothing decoded" in again.stdout


def test_cli_check_folders_with_overrides(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=4, valid_per_class=2, n_test=2, size=(24, 16))
    r = cli("check", root, "--positive-class", "cat", "--resize-method", "squish", "--cache-size", "20",
            cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "layout:      folders" in out
    assert "images:      train 8, valid 4, test 2" in out
    assert re.search(r"^  cat\s+train 4, valid 2$", out, re.M)
    assert "image sizes: 24x16 (14)  (cached at 20 px)" in out
    assert "positive:    'cat'" in out
    assert "converted:   none (all images RGB)" in out


def test_cli_check_filenames_with_folder_and_regex_overrides(tmp_path):
    root = filenames_dataset(tmp_path / "data", per_class=3, n_test=2)
    (root / "train").rename(root / "images")
    for p in (root / "images").iterdir():  # cat.0.jpg -> 0-cat.jpg
        label, i, ext = p.name.split(".")
        p.rename(p.with_name(f"{i}-{label}.{ext}"))
    r = cli("check", root, "--train-dir", "images", r"--label-regex=-(?P<label>[a-z]+)\.jpg$", cwd=tmp_path,
            cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "layout:      filenames" in r.stdout
    assert "images:      train 6, valid random stratified holdout at train time, test 2" in r.stdout
    assert "submission:  id,label  (probability of class 'dog')" in r.stdout
    assert r.stderr == ""
    shutil.rmtree(tmp_path / "cache")

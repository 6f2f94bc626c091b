"""Submissions in sample_submission.csv's exact format; the positive class by name; nothing written on failure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from visionsweep.datasets import DataError, DatasetSpec
from visionsweep.datasets.layout import positive_class
from visionsweep.datasets.load import load_dataset
from visionsweep.datasets.submission import submission_format, write_submission
from imagefolders import csv_dataset, filenames_dataset, folders_dataset, read_lines, write_image


def _load(root, **kw):
    return load_dataset(DatasetSpec(root=root, **kw), log=lambda *a: None)


def _column(path, i=0):
    return [line.split(",")[i] for line in read_lines(path)]


def _sample(ids, cols):
    return pd.DataFrame({c: ([str(i) for i in ids] if k == 0 else ["0"] * len(ids)) for k, c in enumerate(cols)})


def test_binary_probability_is_the_positive_class_by_name(tmp_path):
    """classes [cat, dog], positive dog: the column must hold P(dog); preds[:, 0] (P(cat)) must fail."""
    fmt = submission_format(classes=["cat", "dog"], positive="dog", id_col="id", label_col="label", sample=None)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    frame = write_submission(tmp_path / "s.csv", fmt, ["1", "2", "3"], probs)
    written = pd.read_csv(tmp_path / "s.csv", dtype={"id": str})
    assert list(written.columns) == ["id", "label"]
    assert np.allclose(written["label"], [0.1, 0.8, 0.4])
    assert np.allclose(frame["label"], probs[:, 1]) and not np.allclose(frame["label"], probs[:, 0])
    fmt_cat = submission_format(classes=["cat", "dog"], positive="cat", id_col="id", label_col="label", sample=None)
    frame = write_submission(tmp_path / "c.csv", fmt_cat, ["1", "2", "3"], probs)
    assert np.allclose(frame["label"], probs[:, 0])


def test_redux_folder_end_to_end_matches_sample_exactly(tmp_path):
    root = filenames_dataset(tmp_path / "data", n_test=5)
    (root / "sample_submission.csv").write_text("id,label\n" + "".join(f"{i},0.5\n" for i in (4, 1, 5, 2, 3)))
    data = _load(root)
    assert data.positive_class == "dog" and data.test_ids == ["4", "1", "5", "2", "3"]
    p_dog = np.array([0.11, 0.22, 0.33, 0.44, 0.55])
    probs = np.stack([1 - p_dog, p_dog], 1)
    out = tmp_path / "submission.csv"
    write_submission(out, data.submission, data.test_ids, probs, sample=data.sample)
    assert read_lines(out)[0] == read_lines(root / "sample_submission.csv")[0]
    assert _column(out) == _column(root / "sample_submission.csv")
    assert [float(v) for v in _column(out, 1)[1:]] == pytest.approx(p_dog.tolist())


def test_cactus_folder_ids_keep_their_extension(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=4)
    data = _load(root)
    probs = np.tile([0.3, 0.7], (4, 1))
    out = tmp_path / "submission.csv"
    write_submission(out, data.submission, data.test_ids, probs, sample=data.sample)
    assert read_lines(out)[0] == "id,has_cactus"
    assert _column(out) == _column(root / "sample_submission.csv")
    assert all(float(v) == pytest.approx(0.7) for v in _column(out, 1)[1:])


def test_per_class_columns_follow_the_sample_order(tmp_path):
    root = folders_dataset(tmp_path / "data", classes=("ant", "bee", "cat"), per_class=2, n_test=3)
    (root / "sample_submission.csv").write_text("id,cat,ant,bee\n3,0,0,0\n1,0,0,0\n2,0,0,0\n")
    data = _load(root)
    assert data.submission.kind == "per_class" and data.classes == ["ant", "bee", "cat"]
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.0, 1.0, 0.0]])  # rows: test ids 3, 1, 2
    out = tmp_path / "s.csv"
    write_submission(out, data.submission, data.test_ids, probs, sample=data.sample)
    written = pd.read_csv(out, dtype={"id": str})
    assert list(written.columns) == ["id", "cat", "ant", "bee"]
    assert written["id"].tolist() == ["3", "1", "2"]
    assert np.allclose(written[["ant", "bee", "cat"]].to_numpy(), probs)


def test_multiclass_single_column_gets_the_label(tmp_path):
    root = tmp_path / "data"
    rows = ["id,digit"]
    for i in range(9):
        write_image(root / "train" / f"{i}.png", seed=i)
        rows.append(f"{i}.png,{i % 3 * 5}")  # labels 0, 5, 10: sorted numerically
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    for i in range(3):
        write_image(root / "test" / f"t{i}.png", seed=20 + i)
    (root / "sample_submission.csv").write_text("id,digit\nt0.png,0\nt1.png,0\nt2.png,0\n")
    data = _load(root)
    assert data.classes == ["0", "5", "10"] and data.positive_class is None and data.submission.kind == "label"
    out = tmp_path / "s.csv"
    write_submission(out, data.submission, data.test_ids, np.eye(3)[[2, 0, 1]], sample=data.sample)
    assert read_lines(out) == ["id,digit", "t0.png,10", "t1.png,0", "t2.png,5"]


def test_without_sample_id_and_label_column():
    fmt = submission_format(classes=["a", "b", "c"], positive=None, id_col="id", label_col="species", sample=None)
    assert (fmt.kind, fmt.id_col, fmt.value_cols) == ("label", "id", ["species"])
    assert fmt.describe() == "id,species  (predicted class label)"


BAD = [
    ("nan", ["1", "2"], [[0.5, 0.5], [np.nan, 0.5]], "finite and in \\[0, 1\\]"),
    ("above one", ["1", "2"], [[0.5, 0.5], [0.0, 1.5]], "finite and in \\[0, 1\\]"),
    ("negative", ["1", "2"], [[0.5, 0.5], [-0.1, 1.0]], "finite and in \\[0, 1\\]"),
    ("duplicate ids", ["1", "1"], [[0.5, 0.5], [0.5, 0.5]], "not unique"),
    ("too few rows", ["1", "2"], [[0.5, 0.5]], "shape \\(1, 2\\), expected \\(2, 2\\)"),
    ("too many classes", ["1", "2"], [[0.2, 0.3, 0.5]] * 2, "expected \\(2, 2\\)"),
    ("wrong order", ["2", "1"], [[0.5, 0.5]] * 2, "ids or their order differ"),
    ("missing id", ["1", "3"], [[0.5, 0.5]] * 2, "ids or their order differ"),
]


@pytest.mark.parametrize("ids, probs, match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_predictions_write_nothing(tmp_path, ids, probs, match):
    sample = _sample(["1", "2"], ["id", "label"])
    fmt = submission_format(classes=["cat", "dog"], positive="dog", id_col="id", label_col="label", sample=sample)
    out = tmp_path / "out" / "submission.csv"
    out.parent.mkdir()
    with pytest.raises(ValueError, match=match):
        write_submission(out, fmt, ids, np.array(probs, dtype=float), sample=sample)
    assert list(out.parent.iterdir()) == []


def test_header_mismatch_and_missing_folder(tmp_path):
    sample = _sample(["1", "2"], ["id", "label"])
    fmt = submission_format(classes=["cat", "dog"], positive="dog", id_col="id", label_col="label", sample=None)
    other = _sample(["1", "2"], ["ID", "label"])
    with pytest.raises(ValueError, match="columns .* differ from the sample's"):
        write_submission(tmp_path / "s.csv", fmt, ["1", "2"], np.full((2, 2), 0.5), sample=other)
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(DataError, match="folder .* does not exist"):
        write_submission(tmp_path / "nope" / "s.csv", fmt, ["1", "2"], np.full((2, 2), 0.5), sample=sample)
    write_submission(tmp_path / "s.csv", fmt, ["1", "2"], np.full((2, 2), 0.5), sample=sample)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]  # no temporary file left beside it


@pytest.mark.parametrize("classes, value_col, expected", [
    (["0", "1"], None, "1"),
    (["0", "1"], "label", "1"),
    (["False", "True"], None, "True"),
    (["no", "yes"], "target", "yes"),
    (["neg", "pos"], None, "pos"),
    (["cat", "dog"], "cat", "cat"),      # the column is named after a class
    (["cat", "dog"], "dog", "dog"),
    (["cat", "dog"], "label", "dog"),    # else the last class
    (["b", "a"], None, "b"),             # alphabetically last, whatever order the classes come in
    (["10", "9"], None, "10"),           # numerically last for integer labels
])
def test_positive_class_heuristics(classes, value_col, expected):
    assert positive_class(classes, requested=None, value_col=value_col) == expected


def test_positive_class_override():
    assert positive_class(["0", "1"], requested="0", value_col=None) == "0"
    assert positive_class(["cat", "dog"], requested="cat", value_col="dog") == "cat"
    with pytest.raises(DataError, match=r"--positive-class 'Dog' is not a class; classes: cat, dog"):
        positive_class(["cat", "dog"], requested="Dog", value_col=None)
    with pytest.raises(DataError, match="--positive-class is for binary tasks; this one has 3 classes"):
        positive_class(["a", "b", "c"], requested="a", value_col=None)
    assert positive_class(["a", "b", "c"], requested=None, value_col="label") is None


def test_positive_class_from_sample_column_name(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=2, n_test=2)
    (root / "sample_submission.csv").write_text("id,cat\n1,0\n2,0\n")
    data = _load(root)
    assert data.positive_class == "cat" and data.submission.describe() == "id,cat  (probability of class 'cat')"
    frame = write_submission(tmp_path / "s.csv", data.submission, data.test_ids, np.array([[0.9, 0.1], [0.3, 0.7]]),
                             sample=data.sample)
    assert frame["cat"].tolist() == [0.9, 0.3]

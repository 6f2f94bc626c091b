"""The seeded, stratified holdout split."""

from __future__ import annotations

import numpy as np
import pytest

from visionsweep.datasets import DataError
from visionsweep.datasets.split import stratified_split

LABELS = np.array([0] * 50 + [1] * 7 + [2] * 23 + [3] * 2)


@pytest.mark.parametrize("valid_pct", [0.1, 0.2, 0.5])
def test_each_class_keeps_its_share(valid_pct):
    train, valid = stratified_split(LABELS, valid_pct=valid_pct, seed=0)
    for cls in np.unique(LABELS):
        count = int((LABELS == cls).sum())
        in_valid = int((LABELS[valid] == cls).sum())
        assert abs(in_valid - valid_pct * count) <= 1, (cls, in_valid, count)
        assert 1 <= in_valid < count  # every class is in both parts


def test_disjoint_complete_sorted():
    train, valid = stratified_split(LABELS, valid_pct=0.2, seed=3)
    assert set(train.tolist()).isdisjoint(valid.tolist())
    assert sorted(train.tolist() + valid.tolist()) == list(range(len(LABELS)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(valid) > 0)
    assert train.dtype.kind == "i" and valid.dtype.kind == "i"


def test_seeded():
    a = stratified_split(LABELS, valid_pct=0.2, seed=7)
    b = stratified_split(LABELS, valid_pct=0.2, seed=7)
    c = stratified_split(LABELS, valid_pct=0.2, seed=8)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


def test_labels_can_be_strings():
    labels = np.array(["cat", "dog"] * 10)
    train, valid = stratified_split(labels, valid_pct=0.3, seed=0)
    assert (labels[valid] == "cat").sum() == (labels[valid] == "dog").sum() == 3


def test_single_image_class_is_a_clear_error():
    labels = np.array([0, 0, 0, 1, 2, 2])
    with pytest.raises(DataError, match="class index 1 has only 1 image.*at least 2 per class.*valid/"):
        stratified_split(labels, valid_pct=0.2, seed=0)
    with pytest.raises(DataError, match="class 'dog' has only 1 image"):
        stratified_split(labels, valid_pct=0.2, seed=0, classes=["cat", "dog", "fox"])


@pytest.mark.parametrize("pct", [0.0, 1.0, -0.1])
def test_bad_fraction(pct):
    with pytest.raises(DataError, match="--valid-pct"):
        stratified_split(LABELS, valid_pct=pct, seed=0)


def test_stratified_folds_deal_every_class_evenly_and_refuse_too_few_images():
    from visionsweep.datasets.split import stratified_folds

    labels = np.array([0] * 10 + [1] * 5 + [2] * 6)
    fold = stratified_folds(labels, folds=3, seed=1)
    assert sorted(np.bincount(fold)) == [7, 7, 7]  # 21 images, three folds of 7
    for cls, n in ((0, 10), (1, 5), (2, 6)):
        counts = np.bincount(fold[labels == cls], minlength=3)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n
    assert (stratified_folds(labels, folds=3, seed=1) == fold).all()          # seeded
    assert not (stratified_folds(labels, folds=3, seed=2) == fold).all()
    with pytest.raises(DataError, match="--folds 20 needs at least 40 labelled images, there are 21"):
        stratified_folds(labels, folds=20, seed=0)
    with pytest.raises(DataError, match="class 'b' has only 1 image"):
        stratified_folds(np.array([0, 0, 0, 1]), folds=2, seed=0, classes=["a", "b"])

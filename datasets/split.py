"""Seeded, stratified holdout split (fastai's split_by_rand_pct, but every class keeps its share)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from visionsweep.datasets.errors import DataError

if TYPE_CHECKING:
    from visionsweep.datasets.load import LoadedData


def stratified_split(labels: np.ndarray, *, valid_pct: float, seed: int,
                     classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, valid_idx), both sorted; each class contributes round(valid_pct * count), at least 1.

    `classes` (names indexed by label) only makes the error message name the class.
    """
    if not 0.0 < valid_pct < 1.0:
        raise DataError(f"--valid-pct must be between 0 and 1 (exclusive), got {valid_pct}")
    labels = np.asarray(labels)
    if labels.size == 0:
        raise DataError("cannot split an empty dataset: there are no labelled images")
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        if len(idx) < 2:
            name = f"class {classes[int(cls)]!r}" if classes is not None else f"class index {cls}"
            raise DataError(f"{name} has only {len(idx)} image; a holdout split needs at least 2 per "
                            f"class. Add images or give a valid/ folder")
        rng.shuffle(idx)
        k = min(len(idx) - 1, max(1, round(valid_pct * len(idx))))
        valid.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))


def train_valid_arrays(data: LoadedData, *, valid_pct: float, seed: int) -> dict[str, np.ndarray]:
    """Train/valid arrays: the given valid/ folder, else a seeded stratified holdout of train."""
    if data.x_valid is not None:
        return {"x_train": data.x_train, "y_train": data.y_train, "x_valid": data.x_valid, "y_valid": data.y_valid}
    tr, va = stratified_split(data.y_train, valid_pct=valid_pct, seed=seed, classes=data.classes)
    return {"x_train": data.x_train[tr], "y_train": data.y_train[tr],
            "x_valid": data.x_train[va], "y_valid": data.y_train[va]}

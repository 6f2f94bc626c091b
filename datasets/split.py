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


def stratified_folds(labels: np.ndarray, *, folds: int, seed: int, classes: list[str] | None = None) -> np.ndarray:
    """Fold index (0 .. folds-1) per image: each class dealt round-robin over the folds after a seeded shuffle,
    so every fold holds each class's share (sklearn's StratifiedKFold, without sklearn)."""
    labels = np.asarray(labels)
    if folds < 2:
        raise DataError(f"--folds must be >= 2 (1 = one holdout split), got {folds}")
    if len(labels) < 2 * folds:
        raise DataError(f"--folds {folds} needs at least {2 * folds} labelled images, there are {len(labels)}; "
                        f"lower --folds")
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=np.int64)
    start = 0
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        if len(idx) < 2:
            name = f"class {classes[int(cls)]!r}" if classes is not None else f"class index {cls}"
            raise DataError(f"{name} has only {len(idx)} image; cross-validation needs at least 2 per class")
        rng.shuffle(idx)
        out[idx] = (np.arange(len(idx)) + start) % folds  # classes continue the deal: fold sizes stay even
        start += len(idx)
    return out


def labelled(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled image, train then valid (the order a fold index per image refers to)."""
    return (np.concatenate([arrays["x_train"], arrays["x_valid"]]),
            np.concatenate([arrays["y_train"], arrays["y_valid"]]))


def fold_splits(arrays: dict[str, np.ndarray], fold: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The folds of a cross-validation over every labelled image: fold k validates on the images dealt to it and
    trains on the rest."""
    x, y = labelled(arrays)
    return [{"x_train": x[fold != k], "y_train": y[fold != k], "x_valid": x[fold == k], "y_valid": y[fold == k]}
            for k in range(int(fold.max()) + 1)]


def validation_count(arrays: dict[str, np.ndarray]) -> int:
    """The images a trial's validation metrics are measured on: the valid split, or every labelled image (each
    validated once) under cross-validation."""
    return int(len(arrays["fold"]) if "fold" in arrays else len(arrays["y_valid"]))


def split_text(arrays: dict[str, np.ndarray]) -> str:
    """How the labelled images are used, for the console: 'train 120 / valid 30 images' or '5-fold CV over 150'."""
    if "fold" in arrays:
        return f"{int(arrays['fold'].max()) + 1}-fold cross-validation over {len(arrays['fold'])} labelled images"
    return f"train {len(arrays['y_train'])} / valid {len(arrays['y_valid'])} images"

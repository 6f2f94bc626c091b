"""Seeded, stratified holdout split (fastai's split_by_rand_pct, but every class keeps its share)."""

from __future__ import annotations

import numpy as np

from datasets.errors import DataError


def stratified_split(labels: np.ndarray, *, valid_pct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, valid_idx), both sorted; each class contributes round(valid_pct * count), at least 1."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        if len(idx) < 2:
            raise DataError(f"class index {cls} has only {len(idx)} image; a holdout split needs at least 2 per "
                            f"class. Add images or give a valid/ folder")
        rng.shuffle(idx)
        k = min(len(idx) - 1, max(1, round(valid_pct * len(idx))))
        valid.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))

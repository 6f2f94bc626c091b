"""Real small image data for training tests: scikit-learn's handwritten digits as uint8 RGB arrays."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from visionsweep.trainables.worker import DataInfo


def digits_arrays(*, classes=(0, 1), size: int = 16, per_class: int | None = None, valid_pct: float = 0.25,
                  seed: int = 0) -> tuple[dict[str, np.ndarray], DataInfo]:
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, classes)
    images, target = d.images[keep], d.target[keep]
    if per_class is not None:
        idx = np.concatenate([np.flatnonzero(target == c)[:per_class] for c in classes])
        images, target = images[idx], target[idx]
    x = torch.from_numpy(images / 16.0).float()[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().byte().repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()
    y = np.searchsorted(np.array(classes), target).astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_valid = int(len(y) * valid_pct)
    va, tr = perm[:n_valid], perm[n_valid:]
    arrays = {"x_train": x[tr], "y_train": y[tr], "x_valid": x[va], "y_valid": y[va]}
    names = [str(c) for c in classes]
    info = DataInfo(classes=names, positive_class=names[-1] if len(names) == 2 else None, vertical_flip=False)
    return arrays, info


def digits_csv_folder(root, *, classes=(3, 8), size: int = 16, n_test: int = 40, label_col: str = "is_eight",
                      seed: int = 0):
    """A binary Kaggle-CSV competition folder of real digit images (Aerial-Cactus style: id,<label>, a
    sample_submission with probabilities), plus the test labels in root/../solution.csv."""
    from pathlib import Path

    import pandas as pd
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    d = load_digits()
    keep = np.flatnonzero(np.isin(d.target, classes))
    rng = np.random.default_rng(seed)
    rng.shuffle(keep)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows, test_rows = [], []
    for n, i in enumerate(keep):
        img = Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8), "L").resize((size, size), Image.BICUBIC)
        name = f"{n:05d}.png"
        label = int(d.target[i] == classes[1])
        if n < n_test:
            img.save(root / "test" / name)
            test_rows.append((name, label))
        else:
            img.save(root / "train" / name)
            rows.append((name, label))
    pd.DataFrame(rows, columns=["id", label_col]).to_csv(root / "train.csv", index=False)
    pd.DataFrame([(n, 0.5) for n, _ in test_rows], columns=["id", label_col]).to_csv(
        root / "sample_submission.csv", index=False)
    pd.DataFrame(test_rows, columns=["id", label_col]).to_csv(root.parent / "solution.csv", index=False)
    return root

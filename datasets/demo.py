"""Builds the demo dataset: scikit-learn's handwritten digits as a Kaggle-CSV competition folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from visionsweep.datasets import ownership
from visionsweep.datasets.errors import DataError
from visionsweep.datasets.split import stratified_split

LEGACY_MARKER = ".visionsweep-demo.json"  # demo folders before datasets/ownership.py
DEMO_VERSION = 1


def build_demo(out: Path, *, size: int = 32, test_pct: float = 0.2, seed: int = 0) -> Path:
    """Write out/data/{train.csv, train/, test/, sample_submission.csv} and out/solution.csv; return out/data.

    The 8x8 digits are upscaled to `size` px and saved as grayscale PNGs (as the real data is), so
    `check` shows the RGB conversion at work. The test labels go to solution.csv, outside DATA, so the
    demo can score its own submission. An existing demo folder is reused; any other folder is refused.
    """
    from sklearn.datasets import load_digits

    out = Path(out).expanduser().resolve()
    stamp = {"version": DEMO_VERSION, "size": size, "test_pct": test_pct, "seed": seed}
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; choose a folder for --out (nothing was written)")
    kind = ownership.folder_kind(out)
    if kind == "demo":
        found = ownership.marker(out) or {}
        found.pop("visionsweep", None)
        if not found:  # a demo folder from before the ownership marker
            try:
                found = json.loads((out / LEGACY_MARKER).read_text())
            except (OSError, ValueError):
                found = None
        if found == stamp:
            return out / "data"
        raise DataError(f"{out} holds a visionsweep demo built with other options ({found}, asked for {stamp}); "
                        f"delete it or choose another --out (nothing was written)")
    if kind is not None:
        raise DataError(f"{out} holds a visionsweep {kind}, not a demo folder; choose another --out "
                        f"(nothing was written)")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not a visionsweep demo folder; choose another --out "
                        f"(nothing was written)")
    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    labels = digits.target.astype(int)
    train_idx, test_idx = stratified_split(labels, valid_pct=test_pct, seed=seed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    data = tmp / "data"
    for sub in ("train", "test"):
        (data / sub).mkdir(parents=True)
    names = [f"digit_{i:04d}.png" for i in range(len(labels))]
    in_train = set(train_idx.tolist())
    for i in range(len(labels)):
        folder = "train" if i in in_train else "test"
        Image.fromarray(images[i], "L").resize((size, size), Image.Resampling.BICUBIC).save(data / folder / names[i])
    pd.DataFrame({"id": [names[i] for i in train_idx], "label": labels[train_idx]}).to_csv(
        data / "train.csv", index=False)
    pd.DataFrame({"id": [names[i] for i in test_idx], "label": 0}).to_csv(data / "sample_submission.csv", index=False)
    pd.DataFrame({"id": [names[i] for i in test_idx], "label": labels[test_idx]}).to_csv(
        tmp / "solution.csv", index=False)
    ownership.write_marker(tmp, "demo", **stamp)
    if out.exists():
        out.rmdir()  # empty, checked above
    os.replace(tmp, out)
    return out / "data"

"""Writes predictions in sample_submission.csv's exact format, validated before anything is written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from visionsweep.datasets.errors import DataError

KINDS = ("probability", "label", "per_class")


@dataclass(frozen=True)
class SubmissionFormat:
    kind: str                  # probability (P(positive) in one column) | label | per_class (one column per class)
    id_col: str
    value_cols: list[str]
    classes: list[str]
    positive: str | None       # the class whose probability `probability` writes

    def describe(self) -> str:
        cols = ",".join([self.id_col, *self.value_cols])
        what = {"probability": f"probability of class {self.positive!r}",
                "label": "predicted class label",
                "per_class": "one probability column per class"}[self.kind]
        return f"{cols}  ({what})"


def submission_format(*, classes: list[str], positive: str | None, id_col: str, label_col: str,
                      sample: pd.DataFrame | None) -> SubmissionFormat:
    """What to write, decided from the sample's columns; without a sample, `id,<label>`."""
    if sample is None:
        kind = "probability" if len(classes) == 2 else "label"
        return SubmissionFormat(kind, id_col, [label_col], list(classes), positive)
    value_cols = list(sample.columns[1:])
    if len(value_cols) == 1:
        kind = "probability" if len(classes) == 2 else "label"
        return SubmissionFormat(kind, sample.columns[0], value_cols, list(classes), positive)
    if set(value_cols) == set(classes):
        return SubmissionFormat("per_class", sample.columns[0], value_cols, list(classes), positive)
    missing = sorted(set(classes) - set(value_cols))
    raise DataError(f"sample_submission.csv has value columns {', '.join(value_cols)}, which are not one column "
                    f"nor one column per class (classes: {', '.join(classes)}; missing {', '.join(missing)}); "
                    f"check the label column / class names")


def submission_frame(fmt: SubmissionFormat, ids: list[str], probs: np.ndarray) -> pd.DataFrame:
    """The submission table for class probabilities `probs` (N, C) in `fmt.classes` order, validated."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(ids), len(fmt.classes)):
        raise ValueError(f"probabilities have shape {probs.shape}, expected ({len(ids)}, {len(fmt.classes)})")
    if len(set(ids)) != len(ids):
        raise ValueError("submission ids are not unique")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError("probabilities must be finite and in [0, 1]")
    frame = pd.DataFrame({fmt.id_col: ids})
    if fmt.kind == "probability":
        # By name, never by position: preds[:, 0] is the classic bug.
        frame[fmt.value_cols[0]] = probs[:, fmt.classes.index(fmt.positive)]
    elif fmt.kind == "label":
        frame[fmt.value_cols[0]] = [fmt.classes[i] for i in probs.argmax(1)]
    else:
        for col in fmt.value_cols:
            frame[col] = probs[:, fmt.classes.index(col)]
    return frame


def write_submission(path: Path, fmt: SubmissionFormat, ids: list[str], probs: np.ndarray,
                     *, sample: pd.DataFrame | None = None) -> pd.DataFrame:
    """Validate against the sample (same ids, order and header) and write atomically."""
    frame = submission_frame(fmt, ids, probs)
    if sample is not None:
        if list(frame.columns) != list(sample.columns):
            raise ValueError(f"columns {list(frame.columns)} differ from the sample's {list(sample.columns)}")
        if frame.iloc[:, 0].astype(str).tolist() != sample.iloc[:, 0].astype(str).str.strip().tolist():
            raise ValueError("ids or their order differ from sample_submission.csv")
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise DataError(f"--out {path}: folder {path.parent} does not exist; create it or choose another path")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return frame

"""Validation metrics from logits over the whole validation set, scored by scikit-learn: loss, accuracy, error
rate, log loss, AUC (binary), and the other metrics Kaggle image competitions use (macro F1, MCC, quadratic
weighted kappa)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import metrics as skm


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, *, positive_index: int | None,
                           label_smoothing: float = 0.0) -> dict[str, float]:
    logits, labels = logits.float().cpu(), labels.long().cpu()
    probs = logits.double().softmax(1)
    y, pred = labels.numpy(), probs.argmax(1).numpy()
    correct = float((pred == y).mean()) if len(y) else math.nan
    p_true = probs.gather(1, labels[:, None]).squeeze(1).clamp(1e-15, 1.0)
    with warnings.catch_warnings():  # one class absent from a tiny validation set: the score is what it is
        warnings.simplefilter("ignore")
        out = {
            "valid_loss": F.cross_entropy(logits, labels, label_smoothing=label_smoothing).item(),
            "accuracy": correct,
            "error_rate": 1.0 - correct,
            "log_loss": (-p_true.log()).mean().item(),
            "f1_macro": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
            "mcc": float(skm.matthews_corrcoef(y, pred)),
            "kappa_quadratic": _nan_to_zero(skm.cohen_kappa_score(y, pred, weights="quadratic")),
        }
    if positive_index is not None:
        out["auc"] = binary_auc(probs[:, positive_index], labels == positive_index)
    return out


def _nan_to_zero(value: float) -> float:
    """Kappa is 0/0 when predictions and labels both hold one class: no agreement beyond chance, 0."""
    return 0.0 if math.isnan(value) else float(value)


def binary_auc(scores: torch.Tensor, is_positive: torch.Tensor) -> float:
    """ROC AUC (scikit-learn); NaN when one class is absent."""
    pos = np.asarray(is_positive.numpy() if isinstance(is_positive, torch.Tensor) else is_positive, dtype=bool)
    if pos.all() or not pos.any():
        return math.nan
    s = scores.numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    return float(skm.roc_auc_score(pos, s))

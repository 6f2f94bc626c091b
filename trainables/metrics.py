"""Validation metrics from logits over the whole validation set: loss, accuracy, error rate, AUC, log loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, *, positive_index: int | None,
                           label_smoothing: float = 0.0) -> dict[str, float]:
    logits, labels = logits.float().cpu(), labels.long().cpu()
    probs = logits.double().softmax(1)
    correct = (probs.argmax(1) == labels).double().mean().item()
    p_true = probs.gather(1, labels[:, None]).squeeze(1).clamp(1e-15, 1.0)
    out = {
        "valid_loss": F.cross_entropy(logits, labels, label_smoothing=label_smoothing).item(),
        "accuracy": correct,
        "error_rate": 1.0 - correct,
        "log_loss": (-p_true.log()).mean().item(),
    }
    if positive_index is not None:
        out["auc"] = binary_auc(probs[:, positive_index], labels == positive_index)
    return out


def binary_auc(scores: torch.Tensor, is_positive: torch.Tensor) -> float:
    """ROC AUC by the rank-sum formula (ties share ranks); NaN when one class is absent."""
    from scipy.stats import rankdata

    pos = is_positive.numpy().astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores.numpy())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

"""Validation metrics from logits over the whole validation set: loss, accuracy, error rate, log loss, AUC (binary),
and the other metrics Kaggle image competitions use (macro F1, MCC, quadratic weighted kappa).

Plain numpy, computed as scikit-learn computes them (tests/test_search_units_metrics.py checks each against it):
importing scikit-learn (and scipy with it) took ~1 s in every trial driver, Train controller and worker, which all
import this module, on a 2-core machine."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, *, positive_index: int | None,
                           label_smoothing: float = 0.0) -> dict[str, float]:
    logits, labels = logits.float().cpu(), labels.long().cpu()
    probs = logits.double().softmax(1)
    y, pred = labels.numpy(), probs.argmax(1).numpy()
    correct = float((pred == y).mean()) if len(y) else math.nan
    p_true = probs.gather(1, labels[:, None]).squeeze(1).clamp(1e-15, 1.0)
    confusion = _confusion(y, pred)
    out = {
        "valid_loss": F.cross_entropy(logits, labels, label_smoothing=label_smoothing).item(),
        "accuracy": correct,
        "error_rate": 1.0 - correct,
        "log_loss": (-p_true.log()).mean().item(),
        "f1_macro": f1_macro(confusion),
        "mcc": mcc(confusion),
        "kappa_quadratic": quadratic_kappa(confusion),
    }
    if positive_index is not None:
        out["auc"] = binary_auc(probs[:, positive_index], labels == positive_index)
    return out


def _confusion(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Counts [true, predicted] over the classes that occur in either (scikit-learn's label set)."""
    labels, idx = np.unique(np.concatenate([y, pred]), return_inverse=True)
    n = len(labels)
    return np.bincount(idx[: len(y)] * n + idx[len(y):], minlength=n * n).reshape(n, n).astype(np.float64)


def f1_macro(confusion: np.ndarray) -> float:
    """Mean per-class F1 (a class never predicted nor present is not in the confusion matrix)."""
    if confusion.size == 0:
        return 0.0
    tp = np.diag(confusion)
    return float(np.mean(2 * tp / (confusion.sum(0) + confusion.sum(1))))


def mcc(confusion: np.ndarray) -> float:
    """Matthews correlation (multi-class, Gorodkin's form); 0 when one side holds a single class."""
    t, p, s, c = confusion.sum(1), confusion.sum(0), confusion.sum(), np.trace(confusion)
    denominator = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / denominator) if denominator else 0.0


def quadratic_kappa(confusion: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights over the classes' order; 0 when there is no disagreement by chance
    to compare with (predictions and labels both one class: no agreement beyond chance)."""
    n = len(confusion)
    weights = (np.arange(n)[:, None] - np.arange(n)[None, :]) ** 2
    expected = np.outer(confusion.sum(1), confusion.sum(0)) / max(confusion.sum(), 1.0)
    chance = float((weights * expected).sum())
    return 1.0 - float((weights * confusion).sum()) / chance if chance else 0.0


def binary_auc(scores: torch.Tensor, is_positive: torch.Tensor) -> float:
    """ROC AUC: the probability that a positive outranks a negative, ties counting half (Mann-Whitney U from
    average ranks); NaN when one class is absent."""
    pos = np.asarray(is_positive.numpy() if isinstance(is_positive, torch.Tensor) else is_positive, dtype=bool)
    if pos.all() or not pos.any():
        return math.nan
    s = np.asarray(scores.numpy() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    ranks = (last - (counts - 1) / 2.0)[inverse]  # average 1-based rank of each tie group
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))

"""The validation metric's bootstrap interval, as pure functions (no Ray, no model)."""

import math

import numpy as np
import pytest
import torch

from visionsweep.search.refit import bootstrap_interval, metric_value, refit_arrays
from visionsweep.trainables.metrics import classification_metrics


def _probs(correct: np.ndarray, labels: np.ndarray, classes: int = 3) -> np.ndarray:
    """Probabilities whose argmax is the label where `correct`, another class elsewhere."""
    pred = np.where(correct, labels, (labels + 1) % classes)
    p = np.full((len(labels), classes), 0.1 / (classes - 1))
    p[np.arange(len(labels)), pred] = 0.9
    return p


def test_accuracy_interval_matches_the_binomial_standard_error():
    n, acc = 400, 0.8
    labels = np.arange(n) % 3
    correct = np.arange(n) < int(n * acc)
    lo, hi = bootstrap_interval(labels, _probs(correct, labels), metric="accuracy")
    half = 1.96 * math.sqrt(acc * (1 - acc) / n)  # 0.039
    assert lo < acc < hi
    assert abs((hi - lo) / 2 - half) < 0.006, (lo, hi, half)
    err = bootstrap_interval(labels, _probs(correct, labels), metric="error_rate")
    assert err == pytest.approx((1 - hi, 1 - lo), abs=1e-9)  # same resamples, mirrored


def test_the_interval_narrows_with_more_validation_images_and_is_seeded():
    widths = []
    for n in (50, 200, 800):
        labels = np.arange(n) % 2
        correct = (np.arange(n) % 10) < 9
        lo, hi = bootstrap_interval(labels, _probs(correct, labels, 2), metric="accuracy", seed=1)
        widths.append(hi - lo)
    assert widths[0] > 1.6 * widths[1] and widths[1] > 1.6 * widths[2] and widths[0] > 0.1  # ~1/sqrt(n)
    labels = np.arange(60) % 2
    p = _probs(np.arange(60) % 4 > 0, labels, 2)
    assert bootstrap_interval(labels, p, metric="accuracy", seed=3) == bootstrap_interval(
        labels, p, metric="accuracy", seed=3)


def test_auc_interval_brackets_the_auc_and_is_degenerate_for_a_perfect_ranking():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    score = labels + rng.normal(0, 0.8, 300)
    probs = np.stack([1 - 1 / (1 + np.exp(-score)), 1 / (1 + np.exp(-score))], 1)
    value = metric_value(labels, probs, metric="auc", positive_index=1)
    ref = classification_metrics(torch.from_numpy(np.log(probs)), torch.from_numpy(labels), positive_index=1)
    assert value == pytest.approx(ref["auc"])
    lo, hi = bootstrap_interval(labels, probs, metric="auc", positive_index=1, n_boot=500)
    assert lo < value < hi and 0.02 < hi - lo < 0.2
    perfect = np.stack([1 - labels, labels], 1).astype(float) * 0.8 + 0.1
    assert bootstrap_interval(labels, perfect, metric="auc", positive_index=1, n_boot=200) == (1.0, 1.0)


def test_loss_metrics_agree_with_the_training_metrics():
    rng = np.random.default_rng(2)
    logits = torch.from_numpy(rng.normal(size=(120, 4)))
    labels = torch.from_numpy(rng.integers(0, 4, 120))
    probs = logits.softmax(1).numpy()
    ref = classification_metrics(logits, labels, positive_index=None, label_smoothing=0.1)
    for metric in ("accuracy", "error_rate", "log_loss", "valid_loss"):
        value = metric_value(labels.numpy(), probs, metric=metric, label_smoothing=0.1)
        assert value == pytest.approx(ref[metric], rel=1e-5), metric
        lo, hi = bootstrap_interval(labels.numpy(), probs, metric=metric, label_smoothing=0.1, n_boot=300)
        assert lo <= value <= hi, metric


def test_refit_trains_on_train_plus_valid_and_keeps_valid_for_the_loop():
    arrays = {"x_train": np.zeros((5, 4, 4, 3), np.uint8), "y_train": np.zeros(5, np.int64),
              "x_valid": np.ones((2, 4, 4, 3), np.uint8), "y_valid": np.ones(2, np.int64)}
    out = refit_arrays(arrays)
    assert out["x_train"].shape[0] == 7 and out["y_train"].tolist() == [0] * 5 + [1] * 2
    assert out["x_valid"] is arrays["x_valid"]

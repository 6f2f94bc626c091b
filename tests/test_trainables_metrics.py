"""Validation metrics: the numbers a Kaggle leaderboard would give for the same predictions."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from visionsweep.trainables.config import METRIC_MODES, METRICS, resolve_metric
from visionsweep.trainables.metrics import binary_auc, classification_metrics


def test_auc_is_the_probability_a_positive_outranks_a_negative_ties_counting_half():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 1)  # many ties
    pos = rng.random(300) < 0.4
    pairs = scores[pos][:, None] - scores[~pos][None, :]
    expected = ((pairs > 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size
    assert binary_auc(torch.from_numpy(scores), torch.from_numpy(pos)) == pytest.approx(expected)
    assert math.isnan(binary_auc(torch.from_numpy(scores), torch.ones(300, dtype=torch.bool)))


def test_metrics_match_their_definitions_on_real_predictions():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    logits = torch.from_numpy(rng.normal(size=(200, 4)) + 2.0 * np.eye(4)[labels])
    m = classification_metrics(logits, torch.from_numpy(labels), positive_index=None)
    probs = logits.softmax(1).numpy()
    assert m["accuracy"] == pytest.approx((probs.argmax(1) == labels).mean())
    assert m["error_rate"] == pytest.approx(1 - m["accuracy"])
    assert m["log_loss"] == pytest.approx(log_loss(labels, probs, labels=range(4)), rel=1e-6)
    assert m["valid_loss"] == pytest.approx(m["log_loss"], rel=1e-5)
    assert "auc" not in m and 0 < m["f1_macro"] < 1 and 0 < m["mcc"] < 1


def test_perfect_predictions_score_one_and_quadratic_kappa_punishes_far_misses_more():
    labels = torch.arange(5).repeat(10)
    perfect = classification_metrics(torch.eye(5)[labels] * 10, labels, positive_index=None)
    assert perfect["accuracy"] == perfect["f1_macro"] == perfect["mcc"] == pytest.approx(1.0)
    assert perfect["kappa_quadratic"] == pytest.approx(1.0)
    near = labels.clone()
    near[:10] = (labels[:10] + 1) % 5  # the same number of misses, ...
    far = labels.clone()
    far[:10] = (labels[:10] + 3) % 5   # ... but further away on the ordered scale
    k_near = classification_metrics(torch.eye(5)[near] * 10, labels, positive_index=None)["kappa_quadratic"]
    k_far = classification_metrics(torch.eye(5)[far] * 10, labels, positive_index=None)["kappa_quadratic"]
    assert k_far < k_near < 1.0


def test_every_metric_has_a_direction_and_auc_needs_two_classes():
    assert set(METRICS) == {"auto", *METRIC_MODES}
    assert resolve_metric("kappa_quadratic", 5) == ("kappa_quadratic", "max")
    assert resolve_metric("auto", 2) == ("auc", "max")
    from visionsweep.datasets import DataError
    with pytest.raises(DataError, match="binary"):
        resolve_metric("auc", 3)

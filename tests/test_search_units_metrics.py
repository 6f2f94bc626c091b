"""The two metrics a binary Kaggle task is scored on, against scikit-learn's own functions on the same predictions:
ROC AUC of the positive class's probability (either class index as the positive one) and log loss. The
existing tests/test_trainables_metrics.py checks AUC against its pairwise definition and log loss on 4 classes."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from visionsweep.trainables.metrics import binary_auc, classification_metrics


def _binary(seed=0, n=257):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = rng.normal(size=(n, 2)) + 1.2 * np.eye(2)[labels]  # informative, far from perfect
    return torch.from_numpy(logits), torch.from_numpy(labels)


@pytest.mark.parametrize("positive_index", [0, 1])
def test_auc_is_sklearns_roc_auc_of_the_positive_class_probability(positive_index):
    logits, labels = _binary()
    m = classification_metrics(logits, labels, positive_index=positive_index)
    probs = logits.float().double().softmax(1).numpy()  # the metrics read float32 logits
    expected = roc_auc_score(labels.numpy() == positive_index, probs[:, positive_index])
    assert m["auc"] == pytest.approx(expected, abs=1e-12)
    assert 0.6 < m["auc"] < 0.95  # a non-trivial case: not 0.5, not 1


def test_the_auc_is_the_same_whichever_class_is_positive_for_two_classes():
    logits, labels = _binary(seed=3)
    a0 = classification_metrics(logits, labels, positive_index=0)["auc"]
    a1 = classification_metrics(logits, labels, positive_index=1)["auc"]
    assert a0 == pytest.approx(a1, abs=1e-12)  # p(0) = 1 - p(1): the same ranking, mirrored


def test_binary_auc_matches_sklearn_with_ties_and_float32_scores():
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(400), 2).astype(np.float32)
    positive = rng.random(400) < 0.3
    assert binary_auc(torch.from_numpy(scores), torch.from_numpy(positive)) == pytest.approx(
        roc_auc_score(positive, scores), abs=1e-12)
    assert binary_auc(scores, positive.tolist()) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)


def test_auc_is_nan_when_the_validation_set_holds_one_class():
    logits, _ = _binary()
    m = classification_metrics(logits, torch.ones(len(logits), dtype=torch.long), positive_index=1)
    assert math.isnan(m["auc"])


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_log_loss_matches_sklearn(seed):
    logits, labels = _binary(seed)
    m = classification_metrics(logits, labels, positive_index=1)
    probs = logits.float().double().softmax(1).numpy()  # the metrics read float32 logits
    assert m["log_loss"] == pytest.approx(log_loss(labels.numpy(), probs, labels=[0, 1]), rel=1e-9)
    assert m["log_loss"] == pytest.approx(log_loss(labels.numpy(), probs[:, 1]), rel=1e-9)  # Kaggle's 1-column form


def test_log_loss_clips_confident_mistakes_like_kaggle_does():
    logits = torch.tensor([[60.0, -60.0], [-60.0, 60.0]])  # p(true) underflows to 0 for the first image
    labels = torch.tensor([1, 1])
    m = classification_metrics(logits, labels, positive_index=1)
    assert math.isfinite(m["log_loss"]) and m["log_loss"] == pytest.approx(-math.log(1e-15) / 2, rel=1e-6)


def test_with_label_smoothing_log_loss_stays_the_comparable_score():
    logits, labels = _binary(seed=5)
    smooth = classification_metrics(logits, labels, positive_index=1, label_smoothing=0.2)
    plain = classification_metrics(logits, labels, positive_index=1)
    probs = logits.float().double().softmax(1).numpy()  # the metrics read float32 logits
    assert smooth["log_loss"] == pytest.approx(log_loss(labels.numpy(), probs), rel=1e-9) == plain["log_loss"]
    assert smooth["valid_loss"] != pytest.approx(plain["valid_loss"], rel=1e-3)  # what was optimised differs


def _multiclass(seed, n, classes, skill):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes)) + skill * np.eye(classes)[labels]
    return torch.from_numpy(logits), torch.from_numpy(labels)


@pytest.mark.parametrize("seed,n,classes,skill", [(0, 300, 5, 1.5), (1, 40, 3, 0.5), (2, 200, 10, 3.0),
                                                  (3, 12, 4, 0.0), (4, 500, 2, 1.0)])
def test_f1_mcc_and_quadratic_kappa_match_sklearn(seed, n, classes, skill):
    from sklearn.metrics import cohen_kappa_score, f1_score, matthews_corrcoef

    logits, labels = _multiclass(seed, n, classes, skill)
    m = classification_metrics(logits, labels, positive_index=None)
    y, pred = labels.numpy(), logits.float().double().softmax(1).argmax(1).numpy()
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y, pred), abs=1e-12)
    assert m["kappa_quadratic"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"), abs=1e-12)


def test_metrics_on_a_class_never_predicted_and_a_single_predicted_class_match_sklearn():
    from sklearn.metrics import f1_score, matthews_corrcoef

    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 2, 2, 0]), 3).double() * 5  # class 1 never predicted
    m = classification_metrics(logits, labels, positive_index=None)
    pred = [0, 0, 0, 2, 2, 0]
    assert m["f1_macro"] == pytest.approx(f1_score(labels.numpy(), pred, average="macro", zero_division=0), abs=1e-12)
    assert m["mcc"] == pytest.approx(matthews_corrcoef(labels.numpy(), pred), abs=1e-12)
    one = classification_metrics(torch.zeros(4, 3), torch.tensor([0, 1, 2, 1]), positive_index=None)
    assert one["mcc"] == 0.0 == matthews_corrcoef([0, 1, 2, 1], [0, 0, 0, 0])  # all predicted as one class
    both = classification_metrics(torch.zeros(3, 2), torch.tensor([0, 0, 0]), positive_index=None)
    assert both["kappa_quadratic"] == 0.0 and both["f1_macro"] == 1.0  # one class on both sides


def test_importing_the_metrics_loads_neither_sklearn_nor_scipy():
    import subprocess
    import sys

    # Every trial driver, Train controller and worker imports these: scikit-learn and scipy cost ~1 s there.
    code = ("import sys, visionsweep.trainables.ray_train, visionsweep.search.sweep; "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""bench/bench_compare.py: the paired bootstrap the search benchmark's verdicts rest on (pure numpy, no training)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_compare  # noqa: E402


def _labels(n_right: int, n: int = 200) -> np.ndarray:
    truth = np.array(["a", "b"] * (n // 2))
    pred = truth.copy()
    pred[n_right:] = np.where(truth[n_right:] == "a", "b", "a")
    return pred


def test_a_difference_of_one_test_image_is_within_noise_and_one_of_forty_is_not():
    truth = np.array(["a", "b"] * 100)
    one = bench_compare.compare("accuracy", truth, _labels(199), _labels(200))
    assert one.diff == pytest.approx(-0.005) and one.verdict == "within noise"
    assert one.lo < 0 <= one.hi
    many = bench_compare.compare("accuracy", truth, _labels(200), _labels(160))
    assert many.diff == pytest.approx(0.2) and many.verdict == "A higher" and many.p_below == 0
    assert bench_compare.compare("accuracy", truth, _labels(160), _labels(200)).verdict == "B higher"


def test_the_recipe_side_is_the_seed_best_on_the_test_set():
    truth = np.array(["a", "b"] * 100)
    seeds = {0: _labels(180), 1: _labels(190), 2: _labels(190)}
    assert bench_compare.best_run("accuracy", truth, seeds) == 1  # the first of the tied best
    c = bench_compare.compare("accuracy", truth, _labels(190), seeds[1])
    assert c.diff == 0 and c.lo == c.hi == 0 and c.p_below == 0  # the same predictions: no difference at all
    with pytest.raises(ValueError, match="accuracy or auc"):
        bench_compare.compare("log_loss", truth, seeds[0], seeds[1])


def test_auc_resamples_keep_both_classes_and_pair_the_images():
    rng = np.random.default_rng(0)
    truth = np.array([0] * 25 + [1] * 25)
    idx = bench_compare.stratified_resamples(truth, 500, rng)
    assert (truth[idx].sum(axis=1) == 25).all()  # class counts fixed: every resample has an AUC
    noisy = truth + rng.normal(0, 0.6, size=50)
    c = bench_compare.compare("auc", truth, noisy, noisy)
    assert c.diff == 0 and c.lo == c.hi == 0 and c.verdict == "within noise"
    # The vectorised AUC is scikit-learn's on every resample, ties included.
    tied = np.round(noisy, 1)
    assert np.allclose(bench_compare._scores("auc", truth, tied, idx[:50]),
                       [roc_auc_score(truth[row], tied[row]) for row in idx[:50]])
    assert c.score_a == pytest.approx(roc_auc_score(truth, noisy))

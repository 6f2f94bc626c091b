"""ProvisionalASHA (search/asha.py): Ray Tune's own ASHA scheduler fed epoch results as Tune feeds them; the first
trial to reach a rung passes it provisionally and is stopped once the rung's later results put it below the cutoff.
No cluster: the scheduler's decisions are a function of the results it is given."""

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from visionsweep.search.asha import ProvisionalASHA

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def scheduler(cls=ProvisionalASHA, mode="max", trials="ab", max_t=5):
    """Rungs at epochs 2 and 4 of 5 (grace 2, factor 2: a sweep with a pretrained backbone), metric accuracy."""
    s = cls(time_attr="epoch", max_t=max_t, grace_period=2, reduction_factor=2, metric="accuracy", mode=mode)
    for t in trials:
        s.on_trial_add(None, trial(t))
    return s


def trial(trial_id):
    return SimpleNamespace(trial_id=trial_id)  # what ASHA reads of a Trial


def report(s, trial_id, epoch, value):
    return s.on_trial_result(None, trial(trial_id), {"epoch": epoch, "accuracy": value})


def test_the_first_to_reach_a_rung_is_stopped_once_a_better_trial_records_there():
    # The textures sweep seen: the from-scratch recipe (a) reaches epoch 2 first at 0.52; the pretrained recipe
    # (b) gets there later at 1.00. Ray's ASHA lets a run all its epochs; here a stops at its next result.
    for cls, expected in ((ASHAScheduler, CONTINUE), (ProvisionalASHA, STOP)):
        s = scheduler(cls)
        assert report(s, "a", 1, 0.40) == CONTINUE
        assert report(s, "a", 2, 0.52) == CONTINUE  # nothing to compare with at the rung
        assert report(s, "b", 1, 0.90) == CONTINUE
        assert report(s, "b", 2, 1.00) == CONTINUE
        assert report(s, "a", 3, 0.55) == expected, cls.__name__


def test_a_first_arrival_that_stays_in_the_top_half_runs_on():
    s = scheduler(trials="abc")
    assert report(s, "a", 2, 0.90) == CONTINUE
    assert report(s, "b", 2, 0.70) == STOP      # judged against a: below the cutoff, as in Ray's ASHA
    assert report(s, "a", 3, 0.91) == CONTINUE  # cutoff of {0.90, 0.70} is 0.80: a stays
    assert report(s, "c", 2, 0.95) == CONTINUE
    assert report(s, "a", 4, 0.93) == CONTINUE  # cutoff of {0.90, 0.70, 0.95} is 0.90: a is on it, stays


def test_probation_ends_at_a_rung_passed_against_others_and_lasts_for_a_free_pass():
    s = scheduler(trials="abcdef", max_t=9)  # rungs at epochs 2, 4 and 8
    assert report(s, "a", 2, 0.60) == CONTINUE  # free pass at rung 2
    assert report(s, "b", 2, 0.55) == STOP
    assert report(s, "c", 2, 0.58) == CONTINUE  # cutoff of {0.60, 0.55}: 0.575
    assert report(s, "c", 4, 0.70) == CONTINUE  # free pass at rung 4
    assert report(s, "a", 3, 0.62) == CONTINUE  # rung 2's cutoff is now 0.58: a is above it
    assert report(s, "a", 4, 0.75) == CONTINUE  # judged against c at rung 4 and above: its rung-2 pass stands
    for t, value in zip("def", (0.90, 0.95, 0.97)):
        assert report(s, t, 2, value) == CONTINUE
    # Rung 2's cutoff is now 0.75: a (0.60 there) earned its place at rung 4 and trains on; c, which passed rung 4
    # with nothing to compare against, is below rung 4's cutoff (0.725 of {0.70, 0.75}) and stops.
    assert report(s, "a", 5, 0.76) == CONTINUE
    assert report(s, "c", 5, 0.71) == STOP


@pytest.mark.parametrize("mode", ["max", "min"])
def test_a_loss_metric_is_compared_the_right_way_round(mode):
    worse, better = (0.5, 0.9) if mode == "max" else (0.9, 0.5)
    s = scheduler(mode=mode)
    assert report(s, "a", 2, worse) == CONTINUE
    assert report(s, "b", 2, better) == CONTINUE
    assert report(s, "a", 3, worse) == STOP

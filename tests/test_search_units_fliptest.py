"""search/fliptest.py: --search-flip's paired test of the recipe with and without horizontal flips, as pure logic."""

from visionsweep.search.config import SearchConfig
from visionsweep.search.fliptest import MIN_TRIALS, FlipTest, flips_tested, twin_wins


def test_the_twin_wins_only_beyond_one_standard_error():
    # digits (288 validation images): the recipe 0.944 with flips, 0.972 without (2026-12-07, seed 2): SE 0.017
    assert twin_wins(0.944, 0.972, 288)
    # the held-aside photos (120 images): 0.858 with, 0.867 without: within noise, flips stay (the data's setting)
    assert not twin_wins(0.858, 0.867, 120)
    assert not twin_wins(0.97, 0.95, 288)  # with flips ahead
    assert not twin_wins(1.0, 1.0, 90) and not twin_wins(0.5, 0.9, 0)
    assert not twin_wins(0.99, 1.0, 100)  # a one-image gap is never enough, even where both are near 1


def _result(epoch: int, accuracy: float) -> dict:
    return {"epoch": epoch, "accuracy": accuracy}


def test_the_pair_runs_with_then_without_flips_and_its_verdict_sets_the_later_trials():
    test = FlipTest(pair=1, n_valid=288, judged=(1, 2, 5))
    config = {"backbone": "resnet18", "max_lr": {"resnet18": 3e-3}}
    assert test.assign("t1", config)["flip"] is True  # before the pair: the data's setting
    assert test.assign("t2", config) == {**config, "flip": True}  # the recipe
    assert test.assign("t3", config)["flip"] is False  # its twin
    assert test.assign("t4", {})["flip"] is True  # no verdict yet
    assert test.assign("t2", config)["flip"] is True  # asked again: the same answer
    assert test.observe("t1", _result(5, 0.99)) is None  # not a pair member
    assert test.observe("t2", _result(1, 0.60)) is None  # one member alone decides nothing
    assert test.observe("t3", _result(3, 0.95)) is None  # epoch 3 is mid-cycle: not judged
    line = test.observe("t3", _result(1, 0.80))
    assert "without them" in line and "epoch 1" in line and "288 images" in line
    assert test.assign("t5", {})["flip"] is False
    assert test.observe("t2", _result(1, 0.60)) is None  # nothing new in common
    # at the end both are level: the verdict goes back to the data's setting for the trials after
    test.observe("t2", _result(5, 0.95))
    assert "with them" in test.observe("t3", _result(5, 0.955)) and test.verdict is True
    assert test.assign("t6", {})["flip"] is True and test.assign("t5", {})["flip"] is False
    assert test.observe("t3", None) is None and test.observe("t3", {"epoch": 5}) is None
    assert test.observe("t3", _result(5, float("nan"))) is None


def test_by_default_flips_are_tested_in_sweeps_long_enough_on_data_that_keeps_them():
    def default(data_flip=True, vertical_flip=False, recipe_first=True, **options):
        sc = SearchConfig(name="s", **options)
        return flips_tested(sc.search_flip, data_flip=data_flip, vertical_flip=vertical_flip, recipe_first=recipe_first,
                      planned_trials=sc.planned_trials)

    assert SearchConfig(name="s").search_flip is None and SearchConfig(name="s").trials >= MIN_TRIALS
    assert default()  # the default sweep: 20 trials, flips on in the data
    assert not default(trials=MIN_TRIALS - 1)  # the twin would be more than a tenth of the trials
    assert not default(trials=40, epochs=5, epoch_budget=5 * (MIN_TRIALS - 1))  # the budget pays for 9 whole trials
    assert default(trials=40, epochs=5, epoch_budget=5 * MIN_TRIALS)
    assert not default(data_flip=False)  # --no-flip: the user knows
    assert not default(vertical_flip=True)  # --vertical-flip: every flip and turn is valid
    assert not default(recipe_first=False)  # no recipe trial to pair
    # Asked for, or refused, the answer is the user's.
    assert flips_tested(True, data_flip=True, vertical_flip=False, recipe_first=True, planned_trials=2)
    assert not flips_tested(False, data_flip=True, vertical_flip=False, recipe_first=True, planned_trials=100)

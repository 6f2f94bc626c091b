"""When a sweep starts its next trial (search/admission.py): under a trial-epoch budget, while the epochs trained plus
a whole schedule for each running trial leave room for one more (the epochs early stopping saves buy more trials);
with a trial started ahead of the free slots, only once the first wave holds the slots (its worker groups placed, or
an epoch reported). The account survives Tune's save and restore (`--resume`). Driven with a real OptunaSearch, as
Tune drives it; the count of placed worker groups against the session's real Ray cluster."""

import pickle
import subprocess
import sys

import optuna
import pytest
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from visionsweep.search.admission import Admission, PlacedWorkers

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(trial):  # module level: the searcher is pickled on save, as Tune saves it
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)


def _budget(budget=12, epochs=4, slots=None, placed=None):
    inner = OptunaSearch(space=_space, metric="accuracy", mode="max", sampler=optuna.samplers.RandomSampler(seed=0))
    return Admission(inner, epochs=epochs, budget=budget, slots=slots, placed=placed)


def _run(search, trial_id, epochs, *, complete=True):
    for epoch in range(1, epochs + 1):
        search.on_trial_result(trial_id, {"epoch": epoch, "accuracy": 0.1 * epoch, "training_iteration": epoch})
    if complete:
        search.on_trial_complete(trial_id, {"epoch": epochs, "accuracy": 0.1 * epochs})


def test_trials_start_while_a_whole_schedule_still_fits_and_saved_epochs_buy_more_trials():
    search = _budget(budget=12, epochs=4)
    assert all(isinstance(search.suggest(t), dict) for t in "abc")  # 3 x 4 = 12: the budget is committed
    assert search.suggest("d") is None                # not now: the running trials may still use all of it
    _run(search, "a", 1)                              # stopped early after 1 epoch: 1 + 2 x 4 = 9, no room for 4
    assert search.suggest("d") is None
    _run(search, "b", 1)                              # 1 + 1 + 4 = 6: the epochs ASHA saved buy trial d
    assert isinstance(search.suggest("d"), dict)
    assert search.committed() == 1 + 1 + 4 + 4 and search.live == {"c", "d"}


def test_the_search_finishes_when_no_whole_schedule_fits_and_nothing_runs():
    search = _budget(budget=10, epochs=4)
    assert isinstance(search.suggest("a"), dict) and isinstance(search.suggest("b"), dict)
    assert search.suggest("c") is None                # 8 committed + 4 > 10
    _run(search, "a", 4)
    assert search.suggest("c") is None                # b may still train 4: 4 + 4 + 4 > 10
    _run(search, "b", 2)                              # b stopped after 2: 6 trained, a full trial would make 10
    assert isinstance(search.suggest("c"), dict)
    _run(search, "c", 4)                              # 10 trained: nothing fits any more
    assert search.suggest("d") == Searcher.FINISHED
    assert search.trained == {"a": 4, "b": 2, "c": 4}


def test_the_budget_account_survives_tunes_save_and_restore(tmp_path):
    """As Tune saves and restores a sweep's search (SearchGenerator.save_to_dir / restore_from_dir), with the
    concurrency limiter Tune puts around it."""
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    search = _budget(budget=12, epochs=4)
    generator = SearchGenerator(ConcurrencyLimiter(search, max_concurrent=3))
    for t in "abc":
        assert isinstance(search.suggest(t), dict)
    _run(search, "a", 2)
    _run(search, "b", 1, complete=False)              # running when the sweep was interrupted
    generator.save_to_dir(str(tmp_path), session_str="s")
    restored = _budget(budget=99, epochs=9)
    SearchGenerator(ConcurrencyLimiter(restored, max_concurrent=3)).restore_from_dir(str(tmp_path))
    assert (restored.budget, restored.epochs) == (12, 4)
    assert restored.trained == {"a": 2, "b": 1, "c": 0} and restored.live == {"b", "c"}
    assert restored.committed() == search.committed() == 2 + 4 + 4
    assert restored.suggest("d") is None              # 10 + 4 > 12: as before the interruption
    _run(restored, "b", 1)                            # the resumed trial b ends where it was
    assert isinstance(restored.suggest("d"), dict)    # 2 + 1 + 4 = 7: one more whole trial fits


def test_the_trial_started_ahead_waits_until_the_first_wave_trains_then_one_waits_at_a_time():
    search = _budget(budget=None, epochs=3, slots=2)  # 2 slots; Tune keeps 3 trials started
    assert isinstance(search.suggest("a"), dict) and isinstance(search.suggest("b"), dict)
    assert search.suggest("c") is None                # a and b are still starting: c must not take their slot
    search.on_trial_result("a", {"epoch": 1, "accuracy": 0.5, "training_iteration": 1})
    assert search.suggest("c") is None                # b has not trained yet
    search.on_trial_result("b", {"epoch": 1, "accuracy": 0.4, "training_iteration": 1})
    assert isinstance(search.suggest("c"), dict)      # both slots held: c starts up and waits for one
    _run(search, "a", 3)
    assert isinstance(search.suggest("d"), dict)      # from now on the next trial starts as soon as one ends
    assert search.live == {"b", "c", "d"}


def test_the_trial_started_ahead_starts_up_once_the_first_wave_holds_its_workers_before_any_epoch():
    """One-epoch trials report only when they end: waiting for an epoch, the second trial of a sweep started up
    only after the first had ended (bench_sweep_overhead: 13 s of start-up paid in turn)."""
    placed = [0]
    search = _budget(budget=None, epochs=1, slots=1, placed=lambda: placed[0])
    assert isinstance(search.suggest("a"), dict)
    assert search.suggest("b") is None                # a's workers are not placed yet: b must not take its slot
    placed[0] = 1
    assert isinstance(search.suggest("b"), dict)      # a holds the slot: b starts up while a trains
    assert search.warmed                              # and stays open: the slots go in Tune's order from now on


def test_placed_worker_groups_count_the_ones_asking_cpus_or_gpus_since_the_sweep_began(ray_cluster):
    import time

    import ray
    from ray.tune.execution.placement_groups import resource_dict_to_pg_factory
    from ray.util.placement_group import placement_group, remove_placement_group

    from visionsweep.search.sweep import driver_resources

    earlier = placement_group([{"CPU": 1.0}])          # a group from before the sweep (a previous run's)
    ray.get(earlier.ready(), timeout=60)
    groups = [earlier]
    other_job = subprocess.Popen(  # another driver on the same cluster, holding a CPU group of its own
        [sys.executable, "-c", "import time, ray; from ray.util.placement_group import placement_group; ray.init(); "
         "pg = placement_group([{'CPU': 1.0}]); ray.get(pg.ready()); print('placed', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        placed = PlacedWorkers()
        assert placed() == 0
        assert other_job.stdout.readline().strip() == "placed"
        for resources in ({"visionsweep_trial": 1.0}, {"CPU": 4.0}):  # trial drivers: as the sweep asks
            groups.append(resource_dict_to_pg_factory(driver_resources(resources))())
            ray.get(groups[-1].ready(), timeout=60)
        workers = placement_group([{"CPU": 1.0}])      # a trial's Train workers
        groups.append(workers)
        ray.get(workers.ready(), timeout=60)
        time.sleep(0.3)
        assert placed() == 1
    finally:
        other_job.kill()
        other_job.wait()
        for group in groups:
            remove_placement_group(group)


def test_a_sweep_saved_before_the_placed_count_existed_resumes():
    """Tune pickles the searcher when the sweep starts; --resume unpickles it without __init__."""
    search = _budget(budget=None, epochs=3, slots=1)
    del search.__dict__["placed"]                     # what an older sweep's pickle holds
    search = pickle.loads(pickle.dumps(search))
    assert isinstance(search.suggest("a"), dict) and search.suggest("b") is None


def test_a_first_wave_trial_that_fails_before_its_first_epoch_frees_its_slot():
    search = _budget(budget=None, epochs=3, slots=1)
    assert isinstance(search.suggest("a"), dict) and search.suggest("b") is None
    search.on_trial_complete("a", None, error=True)
    assert isinstance(search.suggest("b"), dict)

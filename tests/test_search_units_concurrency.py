"""How many trials run at once (search/sweep.py `concurrency`): from the cluster's CPUs and GPUs, the workers per
trial and the resources per worker; never more than the trials; a clear error when not even one trial fits."""

import pytest

from visionsweep.datasets import DataError
from visionsweep.search.config import SearchConfig
from visionsweep.search.sweep import concurrency


def _n(resources, *, cluster_gpus=None, **options):
    sc = SearchConfig(name="s", **{"trials": 20, **options})
    gpus = resources.get("GPU", 0.0) if cluster_gpus is None else cluster_gpus
    return concurrency(sc, [resources], sc.gpus_per_worker(gpus))


@pytest.mark.parametrize("resources, options, expected", [
    ({"CPU": 4.0}, {}, 4),                                            # one 1-CPU worker per trial
    ({"CPU": 2.0}, {}, 2),                                            # this machine
    ({"CPU": 7.0}, {"workers_per_trial": 2}, 3),                      # 2 workers x 1 CPU: 7 // 2
    ({"CPU": 8.0}, {"cpus_per_worker": 2.0}, 4),
    ({"CPU": 9.0}, {"workers_per_trial": 2, "cpus_per_worker": 1.5}, 3),
    ({"CPU": 16.0, "GPU": 2.0}, {}, 2),                               # GPUs are the limit: one per worker
    ({"CPU": 3.0, "GPU": 8.0}, {}, 3),                                # CPUs are the limit
    ({"CPU": 16.0, "GPU": 1.0}, {"gpus_per_trial": 0.5}, 2),          # two trials share a GPU
    ({"CPU": 16.0, "GPU": 2.0}, {"gpus_per_trial": 0.25}, 8),
    ({"CPU": 16.0, "GPU": 8.0}, {"workers_per_trial": 2}, 4),         # 2 GPUs per trial
    ({"CPU": 16.0, "GPU": 4.0}, {"gpus_per_trial": 0}, 16),           # --cpu on a GPU cluster: GPUs ignored
    ({"CPU": 64.0}, {"trials": 3}, 3),                                # never more than the trials
])
def test_trials_at_once_from_the_clusters_resources(resources, options, expected):
    assert _n(resources, **options) == expected


def test_max_concurrent_wins_over_the_cluster():
    assert _n({"CPU": 64.0}, max_concurrent=2) == 2
    assert _n({"CPU": 1.0}, max_concurrent=2) == 2  # the user's word, even above what fits
    assert _n({}, max_concurrent=1) == 1            # and no error for an empty resource view


def test_on_the_local_cluster_a_trial_that_fits_no_node_is_an_error_even_with_max_concurrent():
    """--gpus-per-trial 1 --max-concurrent 4 on cluster.yaml's head (no GPU node yet) waits for the autoscaler;
    the local cluster visionsweep starts cannot grow, so there the trial's workers would wait for ever."""
    sc = SearchConfig(name="s", gpus_per_trial=1.0, max_concurrent=4)
    assert concurrency(sc, [{"CPU": 4.0, "visionsweep_trial": 1.0}], 1.0, local=False) == 4
    with pytest.raises(DataError, match=r"one trial needs 1 worker\(s\) x 1 CPU and 1 GPU, but the Ray cluster has "
                                        r"2 CPU / 0 GPU; .*local Ray cluster cannot add nodes"):
        concurrency(sc, [{"CPU": 2.0}], 1.0, local=True)
    with pytest.raises(DataError, match=r"on a cluster that adds nodes for waiting trials, give --max-concurrent"):
        concurrency(SearchConfig(name="s", gpus_per_trial=1.0), [{"CPU": 4.0}], 1.0, local=False)


@pytest.mark.parametrize("resources, options, words", [
    ({"CPU": 1.0}, {"workers_per_trial": 2},
     "one trial needs 2 worker(s) x 1 CPU, but the Ray cluster has 1 CPU / 0 GPU; lower --workers-per-trial or "
     "--gpus-per-trial"),
    ({"CPU": 3.0}, {"cpus_per_worker": 4.0}, "one trial needs 1 worker(s) x 4 CPU, but the Ray cluster has 3 CPU"),
    ({"CPU": 16.0, "GPU": 1.0}, {"workers_per_trial": 2},
     "one trial needs 2 worker(s) x 1 CPU and 1 GPU, but the Ray cluster has 16 CPU / 1 GPU"),
    ({}, {}, "but the Ray cluster has 0 CPU / 0 GPU"),
])
def test_a_trial_that_cannot_fit_is_one_clear_error(resources, options, words):
    with pytest.raises(DataError) as err:
        _n(resources, **options)
    assert words in str(err.value)


def test_asking_for_gpus_on_a_cpu_cluster_says_the_cluster_has_none():
    with pytest.raises(DataError, match=r"and 1 GPU, but the Ray cluster has 8 CPU / 0 GPU"):
        _n({"CPU": 8.0}, gpus_per_trial=1)


@pytest.mark.parametrize("resources, options, expected", [
    ({"CPU": 16.0, "GPU": 1.0}, {"gpus_per_trial": 0.2}, 5),  # 1.0 // 0.2 == 4.0 in floats
    ({"CPU": 16.0, "GPU": 1.0}, {"gpus_per_trial": 0.1}, 10),
    ({"CPU": 1.0}, {"cpus_per_worker": 0.2}, 5),
])
def test_fractions_of_a_device_count_as_ray_counts_them(resources, options, expected):
    assert _n(resources, **options) == expected


@pytest.mark.parametrize("options, local, limit, expected", [
    ({}, True, 2, 3),                            # a local cluster: one trial starts ahead of the free slots
    ({}, False, 2, 2),                           # a cluster: its waiting workers would make an autoscaler grow it
    ({"start_ahead": True}, False, 2, 3),        # a fixed-size cluster, said so in the YAML
    ({"start_ahead": False}, True, 2, 2),
    ({"max_concurrent": 1}, True, 1, 1),         # the user's cap: a started trial would train beside the others
    ({"start_ahead": True, "max_concurrent": 2}, False, 2, 2),
    ({"trials": 2}, True, 2, 2),                 # every trial fits: nothing to start ahead
])
def test_trials_started_ahead_of_the_free_slots(options, local, limit, expected):
    from visionsweep.search.sweep import in_flight

    sc = SearchConfig(name="s", **{"trials": 20, **options})
    assert in_flight(sc, limit, local=local) == expected


def test_each_worker_of_a_trial_fits_on_one_node():
    """The cluster's totals overcount: two 3-CPU nodes hold two 2-CPU workers, not three."""
    sc = SearchConfig(name="s", trials=20, cpus_per_worker=2.0)
    assert concurrency(sc, [{"CPU": 3.0}, {"CPU": 3.0}], 0.0) == 2
    head, gpu_node = {"CPU": 4.0, "visionsweep_trial": 1.0}, {"CPU": 4.0, "GPU": 1.0}
    sc = SearchConfig(name="s", trials=20)
    assert concurrency(sc, [head, gpu_node, gpu_node], sc.gpus_per_worker(2.0)) == 2
    with pytest.raises(DataError, match=r"one trial needs 1 worker\(s\) x 4 CPU, but the Ray cluster has 6 CPU / "
                                        r"0 GPU \(each worker on one node; at most 3 CPU / 0 GPU on one node\)"):
        concurrency(SearchConfig(name="s", cpus_per_worker=4.0), [{"CPU": 3.0}, {"CPU": 3.0}], 0.0)

"""Clusters as users bring them: more than one node (a second raylet joins the session's head on this machine,
as `ray start --address` adds a machine), where each Train worker's CPUs must come from one node; and no
`visionsweep_trial` resource, where trial drivers must still take no CPU a worker needs."""

import json

import pytest

from conftest import extra_ray_node, run_cli

pytestmark = pytest.mark.slow

TINY = ["--backbone", "test_resnet", "--no-pretrained", "--cpu", "--epochs", "1", "--image-size", "16"]


def test_train_on_two_cpu_nodes_asks_no_worker_for_more_cpus_than_one_node_has(ray_cluster, demo_data, tmp_path):
    """The head has 4 CPUs, the second node 2: the lone worker gets the head's 4. A share of the cluster's 6 was
    a 6-CPU worker that no node could place, and `train` waited for ever (reproduced on a 4 + 2 CPU cluster)."""
    with extra_ray_node(num_cpus=2):
        res = run_cli("train", demo_data, *TINY, "--out", tmp_path / "r", timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["cpus_per_worker"] == 4.0
    assert (tmp_path / "r" / "best").is_dir() and (tmp_path / "r" / "metrics.csv").is_file()


def test_trial_drivers_start_with_every_cpu_taken_on_a_cluster_without_the_trial_resource(ray_cluster):
    """Every CPU held, as running trials' workers hold them: a trial driver must still start, so that a trial's
    workers never wait on the drivers' CPU shares (0.01 CPU each left a 2-CPU cluster 1.98 for two 1-CPU
    workers: the second trial waited for the first; seen on a `ray start --head --num-cpus 2` cluster)."""
    import ray
    from ray.tune.execution.placement_groups import resource_dict_to_pg_factory
    from ray.util.placement_group import placement_group, remove_placement_group

    from visionsweep.search.sweep import driver_resources

    cpus = ray.available_resources().get("CPU", 0.0)
    workers = placement_group([{"CPU": cpus}])
    ray.get(workers.ready(), timeout=60)
    driver = None
    try:
        resources = driver_resources({"CPU": cpus})  # the cluster as seen without visionsweep_trial
        assert resources.get("CPU", 0) == 0, resources
        driver = resource_dict_to_pg_factory(resources)()  # the group Tune asks for, for each trial's driver
        ray.get(driver.ready(), timeout=30)
    finally:
        for group in (driver, workers):
            if group is not None:
                remove_placement_group(group)

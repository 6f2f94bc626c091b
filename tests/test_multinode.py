"""A Ray cluster of more than one node (a second raylet joins the session's head on this machine, as `ray start
--address` adds a machine): each Train worker's CPUs must come from one node."""

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

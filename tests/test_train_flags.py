"""Before Ray starts: bad training flags exit 2 with one message and leave no run folder; the resource policy of
one run (CPU shares, more workers than the cluster has)."""

import pytest

from conftest import cli_in_process
from visionsweep.datasets import DataError
from visionsweep.trainables.config import TrainConfig
from visionsweep.trainables.ray_session import check_resources, share_cpus

TINY = ["--backbone", "test_resnet", "--no-pretrained", "--cpu", "--batch-size", "32"]


@pytest.mark.parametrize("flags, message", [
    (["--max-lr", "-0.1"], "--max-lr must be > 0, got -0.1"),
    (["--backbone", "resnet-18"], "is not a timm model name"),
    (["--aug", "1.5"], "--aug must be in [0, 1]"),
])
def test_bad_training_flags_exit_2_before_any_work(demo_data, tmp_path, flags, message):
    res = cli_in_process("train", demo_data, *TINY, *flags, "--out", tmp_path / "r")
    assert res.returncode == 2 and message in res.stderr
    assert not (tmp_path / "r").exists()


def test_a_lone_cpu_run_gets_an_equal_share_of_the_cpus():
    """Ray sets OMP_NUM_THREADS from a worker's CPUs: 1 CPU per worker left cores idle (bench: 0.6x)."""
    assert share_cpus(TrainConfig(workers=1), {"CPU": 4.0}).cpus_per_worker == 4.0
    assert share_cpus(TrainConfig(workers=2), {"CPU": 4.0}).cpus_per_worker == 2.0
    assert share_cpus(TrainConfig(workers=3), {"CPU": 4.0}).cpus_per_worker == 1.0
    assert share_cpus(TrainConfig(workers=1, use_gpu=True), {"CPU": 4.0, "GPU": 1.0}).cpus_per_worker == 1.0


def test_more_workers_or_gpus_than_the_cluster_has_is_a_clear_error():
    with pytest.raises(DataError, match=r"--workers 9 needs 9 CPU\(s\) but the Ray cluster has 4; lower --workers"):
        check_resources(TrainConfig(workers=9), {"CPU": 4.0})
    with pytest.raises(DataError, match=r"--workers 2 needs 2 GPU\(s\) but the Ray cluster has 0"):
        check_resources(TrainConfig(workers=2, use_gpu=True), {"CPU": 4.0})
    check_resources(TrainConfig(workers=4), {"CPU": 4.0})  # exactly enough

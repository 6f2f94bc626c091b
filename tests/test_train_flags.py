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
    (["--gpus-per-worker", "1"], "--cpu and --gpus-per-worker 1 contradict each other; drop one"),
])
def test_bad_training_flags_exit_2_before_any_work(demo_data, tmp_path, flags, message):
    res = cli_in_process("train", demo_data, *TINY, *flags, "--out", tmp_path / "r")
    assert res.returncode == 2 and message in res.stderr
    assert not (tmp_path / "r").exists()


def test_a_lone_cpu_run_gets_an_equal_share_of_the_cpus():
    """Ray sets OMP_NUM_THREADS from a worker's CPUs: 1 CPU per worker left cores idle (bench: 0.6x)."""
    assert share_cpus(TrainConfig(workers=1), [{"CPU": 4.0}]).cpus_per_worker == 4.0
    assert share_cpus(TrainConfig(workers=2), [{"CPU": 4.0}]).cpus_per_worker == 2.0
    assert share_cpus(TrainConfig(workers=3), [{"CPU": 4.0}]).cpus_per_worker == 1.0
    assert share_cpus(TrainConfig(workers=1, use_gpu=True), [{"CPU": 4.0, "GPU": 1.0}]).cpus_per_worker == 1.0


def test_a_cpu_share_places_every_worker_on_one_node():
    """Ray places a worker's CPUs on one node: shares of the cluster's total asked a 4 + 2 CPU cluster for one
    6-CPU worker, and `train` waited for ever (tests/test_multinode.py runs it)."""
    nodes = [{"CPU": 4.0}, {"CPU": 2.0}]
    assert share_cpus(TrainConfig(workers=1), nodes).cpus_per_worker == 4.0
    assert share_cpus(TrainConfig(workers=2), nodes).cpus_per_worker == 2.0   # 3 each: the second fits nowhere
    assert share_cpus(TrainConfig(workers=3), nodes).cpus_per_worker == 2.0
    assert share_cpus(TrainConfig(workers=4), nodes).cpus_per_worker == 1.0
    assert share_cpus(TrainConfig(workers=2), [{"CPU": 8.0}, {"CPU": 8.0}]).cpus_per_worker == 8.0
    assert share_cpus(TrainConfig(workers=1), [{"CPU": 3.5}, {}]).cpus_per_worker == 3.0


def test_a_worker_that_fits_on_no_node_is_a_clear_error():
    with pytest.raises(DataError, match=r"--workers 1: each worker needs 6 CPU on one node, and the Ray cluster's "
                                        r"nodes hold 0 such workers \(at most 4 CPU / 0 GPU on one node\)"):
        check_resources(TrainConfig(workers=1, cpus_per_worker=6.0), [{"CPU": 4.0}, {"CPU": 4.0}])
    gpu = TrainConfig(workers=2, use_gpu=True, cpus_per_worker=4.0)  # 2 GPUs in all, but one of them has no CPUs
    with pytest.raises(DataError, match=r"each worker needs 4 CPU \+ 1 GPU on one node, and the Ray cluster's "
                                        r"nodes hold 1 such workers"):
        check_resources(gpu, [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 1.0}, {"CPU": 8.0}])
    check_resources(gpu, [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}])


def test_more_workers_or_gpus_than_the_cluster_has_is_a_clear_error():
    with pytest.raises(DataError, match=r"--workers 9 needs 9 CPU\(s\) but the Ray cluster has 4; lower --workers"):
        check_resources(TrainConfig(workers=9), [{"CPU": 4.0}])
    with pytest.raises(DataError, match=r"--workers 2 needs 2 GPU\(s\) but the Ray cluster has 0"):
        check_resources(TrainConfig(workers=2, use_gpu=True), [{"CPU": 4.0}])
    check_resources(TrainConfig(workers=4), [{"CPU": 4.0}])  # exactly enough


def test_flags_are_the_config_fields_with_the_dataclasses_defaults():
    """Each flag lands on its dataclass field by name, typed by the field; its help shows the field's default."""
    import dataclasses

    from visionsweep.datasets import DatasetSpec
    from visionsweep.search.cli import build_parser
    from visionsweep.search.config import SearchConfig
    from visionsweep.search.flags import given_fields

    parser = build_parser()
    args = parser.parse_args(["train", "DATA", "--out", "r", "--max-lr", "1e-2", "--epochs", "3", "--no-pretrained",
                              "--vertical-flip", "--valid-pct", "0.3", "--layout", "folders"])
    assert given_fields(args) == {"max_lr": 0.01, "epochs": 3, "pretrained": False, "vertical_flip": True,
                                  "valid_pct": 0.3, "layout": "folders"}
    args = parser.parse_args(["sweep", "DATA", "--name", "s", "--backbones", "resnet18, test_resnet", "--keep",
                              "--epochs", "4", "--image-size", "32"])
    assert given_fields(args) == {"name": "s", "backbones": ["resnet18", "test_resnet"], "keep_all": True,
                                  "epochs": 4, "image_size": 32}
    # A field whose default is None (the program decides) takes --x and --no-x, and neither leaves it to the program.
    assert given_fields(parser.parse_args(["sweep", "DATA", "--no-search-flip"])) == {"search_flip": False}
    assert given_fields(parser.parse_args(["sweep", "DATA", "--search-flip"])) == {"search_flip": True}
    assert "search_flip" not in given_fields(parser.parse_args(["sweep", "DATA"]))
    fields = {c: {f.name for f in dataclasses.fields(c)} for c in (DatasetSpec, TrainConfig, SearchConfig)}
    for command in ("check", "train", "lr-find", "sweep", "predict"):
        sub = parser._subparsers._group_actions[0].choices[command]
        dests = sub.get_default("_config_fields")
        assert dests and all(any(d in f for f in fields.values()) for d in dests), (command, dests)
    helps = {a.dest: a.help for a in parser._subparsers._group_actions[0].choices["sweep"]._actions}
    assert helps["trials"].endswith(f"(default {SearchConfig.__dataclass_fields__['trials'].default})")
    assert helps["backbones"].endswith("(default " + ",".join(SearchConfig.__dataclass_fields__["backbones"].default)
                                       + ")")
    with pytest.raises(SystemExit):  # choices come from the config module's own list
        parser.parse_args(["sweep", "DATA", "--name", "s", "--searcher", "grid"])


def test_gpus_per_worker_asks_for_gpus_whatever_the_cluster_has_now():
    from visionsweep.search.api import _train_config

    cfg = _train_config({"gpus_per_worker": 0.5}, cpu=False, seed=None)
    assert cfg.use_gpu and cfg.gpus_per_worker == 0.5


def test_gpus_a_cluster_lacks_are_waited_for_only_where_it_can_grow():
    """An autoscaling cluster (cluster.yaml) starts without GPU nodes: a run that asks for GPUs waits for them, with
    a note. The local cluster visionsweep starts cannot grow: there the same request is an error, not a hang."""
    gpu, nodes = TrainConfig(workers=2, use_gpu=True), [{"CPU": 4.0}]
    notes = []
    check_resources(gpu, nodes, can_grow=True, log=notes.append)
    assert len(notes) == 1 and "has 0 GPU(s) now and this run asks for 2: its workers wait" in notes[0], notes
    with pytest.raises(DataError, match=r"--workers 2 needs 2 GPU\(s\) but the Ray cluster has 0"):
        check_resources(gpu, nodes, can_grow=False)
    with pytest.raises(DataError, match=r"--workers 9 needs 9 CPU"):  # CPUs for a CPU run: checked as before
        check_resources(TrainConfig(workers=9), nodes, can_grow=True)

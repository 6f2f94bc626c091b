"""Early stopping that fits one-cycle: the configuration that wins at full length is not stopped at a rung, although
under one long one-cycle (what the sweep ran before) it looks the worst at epoch 1.

On the demo digits (10 classes, 16 px, no augmentation), test_resnet at max LR 1e-2 is still warming up after epoch 1
of a 3-epoch one-cycle (accuracy ~0.3) while test_efficientnet at 3e-4 already scores ~0.8; at the end it is the
other way round (~0.98 vs ~0.88). ASHA at epoch 1 would drop the winner. The sweep restarts each trial's one-cycle
at the rungs, so each rung judges an annealed model. The sweep here is resource-bound to one training at a time (each
worker takes every CPU of the test cluster), with the second trial started ahead of the first one's end (it waits for
the first wave to hold its workers: the order stays Tune's), and ends when its trial-epoch budget is spent."""

import pytest
import ray
import torch

from visionsweep.datasets.load import load_dataset
from visionsweep.datasets.spec import spec_from_dict
from visionsweep.datasets.split import train_valid_arrays
from visionsweep.search.config import SearchConfig
from visionsweep.search.sweep import run_sweep
from visionsweep.trainables.config import TrainConfig
from visionsweep.trainables.ray_train import data_info
from visionsweep.trainables.worker import run_worker

pytestmark = pytest.mark.slow

LATE = ("test_resnet", 1e-2)       # the late bloomer
EARLY = ("test_efficientnet", 3e-4)  # good at epoch 1, plateaus lower


def _one_cycle_curve(data, spec, backbone, lr):
    arrays = train_valid_arrays(data, valid_pct=spec.valid_pct, seed=spec.seed)
    cfg = TrainConfig(backbone=backbone, max_lr=lr, aug=0.0, epochs=3, batch_size=32, image_size=16,
                      pretrained=False, seed=42)
    hist = run_worker(cfg, data_info(data), arrays, device=torch.device("cpu"), prepare_model=lambda m: m,
                      report=lambda *a: None, log=lambda m: None)
    return [h["accuracy"] for h in hist]


def test_the_configuration_that_wins_at_full_length_is_not_stopped_at_a_rung(ray_cluster, demo_data, tmp_path):
    spec = spec_from_dict({"root": demo_data})
    data = load_dataset(spec, log=lambda m: None)
    late, early = _one_cycle_curve(data, spec, *LATE), _one_cycle_curve(data, spec, *EARLY)
    # What makes the case: under one long one-cycle, worse after epoch 1, better at the end.
    assert late[0] < early[0] - 0.2 and late[-1] > early[-1] + 0.05, (late, early)

    cpus = ray.cluster_resources()["CPU"]
    sc = SearchConfig(name="late", storage=str(tmp_path), trials=5, epochs=3, seed=1,
                      epoch_budget=6,  # two whole trials: the budget, not --trials, ends this sweep
                      backbones=(EARLY[0], LATE[0]),  # trial 1 is the recipe on the first backbone: EARLY
                      lr_ranges={EARLY[0]: [EARLY[1]] * 2, LATE[0]: [LATE[1]] * 2}, aug_range=(0.0, 0.0),
                      cpus_per_worker=cpus, start_ahead=True,  # one training at a time, the next one started ahead
                      train={"image_size": 16, "batch_size": 32, "pretrained": False}, refit=0, top_k=1)
    lines = []
    board = run_sweep(data=data, sc=sc, spec=spec, log=lines.append)
    text = "\n".join(map(str, lines))
    assert "1 at a time (+1 starting ahead)" in text and "within 6 trial-epochs" in text, text
    assert sorted(board["backbone"]) == sorted(sc.backbones), board  # seed 1 samples the late bloomer second
    assert "[2 done, 0 running, 6/6 trial-epochs]" in text, text  # ended by its budget, not interrupted
    early = board[board["backbone"] == EARLY[0]].iloc[0]["trial_id"]
    late = board[board["backbone"] == LATE[0]].iloc[0]["trial_id"]
    # One training at a time, in Tune's order although the second trial was started ahead of the first one's end:
    # the recipe trial (EARLY) trains first, so the late bloomer is the one judged against it at the rung.
    row = lambda trial, epoch: text.index(f"{trial:<12} {epoch:>5}")  # noqa: E731  (an epoch row of the table)
    assert row(early, 3) < row(late, 1), text
    # Judged at the rung (epoch 1 of 3) against the trial that led under one-cycle there, it is not stopped: it runs
    # all its epochs and leads the leaderboard.
    best = board.iloc[0]
    assert best["backbone"] == LATE[0] and best["status"] == "done" and best["epochs"] == sc.epochs, board

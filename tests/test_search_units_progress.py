"""The sweep's console (search/progress.py), fed hand-made Tune trials and results the way Tune calls its callbacks:
the start line with the sampled values, one header then one row per epoch, the end lines (done / stopped early
by ASHA / FAILED) with the done / running / best summary. No Ray is started."""

import pickle
import re
from types import SimpleNamespace

import pytest

from visionsweep.datasets.console import say
from visionsweep.search.progress import EPOCH_COLUMNS, Progress, searched_values
from visionsweep.search.space import tune_sample


def trial(trial_id, status="RUNNING", backbone="resnet18", lr=3e-3, **extra):
    return SimpleNamespace(trial_id=trial_id, status=status, config=tune_sample(backbone, lr, aug=0.5, **extra))


def progress(metric="accuracy", mode="max", total=3, max_epochs=3):
    lines = []
    return Progress(metric=metric, mode=mode, total=total, max_epochs=max_epochs, log=lines.append), lines


def epoch(epoch_no, acc, *, train_loss=0.5, valid_loss=0.4, time_s=12.34, **more):
    return {"epoch": epoch_no, "train_loss": train_loss, "valid_loss": valid_loss, "accuracy": acc, "time_s": time_s,
            **more}


def test_searched_values_show_the_backbones_max_lr_and_the_rest():
    config = tune_sample("convnext_nano", 3e-3, aug=0.5, image_size=64, batch_size=32, freeze_epochs=1)
    assert searched_values(config) == "max_lr 3.0e-03  aug 0.50  image_size 64  batch_size 32  freeze_epochs 1"
    assert searched_values({"backbone": "resnet18", "aug": 0.25}) == "aug 0.25"  # no max LR: nothing made up


def test_a_trial_start_line_names_the_trial_backbone_and_values():
    p, lines = progress()
    p.on_trial_start(0, [], trial("a1b2c_00000", backbone="convnext_nano", lr=1.5e-4))
    assert lines == ["trial a1b2c_00000 starts: convnext_nano  max_lr 1.5e-04  aug 0.50"]


def test_one_header_then_one_aligned_row_per_epoch():
    p, lines = progress()
    a, b = trial("a_00000"), trial("b_00001")
    p.on_trial_result(1, [a, b], a, epoch(1, 0.75))
    p.on_trial_result(2, [a, b], b, epoch(1, 0.8125, time_s=3.0))
    p.on_trial_result(3, [a, b], a, epoch(2, 0.875))
    header, *rows = lines
    assert header.split() == ["trial", "epoch", "train_loss", "valid_loss", "accuracy", "time_s"]
    assert len(rows) == 3 and sum(ln == header for ln in lines) == 1
    assert rows[0] == "a_00000          1      0.5000      0.4000      0.7500    12.3"
    assert rows[1].split() == ["b_00001", "1", "0.5000", "0.4000", "0.8125", "3.0"]
    assert len({len(ln) for ln in lines}) == 1  # every column lines up under its header


def test_the_metric_gets_its_own_column_when_it_is_not_shown_already():
    for metric, mode, extra in [("auc", "max", ["auc"]), ("log_loss", "min", ["log_loss"]),
                                ("f1_macro", "max", ["f1_macro"]), ("valid_loss", "min", []), ("accuracy", "max", [])]:
        p, _ = progress(metric, mode)
        assert p.columns == ("train_loss", "valid_loss", "accuracy", *extra), metric
    assert "auc" in EPOCH_COLUMNS and "auc" not in progress("accuracy")[0].columns  # no empty AUC column


def test_missing_and_nan_values_show_a_dash():
    p, lines = progress("auc")
    p.on_trial_result(1, [], trial("a"), {"epoch": None, "train_loss": 0.5, "valid_loss": float("nan"),
                                          "accuracy": 0.5})
    row = lines[1].split()
    assert row == ["a", "-", "0.5000", "-", "0.5000", "-", "0.0"]  # no epoch, NaN loss, no AUC, no time


def test_ends_say_done_or_stopped_early_by_asha_with_the_summary():
    p, lines = progress(total=3, max_epochs=3)
    a, b, c = trial("a"), trial("b"), trial("c", status="PENDING")
    for n, acc in enumerate([0.6, 0.7, 0.8], start=1):
        p.on_trial_result(n, [a, b, c], a, epoch(n, acc))
    p.on_trial_result(4, [a, b, c], b, epoch(1, 0.5))
    a.status = "TERMINATED"
    p.on_trial_complete(5, [a, b, c], a)
    assert lines[-1] == "trial a done. [1/3 done, 1 running] best accuracy 0.8000 (a)"
    b.status, c.status = "TERMINATED", "RUNNING"
    p.on_trial_complete(6, [a, b, c], b)
    assert lines[-1] == "trial b stopped early by ASHA after epoch 1. [2/3 done, 1 running] best accuracy 0.8000 (a)"


def test_a_failed_trial_says_so_and_the_sweep_goes_on():
    p, lines = progress(total=2)
    a, b = trial("a", status="ERROR"), trial("b")
    p.on_trial_error(1, [a, b], a)
    assert lines == ["trial a FAILED (the leaderboard's error column says why); the sweep goes on. "
                     "[1/2 done, 1 running] no result yet"]
    assert p.done == 1


@pytest.mark.parametrize("metric, mode, values, best, who", [
    ("accuracy", "max", [0.7, 0.9, 0.8], 0.9, "t1"),
    ("log_loss", "min", [0.7, 0.9, 0.3], 0.3, "t2"),
    ("log_loss", "min", [0.5, float("nan"), None], 0.5, "t0"),   # NaN / missing never become the best
    ("accuracy", "max", [0.9, 0.9, 0.9], 0.9, "t0"),             # a tie keeps the first to reach it
])
def test_the_best_so_far_follows_the_metrics_direction(metric, mode, values, best, who):
    p, lines = progress(metric, mode, total=3)
    trials = [trial(f"t{i}") for i in range(3)]
    for i, v in enumerate(values):
        p.on_trial_result(i, trials, trials[i], {"epoch": 1, metric: v})
    p.on_trial_error(9, trials, trials[0])
    assert lines[-1].endswith(f"best {metric} {best:.4f} ({who})")


def test_the_summary_counts_running_trials_and_done_ones():
    p, lines = progress(total=4, max_epochs=1)
    trials = [trial("a", "TERMINATED"), trial("b", "RUNNING"), trial("c", "RUNNING"), trial("d", "PENDING")]
    p.on_trial_result(1, trials, trials[0], epoch(1, 0.5))
    p.on_trial_complete(2, trials, trials[0])
    assert re.search(r"\[1/4 done, 2 running\] best accuracy 0\.5000 \(a\)$", lines[-1])
    assert lines[-1].startswith("trial a done.")


def test_a_trial_that_never_reported_ends_stopped_at_epoch_0():
    p, lines = progress(max_epochs=2)
    p.on_trial_complete(1, [], trial("a", "TERMINATED"))
    assert lines == ["trial a stopped early by ASHA after epoch 0. [1/3 done, 0 running] no result yet"]


def test_it_pickles_without_its_log_and_shows_the_header_again_after_restore(capsys):
    p, lines = progress()
    a = trial("a")
    p.on_trial_result(1, [a], a, epoch(1, 0.75))
    p.on_trial_complete(2, [a], a)
    restored = pickle.loads(pickle.dumps(p))
    assert restored.log is say and restored.best == (0.75, "a") and restored.done == 1
    assert restored.last_epoch == {"a": 1} and not restored.header_shown
    assert p.log is not None and p.header_shown  # the live callback keeps its own state
    restored.on_trial_result(3, [a], trial("b"), epoch(1, 0.5))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["trial", "epoch"] and out[1].startswith("b ")


def test_the_trial_that_ends_is_not_counted_as_running():
    """Tune calls on_trial_complete before the trial leaves RUNNING."""
    p, lines = progress(total=2, max_epochs=1)
    trials = [trial("a", "RUNNING"), trial("b", "RUNNING")]
    p.on_trial_result(1, trials, trials[0], epoch(1, 0.5))
    p.on_trial_complete(2, trials, trials[0])
    assert "[1/2 done, 1 running]" in lines[-1]
    trials[0].status = "TERMINATED"
    p.on_trial_error(3, trials, trials[1])
    assert "[2/2 done, 0 running]" in lines[-1]


def test_a_searched_weight_decay_is_shown_in_its_own_scale():
    config = tune_sample("resnet18", 1e-3, aug=0.5, weight_decay=3e-4)
    assert searched_values(config) == "max_lr 1.0e-03  aug 0.50  weight_decay 3.0e-04"

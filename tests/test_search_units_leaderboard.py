"""The leaderboard from hand-built trial results (search/leaderboard.py): status of each trial (done, stopped early
by ASHA, error, unfinished), best / last metric, ranking best first by the metric's mode with trials without a
value last, Train's own history merged with Tune's, and the markdown / compact views a person reads. No Ray."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from visionsweep.search import history
from visionsweep.search.leaderboard import UNFINISHED, creation_order, leaderboard, to_markdown, write_leaderboard
from visionsweep.search.space import tune_sample
from visionsweep.search.sweep import compact

RUNS = "/sweeps/s/train_runs"


@pytest.fixture(autouse=True)
def no_train_records(monkeypatch):
    """Train's checkpoint history is read from storage; here no trial has one unless a test gives it."""
    records = {}
    monkeypatch.setattr(history, "train_history", lambda run: records.get(run))
    return records


def result(trial_id, values, *, metric="accuracy", backbone="resnet18", lr=1e-3, aug=0.5, error=None,
           config=True, metrics=True, **extra):
    """A Tune Result as leaderboard() reads it: metrics, config, per-epoch dataframe, error and path."""
    frame = pd.DataFrame({"epoch": range(1, len(values) + 1), metric: values, "trial_id": trial_id}) if values \
        else None
    return SimpleNamespace(
        metrics={"trial_id": trial_id} if metrics else {},
        path=f"/sweeps/s/{backbone}-{trial_id}",
        config=tune_sample(backbone, lr, aug=aug, **extra) if config else {},
        metrics_dataframe=frame,
        error=error,
    )


def test_ranked_best_first_for_a_max_metric_with_params_best_last_and_epochs():
    board = leaderboard([result("a", [0.6, 0.7]), result("b", [0.8, 0.9, 0.85], backbone="convnext_nano", lr=2e-3),
                         result("c", [0.5])], metric="accuracy", mode="max", train_runs=RUNS, max_epochs=3)
    assert list(board["trial_id"]) == ["b", "a", "c"] and list(board["rank"]) == [1, 2, 3]
    assert list(board.columns[:6]) == ["rank", "trial_id", "backbone", "max_lr", "aug", "best_accuracy"]
    best = board.iloc[0]
    assert (best["backbone"], best["max_lr"], best["aug"]) == ("convnext_nano", 2e-3, 0.5)
    assert best["best_accuracy"] == 0.9 and best["last_accuracy"] == 0.85 and best["epochs"] == 3
    assert list(board["order"]) == [2, 1, 3]  # the order the trials were run in
    assert best["train_run"] == f"{RUNS}/train-b" and best["error"] == ""


def test_ties_rank_by_the_order_the_searcher_created_the_trials_not_by_tunes_list():
    """After a --resume, Tune's restored state lists the trials in another order (seen: 2, 4, 1, 3); a tie at
    the top must still go to the trial created first, or the resumed sweep refits a different configuration."""
    tags = [SimpleNamespace(trial_id="b", experiment_tag="2_aug=0.5000,backbone=resnet18"),
            SimpleNamespace(trial_id="d", experiment_tag="4_aug=0.9406,backbone=resnet18"),
            SimpleNamespace(trial_id="a", experiment_tag="1_aug=0.5000,backbone=resnet18"),
            SimpleNamespace(trial_id="x", experiment_tag="custom")]
    orders = creation_order(tags)
    assert orders == {"b": 2, "d": 4, "a": 1}
    listed = [result("b", [0.9]), result("d", [1.0]), result("a", [1.0])]
    board = leaderboard(listed, metric="accuracy", mode="max", train_runs=RUNS, orders=orders)
    assert board["trial_id"].tolist() == ["a", "d", "b"] and board["order"].tolist() == [1, 4, 2]
    # without the searcher's numbers: the results' own order
    assert leaderboard(listed, metric="accuracy", mode="max", train_runs=RUNS)["trial_id"].tolist() == ["d", "a", "b"]


def test_a_min_metric_ranks_the_lowest_loss_first():
    board = leaderboard([result("a", [0.9, 0.4], metric="log_loss"), result("b", [0.3, 0.5], metric="log_loss"),
                         result("c", [0.6], metric="log_loss")], metric="log_loss", mode="min", train_runs=RUNS)
    assert list(board["trial_id"]) == ["b", "a", "c"]
    assert list(board["best_log_loss"]) == [0.3, 0.4, 0.6] and list(board["last_log_loss"]) == [0.5, 0.4, 0.6]


def test_statuses_done_stopped_early_error_and_unfinished():
    rows = [
        result("done1", [0.5, 0.6, 0.7, 0.8]),
        result("asha1", [0.4]),                                 # ASHA stopped it after the first rung
        result("crash", [0.3, 0.2], error=RuntimeError("Traceback ...\nValueError: loss is nan")),
        result("killed", [0.45, 0.5]),                         # the driver was killed: Tune saved it RUNNING
        result("marked", [0.1]),                               # saved as ERROR without an exception object
    ]
    statuses = {"killed": "RUNNING", "marked": "ERROR"}
    board = leaderboard(rows, metric="accuracy", mode="max", train_runs=RUNS, max_epochs=4,
                        statuses=statuses).set_index("trial_id")
    assert board.loc["done1", "status"] == "done"
    assert board.loc["asha1", "status"] == "stopped early"
    assert board.loc["crash", "status"] == "error" and board.loc["crash", "error"] == "ValueError: loss is nan"
    assert board.loc["killed", "status"] == UNFINISHED == "unfinished (--resume continues it)"
    assert board.loc["marked", "status"] == "error" and board.loc["marked", "error"] == ""
    # an error wins over a saved TERMINATED status
    crashed = leaderboard([result("x", [0.5], error=ValueError("boom"))], metric="accuracy", mode="max",
                          train_runs=RUNS, max_epochs=1, statuses={"x": "TERMINATED"})
    assert crashed.loc[0, "status"] == "error" and crashed.loc[0, "error"] == "boom"


def test_without_max_epochs_every_terminated_trial_is_done():
    board = leaderboard([result("a", [0.5])], metric="accuracy", mode="max", train_runs=RUNS)
    assert board.loc[0, "status"] == "done"


def test_a_trial_that_failed_before_reporting_ranks_last_with_its_error_and_saved_config():
    early = result("zz", [], config=False, metrics=False, error=RuntimeError("CUDA out of memory." + " x" * 400))
    board = leaderboard([early, result("a", [0.7]), result("b", [0.4])], metric="accuracy", mode="max",
                        train_runs=RUNS, max_epochs=2,
                        configs={"zz": tune_sample("convnext_nano", 5e-4, aug=0.1)})
    assert list(board["trial_id"]) == ["a", "b", "zz"]  # id from the folder name "<backbone>-<trial id>"
    last = board.iloc[-1]
    assert math.isnan(last["best_accuracy"]) and math.isnan(last["last_accuracy"]) and last["epochs"] == 0
    assert (last["backbone"], last["max_lr"], last["aug"]) == ("convnext_nano", 5e-4, 0.1)
    assert last["status"] == "error" and last["error"].startswith("CUDA out of memory.") and len(last["error"]) == 300
    assert last["order"] == 1


def test_nan_epochs_are_skipped_for_best_and_last():
    board = leaderboard([result("a", [0.6, 0.8, float("nan")], metric="auc")], metric="auc", mode="max",
                        train_runs=RUNS, max_epochs=3)
    assert board.loc[0, "best_auc"] == 0.8 and board.loc[0, "last_auc"] == 0.8 and board.loc[0, "epochs"] == 3
    assert board.loc[0, "status"] == "done"


def test_only_searched_parameters_that_the_trial_has_are_columns():
    board = leaderboard([result("a", [0.5], image_size=64, weight_decay=1e-3, batch_size=32)], metric="accuracy",
                        mode="max", train_runs=RUNS)
    assert {"image_size", "weight_decay", "batch_size"} <= set(board.columns) and "freeze_epochs" not in board
    assert board.loc[0, "image_size"] == 64 and board.loc[0, "weight_decay"] == 1e-3


def test_no_results_is_an_empty_board():
    board = leaderboard([], metric="accuracy", mode="max", train_runs=RUNS)
    assert board.empty and compact(board, metric="accuracy").empty


def test_trains_history_fills_the_epochs_tunes_record_lost_on_resume(no_train_records):
    # killed in epoch 3, resumed from the epoch-2 checkpoint: Tune's record holds epochs 3.. only
    tune_rows = result("a", [0.95, 0.94])
    tune_rows.metrics_dataframe["epoch"] = [3, 4]
    no_train_records[f"{RUNS}/train-a"] = pd.DataFrame({"epoch": [1, 2, 3], "accuracy": [0.7, 0.97, 0.9]})
    board = leaderboard([tune_rows], metric="accuracy", mode="max", train_runs=RUNS, max_epochs=4)
    assert board.loc[0, "best_accuracy"] == 0.97  # epoch 2, only in Train's record
    assert board.loc[0, "last_accuracy"] == 0.94 and board.loc[0, "epochs"] == 4 and board.loc[0, "status"] == "done"
    whole = history.whole_history(tune_rows.metrics_dataframe, f"{RUNS}/train-a")
    assert list(whole["epoch"]) == [1, 2, 3, 4] and list(whole["accuracy"]) == [0.7, 0.97, 0.9, 0.94]
    assert set(whole["trial_id"]) == {"a"}  # Train's rows are tagged with the trial


def test_a_stopped_trial_counts_only_the_epochs_tune_judged(no_train_records):
    """ASHA stopped the trial after epoch 1; its worker still finished epoch 2 into Train's record."""
    no_train_records[f"{RUNS}/train-a"] = pd.DataFrame({"epoch": [1, 2], "accuracy": [0.6, 0.9]})
    board = leaderboard([result("a", [0.6])], metric="accuracy", mode="max", train_runs=RUNS, max_epochs=2)
    assert board.loc[0, "epochs"] == 1 and board.loc[0, "status"] == "stopped early"
    assert board.loc[0, "best_accuracy"] == 0.6
    unfinished = leaderboard([result("a", [0.6])], metric="accuracy", mode="max", train_runs=RUNS, max_epochs=2,
                             statuses={"a": "PENDING"})  # an interrupted trial keeps all Train recorded
    assert unfinished.loc[0, "epochs"] == 2


def test_markdown_escapes_pipes_blanks_nan_drops_paths_and_rounds():
    board = leaderboard([result("a", [0.912345]), result("b", [], error=RuntimeError("bad | value"))],
                        metric="accuracy", mode="max", train_runs=RUNS, max_epochs=1)
    text = to_markdown(board)
    lines = text.splitlines()
    assert lines[0] == ("| rank | trial_id | backbone | max_lr | aug | best_accuracy | last_accuracy | epochs | status "
                        "| error | order |")
    assert lines[1] == "|" + "---|" * 11 and text.endswith("\n") and "train_runs" not in text
    assert lines[2] == "| 1 | a | resnet18 | 0.001 | 0.5 | 0.9123 | 0.9123 | 1 | done |  | 1 |"
    assert lines[3] == "| 2 | b | resnet18 | 0.001 | 0.5 |  |  | 0 | error | bad \\| value | 2 |"


def test_written_leaderboard_files(tmp_path):
    board = leaderboard([result("a", [0.8]), result("b", [0.9])], metric="accuracy", mode="max", train_runs=RUNS)
    write_leaderboard(board, str(tmp_path), metric="accuracy")
    csv = pd.read_csv(tmp_path / "leaderboard.csv")
    assert list(csv["trial_id"]) == ["b", "a"] and list(csv["rank"]) == [1, 2]
    md = (tmp_path / "leaderboard.md").read_text()
    assert md.startswith("# Leaderboard (accuracy)\n\n| rank | trial_id |") and "refit:" not in md


def test_the_compact_console_view_has_no_paths_and_short_errors():
    board = leaderboard([result("a", [0.812349]), result("b", [], error=RuntimeError("E" * 100))],
                        metric="accuracy", mode="max", train_runs=RUNS, max_epochs=1)
    view = compact(board, metric="accuracy")
    assert "train_run" not in view and "order" not in view
    assert view.loc[0, "max_lr"] == "1.0e-03" and view.loc[0, "best_accuracy"] == 0.8123
    assert view.loc[1, "error"] == "E" * 60
    clean = compact(board.iloc[:1], metric="accuracy")
    assert "error" not in clean  # an all-empty error column is dropped
    # refit: how many models (their runs are in leaderboard.csv); a sweep from before refit seeds has one each
    refit = board.assign(refit=["refit_runs/refit-a", "error"], refit_models=[2, 0])
    assert compact(refit, metric="accuracy")["refit"].tolist() == ["2 models", "error"]
    assert "refit_models" not in compact(refit, metric="accuracy")
    old = board.assign(refit=["refit_runs/refit-a", ""])
    assert compact(old, metric="accuracy")["refit"].tolist() == ["1 model", ""]


def test_tied_trials_keep_the_order_they_ran_in():
    """Ties decide which trials keep their weights and join the ensemble: never an arbitrary order."""
    values = [[1.0] if i % 3 == 0 else [0.5 + i / 100] for i in range(20)]
    board = leaderboard([result(f"t{i:02d}", v) for i, v in enumerate(values)], metric="accuracy", mode="max",
                        train_runs=RUNS)
    tied = board[board["best_accuracy"] == 1.0]
    assert list(tied["trial_id"]) == [f"t{i:02d}" for i in range(0, 20, 3)] and list(tied["rank"]) == list(range(1, 8))

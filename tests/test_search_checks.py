"""Sweep options checked before Ray starts (issue 11): every trial's TrainConfig, keys the sweep owns, --seed
reaching training and the sampler, and predict's default --top-k from the sweep."""

import json

import pytest

from visionsweep.datasets import DataError
from visionsweep.search.api import search_config
from visionsweep.search.cli import build_parser
from visionsweep.search.flags import given_fields
from visionsweep.search.config import SearchConfig
from visionsweep.search.predict import default_top_k
from visionsweep.search.record import SweepRecord, write_sweep_record


@pytest.mark.parametrize("train, words", [
    ({"batch_size": 1}, ["--batch-size must be >= 2", "backbone resnet18"]),
    ({"label_smoothing": 2.0}, ["label_smoothing must be in [0, 1)"]),
    ({"pct_start": 0}, ["pct_start must be in (0, 1)"]),
])
def test_a_bad_train_option_is_one_error_not_n_failed_trials(train, words):
    with pytest.raises(DataError) as err:
        SearchConfig(name="s", backbones=("resnet18", "test_resnet"), train=train)
    for word in words:
        assert word in str(err.value)


def test_the_edges_of_every_searched_range_are_checked():
    with pytest.raises(DataError, match="batch_size 1"):
        SearchConfig(name="s", batch_sizes=(32, 1))
    with pytest.raises(DataError, match="--image-size must be between 16 and 1024"):
        SearchConfig(name="s", image_sizes=(64, 8))
    SearchConfig(name="s", batch_sizes=(16, 32), image_sizes=(32, 64), weight_decay_range=(1e-4, 0.1),
                 freeze_epochs=(0, 1), lr_ranges={"resnet18": [1e-4, 1e-3]})


@pytest.mark.parametrize("key, flag", [("workers", "--workers-per-trial"), ("metric", "--metric"),
                                       ("use_gpu", "--cpu"), ("cpus_per_worker", "cpus_per_worker:")])
def test_keys_the_sweep_owns_are_refused_naming_the_flag(key, flag):
    with pytest.raises(DataError, match=f"{key} is set by the sweep, use {flag}"):
        SearchConfig(name="s", train={key: {"workers": 2, "metric": "accuracy", "use_gpu": True,
                                            "cpus_per_worker": 2.0}[key]})


def test_seed_reaches_the_split_every_trial_and_the_sampler(tmp_path):
    args = build_parser().parse_args(["sweep", str(tmp_path), "--name", "s", "--seed", "7"])
    sc, data_options = search_config(**given_fields(args))
    assert data_options["seed"] == 7 and sc.seed == 7 and sc.train["seed"] == 7
    from visionsweep.search.space import trial_train_config

    cfg = trial_train_config(sc, {"backbone": "resnet18", "max_lr": {"resnet18": 1e-3}, "aug": 0.1},
                             use_gpu=False, gpus_per_worker=1.0)
    assert cfg.seed == 7


def test_predict_top_k_defaults_to_the_sweeps_top_k(tmp_path):
    sweep = tmp_path / "sw"
    sweep.mkdir()
    write_sweep_record(str(sweep), SweepRecord(search={"name": "sw", "top_k": 4}, metric="auc", mode="max"))
    assert default_top_k(str(sweep)) == 4
    (sweep / "sweep.json").write_text(json.dumps({"visionsweep_sweep": True, "search": {"top_k": 4}}))
    with pytest.raises(DataError, match=r"sweep.json .* has no 'metric'"):
        default_top_k(str(sweep))
    assert default_top_k(str(tmp_path / "a-run")) == 1
    args = build_parser().parse_args(["predict", str(sweep), str(tmp_path)])
    assert args.top_k is None


def test_a_sweep_without_a_usable_trial_fails_with_one_message():
    import math

    import pandas as pd

    from visionsweep.datasets.errors import RunFailed
    from visionsweep.search.sweep import check_usable

    board = pd.DataFrame({"trial_id": ["a", "b"], "best_auc": [math.nan, math.nan], "status": ["error", "error"],
                          "error": ["ValueError: loss is nan", "ValueError: loss is nan"]})
    with pytest.raises(RunFailed, match="no trial of the sweep produced a auc: 2 trial.s., 2 failed; the first error: "
                                        "ValueError: loss is nan"):
        check_usable(board, metric="auc", path="/s")
    board.loc[1, "best_auc"] = 0.9
    check_usable(board, metric="auc", path="/s")


def test_the_command_line_turns_a_failed_run_into_exit_1(monkeypatch, capsys):
    from visionsweep.datasets.errors import RunFailed
    from visionsweep.search import cli

    def fail(args):
        raise RunFailed("no trial of the sweep produced a auc")

    monkeypatch.setattr(cli, "cmd_report", fail)
    assert cli.main(["report", "x"]) == 1
    assert capsys.readouterr().err.count("error:") == 1


def test_parameter_importance_needs_enough_finished_trials():
    import pandas as pd

    from visionsweep.search.report import MIN_IMPORTANCE_TRIALS, param_importance

    search = {"lr_range": [1e-4, 1e-2], "lr_ranges": {}, "backbones": ["resnet18", "tf_efficientnet_lite0"],
              "aug_range": [0.0, 0.6]}

    def board(n):
        return pd.DataFrame({"backbone": ["resnet18", "tf_efficientnet_lite0"] * (n // 2),
                             "max_lr": [1e-3 * (1 + i % 5) for i in range(n)], "aug": [0.1 * (i % 6) for i in range(n)],
                             "best_accuracy": [0.95 if i % 2 == 0 else 0.3 + 0.01 * i for i in range(n)],
                             "status": ["done"] * n})

    assert param_importance(board(6), "accuracy", "max", search) is None  # the demo's 6 trials: not meaningful
    found = param_importance(board(MIN_IMPORTANCE_TRIALS + 4), "accuracy", "max", search)
    assert found is not None and max(found, key=found.get) == "backbone" and "flip" not in found
    # --search-flip: flips are a parameter of their own, here the one that decides
    n = MIN_IMPORTANCE_TRIALS + 4
    flips = board(n).assign(flip=[i % 3 == 0 for i in range(n)],
                            best_accuracy=[0.97 if i % 3 == 0 else 0.9 for i in range(n)])
    found = param_importance(flips, "accuracy", "max", {**search, "search_flip": True})
    assert found is not None and max(found, key=found.get) == "flip"

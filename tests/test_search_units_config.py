"""SearchConfig's pure parts: defaults, one DataError per bad value naming the field and the fix, ASHA's
grace / factor / rungs derived from the epochs, GPUs per worker, and loading from a dict or YAML (no Ray)."""

import dataclasses

import pytest

from visionsweep.datasets import DataError
from visionsweep.search.config import EARLY_STOPPING, SEARCHERS, SearchConfig, load_yaml, search_config_from_dict


def test_defaults_are_a_small_tpe_asha_sweep_over_three_backbones():
    sc = SearchConfig(name="s")
    assert (sc.storage, sc.trials, sc.epochs) == ("./sweeps", 20, 5)
    assert sc.backbones == ("resnet18", "efficientnet_b0", "convnext_nano")
    assert sc.lr_range == (1e-4, 1e-2) and sc.aug_range == (0.0, 1.0) and sc.weight_decay_range is None
    assert (sc.image_sizes, sc.batch_sizes, sc.freeze_epochs) == ((), (), ())
    assert (sc.workers_per_trial, sc.gpus_per_trial, sc.cpus_per_worker, sc.max_concurrent) == (1, None, 1.0, None)
    assert (sc.metric, sc.searcher, sc.early_stopping, sc.time_budget) == ("auto", "tpe", "asha", None)
    assert (sc.top_k, sc.refit, sc.refit_seeds, sc.seed) == (3, 1, 2, 0)
    assert sc.restart_at_rungs and sc.recipe_first and not sc.lr_find and not sc.keep_all
    assert (sc.mlflow, sc.wandb) == (None, None)
    assert SEARCHERS == ("tpe", "random") and EARLY_STOPPING == ("asha", "none")


def test_the_mutable_defaults_are_not_shared_between_configs():
    a, b = SearchConfig(name="a"), SearchConfig(name="b")
    a.train["x"] = 1  # a bug would leak into every later config
    assert b.train == {} and a.lr_ranges is not b.lr_ranges and a.weights is not b.weights


def test_single_values_and_lists_become_tuples():
    sc = SearchConfig(name="s", backbones="resnet18", image_sizes=64, batch_sizes=[16, 32], freeze_epochs=[0, 1],
                      lr_range=[1e-3, 1e-2], aug_range=[0.1, 0.3])
    assert sc.backbones == ("resnet18",) and sc.image_sizes == (64,) and sc.batch_sizes == (16, 32)
    assert sc.freeze_epochs == (0, 1) and sc.lr_range == (1e-3, 1e-2) and sc.aug_range == (0.1, 0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sc.trials = 3


@pytest.mark.parametrize("field, value, message", [
    ("name", "", "--name must be a plain folder name, got ''"),
    ("name", "a/b", "--name must be a plain folder name, got 'a/b'"),
    ("trials", 0, "--trials must be >= 1, got 0"),
    ("epochs", 0, "--epochs must be >= 1, got 0"),
    ("epochs", -3, "--epochs must be >= 1, got -3"),
    ("backbones", (), "--backbones needs at least one timm model name"),
    ("lr_range", (1e-2, 1e-4), "lr_range must be [lo, hi] with 0 < lo <= hi, got [0.01, 0.0001]"),
    ("lr_range", (0.0, 1e-2), "lr_range must be [lo, hi] with 0 < lo <= hi, got [0.0, 0.01]"),
    ("lr_range", (1e-3, float("inf")), "lr_range must be [lo, hi] with 0 < lo <= hi"),
    ("lr_range", (1e-3,), "lr_range must be [lo, hi]"),
    ("aug_range", (0.2, 1.5), "aug_range must be within [0, 1], got [0.2, 1.5]"),
    ("aug_range", (-0.1, 0.5), "aug_range must be within [0, 1], got [-0.1, 0.5]"),
    ("aug_range", (0.8, 0.2), "aug_range must be within [0, 1], got [0.8, 0.2]"),
    ("workers_per_trial", 0, "--workers-per-trial must be >= 1, got 0"),
    ("gpus_per_trial", -1, "--gpus-per-trial must be >= 0, got -1"),
    ("max_concurrent", 0, "--max-concurrent must be >= 1"),
    ("time_budget", 0, "--time-budget must be > 0 s, got 0"),
    ("time_budget", -5.0, "--time-budget must be > 0 s, got -5.0"),
    ("searcher", "grid", "--searcher must be one of tpe, random, got 'grid'"),
    ("early_stopping", "hyperband", "--early-stopping must be one of asha, none, got 'hyperband'"),
    ("grace_period", -1, "grace_period must be >= 1 and reduction_factor >= 2, got -1 and None"),
    ("reduction_factor", 1, "grace_period must be >= 1 and reduction_factor >= 2, got None and 1"),
    ("grace_period", 0, "grace_period must be >= 1 and reduction_factor >= 2, got 0 and None"),
    ("reduction_factor", 0, "grace_period must be >= 1 and reduction_factor >= 2, got None and 0"),
    ("cpus_per_worker", 0, "cpus_per_worker must be > 0, got 0"),
    ("name", "..", "--name must be a plain folder name, got '..'"),
    ("top_k", 0, "--top-k must be >= 1, got 0"),
    ("startup_trials", 0, "--startup-trials must be >= 1, got 0"),
    ("refit", -1, "--refit must be >= 0 (0 = no refit), got -1"),
    ("refit_seeds", 0, "--refit-seeds must be >= 1 (models per refit configuration), got 0"),
    ("weight_decay_range", (0.0, 0.1), "weight_decay_range must be [lo, hi] with 0 < lo <= hi, got (0.0, 0.1)"),
    ("weight_decay_range", (0.1, 1e-3), "weight_decay_range must be [lo, hi] with 0 < lo <= hi"),
    ("lr_ranges", {"resnet18": [1e-3, 1e-4]},
     "lr_ranges[resnet18] must be [lo, hi] with 0 < lo <= hi, got [0.001, 0.0001]"),
    ("lr_ranges", {"resnet18": [-1, 1e-3]}, "lr_ranges[resnet18] must be [lo, hi]"),
])
def test_a_bad_value_is_one_data_error_naming_the_field(field, value, message):
    with pytest.raises(DataError) as err:
        SearchConfig(**{"name": "s", field: value})
    assert message in str(err.value)


def test_good_edge_values_pass():
    sc = SearchConfig(name="s", trials=1, epochs=1, lr_range=(1e-3, 1e-3), aug_range=(0.0, 0.0), gpus_per_trial=0,
                      max_concurrent=1, time_budget=0.5, grace_period=1, reduction_factor=2, top_k=1, refit=0,
                      searcher="random", early_stopping="none")
    assert sc.lr_range == (1e-3, 1e-3) and sc.refit == 0 and sc.searcher == "random"


def test_a_missing_weights_file_names_the_backbone_and_what_to_give(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(DataError, match=r"weights\[resnet18\]: .*nope.safetensors is not a file; give a safetensors "
                                        r"or state-dict file"):
        SearchConfig(name="s", weights={"resnet18": str(missing)})
    real = tmp_path / "w.safetensors"
    real.write_bytes(b"x")
    assert SearchConfig(name="s", weights={"resnet18": str(real)}).weights == {"resnet18": str(real)}


@pytest.mark.parametrize("gpus, workers", [(0.5, 2), (1.5, 2), (1, 3)])
def test_a_fraction_of_a_gpu_per_ddp_worker_is_refused_with_the_fix(gpus, workers):
    with pytest.raises(DataError, match=rf"--gpus-per-trial {gpus:g} with --workers-per-trial {workers}: a fraction "
                                        r"of a GPU per worker needs --workers-per-trial 1 \(NCCL"):
        SearchConfig(name="s", gpus_per_trial=gpus, workers_per_trial=workers)


def test_shared_gpus_are_fine_for_one_worker_and_whole_gpus_for_many():
    assert SearchConfig(name="s", gpus_per_trial=0.25).gpus_per_trial == 0.25
    assert SearchConfig(name="s", gpus_per_trial=2, workers_per_trial=2).workers_per_trial == 2
    assert SearchConfig(name="s", gpus_per_trial=0, workers_per_trial=4).gpus_per_trial == 0  # CPU trials


def test_train_options_that_are_searched_are_refused_by_name():
    with pytest.raises(DataError, match="train: epochs are searched; set them through the search options instead"):
        SearchConfig(name="s", train={"epochs": 3})
    with pytest.raises(DataError, match="train: backbone, max_lr are searched"):
        SearchConfig(name="s", train={"max_lr": 1e-3, "backbone": "resnet18"})
    with pytest.raises(DataError, match="train: image_size are searched"):
        SearchConfig(name="s", image_sizes=(32, 64), train={"image_size": 64})
    # not searched: a fixed value for every trial is fine
    assert SearchConfig(name="s", train={"image_size": 64, "batch_size": 16}).train == {"image_size": 64,
                                                                                         "batch_size": 16}
    with pytest.raises(DataError, match="train: weight_decay are searched"):
        SearchConfig(name="s", weight_decay_range=(1e-4, 1e-2), train={"weight_decay": 0.1})
    with pytest.raises(DataError, match="train: freeze_epochs are searched"):
        SearchConfig(name="s", freeze_epochs=(0, 1), train={"freeze_epochs": 1})


def test_an_unknown_train_key_lists_the_known_ones():
    with pytest.raises(DataError) as err:
        SearchConfig(name="s", train={"learning_rate": 1e-3})
    text = str(err.value)
    assert text.startswith("unknown key(s) in train: learning_rate; known: ")
    assert "label_smoothing" in text and "max_failures" in text


def test_a_bad_metric_is_refused_before_ray_listing_the_metrics():
    with pytest.raises(DataError, match="--metric must be one of auto, accuracy, auc, .*got 'f2'"):
        SearchConfig(name="s", metric="f2")


# ---------------------------------------------------------------- ASHA


@pytest.mark.parametrize("epochs, asha, rungs", [
    (1, (1, 2), ()),
    (2, (1, 2), (1,)),
    (3, (1, 2), (1,)),
    (4, (1, 2), (1, 2)),
    (5, (1, 2), (1, 2)),           # no rung at 4: a stop there would save one epoch of five
    (7, (1, 2), (1, 2)),
    (8, (1, 2), (1, 2, 4)),        # the last epoch is never a rung: the trial ends there anyway
    (9, (1, 3), (1, 3)),           # > 8 epochs: factor 3
    (10, (1, 3), (1, 3)),
    (18, (1, 3), (1, 3, 9)),
    (28, (1, 3), (1, 3, 9)),
    (54, (1, 3), (1, 3, 9, 27)),
])
def test_asha_grace_and_factor_follow_the_epochs(epochs, asha, rungs):
    sc = SearchConfig(name="s", epochs=epochs)
    assert sc.asha == asha and sc.rungs() == rungs


def test_explicit_grace_and_factor_win():
    sc = SearchConfig(name="s", epochs=20, grace_period=2, reduction_factor=2)
    assert sc.asha == (2, 2) and sc.rungs() == (2, 4, 8)
    assert SearchConfig(name="s", epochs=8, reduction_factor=4).rungs() == (1, 4)
    assert SearchConfig(name="s", epochs=3, grace_period=5).rungs() == ()  # grace beyond the epochs: no rung
    assert SearchConfig(name="s", epochs=5, grace_period=5).rungs() == ()


@pytest.mark.parametrize("trials, startup", [(1, 3), (6, 3), (9, 3), (10, 4), (20, 7), (30, 10), (100, 10)])
def test_tpe_models_after_a_third_of_the_trials_within_3_to_10(trials, startup):
    # Optuna's own 10 would leave every sweep of <= 10 trials random search
    assert SearchConfig(name="s", trials=trials).tpe_startup == startup


def test_under_an_epoch_budget_the_startup_counts_the_trials_it_pays_for():
    assert SearchConfig(name="s", trials=100, epochs=5, epoch_budget=150).tpe_startup == 10
    assert SearchConfig(name="s", trials=100, epochs=5, epoch_budget=60).tpe_startup == 4
    assert SearchConfig(name="s", trials=8, epochs=5, epoch_budget=1000).tpe_startup == 3


def test_explicit_startup_trials_win():
    assert SearchConfig(name="s", trials=6, startup_trials=10).tpe_startup == 10
    assert SearchConfig(name="s", trials=100, startup_trials=1).tpe_startup == 1


def test_no_early_stopping_has_no_rungs_whatever_the_asha_settings():
    sc = SearchConfig(name="s", epochs=20, early_stopping="none", grace_period=2)
    assert sc.rungs() == () and sc.asha == (2, 3)


def test_per_backbone_lr_ranges_override_the_global_one():
    sc = SearchConfig(name="s", lr_range=(1e-4, 1e-2), lr_ranges={"convnext_nano": [2e-4, 4e-4]})
    assert sc.lr_range_for("convnext_nano") == (2e-4, 4e-4) and sc.lr_range_for("resnet18") == (1e-4, 1e-2)
    assert all(isinstance(v, float) for v in sc.lr_range_for("convnext_nano"))


# ---------------------------------------------------------------- GPUs per worker


@pytest.mark.parametrize("gpus_per_trial, workers, cluster_gpus, expected", [
    (None, 1, 0, 0.0),     # auto on a CPU cluster: CPU training
    (None, 1, 4, 1.0),     # auto with GPUs: one per worker
    (None, 4, 8, 1.0),
    (0, 1, 8, 0.0),        # --cpu on a GPU cluster
    (0.25, 1, 1, 0.25),    # four trials share a GPU
    (2, 2, 8, 1.0),
    (4, 2, 8, 2.0),
])
def test_gpus_per_worker(gpus_per_trial, workers, cluster_gpus, expected):
    sc = SearchConfig(name="s", gpus_per_trial=gpus_per_trial, workers_per_trial=workers)
    assert sc.gpus_per_worker(cluster_gpus) == expected


# ---------------------------------------------------------------- from a dict / YAML


def test_a_dict_is_coerced_to_the_fields_types():
    sc = search_config_from_dict({"name": "s", "trials": "7", "epochs": 3.0, "backbones": "resnet18",
                                  "lr_range": ["1e-4", "1e-3"], "max_concurrent": 2.0, "gpus_per_trial": None,
                                  "weights": {}, "time_budget": "60"})
    assert (sc.trials, sc.epochs, sc.backbones, sc.lr_range) == (7, 3, ("resnet18",), (1e-4, 1e-3))
    assert sc.max_concurrent == 2 and isinstance(sc.max_concurrent, int) and sc.time_budget == 60.0


def test_unknown_keys_are_listed_sorted_with_the_known_ones_and_the_source():
    with pytest.raises(DataError) as err:
        search_config_from_dict({"name": "s", "trial": 3, "backbone": "resnet18"}, source="--config x.yaml")
    text = str(err.value)
    assert text.startswith("unknown key(s) in --config x.yaml: backbone, trial; known: ")
    known = text.split("known: ")[1].split(", ")
    assert known == sorted(known) and "trials" in known and "backbones" in known


@pytest.mark.parametrize("values", [{}, {"name": ""}, {"name": None, "trials": 2}])
def test_a_sweep_needs_a_name(values):
    with pytest.raises(DataError, match=r"a sweep needs --name \(or name: in --config\)"):
        search_config_from_dict(values)


def test_validation_still_runs_after_coercion():
    with pytest.raises(DataError, match="--epochs must be >= 1, got 0"):
        search_config_from_dict({"name": "s", "epochs": "0"})
    with pytest.raises(DataError, match="options: trials must be a whole number, got True"):
        search_config_from_dict({"name": "s", "trials": True}, source="options")
    with pytest.raises(DataError, match=r"unknown key\(s\) in train: bogus"):
        search_config_from_dict({"name": "s", "train": {"bogus": 1}})


def test_weights_paths_become_strings(tmp_path):
    w = tmp_path / "w.pth"
    w.write_bytes(b"x")
    sc = search_config_from_dict({"name": "s", "weights": {"resnet18": w}})
    assert sc.weights == {"resnet18": str(w)}


def test_a_yaml_file_round_trips_to_the_same_config(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntrials: 4\nepochs: 10\nbackbones: [resnet18, convnext_nano]\nearly_stopping: asha\n"
                    "reduction_factor: 2\ntrain: {batch_size: 16}\n")
    sc = search_config_from_dict(load_yaml(path), source=str(path))
    assert sc == SearchConfig(name="s", trials=4, epochs=10, backbones=("resnet18", "convnext_nano"),
                              reduction_factor=2, train={"batch_size": 16})
    assert sc.rungs() == (1, 2, 4)


def test_load_yaml_refuses_a_missing_file_bad_yaml_and_a_non_mapping(tmp_path):
    with pytest.raises(DataError, match=r"--config .*missing.yaml does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(DataError, match=r"--config .*bad.yaml is not valid YAML"):
        load_yaml(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(DataError, match=r"--config .*list.yaml must be a mapping of options \(key: value\), got list"):
        load_yaml(listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty) == {}

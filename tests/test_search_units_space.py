"""search/space.py beyond tests/test_search_space.py: the per-backbone max-LR layout of a Tune config, every optional
searched parameter, the recipe's clipping of batch size / weight decay, and what a trial's TrainConfig takes from
the sweep (workers, resources, metric, seed, fixed train options), and the sweep's sampler on that space (TPE's
start-up trials)."""

import math

import optuna
import pytest

from visionsweep.datasets import DataError
from visionsweep.search.config import SearchConfig
from visionsweep.search.space import (RECIPE_AUG, RECIPE_LR, RECIPE_LR_PRETRAINED, define_space, flat_params,
                                      flip_pair, recipe_point, recipe_points, trial_train_config, tune_sample)


def test_tune_sample_stores_the_max_lr_per_backbone_and_flat_params_undoes_it():
    sample = tune_sample("convnext_nano", 2e-3, aug=0.3, image_size=64)
    assert sample == {"backbone": "convnext_nano", "max_lr": {"convnext_nano": 2e-3}, "aug": 0.3, "image_size": 64}
    assert flat_params(sample) == {"backbone": "convnext_nano", "max_lr": 2e-3, "aug": 0.3, "image_size": 64}
    assert sample["max_lr"] == {"convnext_nano": 2e-3}  # not modified in place
    plain = {"backbone": "resnet18", "max_lr": 1e-3}
    assert flat_params(plain) == plain  # a config with a plain max LR passes as it is
    # OptunaSearch's unflattened dict also holds other backbones' keys when several were sampled: this one's wins
    assert flat_params({"backbone": "b", "max_lr": {"a": 1.0, "b": 2.0}})["max_lr"] == 2.0


def test_every_optional_searched_parameter_is_suggested_from_its_values():
    sc = SearchConfig(name="s", backbones=("resnet18",), image_sizes=(32, 64), batch_sizes=(16, 32),
                      weight_decay_range=(1e-4, 1e-2), freeze_epochs=(0, 1), aug_range=(0.2, 0.4))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = {"image_size": set(), "batch_size": set(), "freeze_epochs": set()}
    for _ in range(30):
        trial = study.ask()
        define_space(trial, sc)
        p = trial.params
        assert set(p) == {"backbone", "max_lr/resnet18", "aug", "image_size", "batch_size", "weight_decay",
                          "freeze_epochs"}
        assert 0.2 <= p["aug"] <= 0.4 and 1e-4 <= p["weight_decay"] <= 1e-2 and 1e-4 <= p["max_lr/resnet18"] <= 1e-2
        for key in seen:
            seen[key].add(p[key])
        study.tell(trial, 0.0)
    assert seen == {"image_size": {32, 64}, "batch_size": {16, 32}, "freeze_epochs": {0, 1}}
    dist = study.trials[0].distributions
    assert dist["weight_decay"].log and dist["max_lr/resnet18"].log and not dist["aug"].log


def test_the_recipe_clips_weight_decay_and_takes_the_first_batch_size():
    sc = SearchConfig(name="s", backbones=("resnet18",), batch_sizes=(48, 16), weight_decay_range=(0.05, 0.1))
    point = recipe_point(sc)
    assert point == {"backbone": "resnet18", "max_lr/resnet18": RECIPE_LR, "aug": RECIPE_AUG, "batch_size": 48,
                     "weight_decay": 0.05}
    assert recipe_point(SearchConfig(name="s", weight_decay_range=(1e-5, 1e-3)))["weight_decay"] == 1e-3
    # a pretrained backbone whose frozen epoch is not among the searched values gets the first searched value
    point = recipe_point(SearchConfig(name="s", backbones=("resnet18",), freeze_epochs=(2, 3)), frozenset({"resnet18"}))
    assert point["freeze_epochs"] == 2 and point["max_lr/resnet18"] == RECIPE_LR_PRETRAINED


def test_the_recipe_uses_the_backbones_own_lr_range():
    sc = SearchConfig(name="s", backbones=("resnet18", "convnext_nano"), lr_ranges={"convnext_nano": [1e-4, 5e-4]})
    assert recipe_point(sc, backbone="convnext_nano")["max_lr/convnext_nano"] == 5e-4
    assert recipe_point(sc)["max_lr/resnet18"] == RECIPE_LR


def test_a_one_trial_sweep_runs_the_recipe_once():
    sc = SearchConfig(name="s", trials=1, backbones=("tf_efficientnet_lite0", "resnet18"))
    assert [p["backbone"] for p in recipe_points(sc, frozenset({"tf_efficientnet_lite0"}), first="resnet18")] == [
        "tf_efficientnet_lite0"]
    assert len(recipe_points(SearchConfig(name="s", trials=2))) == 1  # first=None: the first backbone only


def test_a_trials_train_config_carries_the_sweeps_resources_metric_and_fixed_options():
    sc = SearchConfig(name="s", epochs=6, workers_per_trial=2, cpus_per_worker=2.0, metric="log_loss",
                      train={"batch_size": 16, "label_smoothing": 0.1, "seed": 3})
    sample = tune_sample("resnet18", 2e-3, aug=0.25)
    cpu = trial_train_config(sc, sample, use_gpu=False, gpus_per_worker=0.5)
    assert (cpu.backbone, cpu.max_lr, cpu.aug, cpu.epochs) == ("resnet18", 2e-3, 0.25, 6)
    assert (cpu.workers, cpu.cpus_per_worker, cpu.metric, cpu.seed) == (2, 2.0, "log_loss", 3)
    assert (cpu.batch_size, cpu.label_smoothing) == (16, 0.1)
    assert not cpu.use_gpu and cpu.gpus_per_worker == 1.0  # gpus_per_worker only set on GPUs (TrainConfig default)
    assert cpu.restarts == (1, 2)
    gpu = trial_train_config(sc, sample, use_gpu=True, gpus_per_worker=0.5)
    assert gpu.use_gpu and gpu.gpus_per_worker == 0.5
    assert trial_train_config(SearchConfig(name="s"), sample, use_gpu=False, gpus_per_worker=0).seed == 42


def test_searched_frozen_epochs_count_within_the_trials_epochs():
    sc = SearchConfig(name="s", epochs=5, freeze_epochs=(0, 2))
    cfg = trial_train_config(sc, tune_sample("resnet18", 1e-3, aug=0.5, freeze_epochs=2), use_gpu=False,
                             gpus_per_worker=0)
    assert (cfg.freeze_epochs, cfg.epochs, cfg.total_epochs) == (2, 3, 5)
    # a searched 0 is kept for a pretrained backbone (no extra frozen epoch added on top)
    cfg = trial_train_config(sc, tune_sample("resnet18", 1e-3, aug=0.5, freeze_epochs=0), use_gpu=False,
                             gpus_per_worker=0, pretrained=frozenset({"resnet18"}))
    assert (cfg.freeze_epochs, cfg.epochs) == (0, 5)


def test_a_one_epoch_pretrained_trial_gets_no_frozen_epoch():
    sc = SearchConfig(name="s", epochs=1)
    cfg = trial_train_config(sc, tune_sample("resnet18", 1e-3, aug=0.5), use_gpu=False, gpus_per_worker=0,
                             pretrained=frozenset({"resnet18"}))
    assert (cfg.freeze_epochs, cfg.epochs) == (0, 1)


def test_without_restart_at_rungs_the_one_cycle_runs_once():
    sc = SearchConfig(name="s", epochs=5, restart_at_rungs=False)
    assert trial_train_config(sc, tune_sample("resnet18", 1e-3, aug=0.5), use_gpu=False,
                              gpus_per_worker=0).restarts == ()


@pytest.mark.parametrize("epochs, rungs", [(9, (1, 3)), (20, (1, 3, 9)), (8, (1, 2, 4))])
def test_restarts_are_the_rungs_for_longer_sweeps_too(epochs, rungs):
    sc = SearchConfig(name="s", epochs=epochs)
    assert trial_train_config(sc, tune_sample("resnet18", 1e-3, aug=0.5), use_gpu=False,
                              gpus_per_worker=0).restarts == rungs


def _best_backbone_picks(sc: SearchConfig, good: str, trials: int = 9) -> int:
    """How many trials after the third a study with the sweep's sampler gives to the one backbone that scores
    well (the max LR's distance from 3e-4 decides within it): TPE exploits what it saw, random search does not."""
    from visionsweep.search.sweep import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sc))

    def objective(trial):
        define_space(trial, sc)
        backbone = trial.params["backbone"]
        distance = abs(math.log10(trial.params[f"max_lr/{backbone}"]) - math.log10(3e-4))
        return -distance - (0.0 if backbone == good else 1.0)

    study.optimize(objective, n_trials=trials)
    return [t.params["backbone"] for t in study.trials][3:].count(good)


def test_a_small_sweeps_tpe_starts_modelling_after_three_trials():
    # Optuna's default (10 random start-up trials) would make a 9-trial sweep random search; the sweep's own
    # default lets TPE pick the good backbone in most of the later trials (about a third by chance)
    for seed in (0, 1, 2):
        tpe = _best_backbone_picks(SearchConfig(name="s", trials=9, seed=seed), "efficientnet_b0")
        random10 = _best_backbone_picks(SearchConfig(name="s", trials=9, seed=seed, startup_trials=10),
                                        "efficientnet_b0")
        assert tpe >= 4 and tpe > random10, (seed, tpe, random10)


def test_flip_search_runs_the_hand_run_twice_and_each_trial_carries_its_flips():
    """--search-flip: flips are not a TPE parameter; the recipe trial of the user's first backbone is run twice in a
    row (flip_pair: the first of the two; search/fliptest.py gives them flips on, then off), and the "flip" a trial's
    config carries overrides the data's setting in its TrainConfig; without the option a trial leaves it to the data."""
    sc = SearchConfig(name="s", backbones=("resnet18",), search_flip=True)
    trial = optuna.create_study().ask()
    define_space(trial, sc)
    assert "flip" not in trial.params and "flip" not in recipe_point(sc)
    # the hand run (the user's first backbone) is tried twice; a one-trial sweep runs the recipe alone
    two = SearchConfig(name="s", backbones=("tf_efficientnet_lite0", "resnet18"), search_flip=True)
    points = recipe_points(two, frozenset({"tf_efficientnet_lite0"}), first="resnet18")
    assert [p["backbone"] for p in points] == ["tf_efficientnet_lite0", "resnet18", "resnet18"]
    assert points[2] == points[1] and flip_pair(two, points) == 1
    assert flip_pair(sc, recipe_points(sc)) == 0
    one = SearchConfig(name="s", trials=1, search_flip=True)
    assert len(recipe_points(one)) == 1 and flip_pair(one, recipe_points(one)) is None
    plain = SearchConfig(name="s", backbones=("tf_efficientnet_lite0", "resnet18"))
    assert flip_pair(plain, recipe_points(plain, frozenset({"tf_efficientnet_lite0"}), first="resnet18")) is None
    off = trial_train_config(sc, tune_sample("resnet18", 1e-3, aug=0.5, flip=False), use_gpu=False, gpus_per_worker=0)
    assert off.flip is False
    assert trial_train_config(SearchConfig(name="s"), tune_sample("resnet18", 1e-3, aug=0.5), use_gpu=False,
                              gpus_per_worker=0).flip is None
    with pytest.raises(DataError, match="recipe_first is false"):
        SearchConfig(name="s", search_flip=True, recipe_first=False)
    with pytest.raises(DataError, match="flip is set by the sweep"):
        SearchConfig(name="s", train={"flip": False})

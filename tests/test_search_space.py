"""The search's pure parts: ASHA's rungs, the recipe as trial 1, and sample -> TrainConfig (no Ray started)."""

import pytest

from visionsweep.datasets import DataError
from visionsweep.search.config import SearchConfig
from visionsweep.search.space import recipe_point, trial_train_config


def test_rungs_are_ashas_milestones_in_the_first_half_and_the_scheduler_judges_at_them():
    from ray.tune.schedulers.async_hyperband import _Bracket  # Ray's own milestones (no Ray started)

    from visionsweep.search.asha import ProvisionalASHA

    for epochs in range(1, 21):
        for grace in (1, 2, 3):
            for rf in (2, 3, 4):
                sc = SearchConfig(name="x", epochs=epochs, grace_period=grace, reduction_factor=rf)
                ray_rungs = sorted(m for m, _ in _Bracket(min_t=grace, max_t=epochs, reduction_factor=rf, s=0)._rungs)
                assert sc.rungs() == tuple(m for m in ray_rungs if 2 * m <= epochs), (epochs, grace, rf)
                if grace <= epochs:
                    asha = ProvisionalASHA(time_attr="epoch", metric="m", mode="max", max_t=epochs,
                                           grace_period=grace, reduction_factor=rf, rungs=sc.rungs())
                    assert sorted(m for m, _ in asha._brackets[0]._rungs) == list(sc.rungs()), (epochs, grace, rf)


def test_asha_defaults_follow_the_epochs_and_none_means_no_rungs():
    assert SearchConfig(name="x", epochs=5).rungs() == (1, 2)  # not Ray's rung at 4: it would save 1 epoch of 5
    assert SearchConfig(name="x", epochs=12).asha == (1, 3) and SearchConfig(name="x", epochs=12).rungs() == (1, 3)
    assert SearchConfig(name="x", epochs=20).rungs() == (1, 3, 9)
    assert SearchConfig(name="x", epochs=5, early_stopping="none").rungs() == ()
    for bad in ({"searcher": "grid"}, {"early_stopping": "hyperband"}, {"reduction_factor": 1},
                {"weights": {"resnet18": "/nonexistent/w.safetensors"}}):
        with pytest.raises(DataError):
            SearchConfig(name="x", **bad)


def test_trials_restart_their_one_cycle_at_the_rungs():
    sc = SearchConfig(name="x", epochs=5, backbones=("resnet18",))
    cfg = trial_train_config(sc, {"backbone": "resnet18", "max_lr": {"resnet18": 1e-3}, "aug": 0.3},
                             use_gpu=False, gpus_per_worker=0)
    assert cfg.restarts == (1, 2) and cfg.epochs == 5 and cfg.freeze_epochs == 0
    plain = trial_train_config(SearchConfig(name="x", epochs=5, early_stopping="none"),
                               {"backbone": "resnet18", "max_lr": {"resnet18": 1e-3}, "aug": 0.3},
                               use_gpu=False, gpus_per_worker=0)
    assert plain.restarts == ()


def test_pretrained_backbones_fine_tune_with_a_frozen_epoch_and_their_weights_file(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    sc = SearchConfig(name="x", epochs=5, backbones=("resnet18", "tf_efficientnet_lite0"),
                      weights={"tf_efficientnet_lite0": str(weights)})
    sample = {"backbone": "tf_efficientnet_lite0", "max_lr": {"tf_efficientnet_lite0": 1e-3}, "aug": 0.5}
    cfg = trial_train_config(sc, sample, use_gpu=False, gpus_per_worker=0, pretrained=frozenset({"tf_efficientnet_lite0"}))
    assert cfg.weights == str(weights) and cfg.freeze_epochs == 1 and cfg.epochs == 4  # 5 epochs in all
    scratch = trial_train_config(sc, {"backbone": "resnet18", "max_lr": {"resnet18": 1e-3}, "aug": 0.5},
                                 use_gpu=False, gpus_per_worker=0, pretrained=frozenset({"tf_efficientnet_lite0"}))
    assert scratch.weights is None and scratch.freeze_epochs == 0


def test_the_recipe_point_is_the_first_backbone_clipped_into_the_searched_ranges():
    sc = SearchConfig(name="x", backbones=("resnet18", "convnext_nano"), aug_range=(0.0, 0.4))
    assert recipe_point(sc) == {"backbone": "resnet18", "max_lr/resnet18": 3e-3, "aug": 0.4}
    narrow = SearchConfig(name="x", backbones=("resnet18",), lr_range=(1e-2, 1e-1), freeze_epochs=(0, 1),
                          image_sizes=(64, 96))
    assert recipe_point(narrow) == {"backbone": "resnet18", "max_lr/resnet18": 1e-2, "aug": 0.5, "image_size": 64,
                                    "freeze_epochs": 0}
    assert recipe_point(narrow, frozenset({"resnet18"}))["freeze_epochs"] == 1  # fine_tune's frozen epoch
    assert recipe_point(SearchConfig(name="x"), frozenset({"resnet18"}))["max_lr/resnet18"] == 1e-3


def test_the_users_own_first_backbone_gets_its_recipe_trial_too_when_a_pretrained_one_goes_first():
    from visionsweep.search.space import recipe_points

    sc = SearchConfig(name="x", backbones=("tf_efficientnet_lite0", "resnet18"))  # reordered: pretrained first
    points = recipe_points(sc, frozenset({"tf_efficientnet_lite0"}), first="resnet18")
    assert [p["backbone"] for p in points] == ["tf_efficientnet_lite0", "resnet18"]
    assert points[0]["max_lr/tf_efficientnet_lite0"] == 1e-3 and points[1]["max_lr/resnet18"] == 3e-3
    assert len(recipe_points(sc, frozenset(), first="tf_efficientnet_lite0")) == 1


def test_with_pretrained_backbones_the_first_rung_follows_an_unfrozen_epoch(tmp_path):
    from visionsweep.search.sweep import pretrained_first

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    sc = SearchConfig(name="x", epochs=5, backbones=("resnet18", "tf_efficientnet_lite0"),
                      weights={"tf_efficientnet_lite0": str(weights)}, train={"pretrained": True})
    ordered, have = pretrained_first(sc)
    assert ordered.backbones[0] == "tf_efficientnet_lite0" and "tf_efficientnet_lite0" in have
    assert ordered.rungs() == (2,)  # not 1: epoch 1 is the frozen head-only epoch
    scratch, none = pretrained_first(SearchConfig(name="x", epochs=5, train={"pretrained": False}))
    assert not none and scratch.rungs() == (1, 2)


def test_every_sampled_max_lr_lies_in_its_backbones_own_range():
    import optuna

    from visionsweep.search.space import define_space

    sc = SearchConfig(name="x", backbones=("resnet18", "convnext_nano"),
                      lr_ranges={"resnet18": [1e-4, 2e-4], "convnext_nano": [1e-2, 3e-2]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        define_space(trial, sc)
        backbone = trial.params["backbone"]
        lo, hi = sc.lr_ranges[backbone]
        assert lo <= trial.params[f"max_lr/{backbone}"] <= hi, trial.params
        assert set(trial.params) == {"backbone", f"max_lr/{backbone}", "aug"}
        seen.add(backbone)
        study.tell(trial, 0.5)
    assert seen == {"resnet18", "convnext_nano"}

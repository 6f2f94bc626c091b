"""The define-by-run search space for OptunaSearch, and its sample -> TrainConfig conversion."""

from __future__ import annotations

from visionsweep.search.config import SearchConfig
from visionsweep.trainables.config import TrainConfig, config_from_dict


def define_space(trial, sc: SearchConfig) -> None:
    """Only suggests (OptunaSearch calls it in the driver). The max LR is a separate parameter per
    backbone ("max_lr/<backbone>"), so TPE learns each backbone's good LR on its own scale."""
    backbone = trial.suggest_categorical("backbone", list(sc.backbones))
    lo, hi = sc.lr_range_for(backbone)
    trial.suggest_float(f"max_lr/{backbone}", lo, hi, log=True)
    trial.suggest_float("aug", *sc.aug_range)
    if sc.image_sizes:
        trial.suggest_categorical("image_size", list(sc.image_sizes))
    if sc.batch_sizes:
        trial.suggest_categorical("batch_size", list(sc.batch_sizes))
    if sc.weight_decay_range:
        trial.suggest_float("weight_decay", *sc.weight_decay_range, log=True)
    if sc.freeze_epochs:
        trial.suggest_categorical("freeze_epochs", list(sc.freeze_epochs))


def tune_sample(backbone: str, max_lr: float, **values) -> dict:
    """A Tune config as OptunaSearch hands it to a trial: the max LR is stored per backbone
    ({"max_lr": {"resnet18": ...}}, the unflattened "max_lr/<backbone>" parameter)."""
    return {"backbone": backbone, "max_lr": {backbone: max_lr}, **values}


def flat_params(config: dict) -> dict:
    """A Tune config -> {"backbone", "max_lr", ...} (a config with a plain max_lr passes as it is)."""
    out = dict(config)
    if isinstance(config.get("max_lr"), dict):
        out["max_lr"] = config["max_lr"].get(config.get("backbone"))
    return out


# The fastai recipe the tutorials run by hand: trial 1 of every sweep (SearchConfig.recipe_first), so a sweep
# never does worse than one run of it for want of trying it.
RECIPE_LR = 3e-3           # fit_one_cycle's usual max LR from scratch (lr_find's valley on the tutorials' data)
RECIPE_LR_PRETRAINED = 1e-3  # fine_tune's base LR for a pretrained body
RECIPE_AUG = 0.5


def _clip(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


def recipe_points(sc: SearchConfig, pretrained: frozenset[str] = frozenset(), *, first: str | None = None) -> list:
    """The recipe's trials: on the first backbone (pretrained ones are ordered first), and, when that is not the
    user's own first choice `first`, on that one too: the run a person would make by hand is always tried. When
    flips are searched, that run is tried twice in a row, with and without them (flip_pair: the first of the two;
    search/fliptest.py sets each trial's flips)."""
    points = [recipe_point(sc, pretrained)]
    if first is not None and first != sc.backbones[0] and sc.trials > 1:
        points.append(recipe_point(sc, pretrained, backbone=first))
    if sc.search_flip and sc.trials > len(points):  # the hand run without flips too: a paired test of them
        points.append(dict(points[-1]))
    return points


def flip_pair(sc: SearchConfig, points: list) -> int | None:
    """The index of the recipe trial that --search-flip runs with and then without flips (the last two of
    recipe_points), None when there is no such pair (flips not searched, or no trial left for the twin)."""
    return len(points) - 2 if sc.search_flip and len(points) >= 2 and points[-1] == points[-2] else None


def recipe_point(sc: SearchConfig, pretrained: frozenset[str] = frozenset(), *, backbone: str | None = None) -> dict:
    """The recipe as a flat OptunaSearch point ("max_lr/<backbone>" keys): the first backbone (pretrained ones
    are ordered first), the recipe's max LR and augmentation clipped into the searched ranges, one frozen-head
    epoch for a pretrained backbone when frozen epochs are searched."""
    backbone = backbone or sc.backbones[0]
    lr = RECIPE_LR_PRETRAINED if backbone in pretrained else RECIPE_LR
    point = {"backbone": backbone, f"max_lr/{backbone}": _clip(lr, *sc.lr_range_for(backbone)),
             "aug": _clip(RECIPE_AUG, *sc.aug_range)}
    if sc.image_sizes:
        point["image_size"] = sc.image_sizes[0]
    if sc.batch_sizes:
        point["batch_size"] = sc.batch_sizes[0]
    if sc.weight_decay_range:
        point["weight_decay"] = _clip(0.01, *sc.weight_decay_range)
    if sc.freeze_epochs:
        want = 1 if backbone in pretrained else 0
        point["freeze_epochs"] = want if want in sc.freeze_epochs else sc.freeze_epochs[0]
    return point


def trial_train_config(sc: SearchConfig, config: dict, *, use_gpu: bool, gpus_per_worker: float,
                       pretrained: frozenset[str] = frozenset()) -> TrainConfig:
    """Fixed training options + this trial's sample. `epochs` counts every epoch ASHA sees. A backbone with
    pretrained weights is fine-tuned as fastai's fine_tune does: one frozen-head epoch first (unless frozen
    epochs are searched or fixed), then the body at max_lr / body_lr_div. With early stopping, the one-cycle
    restarts at every rung, so each rung judges an annealed model."""
    values = dict(sc.train)
    values.update(flat_params(config))
    backbone = values["backbone"]
    if backbone in sc.weights:
        values["weights"] = str(sc.weights[backbone])
    if backbone in pretrained and "freeze_epochs" not in values and sc.epochs >= 2:
        values["freeze_epochs"] = 1
    freeze = int(values.get("freeze_epochs", 0))
    if sc.restart_at_rungs:
        values["restarts"] = sc.rungs()
    values.update(epochs=max(1, sc.epochs - freeze), workers=sc.workers_per_trial, use_gpu=use_gpu,
                  cpus_per_worker=sc.cpus_per_worker, metric=sc.metric, seed=int(values.get("seed", 42)))
    if use_gpu:
        values["gpus_per_worker"] = gpus_per_worker
    return config_from_dict(values)

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


def flat_params(config: dict) -> dict:
    """A Tune config (unflattened: {"max_lr": {"resnet18": ...}}) -> {"backbone", "max_lr", ...}."""
    out = {k: v for k, v in config.items() if k != "max_lr"}
    out["max_lr"] = config["max_lr"][config["backbone"]]
    return out


def trial_train_config(sc: SearchConfig, config: dict, *, use_gpu: bool, gpus_per_worker: float) -> TrainConfig:
    """Fixed training options + this trial's sample. `epochs` counts every epoch ASHA sees."""
    values = dict(sc.train)
    values.update(flat_params(config))
    freeze = int(values.get("freeze_epochs", 0))
    values.update(epochs=max(1, sc.epochs - freeze), workers=sc.workers_per_trial, use_gpu=use_gpu,
                  cpus_per_worker=sc.cpus_per_worker, metric=sc.metric, seed=int(values.get("seed", 42)))
    if use_gpu:
        values["gpus_per_worker"] = gpus_per_worker
    return config_from_dict(values)

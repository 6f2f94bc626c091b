"""Every trial's TrainConfig, built and validated before Ray starts: a bad `train:` option is one exit-2 message,
never N failed trials."""

from __future__ import annotations

import itertools

from visionsweep.datasets import DataError

# TrainConfig fields that the sweep sets for every trial itself, and where the user sets them instead.
OWNED = {"workers": "--workers-per-trial (workers_per_trial:)", "use_gpu": "--cpu / --gpus-per-trial",
         "gpus_per_worker": "--gpus-per-trial (gpus_per_trial:)", "cpus_per_worker": "cpus_per_worker:",
         "metric": "--metric (metric:)", "epochs": "--epochs (epochs:)", "backbone": "--backbones (backbones:)",
         "max_lr": "lr_range: / lr_ranges:", "aug": "aug_range:", "flip": "--no-flip (data) or --search-flip"}


def check_trial_configs(sc) -> None:
    """Reject keys of `train:` that the sweep owns, naming the option to use; then build the TrainConfig of
    every backbone at the edges of every searched range, so any value a trial could get is checked now."""
    from visionsweep.search.space import trial_train_config, tune_sample

    owned = sorted(set(sc.train) & set(OWNED))
    if owned:
        raise DataError("train: " + "; ".join(f"{k} is set by the sweep, use {OWNED[k]}" for k in owned))
    edges = {"aug": sorted({float(a) for a in sc.aug_range})}
    if sc.image_sizes:
        edges["image_size"] = list(sc.image_sizes)
    if sc.batch_sizes:
        edges["batch_size"] = list(sc.batch_sizes)
    if sc.weight_decay_range:
        edges["weight_decay"] = sorted({float(w) for w in sc.weight_decay_range})
    if sc.freeze_epochs:
        edges["freeze_epochs"] = list(sc.freeze_epochs)
    if sc.search_flip is not False:  # tested, or perhaps by default (search/fliptest.py)
        edges["flip"] = [True, False]
    names = list(edges)
    for backbone in sc.backbones:
        for lr in sorted(set(sc.lr_range_for(backbone))):
            for combo in itertools.product(*(edges[n] for n in names)):
                sample = tune_sample(backbone, lr, **dict(zip(names, combo)))
                try:
                    trial_train_config(sc, sample, use_gpu=False, gpus_per_worker=1.0)
                except DataError as err:
                    shown = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in {"backbone": backbone, "max_lr": lr, **dict(zip(names, combo))}.items())
                    raise DataError(f"the sweep's training options fail for a trial it would run ({shown}): {err}. "
                                    f"Fix train: (or --batch-size / --image-size) or the searched range") from None

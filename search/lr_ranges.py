"""`sweep --lr-find`: fastai's LR range test per backbone before the sweep, each max-LR range centred on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from visionsweep.search.config import SearchConfig
from visionsweep.search.space import RECIPE_AUG, trial_train_config, tune_sample
from visionsweep.trainables.plots import save_lr_find
from visionsweep.trainables.ray_train import lr_find_curve
from visionsweep.trainables.worker import DataInfo
from visionsweep.datasets.console import say

# The searched max LR spans the valley suggestion x/÷ this: fastai's advice is the valley for fit_one_cycle,
# and across data sets the best one-cycle max LR sat within a few-fold of it.
LR_FIND_SPAN = 4.0


def centred_range(valley: float, span: float = LR_FIND_SPAN) -> tuple[float, float]:
    return valley / span, valley * span


def lr_find_ranges(sc: SearchConfig, info: DataInfo, arrays_ref, *, out_dir: str | None, use_gpu: bool,
                   gpus_per_worker: float, pretrained: frozenset, log=say) -> SearchConfig:
    """sc with lr_ranges[backbone] centred on each backbone's lr_find valley (the range test runs as the
    backbone's trials will train: same image size, batch, augmentation 0.5 clipped, frozen epochs ignored);
    plots and curves go to out_dir/lr_find/<backbone>.png/.json when out_dir is a local folder."""
    ranges = dict(sc.lr_ranges)
    for backbone in sc.backbones:
        lo, _ = sc.lr_range_for(backbone)
        sample = tune_sample(backbone, lo, aug=min(max(RECIPE_AUG, sc.aug_range[0]), sc.aug_range[1]))
        cfg = trial_train_config(sc, sample, use_gpu=use_gpu, gpus_per_worker=gpus_per_worker, pretrained=pretrained)
        cfg = dataclasses.replace(cfg, freeze_epochs=0)  # the range test steps the whole model
        result = lr_find_curve(cfg, info, arrays_ref)
        valley = result["suggestions"]["valley"]["lr"]
        ranges[backbone] = list(centred_range(valley))
        if out_dir is not None:
            folder = Path(out_dir) / "lr_find"
            folder.mkdir(parents=True, exist_ok=True)
            save_lr_find(result, backbone, folder / f"{backbone}.png")
        log(f"lr_find {backbone}: valley {valley:.2e} -> max LR searched in [{ranges[backbone][0]:.2e}, "
            f"{ranges[backbone][1]:.2e}]")
    return dataclasses.replace(sc, lr_ranges=ranges)

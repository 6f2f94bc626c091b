"""What one training process does, minus Ray: build the model and batches, resume, fit, describe checkpoints.

The Ray Train shell (trainables.ray_train) calls `run_worker` inside each DDP worker; tests call it directly
(one process, or torch.multiprocessing with gloo) with their own `report`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from visionsweep.trainables.checkpoint import (CheckpointMeta, load_weights_into, read_meta, read_train_state,
                                               write_checkpoint)
from visionsweep.trainables.config import TrainConfig, resolve_metric
from visionsweep.datasets.split import fold_splits
from visionsweep.trainables.loop import Batches, Member, ReportFn, ResumeState, Runner, Task, fit_members
from visionsweep.trainables.model import create_model, data_config
from visionsweep.trainables.provenance import provenance
from visionsweep.datasets.console import say


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """The labels' meaning, travelling with the arrays to every worker."""

    classes: list[str]
    positive_class: str | None
    vertical_flip: bool
    flip: bool = True

    @property
    def positive_index(self) -> int | None:
        return self.classes.index(self.positive_class) if self.positive_class is not None else None


def with_config(info: DataInfo, cfg: TrainConfig) -> DataInfo:
    """The data's options as this run trains with them: a sweep that searches horizontal flips sets cfg.flip."""
    return info if cfg.flip is None else dataclasses.replace(info, flip=cfg.flip)


def make_task(cfg: TrainConfig, info: DataInfo, model: nn.Module) -> Task:
    prep = data_config(model, cfg.image_size)
    return Task(num_classes=len(info.classes), positive_index=info.positive_index, vertical_flip=info.vertical_flip,
                image_size=prep["image_size"], mean=tuple(prep["mean"]), std=tuple(prep["std"]), flip=info.flip)


def checkpoint_meta(cfg: TrainConfig, info: DataInfo, task: Task, *, epoch: int, history: list[dict],
                    step_losses: list[float], weights_source: str, device: str, folds: int = 1) -> CheckpointMeta:
    metric, mode = resolve_metric(cfg.metric, len(info.classes))
    return CheckpointMeta(backbone=cfg.backbone, classes=list(info.classes), positive_class=info.positive_class,
                          vertical_flip=info.vertical_flip, image_size=task.image_size, mean=tuple(task.mean),
                          std=tuple(task.std), metric=metric, mode=mode, epoch=epoch, history=list(history),
                          step_losses=list(step_losses), config=dataclasses.asdict(cfg), weights_source=weights_source,
                          provenance=provenance(device), folds=folds, flip=info.flip)


def build_model(cfg: TrainConfig, info: DataInfo, *, device: torch.device, resume_dir: str | Path | None = None,
                log: Callable[[str], None] = say) -> tuple[nn.Module, Task, str, ResumeState | None]:
    """(model on the device, task, where the weights came from, resume state or None)."""
    torch.manual_seed(cfg.seed)  # identical initial head on every rank
    model, source = create_model(cfg.backbone, len(info.classes), pretrained=cfg.pretrained and resume_dir is None,
                                 weights=cfg.weights if resume_dir is None else None, log=log)
    resume = None
    if resume_dir is not None:
        load_weights_into(model, resume_dir)
        meta = read_meta(resume_dir)
        resume = ResumeState(epoch=meta.epoch, optimizer=read_train_state(resume_dir)["optimizer"],
                             history=meta.history, step_losses=meta.step_losses)
        source = meta.weights_source
    task = make_task(cfg, info, model)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, task, source, resume


def run_worker(cfg: TrainConfig, info: DataInfo, arrays: dict[str, np.ndarray], *, device: torch.device,
               prepare_model: Callable[[nn.Module], nn.Module], report: ReportFn,
               resume_dir: str | Path | None = None, log: Callable[[str], None] = say) -> list[dict]:
    """Build, optionally resume, and fit; `prepare_model` moves/wraps the model (DDP under Ray Train).
    `arrays["fold"]` (a fold index per labelled image, train then valid): a K-fold cross-validation, K models
    trained side by side (fit_members)."""
    info = with_config(info, cfg)
    if "fold" in arrays:
        parts = fold_splits(arrays, arrays["fold"])
        dirs = [Path(resume_dir) / f"fold-{k}" if resume_dir is not None else None for k in range(len(parts))]
    else:
        parts, dirs = [arrays], [resume_dir]
    members, source, task = [], "", None
    for part, member_dir in zip(parts, dirs):  # the weights line once, not once per fold
        model, task, source, resume = build_model(cfg, info, device=device, resume_dir=member_dir,
                                                  log=log if not members else lambda m: None)
        members.append(Member(prepare_model(model), Batches(part["x_train"], part["y_train"], device),
                              Batches(part["x_valid"], part["y_valid"], device), resume))

    def write(path, *, model, optimizer, epoch, history, step_losses, folds=1):
        meta = checkpoint_meta(cfg, info, task, epoch=epoch, history=history, step_losses=step_losses,
                               weights_source=source, device=str(device), folds=folds)
        write_checkpoint(path, model=model, optimizer=optimizer, meta=meta)

    return fit_members(members, cfg=cfg, task=task, device=device, report=report, write_checkpoint=write, log=log)


def run_lr_find(cfg: TrainConfig, info: DataInfo, arrays: dict[str, np.ndarray], *, device: torch.device,
                prepare_model: Callable[[nn.Module], nn.Module], log: Callable[[str], None] = say) -> dict:
    from visionsweep.trainables.lr_find import lr_find

    model, task, _, _ = build_model(cfg, info, device=device, log=log)
    runner = Runner(prepare_model(model), task, device, label_smoothing=cfg.label_smoothing)
    return lr_find(runner, Batches(arrays["x_train"], arrays["y_train"], device), cfg=cfg)

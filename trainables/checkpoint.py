"""Checkpoints: weights in safetensors, facts in meta.json, optimizer state for resume loadable with weights_only."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from visionsweep.datasets import DataError
from visionsweep.trainables.loop import Task

WEIGHTS, META, STATE = "model.safetensors", "meta.json", "train_state.pt"
TIMM_CONFIG = "config.json"  # timm's own: timm.create_model("local-dir:<checkpoint>", pretrained=True) loads it
FORMAT = "visionsweep-checkpoint-1"


@dataclasses.dataclass(frozen=True)
class CheckpointMeta:
    """meta.json: everything predict needs to rebuild and feed the model (backbone, classes, preprocessing), the
    run's history up to this epoch (what a resumed run continues), and where the result came from."""

    backbone: str
    classes: list[str]
    positive_class: str | None   # binary tasks: the class whose probability is scored (AUC)
    vertical_flip: bool
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    metric: str
    mode: str
    epoch: int
    history: list[dict]          # one row of metrics per epoch, 1..epoch
    step_losses: list[float]
    config: dict                 # the TrainConfig, as a dict
    weights_source: str
    provenance: dict
    folds: int = 1               # > 1: a cross-validation's K models in fold-0 .. fold-K-1/; this record their mean
    flip: bool = True            # horizontal flips valid (TTA uses them); absent from checkpoints before 2026-12-07
    format: str = FORMAT

    @property
    def metrics(self) -> dict:
        """This epoch's metrics."""
        return self.history[-1] if self.history else {}

    @property
    def task(self) -> Task:
        """The only way a Task is rebuilt from a checkpoint (inference, resume checks)."""
        return Task(num_classes=len(self.classes),
                    positive_index=self.classes.index(self.positive_class) if self.positive_class is not None else None,
                    vertical_flip=self.vertical_flip, image_size=self.image_size, mean=self.mean, std=self.std,
                    flip=self.flip)

    def to_json(self) -> dict:
        """The file's content; "metrics" (this epoch's row) is repeated for readers without visionsweep."""
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std), "metrics": self.metrics}

    @classmethod
    def from_json(cls, values: dict, *, source: str = META) -> "CheckpointMeta":
        """Unknown keys (newer writers, the repeated "metrics") are ignored; a missing one is a DataError."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.name not in values)
        if not isinstance(values, dict) or missing:
            raise DataError(f"{source} is not a visionsweep checkpoint record (missing: {', '.join(missing)}); "
                            f"was it written by another tool?")
        v = {k: values[k] for k in names if k in values}
        return cls(**{**v, "classes": [str(c) for c in v["classes"]], "image_size": int(v["image_size"]),
                      "vertical_flip": bool(v["vertical_flip"]), "flip": bool(v.get("flip", True)), "mean": tuple(map(float, v["mean"])),
                      "std": tuple(map(float, v["std"])), "epoch": int(v["epoch"])})


def timm_config(meta: CheckpointMeta) -> dict:
    """timm's config.json for a checkpoint (the format of timm's hub exports): the architecture, the head's
    classes and the preprocessing the model was trained with, so plain timm (an offline Kaggle notebook,
    no visionsweep, no Ray) rebuilds and feeds it."""
    size = meta.image_size
    return {"architecture": meta.backbone, "num_classes": len(meta.classes),
            "label_names": list(meta.classes),
            "pretrained_cfg": {"input_size": [3, size, size], "mean": list(meta.mean), "std": list(meta.std),
                               "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center",
                               "num_classes": len(meta.classes)}}


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_checkpoint(directory: str | Path, *, model: nn.Module | None, optimizer: torch.optim.Optimizer | None,
                     meta: CheckpointMeta) -> None:
    """Each file appears whole or not at all (written aside, then renamed). No pickled code: the state is
    tensors and plain containers, which torch.load(weights_only=True) accepts. `model=None`: the record of a
    cross-validation's folds (written after the folds' own checkpoints, in their subfolders)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if model is not None:
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        _atomic_write(d / WEIGHTS, lambda p: save_file(weights, str(p)))
        _atomic_write(d / TIMM_CONFIG, lambda p: p.write_text(json.dumps(timm_config(meta), indent=1)))
    if optimizer is not None:
        state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
        _atomic_write(d / STATE, lambda p: torch.save(state, p))
    _atomic_write(d / META, lambda p: p.write_text(json.dumps(meta.to_json(), indent=1, default=str)))


def member_dirs(directory: str | Path) -> list[Path]:
    """The checkpoint folders holding weights: the checkpoint itself, or a cross-validation's fold-k/ folders."""
    d = Path(directory)
    folds = read_meta(d).folds
    return [d / f"fold-{k}" for k in range(folds)] if folds > 1 else [d]


def read_meta(directory: str | Path) -> CheckpointMeta:
    path = Path(directory) / META
    if not path.is_file():
        raise DataError(f"{directory} is not a visionsweep checkpoint (no {META})")
    try:
        values = json.loads(path.read_text())
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err}); the checkpoint is damaged") from None
    return CheckpointMeta.from_json(values, source=str(path))


def load_weights_into(model: nn.Module, directory: str | Path) -> None:
    """Strict: every tensor of the model, no extra ones."""
    model.load_state_dict(load_file(str(Path(directory) / WEIGHTS)), strict=True)


def read_train_state(directory: str | Path) -> dict:
    """The optimizer state for resume; weights_only=True refuses pickled code (a planted pickle is an error)."""
    path = Path(directory) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{path} is not a plain tensor state file; refusing to load it "
                        f"({type(err).__name__}: {str(err)[:200]})") from None


def export_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Copy a checkpoint's weights, meta and timm config (not the optimizer) to `dst`, replacing it atomically."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for member in member_dirs(src):
        into = tmp / member.relative_to(src)
        into.mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS, META, TIMM_CONFIG):
            if name != TIMM_CONFIG or (member / name).is_file():  # checkpoints written before timm's config
                shutil.copy2(member / name, into / name)
    shutil.copy2(Path(src) / META, tmp / META)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)

"""TrainConfig: everything one fine-tuning run needs besides the data, with defaults in one place."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from visionsweep.datasets import DataError
from visionsweep.datasets.typed import coerce_fields


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = "resnet18"        # any timm model name (timm.list_models())
    max_lr: float = 3e-3              # peak learning rate of the one-cycle schedule (head; body too unless frozen first)
    epochs: int = 5                   # one-cycle epochs with the whole model trainable
    freeze_epochs: int = 0            # fastai fine_tune: epochs training only the new head first (own one-cycle)
    body_lr_div: float = 10.0         # after a frozen phase the body trains at max_lr / body_lr_div (fastai's slice)
    batch_size: int = 64              # images per worker per step
    image_size: int | None = None     # model input side, px; None = the backbone's pretrained input size
    aug: float = 0.5                  # augmentation strength in [0, 1]; 0 = none (see datasets.augment)
    flip: bool | None = None          # horizontal flips (augmentation, TTA); None = the data's (--no-flip); a sweep
                                      #   with --search-flip sets it per trial
    weight_decay: float = 0.01        # AdamW, decoupled; not applied to norms and biases
    label_smoothing: float = 0.0      # cross-entropy label smoothing
    pct_start: float = 0.25           # one-cycle warm-up fraction
    div: float = 25.0                 # one-cycle start LR = max_lr / div
    final_div: float = 1e5            # one-cycle end LR = max_lr / final_div
    mom_max: float = 0.95             # AdamW beta1 at the start and end of the cycle
    mom_min: float = 0.85             # AdamW beta1 at the LR peak
    restarts: tuple[int, ...] = ()    # total-epoch numbers after which the one-cycle restarts (sweeps: the rungs)
    pretrained: bool = True           # ImageNet weights from the hub when reachable (or its local cache)
    weights: str | None = None        # a weights file (safetensors or a state dict) instead of the hub
    workers: int = 1                  # DDP workers (processes), one GPU each when use_gpu
    use_gpu: bool = False             # NCCL on GPUs, else gloo on CPUs
    cpus_per_worker: float = 1.0      # Ray resources per worker
    gpus_per_worker: float = 1.0      # Ray resources per worker when use_gpu; < 1 lets small trials share a GPU
    metric: str = "auto"              # auto (auc binary, else accuracy) | accuracy | auc | log_loss | valid_loss |
                                      #   error_rate | f1_macro | mcc | kappa_quadratic (ordered classes)
    seed: int = 42                    # model init, shuffling and augmentation
    max_failures: int = 2             # Ray Train restarts of a failed worker group, from the latest checkpoint

    def __post_init__(self) -> None:
        object.__setattr__(self, "restarts", tuple(int(r) for r in self.restarts))  # lists from YAML / JSON
        # inf / nan pass every comparison below that is written as "not too small" and then make the loss NaN
        # inside a worker (after Ray started, and retried as if a worker had died): rejected here by flag.
        for name, flag in _FLOAT_FLAGS.items():
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise DataError(f"{flag} must be a finite number, got {value}")
        checks = [
            (self.max_lr > 0, f"--max-lr must be > 0, got {self.max_lr}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.freeze_epochs >= 0, f"--freeze-epochs must be >= 0, got {self.freeze_epochs}"),
            (self.body_lr_div >= 1, f"--body-lr-div must be >= 1, got {self.body_lr_div}"),
            (self.batch_size >= 2, f"--batch-size must be >= 2 (batch norm needs two images), got {self.batch_size}"),
            (self.image_size is None or 16 <= self.image_size <= 1024,
             f"--image-size must be between 16 and 1024 px, got {self.image_size}"),
            (0.0 <= self.aug <= 1.0, f"--aug must be in [0, 1], got {self.aug}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0.0 < self.pct_start < 1.0, f"pct_start must be in (0, 1), got {self.pct_start}"),
            (self.div > 1 and self.final_div > 1, "div and final_div must be > 1"),
            (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (self.gpus_per_worker > 0 and self.cpus_per_worker >= 0, "resources per worker must be positive"),
            (self.metric in METRICS, f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}"),
            (self.max_failures >= 0, f"max_failures must be >= 0, got {self.max_failures}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DataError(message)

    @property
    def total_epochs(self) -> int:
        return self.freeze_epochs + self.epochs


_FLOAT_FLAGS = {"max_lr": "--max-lr", "weight_decay": "--weight-decay", "aug": "--aug", "body_lr_div": "body_lr_div",
               "label_smoothing": "label_smoothing", "pct_start": "pct_start", "div": "div", "final_div": "final_div",
               "mom_max": "mom_max", "mom_min": "mom_min", "cpus_per_worker": "cpus_per_worker",
               "gpus_per_worker": "gpus_per_worker"}
METRIC_MODES = {"accuracy": "max", "auc": "max", "log_loss": "min", "valid_loss": "min", "error_rate": "min",
                "f1_macro": "max", "mcc": "max", "kappa_quadratic": "max"}
METRICS = ("auto", *METRIC_MODES)


def resolve_metric(metric: str, num_classes: int) -> tuple[str, str]:
    """(metric, mode): `auto` is AUC for binary tasks (as Aerial Cactus scores), accuracy otherwise."""
    if metric == "auto":
        metric = "auc" if num_classes == 2 else "accuracy"
    if metric == "auc" and num_classes != 2:
        raise DataError(f"--metric auc needs a binary task; this one has {num_classes} classes "
                        f"(use accuracy or log_loss)")
    return metric, METRIC_MODES[metric]


def config_from_dict(values: dict, source: str = "training options") -> TrainConfig:
    """Build a TrainConfig from a dict (flags, YAML, a search-space sample), rejecting unknown keys by name."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DataError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return TrainConfig(**coerce_fields(TrainConfig, values, source))

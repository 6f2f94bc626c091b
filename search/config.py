"""SearchConfig: what a sweep searches and how, from a YAML file and flags (flags win), unknown keys rejected."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from visionsweep.datasets import DataError, DatasetSpec
from visionsweep.datasets.typed import coerce, coerce_fields
from visionsweep.trainables.config import TrainConfig



@dataclass(frozen=True)
class SearchConfig:
    name: str                                    # sweep name: the folder storage/name
    storage: str = "./sweeps"                    # local folder, NFS, or s3://bucket/prefix (clusters)
    trials: int = 20                             # Optuna trials (Tune num_samples)
    epochs: int = 5                              # epochs per trial (ASHA's max_t)
    backbones: tuple[str, ...] = ("resnet18", "efficientnet_b0", "convnext_nano")  # timm names searched
    lr_range: tuple[float, float] = (1e-4, 1e-2)  # max LR, log-uniform
    lr_ranges: dict = field(default_factory=dict)  # per-backbone max-LR range overrides {name: [lo, hi]}
    aug_range: tuple[float, float] = (0.0, 1.0)  # augmentation strength
    image_sizes: tuple[int, ...] = ()            # searched input sizes, px (empty: train.image_size)
    batch_sizes: tuple[int, ...] = ()            # searched batch sizes (empty: train.batch_size)
    weight_decay_range: tuple[float, float] | None = None  # searched (log-uniform) when given
    freeze_epochs: tuple[int, ...] = ()          # searched frozen-head epochs (empty: train.freeze_epochs)
    # Horizontal flips tested, for data that may have a handedness (digits, text): the recipe trial runs with them
    # (fastai's do_flip) and again without them, and the trials after the pair run as the pair's validation says
    # (search/fliptest.py). False: the data's setting. None (auto): tested when the data leaves flips on (no
    # --no-flip / --vertical-flip), the recipe runs first and the sweep plans fliptest.MIN_TRIALS (10) trials or
    # more (the twin then costs at most a tenth of them).
    search_flip: bool | None = None
    workers_per_trial: int = 1                   # DDP workers in each trial
    gpus_per_trial: float | None = None          # GPUs per trial; None = 1 per worker when the cluster has GPUs, else 0; < 1 shares a GPU
    cpus_per_worker: float = 1.0                 # CPUs per training worker
    max_concurrent: int | None = None            # None: what the cluster's resources allow
    metric: str = "auto"                         # auto (auc binary, else accuracy) | accuracy | auc | log_loss | valid_loss | error_rate
    time_budget: float | None = None             # seconds; no new trials after it
    # Trial-epochs in all: trials keep starting (up to `trials`) while the epochs trained, plus a whole schedule for
    # each running trial, leave room for one more; the epochs early stopping saves buy more trials. None: `trials`.
    epoch_budget: int | None = None
    searcher: str = "tpe"                        # tpe (Optuna's TPE, multivariate) | random (Optuna's RandomSampler)
    # TPE's random start-up trials (the recipe trials count among them) before it models the results. None: a third
    # of --trials (or of the trials --epoch-budget pays for in full), within 3..10; Optuna's own 10 would make a
    # sweep of <= 10 trials random search.
    startup_trials: int | None = None
    early_stopping: str = "asha"                 # asha (successive halving at rungs) | none (every trial runs all epochs)
    grace_period: int | None = None              # ASHA: epochs before a trial can be stopped; None = 1
    reduction_factor: int | None = None          # ASHA: keep 1/reduction_factor at each rung; None = 2 (<= 8 epochs), else 3
    restart_at_rungs: bool = True                # with asha, one-cycle restarts at every rung (an annealed model is judged)
    recipe_first: bool = True                    # trial 1 is the fastai recipe (first backbone, max LR 3e-3 or 1e-3 pretrained)
    # One trial more than the resources can train is started, its start-up (its driver, which runs its Train
    # controller: process and imports) overlapping the others' training while its workers wait for a free slot.
    # None: on for the local cluster visionsweep starts, off on a cluster (the waiting workers would make an
    # autoscaler add a node); never with max_concurrent (the extra trial would train at once where the cluster has
    # room).
    start_ahead: bool | None = None
    weights: dict = field(default_factory=dict)  # backbone -> weights file (safetensors / state dict); such backbones go first
    lr_find: bool = False                        # run lr_find per backbone first; search max LR around its valley
    keep_all: bool = False                       # keep every checkpoint (default: once the sweep ends, best weights of the top_k)
    seed: int = 0                                # Optuna TPE sampler seed
    top_k: int = 3                               # leaderboard and predict's default ensemble size
    train: dict = field(default_factory=dict)    # fixed TrainConfig fields for every trial (image_size, batch_size, ...)
    data: dict = field(default_factory=dict)     # DatasetSpec fields (label_col, vertical_flip, ...)
    # Top configurations retrained on train + valid (full schedule) after the search; predict uses them.
    # Default 1: predict's default is the best trial alone, and one refit costs about one trial (1/trials of
    # the sweep; ~30 s of the demo's ~3 min on 2 CPU cores) while adding the validation images to training,
    # which matters most on the small data where a sweep's selection is least reliable. 0 = off.
    refit: int = 1
    # Models per refit configuration, each with its own seed (the configuration's seed, then +1, +2, ...):
    # predict averages them, Kaggle's seed averaging. Default 2: on the 24 kept sweeps of the search benchmark
    # (bench/README.md, 2026-12-06) a second seed raised the held-out score on 10 and lowered it on 2; it costs
    # one more refit (one more trial's compute). 1 = one refit model per configuration.
    refit_seeds: int = 2
    # K > 1: K-fold cross-validation over every labelled image (train + valid): each trial trains K models side by
    # side, its score is their mean held-out metric, its predictions their ensemble. For small data, where one
    # validation split of a few dozen images decides by noise; costs K times the compute. 1 = one holdout split.
    folds: int = 1
    mlflow: str | None = None                    # MLflow tracking URI: a run per trial (experiment = name); extra [mlflow]
    wandb: str | None = None                     # Weights & Biases project: a run per trial (group = name); extra [wandb]

    def __post_init__(self) -> None:
        for name in ("backbones", "image_sizes", "batch_sizes", "freeze_epochs", "lr_range", "aug_range"):
            value = getattr(self, name)
            if isinstance(value, (str, int, float)):
                value = [value]
            object.__setattr__(self, name, tuple(value))
        checks = [
            (bool(self.name) and "/" not in self.name and self.name not in (".", ".."),
             f"--name must be a plain folder name, got {self.name!r}"),
            (self.trials >= 1, f"--trials must be >= 1, got {self.trials}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (len(self.backbones) >= 1, "--backbones needs at least one timm model name"),
            (_is_range(self.lr_range, positive=True), f"lr_range must be [lo, hi] with 0 < lo <= hi, got {list(self.lr_range)}"),
            (_is_range(self.aug_range) and 0 <= self.aug_range[0] and self.aug_range[1] <= 1,
             f"aug_range must be within [0, 1], got {list(self.aug_range)}"),
            (self.workers_per_trial >= 1, f"--workers-per-trial must be >= 1, got {self.workers_per_trial}"),
            (self.cpus_per_worker > 0, f"cpus_per_worker must be > 0, got {self.cpus_per_worker}"),
            (self.gpus_per_trial is None or self.gpus_per_trial >= 0,
             f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}"),
            (self.max_concurrent is None or self.max_concurrent >= 1, "--max-concurrent must be >= 1"),
            (self.time_budget is None or self.time_budget > 0, f"--time-budget must be > 0 s, got {self.time_budget}"),
            (self.epoch_budget is None or self.epoch_budget >= self.epochs,
             f"--epoch-budget must hold at least one whole trial (--epochs {self.epochs}), got {self.epoch_budget}"),
            (self.startup_trials is None or self.startup_trials >= 1,
             f"--startup-trials must be >= 1, got {self.startup_trials}"),
            (self.searcher in SEARCHERS, f"--searcher must be one of {', '.join(SEARCHERS)}, got {self.searcher!r}"),
            (self.early_stopping in EARLY_STOPPING,
             f"--early-stopping must be one of {', '.join(EARLY_STOPPING)}, got {self.early_stopping!r}"),
            ((self.grace_period is None or self.grace_period >= 1)
             and (self.reduction_factor is None or self.reduction_factor >= 2),
             f"grace_period must be >= 1 and reduction_factor >= 2, got {self.grace_period} and {self.reduction_factor}"),
            (self.top_k >= 1, f"--top-k must be >= 1, got {self.top_k}"),
            (self.refit >= 0, f"--refit must be >= 0 (0 = no refit), got {self.refit}"),
            (self.refit_seeds >= 1, f"--refit-seeds must be >= 1 (models per refit configuration), got "
                                    f"{self.refit_seeds}"),
            (self.folds >= 1, f"--folds must be >= 2 for cross-validation (1 = one holdout split), got {self.folds}"),
            (self.recipe_first or not self.search_flip,
             "--search-flip runs the recipe trial with and without flips, but recipe_first is false; drop one of the "
             "two"),
        ]
        for ok, message in checks:
            if not ok:
                raise DataError(message)
        for backbone, rng in self.lr_ranges.items():
            if not _is_range(rng, positive=True):
                raise DataError(f"lr_ranges[{backbone}] must be [lo, hi] with 0 < lo <= hi, got {rng}")
        if self.weight_decay_range is not None and not _is_range(self.weight_decay_range, positive=True):
            raise DataError(f"weight_decay_range must be [lo, hi] with 0 < lo <= hi, got {self.weight_decay_range}")
        for backbone, path in self.weights.items():
            if not Path(str(path)).expanduser().is_file():
                raise DataError(f"weights[{backbone}]: {path} is not a file; give a safetensors or state-dict file")
        gpus = self.gpus_per_trial
        if gpus and gpus < self.workers_per_trial and self.workers_per_trial > 1:
            raise DataError(f"--gpus-per-trial {gpus:g} with --workers-per-trial {self.workers_per_trial}: a fraction "
                            f"of a GPU per worker needs --workers-per-trial 1 (NCCL cannot put two ranks on one GPU)")
        clash = sorted(set(self.train) & set(self._searched_fields()))
        if clash:
            raise DataError(f"train: {', '.join(clash)} are searched; set them through the search options instead")
        unknown = sorted(set(self.train) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise DataError(f"unknown key(s) in train: {', '.join(unknown)}; known: "
                            f"{', '.join(f.name for f in dataclasses.fields(TrainConfig))}")
        from visionsweep.search.trialcheck import check_trial_configs  # every trial's TrainConfig, before Ray

        check_trial_configs(self)

    def _searched_fields(self) -> list[str]:
        out = ["backbone", "max_lr", "aug", "epochs"]
        out += ["image_size"] if self.image_sizes else []
        out += ["batch_size"] if self.batch_sizes else []
        out += ["weight_decay"] if self.weight_decay_range else []
        out += ["freeze_epochs"] if self.freeze_epochs else []
        out += ["flip"] if self.search_flip else []
        return out

    @property
    def asha(self) -> tuple[int, int]:
        """(grace period, reduction factor): explicit values, else derived from the epochs. Rungs at 1, 2 (and 4
        from 8 epochs) for short runs; longer runs halve less often (factor 3) so each restart cycle stays long."""
        return self.grace_period or 1, self.reduction_factor or (2 if self.epochs <= 8 else 3)

    @property
    def tpe_startup(self) -> int:
        """TPE's random start-up trials: the given number, else a third of the trials (those an epoch budget pays
        for in full, when it pays for fewer) within [3, 10]."""
        if self.startup_trials is not None:
            return self.startup_trials
        return min(10, max(3, math.ceil(self.planned_trials / 3)))

    @property
    def planned_trials(self) -> int:
        """The trials the sweep pays for in full: --trials, or fewer when --epoch-budget buys fewer whole ones."""
        return self.trials if self.epoch_budget is None else min(self.trials, self.epoch_budget // self.epochs)

    def rungs(self) -> tuple[int, ...]:
        """The epochs at which ASHA compares trials (empty without early stopping): ASHA's milestones
        grace * rf**k, those in the first half of the run (2 * r <= epochs). A stop there saves at least half a
        trial, and with the restarts at the rungs the trials it keeps end with a cycle at least as long as all the
        cycles before it. Ray's ASHA would also judge at the last power short of max_t (epoch 4 of 5): a stop that
        saves one epoch in five, discards a trial 80% trained, and leaves the kept ones a one-epoch final cycle."""
        if self.early_stopping != "asha":
            return ()
        grace, rf = self.asha
        out, rung = [], grace
        while 2 * rung <= self.epochs:
            out.append(rung)
            rung *= rf
        return tuple(out)

    def lr_range_for(self, backbone: str) -> tuple[float, float]:
        lo, hi = self.lr_ranges.get(backbone, self.lr_range)
        return float(lo), float(hi)

    def gpus_per_worker(self, cluster_gpus: float) -> float:
        if self.gpus_per_trial is None:
            return 1.0 if cluster_gpus > 0 else 0.0
        return self.gpus_per_trial / self.workers_per_trial


SEARCHERS = ("tpe", "random")
EARLY_STOPPING = ("asha", "none")


def _is_range(value, *, positive: bool = False) -> bool:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(lo) and math.isfinite(hi) and lo <= hi and (lo > 0 if positive else True)


def load_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--config {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DataError(f"--config {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise DataError(f"--config {path} must be a mapping of options (key: value), got {type(values).__name__}")
    return values


def search_config_from_dict(values: dict, *, source: str = "config") -> SearchConfig:
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DataError(f"unknown key(s) in {source}: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not values.get("name"):
        raise DataError("a sweep needs --name (or name: in --config)")
    values = coerce_fields(SearchConfig, values, source)
    if values.get("lr_ranges"):
        values["lr_ranges"] = {b: list(coerce(r, tuple[float, float], f"lr_ranges[{b}]", source))
                               for b, r in values["lr_ranges"].items()}
    if values.get("weights"):
        values["weights"] = {b: coerce(w, str, f"weights[{b}]", source) for b, w in values["weights"].items()}
    if values.get("train"):
        values["train"] = coerce_fields(TrainConfig, values["train"], f"{source}, train:")
    if values.get("data"):
        values["data"] = coerce_fields(DatasetSpec, values["data"], f"{source}, data:")
    try:
        return SearchConfig(**values)
    except TypeError as err:
        raise DataError(f"bad value in {source}: {err}") from None

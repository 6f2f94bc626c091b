"""The Python API (`import visionsweep`): check, train, lr_find, sweep, predict and report, with the command
line's flag names as keyword arguments and typed results; the `visionsweep` command is a thin layer over it.

    import visionsweep as vs
    vs.check("data/cactus")
    run = vs.train("data/cactus", backbone="resnet18", max_lr=3e-3, epochs=5, out="runs/r1")
    result = vs.sweep("data/cactus", name="cactus1", trials=20, epochs=5, lr_find=True)
    result.leaderboard.head()
    vs.predict(result.path, "data/cactus", out="submission.csv", tta=True)

Keyword arguments are the fields of DatasetSpec (the data flags), TrainConfig (train / lr_find; a sweep's fixed
`train:` options) and SearchConfig (sweep); an unknown name is a DataError naming it, as the flags are."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from visionsweep.datasets import DataError, DatasetSpec, spec_from_dict
from visionsweep.datasets.ownership import check_outside
from visionsweep.datasets.console import say

_DATA_FIELDS = {f.name for f in dataclasses.fields(DatasetSpec)} - {"root"}


def _train_fields() -> set[str]:
    from visionsweep.trainables.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def _split(options: dict, allowed: set[str], what: str) -> tuple[dict, dict]:
    """(data options, the rest); names in neither are an error that lists what is accepted."""
    unknown = sorted(set(options) - _DATA_FIELDS - allowed)
    if unknown:
        raise DataError(f"unknown option(s) for {what}: {', '.join(unknown)}; accepted: "
                        f"{', '.join(sorted(_DATA_FIELDS | allowed))}")
    data = {k: v for k, v in options.items() if k in _DATA_FIELDS and v is not None}
    rest = {k: v for k, v in options.items() if k not in _DATA_FIELDS and v is not None}
    return data, rest


def _spec(data, options: dict) -> DatasetSpec:
    return spec_from_dict({"root": Path(data), **options})


def _load(spec: DatasetSpec, log):
    from visionsweep.datasets.load import load_dataset

    return load_dataset(spec, log=log)


def _use_gpu(cpu: bool) -> bool:
    if cpu:
        return False
    import os

    if os.environ.get("RAY_ADDRESS"):  # a cluster: its workers may have GPUs the driver lacks
        from visionsweep.trainables.ray_session import ensure_ray

        with ensure_ray() as session:
            return session.resources.get("GPU", 0) > 0
    import torch

    return torch.cuda.is_available()


def check(data, *, log=say, **options) -> dict:
    """Validate DATA (every problem is a DataError naming the file or row) and return its summary."""
    from visionsweep.datasets.load import format_summary

    spec_options, _ = _split(options, set(), "check")
    loaded = _load(_spec(data, spec_options), log)
    log(format_summary(loaded.summary))
    return loaded.summary


def _train_config(options: dict, *, cpu: bool, seed: int | None):
    from visionsweep.trainables.config import config_from_dict

    values = dict(options)
    if seed is not None:
        values.setdefault("seed", seed)
    if values.get("gpus_per_worker") is not None:  # GPUs asked for: also where the cluster has none yet (autoscaling)
        if cpu:
            raise DataError(f"--cpu and --gpus-per-worker {values['gpus_per_worker']:g} contradict each other; "
                            f"drop one")
        values["use_gpu"] = True
    values.setdefault("use_gpu", _use_gpu(cpu))
    return config_from_dict(values)


def train(data, *, out, resume: bool = False, overwrite: bool = False, cpu: bool = False, log=say, **options):
    """One fine-tuning run (a Ray Train TorchTrainer) into `out`; returns its RunOutcome (best and final
    metrics, the run folder)."""
    from visionsweep.search.runs import run_training

    spec_options, train_options = _split(options, _train_fields(), "train")
    spec = _spec(data, spec_options)
    check_outside(out, spec.root, "--out")
    cfg = _train_config(train_options, cpu=cpu, seed=spec_options.get("seed"))
    return run_training(data=_load(spec, log), cfg=cfg, out_dir=Path(out), valid_pct=spec.valid_pct,
                        split_seed=spec.seed, resume=resume, overwrite=overwrite, log=log)


def lr_find(data, *, out="lr_find.png", cpu: bool = False, log=say, **options) -> dict:
    """fastai's LR range test: {"lrs", "losses", "suggestions": {"valley": {"lr", "loss"}, ...}}, plot at `out`."""
    from visionsweep.search.runs import run_lr_find_job

    spec_options, train_options = _split(options, _train_fields(), "lr_find")
    spec = _spec(data, spec_options)
    check_outside(out, spec.root, "--out")
    cfg = _train_config(train_options, cpu=cpu, seed=spec_options.get("seed"))
    return run_lr_find_job(data=_load(spec, log), cfg=cfg, valid_pct=spec.valid_pct, split_seed=spec.seed,
                           out_png=Path(out), log=log)


@dataclass(frozen=True)
class SweepResult:
    """A finished (or resumed) sweep: its folder, the metric it ranks by, and the leaderboard (best first)."""

    path: str
    metric: str
    mode: str
    leaderboard: pd.DataFrame

    @property
    def best(self) -> pd.Series:
        return self.leaderboard.iloc[0]


def search_config(*, config=None, cpu: bool = False, source: str | None = None, **options):
    """(SearchConfig, data options): a YAML file first, then keyword options on top (they win); TrainConfig
    names among them become the sweep's fixed `train:` options, DatasetSpec names its `data:` options."""
    from visionsweep.search.config import SearchConfig, load_yaml, search_config_from_dict

    values = load_yaml(Path(config)) if config else {}
    search_fields = {f.name for f in dataclasses.fields(SearchConfig)}
    spec_options, rest = _split(options, search_fields | _train_fields(), "sweep")
    fixed = {k: v for k, v in rest.items() if k not in search_fields}
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in rest.items() if k in search_fields})
    if spec_options.get("seed") is not None:  # one seed for the whole sweep: the split, every trial, the sampler
        values["seed"] = fixed["seed"] = spec_options["seed"]
    if fixed:
        values["train"] = {**(values.get("train") or {}), **fixed}
    if cpu:
        if values.get("gpus_per_trial"):
            raise DataError(f"--cpu and --gpus-per-trial {values['gpus_per_trial']:g} contradict each other; drop one")
        values["gpus_per_trial"] = 0
    sc = search_config_from_dict(values, source=f"--config {config}" if config else source or "options")
    data_options = {**(sc.data or {}), **spec_options}
    fixed_by = ("--no-flip turns them off" if data_options.get("flip") is False else
                "--vertical-flip makes every flip and turn valid" if data_options.get("vertical_flip") else None)
    if sc.search_flip and fixed_by:
        raise DataError(f"--search-flip searches horizontal flips on and off, but {fixed_by}; drop one of the two")
    return sc, data_options


def sweep(data, *, resume: bool = False, log=say, **options) -> SweepResult:
    """Search backbone, max LR and augmentation (Ray Tune + Optuna + ASHA over Train runs); `options` are
    SearchConfig fields (name, trials, epochs, backbones, ...), fixed TrainConfig fields and data options,
    and `config` a YAML file of them."""
    from visionsweep.search.sweep import run_sweep
    from visionsweep.trainables.config import resolve_metric

    sc, spec_options = search_config(**options)
    spec = _spec(data, spec_options)
    check_outside(sc.storage, spec.root, "--storage")
    loaded = _load(spec, log)
    board = run_sweep(data=loaded, sc=sc, spec=spec, resume=resume, log=log)
    metric, mode = resolve_metric(sc.metric, loaded.num_classes)
    from visionsweep.search import storage as st

    return SweepResult(path=st.join(st.absolute(sc.storage), sc.name), metric=metric, mode=mode, leaderboard=board)


def predict(source, data, *, out="submission.csv", top_k: int | None = None, tta: bool = False,
            overwrite: bool = False, refit: bool = True, log=say, **options) -> pd.DataFrame:
    """Predict DATA's test/ with a sweep (its top_k trials averaged, by default the sweep's own top_k; their refit
    models unless refit=False), a `train` run folder or a checkpoint folder; writes the submission validated against
    sample_submission.csv and returns it. A sweep's ensemble is its best trial and the trials that ran their whole
    schedule."""
    from visionsweep.search.predict import default_top_k, predict as run_predict, sweep_spec

    spec_options, _ = _split(options, set(), "predict")
    spec = spec_from_dict({**sweep_spec(str(source)), "root": Path(data), **spec_options})
    top_k = top_k if top_k is not None else default_top_k(str(source))
    if top_k < 1:
        raise DataError(f"--top-k must be >= 1, got {top_k}")
    check_outside(out, spec.root, "--out")
    return run_predict(source=str(source), data=_load(spec, log), out=Path(out), top_k=top_k, tta=tta,
                       overwrite=overwrite, refit=refit, log=log)


def report(sweep_path, *, out=None, log=say) -> Path:
    """Leaderboard (CSV + markdown) and plots of a sweep; returns the report folder."""
    from visionsweep.search.report import report as run_report

    return run_report(str(sweep_path), out=Path(out) if out else None, log=log)

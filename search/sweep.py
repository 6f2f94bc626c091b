"""The sweep: Ray Tune + OptunaSearch (TPE) + ASHA over TorchTrainer trials; resume; leaderboard."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from datasets import DataError
from datasets.load import LoadedData
from datasets.spec import DatasetSpec
from search import storage as st
from search.config import SearchConfig
from search.space import define_space, trial_train_config
from trainables.config import resolve_metric
from trainables.model import check_image_size
from trainables.provenance import provenance
from trainables.ray_train import TRIAL_RESOURCE, data_info, ensure_ray, make_trainer, train_valid_arrays
from trainables.worker import DataInfo

SWEEP_MARKER = "sweep.json"
TRAIN_RUNS = "train_runs"


class SweepInterrupted(Exception):
    """Ctrl-C during a sweep: stopped cleanly, resumable."""


@dataclass(frozen=True)
class TrialSetup:
    """What every trial needs besides its sampled config; `arrays` is an ObjectRef (the data, put once)."""

    sc: SearchConfig
    info: DataInfo
    arrays: object
    train_runs: str
    use_gpu: bool
    gpus_per_worker: float


def run_trial(config: dict, setup: TrialSetup) -> None:
    """One Tune trial: a TorchTrainer run named after the trial, so a retried or restored trial re-enters
    the same Train run and continues from its latest checkpoint."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = tune.get_context().get_trial_id()
    cfg = trial_train_config(setup.sc, config, use_gpu=setup.use_gpu, gpus_per_worker=setup.gpus_per_worker)
    trainer = make_trainer(cfg, setup.info, setup.arrays, storage=setup.train_runs, name=f"train-{trial_id}",
                           callbacks=[TuneReportCallback()])
    trainer.fit()


def trial_name(trial) -> str:
    """Trial names carry the id and backbone: findable in the dashboard's actors and logs."""
    return f"{trial.config.get('backbone', 'trial')}-{trial.trial_id}"


def concurrency(sc: SearchConfig, resources: dict, gpus_per_worker: float) -> int:
    """How many trials the cluster can run at once without a trial waiting for its own workers."""
    if sc.max_concurrent:
        return sc.max_concurrent
    limits = [int(resources.get("CPU", 0) // (sc.workers_per_trial * sc.cpus_per_worker))]
    if gpus_per_worker > 0:
        limits.append(int(resources.get("GPU", 0) // (sc.workers_per_trial * gpus_per_worker)))
    n = min(limits)
    if n < 1:
        raise DataError(f"one trial needs {sc.workers_per_trial} worker(s) x {sc.cpus_per_worker:g} CPU"
                        + (f" and {gpus_per_worker:g} GPU" if gpus_per_worker else "")
                        + f", but the Ray cluster has {resources.get('CPU', 0):g} CPU / {resources.get('GPU', 0):g} "
                          f"GPU; lower --workers-per-trial or --gpus-per-trial")
    return min(n, sc.trials)


def sweep_dir(sc: SearchConfig) -> str:
    return st.join(st.absolute(sc.storage), sc.name)


def check_new_or_resumable(sc: SearchConfig, *, resume: bool) -> str:
    path = sweep_dir(sc)
    ours = st.exists(st.join(path, SWEEP_MARKER))
    if resume:
        if not ours:
            raise DataError(f"--resume: {path} holds no visionsweep sweep to resume; drop --resume to start one")
        return path
    if ours:
        raise DataError(f"sweep {sc.name!r} already exists in {path}; pass --resume to continue it, or choose "
                        f"another --name")
    if st.exists(path) and st.listdir(path):
        raise DataError(f"{path} exists and is not a visionsweep sweep; choose another --name or --storage "
                        f"(nothing was changed)")
    st.check_writable(st.absolute(sc.storage))
    return path


def run_sweep(*, data: LoadedData, sc: SearchConfig, spec: DatasetSpec, resume: bool = False,
              log=print) -> pd.DataFrame:
    """Run (or resume) the sweep and return its leaderboard."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch
    from optuna.samplers import TPESampler

    from search.progress import Progress
    from search.leaderboard import UNFINISHED, sweep_leaderboard, write_leaderboard

    metric, mode = resolve_metric(sc.metric, data.num_classes)
    for backbone in sc.backbones:
        for size in sc.image_sizes or (sc.train.get("image_size"),):
            check_image_size(backbone, size, data.num_classes)
    path = check_new_or_resumable(sc, resume=resume)
    resources = ensure_ray(log=log)
    gpus_per_worker = sc.gpus_per_worker(resources.get("GPU", 0.0))
    use_gpu = gpus_per_worker > 0
    limit = concurrency(sc, resources, gpus_per_worker)
    trial_resources = {TRIAL_RESOURCE: 0.01} if resources.get(TRIAL_RESOURCE) else {"CPU": 0.01}

    arrays = train_valid_arrays(data, valid_pct=spec.valid_pct, seed=spec.seed)
    setup = TrialSetup(sc=sc, info=data_info(data), arrays=ray.put(arrays), train_runs=st.join(path, TRAIN_RUNS),
                       use_gpu=use_gpu, gpus_per_worker=gpus_per_worker)
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), trial_resources)
    if not resume:
        st.write_text(st.join(path, SWEEP_MARKER), json.dumps(
            {"visionsweep_sweep": True, "search": dataclasses.asdict(sc), "metric": metric, "mode": mode,
             "spec": spec_dict(spec), "data": data.summary, "provenance": provenance()},
            indent=1, default=str))
    print_dashboard(log)
    log(f"sweep {sc.name}: {sc.trials} trials x {sc.epochs} epochs over {', '.join(sc.backbones)}; {metric} "
        f"({mode}); {limit} at a time, {sc.workers_per_trial} worker(s) each on "
        f"{'GPU x %g' % gpus_per_worker if use_gpu else 'CPU'}; train {len(arrays['y_train'])} / valid "
        f"{len(arrays['y_valid'])} images -> {path}")
    progress = Progress(metric=metric, mode=mode, total=sc.trials, log=log)
    t0 = time.time()
    if resume and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
        log("resuming: finished trials are kept, unfinished ones continue from their latest checkpoint")
    else:
        searcher = OptunaSearch(space=_SpaceFn(sc), metric=metric, mode=mode,
                                sampler=TPESampler(seed=sc.seed, multivariate=True))
        scheduler = ASHAScheduler(time_attr="epoch", max_t=sc.epochs, grace_period=sc.grace_period,
                                  reduction_factor=sc.reduction_factor)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler,
                                        num_samples=sc.trials, max_concurrent_trials=limit,
                                        time_budget_s=sc.time_budget, trial_name_creator=trial_name,
                                        trial_dirname_creator=trial_name),
            run_config=tune.RunConfig(name=sc.name, storage_path=st.absolute(sc.storage), callbacks=[progress],
                                      verbose=0, failure_config=tune.FailureConfig(max_failures=0)),
        )
    tuner.fit()
    board = sweep_leaderboard(path)  # from Tune's saved state, as predict and report read it
    write_leaderboard(board, path, metric=metric, top_k=sc.top_k)
    elapsed = time.time() - t0
    budget_spent = sc.time_budget is not None and elapsed >= sc.time_budget
    unfinished = int((board["status"] == UNFINISHED).sum()) if len(board) else 0
    if unfinished or (len(board) < sc.trials and not budget_spent):  # Ctrl-C: Tune saved its state and returned
        raise SweepInterrupted(f"interrupted after {elapsed:.0f} s: {len(board) - unfinished} of {sc.trials} trials "
                               f"finished, the state is saved. Resume with the same command plus --resume "
                               f"(--name {sc.name} --storage {sc.storage})")
    log(f"\nleaderboard ({metric}, {mode}; {elapsed:.0f} s; {st.disk_usage(setup.train_runs)} of "
        f"checkpoints, best 1 + latest kept per trial):")
    log(board.head(10).to_string(index=False))
    log(f"\nfiles: {path}/leaderboard.csv, leaderboard.md; predict with: visionsweep predict {path} DATA "
        f"--out submission.csv")
    return board


def spec_dict(spec: DatasetSpec) -> dict:
    """The DatasetSpec options (no root, no cache folder) that predict reuses on the same DATA."""
    out = dataclasses.asdict(spec)
    for key in ("root", "cache_dir"):
        out.pop(key)
    return out


class _SpaceFn:
    """A picklable define-by-run callable (OptunaSearch is saved with the sweep for --resume)."""

    def __init__(self, sc: SearchConfig) -> None:
        self.sc = sc

    def __call__(self, trial) -> None:
        define_space(trial, self.sc)


def print_dashboard(log=print) -> None:
    import ray

    url = ray.get_runtime_context().get_dashboard_url() if hasattr(ray.get_runtime_context(), "get_dashboard_url") \
        else None
    url = url or ray.worker.get_dashboard_url()
    if url and not url.startswith("http"):
        url = "http://" + url
    log(f"Ray dashboard: {url}  (token login: run `ray get-auth-token`, or read ~/.ray/auth_token; "
        f"trials are named <backbone>-<trial id> in Actors and Logs; the Train tab lists their runs)")


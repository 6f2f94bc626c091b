"""The thin Ray Train shell: the per-worker function, the TorchTrainer for one run, and the run directory."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionsweep.datasets import DataError, ownership
from visionsweep.datasets.errors import RunFailed
from visionsweep.datasets.load import LoadedData
from visionsweep.datasets.split import stratified_split
from visionsweep.trainables.checkpoint import export_checkpoint, read_meta
from visionsweep.trainables.config import TrainConfig, resolve_metric
from visionsweep.trainables.model import check_image_size
from visionsweep.trainables.worker import DataInfo

RUN_MARKER = "config.json"


def train_valid_arrays(data: LoadedData, *, valid_pct: float, seed: int) -> dict[str, np.ndarray]:
    """Train/valid arrays: the given valid/ folder, else a seeded stratified holdout of train."""
    if data.x_valid is not None:
        return {"x_train": data.x_train, "y_train": data.y_train, "x_valid": data.x_valid, "y_valid": data.y_valid}
    tr, va = stratified_split(data.y_train, valid_pct=valid_pct, seed=seed, classes=data.classes)
    return {"x_train": data.x_train[tr], "y_train": data.y_train[tr],
            "x_valid": data.x_train[va], "y_valid": data.y_train[va]}


def data_info(data: LoadedData) -> DataInfo:
    return DataInfo(classes=list(data.classes), positive_class=data.positive_class, vertical_flip=data.vertical_flip)


def train_loop_per_worker(config: dict) -> dict | None:
    """Runs in every Ray Train worker: arrays from the object store (zero-copy on the same node)."""
    import ray
    import ray.train
    import ray.train.torch

    import ray.train.v2._internal.execution.context as train_context

    cfg = TrainConfig(**config["train"])
    info = DataInfo(**config["info"])
    arrays = ray.get(config["arrays"])
    if not verbose():  # Train V2 logs "Reporting training result N: TrainingReport(...)" at INFO after every epoch
        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    checkpoint = ray.train.get_checkpoint()

    def report(epoch: int, metrics: dict, save) -> None:
        if save is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            save(d)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    def log(msg: str) -> None:
        if rank == 0:  # not print(): Train V2 patches it to log *and* print, so each line showed twice
            sys.stdout.write(msg + "\n")
            sys.stdout.flush()

    log(f"visionsweep run {ctx.get_experiment_name()}: {cfg.backbone}, max_lr {cfg.max_lr:.3g}, aug {cfg.aug:.2f}, "
        f"{cfg.total_epochs} epochs, {ctx.get_world_size()} worker(s)")
    run = dict(cfg=cfg, info=info, arrays=arrays, device=ray.train.torch.get_device(),
               prepare_model=ray.train.torch.prepare_model, report=report, log=log)
    from visionsweep.trainables.worker import run_worker

    try:
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                run_worker(resume_dir=d, **run)
        else:
            run_worker(**run)
    except FloatingPointError as err:
        # Divergence is deterministic (every rank sees the same all-reduced loss, and a restart from the latest
        # checkpoint diverges again), so it ends the run instead of failing the worker group, which Train would
        # restart max_failures times; the caller turns this into the run's error (raise_if_failed).
        return {"failed": str(err)}
    return None


def raise_if_failed(result) -> None:
    """A Train run whose workers ended on a deterministic failure (train_loop_per_worker) fails here, once."""
    failed = result.return_value.get("failed") if isinstance(result.return_value, dict) else None
    if failed:
        raise RunFailed(failed)


def lr_find_per_worker(config: dict) -> None:
    """Runs in every Ray Train worker for `lr-find`: all ranks step; rank 0 reports the curve."""
    import ray
    import ray.train
    import ray.train.torch

    from visionsweep.trainables.worker import run_lr_find

    rank = ray.train.get_context().get_world_rank()
    result = run_lr_find(TrainConfig(**config["train"]), DataInfo(**config["info"]), ray.get(config["arrays"]),
                         device=ray.train.torch.get_device(), prepare_model=ray.train.torch.prepare_model,
                         log=lambda m: None)
    if rank != 0:
        ray.train.report({})
        return
    with tempfile.TemporaryDirectory() as d:  # V2 keeps metrics only with checkpoints: the curve travels as one
        Path(d, "lr_find.json").write_text(json.dumps(result))
        ray.train.report({"steps": len(result["lrs"])}, checkpoint=ray.train.Checkpoint.from_directory(d))


TRIAL_RESOURCE = "visionsweep_trial"  # sweeps: trial drivers take this, never a CPU a worker needs
WORKER_ENV = {"RAY_TRAIN_ENABLE_STATE_TRACKING": "1"}  # Train run state for the dashboard (read where fit() runs)
# A cluster visionsweep starts on this machine: no spot nodes to watch. Train's preemption watcher is one more
# actor per run (about 1 s of each trial's start on 2 cores); clusters keep it.
LOCAL_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
DASHBOARD_URL: str | None = None


def verbose() -> bool:
    """`--verbose` (VISIONSWEEP_VERBOSE=1): Ray's own output on the console too, not only in its session logs."""
    return os.environ.get("VISIONSWEEP_VERBOSE") == "1"


def ensure_ray(*, num_cpus: int | None = None, log=print, log_to_driver: bool = True) -> dict:
    """Connect to RAY_ADDRESS's cluster, or start a local one with the dashboard on 127.0.0.1 (Ray 2.60 turns
    token authentication on for it; visionsweep keeps it on and makes the token file private).

    `log_to_driver=False` (sweeps, unless --verbose) keeps what Ray's workers print in the session logs: the
    sweep's console is built by the driver from Tune's events instead."""
    import ray

    global DASHBOARD_URL
    if not ray.is_initialized():
        worker_env = {**WORKER_ENV, **({"VISIONSWEEP_VERBOSE": "1"} if verbose() else {})}
        common = dict(log_to_driver=log_to_driver or verbose(), logging_level="WARNING",
                      runtime_env={"env_vars": worker_env})
        if os.environ.get("RAY_ADDRESS"):  # a cluster (or `ray job submit`, which sets it)
            ctx = ray.init(**common)
        else:  # a private local cluster: never an unrelated `ray start` instance found on this machine
            for attempt in range(3):  # a free port may be taken by another process before Ray binds it
                port = _dashboard_port(preferred=8265 if attempt == 0 else 0)
                # Train's placement-group cleaner finds the state API by "auto" address, i.e. the last `ray start`
                # cluster's file in /tmp/ray, which may be another (or a dead) cluster: point it at this one.
                api = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}", **LOCAL_ENV}
                common["runtime_env"] = {"env_vars": {**worker_env, **api}}
                os.environ.update(api)
                try:
                    ctx = ray.init(address="local", num_cpus=num_cpus, resources={TRIAL_RESOURCE: 1.0},
                                   include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port, **common)
                    break
                except Exception as err:
                    if "port" not in str(err).lower() or attempt == 2:
                        raise
                    ray.shutdown()
        DASHBOARD_URL = ctx.dashboard_url
        tighten_token_file(log=log)
    return ray.cluster_resources()


def _dashboard_port(preferred: int = 8265) -> int:
    """Ray's usual 8265 when free, else any free port."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return sock.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port for the Ray dashboard")


def tighten_token_file(log=print) -> None:
    """Ray writes ~/.ray/auth_token readable by every local user (0644); the token is the cluster's key."""
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    try:
        if token.is_file() and token.stat().st_mode & 0o077:
            token.chmod(0o600)
    except OSError as err:
        log(f"warning: could not make {token} private ({err}); other users of this machine can read it")


def share_cpus(cfg: TrainConfig, resources: dict) -> TrainConfig:
    """One run alone on CPUs: each worker gets an equal share of the cluster's CPUs. Ray sets a worker's
    OMP_NUM_THREADS from its CPUs, so the default 1 CPU left one core of two idle (measured 0.6x)."""
    if cfg.use_gpu or cfg.cpus_per_worker != 1.0:
        return cfg
    share = int(resources.get("CPU", 1) // cfg.workers)
    return dataclasses.replace(cfg, cpus_per_worker=float(share)) if share > 1 else cfg


def check_resources(cfg: TrainConfig, resources: dict) -> None:
    """`--workers` beyond the cluster's GPUs/CPUs is a clear error, not a hang."""
    if cfg.use_gpu:
        have, need = resources.get("GPU", 0.0), cfg.workers * cfg.gpus_per_worker
        if need > have:
            raise DataError(f"--workers {cfg.workers} needs {need:g} GPU(s) but the Ray cluster has {have:g}; "
                            f"lower --workers, or add --cpu to train on CPUs")
    have, need = resources.get("CPU", 0.0), cfg.workers * cfg.cpus_per_worker
    if need > have:
        raise DataError(f"--workers {cfg.workers} needs {need:g} CPU(s) but the Ray cluster has {have:g}; "
                        f"lower --workers")


def make_trainer(cfg: TrainConfig, info: DataInfo, arrays_ref, *, storage: Path | str, name: str,
                 callbacks: list | None = None, env: dict | None = None, per_worker=train_loop_per_worker):
    """The TorchTrainer of one run: DDP over cfg.workers (NCCL on GPUs, gloo on CPUs), checkpoints keep the
    best by the task's metric plus the latest (for resume), failed worker groups restart from the latest."""
    import ray.train
    from ray.train.torch import TorchTrainer

    metric, mode = resolve_metric(cfg.metric, len(info.classes))
    resources = {"CPU": cfg.cpus_per_worker}
    if cfg.use_gpu:
        resources["GPU"] = cfg.gpus_per_worker
    return TorchTrainer(
        per_worker,
        train_loop_config={"train": dataclasses.asdict(cfg), "info": dataclasses.asdict(info), "arrays": arrays_ref},
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name, storage_path=str(storage), callbacks=callbacks,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=metric,
                                                         checkpoint_score_order=mode),
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
            worker_runtime_env={"env_vars": env} if env else None),
    )


@contextmanager
def quiet_train_logs():
    """Train's INFO lines off for the block ("snapshot ... will be loaded" on every offline read, a report line
    per epoch); the logger's level is restored after, so a caller's own logging setup stays as it was."""
    logger = logging.getLogger("ray.train")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_result(run: str):
    """Train's record of a run (ray.train.Result.from_path), read quietly."""
    import ray.train

    with quiet_train_logs():
        return ray.train.Result.from_path(str(run))


def best_and_latest(storage: Path | str, name: str, metric: str, mode: str):
    """(best, latest) checkpoints from Train's own record (not Tune's checkpoint_path, see RAY_NOTES)."""
    result = read_result(f"{storage}/{name}")
    best = result.get_best_checkpoint(metric, mode) if result.best_checkpoints else None
    return best, result.checkpoint


# ---------------------------------------------------------------- the `visionsweep train` run directory

@dataclass(frozen=True)
class RunOutcome:
    out_dir: Path
    best_metrics: dict
    final_metrics: dict
    metric: str


def prepare_run_dir(out_dir: Path, *, overwrite: bool, resume: bool) -> str:
    """A new run never replaces an earlier one, nor anything that is not a visionsweep run (ownership marker,
    checked by content). Checks only: returns "new", "resume" or "overwrite"; make_run_dir acts on it, after
    every other check has passed, so a refused run leaves no folder and deletes nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file; choose a folder for --out (nothing was changed)")
    if not out_dir.exists() or ownership.is_empty_dir(out_dir):
        return "new"
    kind = ownership.folder_kind(out_dir)
    if kind == "run" and resume:
        return "resume"
    if kind == "run" and overwrite:
        return "overwrite"
    if kind is None:
        raise DataError(f"--out {out_dir} exists and is not a visionsweep run directory (it has no "
                        f"{ownership.MARKER}); --overwrite never deletes a foreign folder: choose another --out "
                        f"(nothing was changed)")
    if kind != "run":
        raise DataError(f"--out {out_dir} holds a visionsweep {kind}, not a run; choose another --out "
                        f"(nothing was changed)")
    raise DataError(f"--out {out_dir} already holds a run; pass --resume to continue it, --overwrite to replace "
                    f"it, or choose another --out")


def make_run_dir(out_dir: Path, action: str) -> None:
    if action == "overwrite":
        import shutil

        if ownership.folder_kind(out_dir) != "run":  # checked again right before deleting
            raise DataError(f"--out {out_dir} is no longer a visionsweep run; nothing was deleted")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if action != "resume" or ownership.marker(out_dir) is None:
        ownership.write_marker(out_dir, "run")


def run_training(*, data: LoadedData, cfg: TrainConfig, out_dir: Path, valid_pct: float, split_seed: int,
                 resume: bool = False, overwrite: bool = False, log=print) -> RunOutcome:
    import ray

    out_dir = Path(out_dir).expanduser().resolve()
    ownership.check_outside(out_dir, data.summary.get("data"), "--out")
    metric, mode = resolve_metric(cfg.metric, data.num_classes)
    check_image_size(cfg.backbone, cfg.image_size, data.num_classes)
    action = prepare_run_dir(out_dir, overwrite=overwrite, resume=resume)
    arrays = train_valid_arrays(data, valid_pct=valid_pct, seed=split_seed)
    resources = ensure_ray(log=log)
    cfg = share_cpus(cfg, resources)
    check_resources(cfg, resources)
    make_run_dir(out_dir, action)
    info = data_info(data)
    (out_dir / RUN_MARKER).write_text(json.dumps({"visionsweep_run": True, "train": dataclasses.asdict(cfg),
                                                  "data": data.summary, "metric": metric, "mode": mode},
                                                 indent=1, default=str))
    log(f"training {cfg.backbone} on {len(arrays['y_train'])} images (valid {len(arrays['y_valid'])}), "
        f"{cfg.workers} worker(s) on {'GPU' if cfg.use_gpu else 'CPU'}, {cfg.total_epochs} epochs -> {out_dir}")
    trainer = make_trainer(cfg, info, ray.put(arrays), storage=out_dir / "ray", name="train")
    raise_if_failed(trainer.fit())
    return export_run(out_dir, metric=metric, mode=mode, log=log)


def run_lr_find_job(*, data: LoadedData, cfg: TrainConfig, valid_pct: float, split_seed: int, out_png: Path,
                    log=print) -> dict:
    """`visionsweep lr-find`: the curve over cfg.workers DDP workers, a plot, and lr_find.json beside it."""
    import ray

    out_png = Path(out_png).expanduser().resolve()
    check_image_size(cfg.backbone, cfg.image_size, data.num_classes)
    if not out_png.parent.is_dir():
        raise DataError(f"--out {out_png}: folder {out_png.parent} does not exist")
    resources = ensure_ray(log=log)
    cfg = share_cpus(cfg, resources)
    check_resources(cfg, resources)
    arrays = train_valid_arrays(data, valid_pct=valid_pct, seed=split_seed)
    result = lr_find_curve(cfg, data_info(data), ray.put(arrays))
    save_lr_find(result, cfg.backbone, out_png)
    s = result["suggestions"]
    log(f"lr_find over {len(result['lrs'])} steps ({cfg.backbone}, {cfg.workers} worker(s)):")
    for name in ("valley", "steep", "minimum"):
        if name in s:
            log(f"  {name:<8} {s[name]['lr']:.2e}" + ("   <- suggested --max-lr" if name == "valley" else ""))
    log(f"plot: {out_png}  (curve: {out_png.with_suffix('.json')})")
    return result


def lr_find_curve(cfg: TrainConfig, info: DataInfo, arrays_ref) -> dict:
    """fastai's LR range test as a Train run over cfg.workers workers: {"lrs", "losses", "suggestions"}."""
    with tempfile.TemporaryDirectory(prefix="visionsweep-lr-find-") as storage:
        trainer = make_trainer(cfg, info, arrays_ref, storage=storage, name="lr_find", per_worker=lr_find_per_worker)
        with trainer.fit().checkpoint.as_directory() as d:
            return json.loads(Path(d, "lr_find.json").read_text())


def save_lr_find(result: dict, backbone: str, out_png: Path) -> None:
    """The plot, and the curve as JSON beside it (same name, .json)."""
    from visionsweep.trainables.plots import plot_lr_find

    plot_lr_find(result, out_png)
    out_png.with_suffix(".json").write_text(json.dumps({"backbone": backbone, **result}, indent=1))


def export_run(out_dir: Path, *, metric: str, mode: str, log=print) -> RunOutcome:
    """best/ and final/ checkpoints, metrics.csv and learning_curve.png from Train's record of the run."""
    from visionsweep.trainables.plots import plot_learning_curve

    best, latest = best_and_latest(out_dir / "ray", "train", metric, mode)
    with latest.as_directory() as d:
        export_checkpoint(d, out_dir / "final")
    with (best or latest).as_directory() as d:
        export_checkpoint(d, out_dir / "best")
    final_meta, best_meta = read_meta(out_dir / "final"), read_meta(out_dir / "best")
    write_metrics_csv(out_dir / "metrics.csv", final_meta["history"])
    plot_learning_curve(final_meta, out_dir / "learning_curve.png")
    log(f"best epoch {best_meta['epoch']}: {metric} {best_meta['metrics'][metric]:.4f}; "
        f"files in {out_dir}: best/, final/, metrics.csv, learning_curve.png, config.json")
    return RunOutcome(out_dir, best_meta["metrics"], final_meta["metrics"], metric)


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)

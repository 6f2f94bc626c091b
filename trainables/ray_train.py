"""The thin Ray Train shell: the per-worker functions, the TorchTrainer of one run, and reading Train's record
of a run (its best and latest checkpoints). Everything inside a worker is plain PyTorch (trainables.worker)."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from visionsweep.datasets.errors import RunFailed
from visionsweep.datasets.load import LoadedData
from visionsweep.trainables.config import TrainConfig, resolve_metric
from visionsweep.trainables.ray_session import verbose, worker_bundle
from visionsweep.trainables.worker import DataInfo


def data_info(data: LoadedData) -> DataInfo:
    return DataInfo(classes=list(data.classes), positive_class=data.positive_class, vertical_flip=data.vertical_flip,
                    flip=data.flip)


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


def make_trainer(cfg: TrainConfig, info: DataInfo, arrays_ref, *, storage: Path | str, name: str,
                 callbacks: list | None = None, env: dict | None = None, per_worker=train_loop_per_worker,
                 pg_cleaner: bool = True, controller_in_process: bool = False):
    """The TorchTrainer of one run: DDP over cfg.workers (NCCL on GPUs, gloo on CPUs), checkpoints keep the
    best by the task's metric plus the latest (for resume), failed worker groups restart from the latest.
    `pg_cleaner=False`: without Train's placement-group cleaner actor, for a caller that frees the worker group
    of a dead controller itself (a sweep's trials: search.reaper). `controller_in_process`: the calling actor runs
    Train's controller, no TrainController actor (_interruptible)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    metric, mode = resolve_metric(cfg.metric, len(info.classes))
    trainer = _interruptible(TorchTrainer)(
        per_worker,
        train_loop_config={"train": dataclasses.asdict(cfg), "info": dataclasses.asdict(info), "arrays": arrays_ref},
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu,
                                               resources_per_worker=worker_bundle(cfg)),
        run_config=ray.train.RunConfig(
            name=name, storage_path=str(storage), callbacks=callbacks,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=metric,
                                                         checkpoint_score_order=mode),
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
            worker_runtime_env={"env_vars": env} if env else None),
    )
    trainer.pg_cleaner, trainer.controller_in_process = pg_cleaner, controller_in_process
    return trainer


@functools.cache
def _interruptible(base):
    """`base` (TorchTrainer) whose Ctrl-C in a main thread (`train`, `lr-find`, a sweep's refit) aborts the run
    gracefully, as Ray Train's own handler does, and then raises KeyboardInterrupt in the caller. Ray's handler
    ends the process instead (sys.exit inside the handler: status 1, no message, measured), and stays installed
    after fit() returns; here the caller's handler is put back. Tune's trials run fit() in a thread, where no
    handler is installed at all.

    Also: no DatasetManager actor. Ray Train 2.60 starts one for every run, Ray Datasets or not (one more process
    per run, ~1.3 s of CPU importing Ray Data); visionsweep's runs pass arrays, never `datasets`. And no
    placement-group cleaner actor where `pg_cleaner` is False (make_trainer).

    And, where `controller_in_process` is set and fit() runs in an actor (a sweep's trial: its Tune actor), no
    TrainController actor either: the calling actor runs the controller's loop (the object Train's actor holds,
    its `run()` on an event loop of fit()'s thread), one Ray process fewer per trial, and that process had to
    import torch and Ray Train again. What differs: the workers' handle to "the controller actor" is the trial's
    actor (Train uses it only for `ray.train.get_all_reported_checkpoints`, which visionsweep never calls), the
    worker actors are the trial actor's (they end with it, as they ended with the controller it owned), its
    placement group's creator is the trial actor (the sweep's Reaper frees it once that is dead, as it freed the
    dead controller's), and `abort()` would end the trial's actor: only Train's Ctrl-C handler calls it, which
    Tune's trial threads never install. Not in a driver: Train hands workers `current_actor`, which a driver has
    not got."""
    import ray

    class InterruptibleTrainer(base):
        interrupted = False
        pg_cleaner = True
        controller_in_process = False

        def _initialize_and_run_controller(self, **kwargs):
            if not self.controller_in_process or ray.get_runtime_context().get_actor_id() is None:
                return super()._initialize_and_run_controller(**kwargs)
            import asyncio

            from ray.train.v2._internal.execution.controller import TrainController

            controller = TrainController(**kwargs)  # what Train's own actor runs: its loop, here in fit()'s thread
            asyncio.run(controller.run())
            return controller.get_result()

        def _register_sigint_handler(self, controller) -> None:
            def handler(signum, frame):
                if self.interrupted:  # a second Ctrl-C: stop waiting for the graceful abort
                    raise KeyboardInterrupt
                self.interrupted = True
                try:
                    ray.get(controller.abort.remote())
                except ray.exceptions.RayActorError:  # the controller ended while aborting: nothing left to stop
                    pass

            signal.signal(signal.SIGINT, handler)

        def _create_default_callbacks(self) -> list:
            from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
            from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

            dropped = [] if self.datasets else [DatasetsCallback]
            if not self.pg_cleaner:
                dropped.append(PlacementGroupCleanerCallback)
            return [cb for cb in super()._create_default_callbacks() if not isinstance(cb, tuple(dropped))]

        def fit(self):
            with sigint_handler_kept():
                try:
                    result = super().fit()
                except Exception:
                    if self.interrupted:
                        raise KeyboardInterrupt from None
                    raise
            if self.interrupted:
                raise KeyboardInterrupt
            return result

    return InterruptibleTrainer


@contextmanager
def sigint_handler_kept():
    """Puts the caller's SIGINT handler back after the block (in the main thread; elsewhere none can be set). Ray's
    own handlers outlive the call that installed them: Train's (above) and Tune's, which fit() leaves installed
    when it returns (ray/tune/tune.py, _setup_signal_catching: it puts the old one back only when a signal
    arrives), so the first Ctrl-C of a sweep's refit would only set an event nobody reads."""
    before = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGINT, before)


def lr_find_curve(cfg: TrainConfig, info: DataInfo, arrays_ref) -> dict:
    """fastai's LR range test as a Train run over cfg.workers workers: {"lrs", "losses", "suggestions"}."""
    with tempfile.TemporaryDirectory(prefix="visionsweep-lr-find-") as storage:
        trainer = make_trainer(cfg, info, arrays_ref, storage=storage, name="lr_find", per_worker=lr_find_per_worker)
        with trainer.fit().checkpoint.as_directory() as d:
            return json.loads(Path(d, "lr_find.json").read_text())


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

"""`visionsweep train` and `visionsweep lr-find`: one Ray Train run of one configuration, and its run directory
(best/, final/, metrics.csv, learning_curve.png, config.json), beside the sweep commands."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from visionsweep.datasets import DataError, ownership
from visionsweep.datasets.load import LoadedData
from visionsweep.datasets.split import train_valid_arrays
from visionsweep.trainables.checkpoint import export_checkpoint, read_meta
from visionsweep.trainables.config import TrainConfig, resolve_metric
from visionsweep.trainables.model import check_image_size
from visionsweep.trainables.plots import save_lr_find
from visionsweep.trainables.ray_session import check_resources, ensure_ray, say_if_busy, share_cpus
from visionsweep.trainables.ray_train import (best_and_latest, data_info, lr_find_curve, make_trainer,
                                              raise_if_failed)
from visionsweep.datasets.console import say

RUN_MARKER = "config.json"


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


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train`: the Train run was aborted gracefully; the message says how to resume."""


def run_training(*, data: LoadedData, cfg: TrainConfig, out_dir: Path, valid_pct: float, split_seed: int,
                 resume: bool = False, overwrite: bool = False, log=say) -> RunOutcome:
    import ray

    out_dir = Path(out_dir).expanduser().resolve()
    ownership.check_outside(out_dir, data.summary.get("data"), "--out")
    metric, mode = resolve_metric(cfg.metric, data.num_classes)
    check_image_size(cfg.backbone, cfg.image_size, data.num_classes)
    action = prepare_run_dir(out_dir, overwrite=overwrite, resume=resume)
    arrays = train_valid_arrays(data, valid_pct=valid_pct, seed=split_seed)
    with ensure_ray(log=log) as session:
        cfg = share_cpus(cfg, session.nodes)
        check_resources(cfg, session.nodes, can_grow=not session.local, log=log)
        make_run_dir(out_dir, action)
        info = data_info(data)
        (out_dir / RUN_MARKER).write_text(json.dumps({"visionsweep_run": True, "train": dataclasses.asdict(cfg),
                                                      "data": data.summary, "metric": metric, "mode": mode},
                                                     indent=1, default=str))
        log(f"training {cfg.backbone} on {len(arrays['y_train'])} images (valid {len(arrays['y_valid'])}), "
            f"{cfg.workers} worker(s) on {'GPU' if cfg.use_gpu else 'CPU'}, {cfg.total_epochs} epochs -> {out_dir}")
        if action == "resume":
            log(resume_point(out_dir / "ray" / "train", cfg.total_epochs))
        say_if_busy(cfg, log=log)
        trainer = make_trainer(cfg, info, ray.put(arrays), storage=out_dir / "ray", name="train")
        try:
            raise_if_failed(trainer.fit())
        except KeyboardInterrupt:
            raise RunInterrupted(f"interrupted; {out_dir} holds the run up to its last checkpoint. Continue it with "
                                 f"the same command plus --resume") from None
    return export_run(out_dir, metric=metric, mode=mode, log=log)


def resume_point(train_run: Path, total_epochs: int) -> str:
    """What --resume continues from: Train's record of the run's latest checkpoint. Train registers a checkpoint
    a moment after its epoch ends (it polls every ~2 s), so a Ctrl-C right after an epoch can leave none."""
    from visionsweep.search.retention import train_snapshot

    latest = (train_snapshot(train_run) or {}).get("latest_checkpoint_result")
    if not latest:
        return ("resume: no checkpoint was recorded before the run stopped, so it starts again at epoch 1 of "
                f"{total_epochs}")
    return f"resume: from the checkpoint of epoch {latest['metrics'].get('epoch', '?')} of {total_epochs}"


def run_lr_find_job(*, data: LoadedData, cfg: TrainConfig, valid_pct: float, split_seed: int, out_png: Path,
                    log=say) -> dict:
    """`visionsweep lr-find`: the curve over cfg.workers DDP workers, a plot, and lr_find.json beside it."""
    import ray

    out_png = Path(out_png).expanduser().resolve()
    check_image_size(cfg.backbone, cfg.image_size, data.num_classes)
    if not out_png.parent.is_dir():
        raise DataError(f"--out {out_png}: folder {out_png.parent} does not exist")
    with ensure_ray(log=log) as session:
        cfg = share_cpus(cfg, session.nodes)
        check_resources(cfg, session.nodes, can_grow=not session.local, log=log)
        say_if_busy(cfg, log=log)
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


def export_run(out_dir: Path, *, metric: str, mode: str, log=say) -> RunOutcome:
    """best/ and final/ checkpoints, metrics.csv and learning_curve.png from Train's record of the run."""
    from visionsweep.trainables.plots import plot_learning_curve

    best, latest = best_and_latest(out_dir / "ray", "train", metric, mode)
    with latest.as_directory() as d:
        export_checkpoint(d, out_dir / "final")
    with (best or latest).as_directory() as d:
        export_checkpoint(d, out_dir / "best")
    final_meta, best_meta = read_meta(out_dir / "final"), read_meta(out_dir / "best")
    write_metrics_csv(out_dir / "metrics.csv", final_meta.history)
    plot_learning_curve(final_meta, out_dir / "learning_curve.png")
    log(f"best epoch {best_meta.epoch}: {metric} {best_meta.metrics[metric]:.4f}; "
        f"files in {out_dir}: best/, final/, metrics.csv, learning_curve.png, config.json")
    return RunOutcome(out_dir, best_meta.metrics, final_meta.metrics, metric)


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)

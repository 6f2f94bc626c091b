"""`visionsweep predict`: the best trial (or the top k averaged) or one run -> a validated submission."""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from visionsweep.datasets import DataError
from visionsweep.datasets.load import LoadedData
from visionsweep.datasets.submission import write_submission
from visionsweep.search.leaderboard import ensemble_rows, sweep_leaderboard
from visionsweep.search.record import SWEEP_MARKER, is_sweep, read_sweep_record
from visionsweep.datasets.console import say


def resolve_sources(source: str, *, top_k: int, refit: bool = True, selected: bool = True
                    ) -> list[tuple[str, object]]:
    """[(label, checkpoint directory or ray.train.Checkpoint)] for a sweep, a `train` run, or a checkpoint.
    A sweep's trial is represented by its refit models (trained on train + valid, one per seed; each an entry, so
    predict's mean weighs every model alike) when it has them and `refit`; `selected`: the trials its ensemble
    selection left out are passed over (ensemble_rows)."""
    if is_sweep(source):
        from visionsweep.search.refit import refit_checkpoints
        from visionsweep.trainables.ray_train import read_result

        info = read_sweep_record(source)
        board = sweep_leaderboard(source)
        usable = ensemble_rows(board, info.metric, top_k, selected=selected)
        if usable.empty:
            raise DataError(f"sweep {source} has no finished trial with a {info.metric} yet")
        out = []
        for row in usable.itertuples():
            models, entry, unreadable = refit_checkpoints(source, row.trial_id) if refit else ([], None, [])
            lost = f"; its refit run(s) {', '.join(unreadable)} cannot be read" if unreadable else ""
            if models:  # the configuration's refit models, one per seed, each averaged in as one model
                out += [(f"trial {row.trial_id} {row.backbone} refit on all {entry['train_images']} labelled images, "
                         f"{entry['epochs']} epochs" + (f", seed {model['seed']}" if model.get("seed") is not None
                                                        else "") + f" ({model['run']}; no held-out score{lost})", ckpt)
                        for model, ckpt in models]
                continue
            result = read_result(row.train_run)
            ckpt = result.get_best_checkpoint(info.metric, info.mode) or result.checkpoint
            value = getattr(row, f"best_{info.metric}")
            why = "--no-refit" if not refit else ("refit failed" + lost) if entry else "not refit"
            out.append((f"trial {row.trial_id} {row.backbone} best checkpoint of the sweep ({info.metric} "
                        f"{value:.4f}; {why})", ckpt))
        return out
    path = Path(source)
    if (path / "best" / "meta.json").is_file():
        return [(f"run {path} (best epoch)", path / "best")]
    if (path / "meta.json").is_file():
        return [(f"checkpoint {path}", path)]
    raise DataError(f"{source} is not a sweep (no {SWEEP_MARKER}), a `visionsweep train` run (no best/) or a "
                    f"checkpoint (no meta.json)")


def sweep_spec(source: str) -> dict:
    """The DatasetSpec options the sweep was run with (root excluded), so predict reads DATA the same way."""
    return dict(read_sweep_record(source).spec) if is_sweep(source) else {}


def default_top_k(source: str) -> int:
    """predict's --top-k when not given: the sweep's own top_k (SearchConfig.top_k), 1 for a run or checkpoint."""
    return read_sweep_record(source).top_k if is_sweep(source) else 1


def predict(*, source: str, data: LoadedData, out: Path, top_k: int, tta: bool, overwrite: bool = False,
            refit: bool = True, selected: bool = True, log=say) -> pd.DataFrame:
    import torch

    from visionsweep.trainables.checkpoint import WEIGHTS, member_dirs
    from visionsweep.trainables.inference import load_for_inference, predict_probs, tta_transforms

    out = Path(out).expanduser().resolve()
    if out.exists() and not overwrite:
        raise DataError(f"--out {out} exists; pass --overwrite to replace it, or choose another file")
    if len(data.test_ids) == 0:
        raise DataError(f"DATA {data.summary['data']} has no test images to predict (no test/ folder)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sources = resolve_sources(source, top_k=top_k, refit=refit, selected=selected)
    probs, n_models = [], 0
    with ExitStack() as stack:
        for label, ckpt in sources:
            directory = ckpt if isinstance(ckpt, Path) else stack.enter_context(ckpt.as_directory())
            members = member_dirs(directory)  # a cross-validated trial: its K fold models, averaged first
            member_probs = []
            for member in members:
                if not (Path(member) / WEIGHTS).is_file():
                    raise DataError(f"{label}: no weights in {member} (a sweep keeps the best weights of its "
                                    f"--top-k trials only, unless it ran with --keep); predict with a smaller "
                                    f"--top-k (nothing was written)")
                model, meta, task = load_for_inference(member, device)
                if list(meta.classes) != list(data.classes):
                    raise DataError(f"{label} was trained on classes {meta.classes} but DATA has {data.classes}; "
                                    f"predict with the data the model was trained on")
                if not data.flip:  # --no-flip: no mirrored views, whatever the model was trained with
                    task = dataclasses.replace(task, flip=False)
                t0 = time.perf_counter()
                p = predict_probs(model, task, data.x_test, device=device, tta=tta, desc=f"predicting ({label})")
                member_probs.append(p)
                views = len(tta_transforms(task.vertical_flip, task.flip)) if tta else 1
                log(f"  {label}" + (f", fold {len(member_probs)} of {len(members)}" if len(members) > 1 else "")
                    + f": {meta.backbone} at {task.image_size}px" + (f", TTA x{views}" if tta else "")
                    + f", {len(p) * views / max(time.perf_counter() - t0, 1e-9):,.0f} img/s on {device.type}")
            probs.append(np.mean(member_probs, axis=0))
            n_models += len(members)
    mean = np.mean(probs, axis=0)
    frame = write_submission(out, data.submission, data.test_ids, mean, sample=data.sample)
    log(f"wrote {out}: {len(frame)} rows, columns {', '.join(frame.columns)} "
        f"({'mean of %d models' % n_models if n_models > 1 else 'one model'}; {data.submission.describe()})")
    return frame

"""What a sweep keeps on disk: every checkpoint while a trial may resume, then only what predict can use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from visionsweep.search import storage as st
from visionsweep.search.leaderboard import UNFINISHED, ensemble_rows, usable_rows
from visionsweep.search.refit import REFIT_RECORD, read_record, refit_models
from visionsweep.trainables.checkpoint import STATE, WEIGHTS


def prune_unregistered_checkpoints(train_runs: str) -> int:
    """Delete checkpoint folders that Train's own record (checkpoint_manager_snapshot.json) does not list.

    When ASHA stops a trial, Tune ends the trial actor and with it the Train controller it runs, but the workers
    run on until their placement group is removed (by the sweep's reaper, search.reaper: within 0.25 s) and may
    write one or two more checkpoints that no record points to: retention never deletes them, and resume never
    uses them."""


    if st.is_remote(train_runs) or not Path(train_runs).is_dir():
        return 0
    removed = 0
    for run in Path(train_runs).iterdir():
        state = train_snapshot(run)
        if state is None:
            continue
        keep = {r["checkpoint_dir_name"] for r in state.get("checkpoint_results", [])}
        if state.get("latest_checkpoint_result"):
            keep.add(state["latest_checkpoint_result"]["checkpoint_dir_name"])
        for ckpt in run.glob("checkpoint_*"):
            if ckpt.is_dir() and ckpt.name not in keep:
                shutil.rmtree(ckpt)
                removed += 1
    return removed


def train_snapshot(run: Path) -> dict | None:
    """Train's own record of a run's checkpoints (checkpoint_manager_snapshot.json), or None before the first."""
    path = run / "checkpoint_manager_snapshot.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _best_dir(state: dict, metric: str, mode: str) -> str | None:
    results = [r for r in state.get("checkpoint_results", []) if r.get("metrics", {}).get(metric) is not None]
    if not results:
        return None
    pick = max if mode == "max" else min
    return pick(results, key=lambda r: r["metrics"][metric])["checkpoint_dir_name"]


def retain(train_runs: str, board: pd.DataFrame, *, metric: str, mode: str, top_k: int) -> int:
    """After the sweep: an ended trial (done, stopped early, failed) can no longer resume, so its optimizer
    state and its latest checkpoint's weights (when it is not the best) go. Only the top `top_k` by score and the
    first `top_k` of predict's ensemble (ensemble_rows) keep their best weights; every folder and its meta.json,
    with the metric history, stay. Unfinished trials keep everything for --resume. Returns the bytes freed."""
    if st.is_remote(train_runs) or board.empty or not Path(train_runs).is_dir():
        return 0
    freed = 0
    # what predict's ensemble (--top-k up to top_k) and the top_k rows of refit and noise read
    ranked = {str(t) for rows in (usable_rows(board, metric).head(top_k),
                                  ensemble_rows(board, metric, top_k, selected=False))  # all that selection judges
              for t in rows["trial_id"]}
    for row in board.itertuples():
        run = Path(train_runs) / f"train-{row.trial_id}"
        state = train_snapshot(run) if row.status != UNFINISHED else None
        if state is None:
            continue
        best = _best_dir(state, metric, mode)
        for ckpt in run.glob("checkpoint_*"):
            if not ckpt.is_dir():
                continue
            keep_weights = ckpt.name == best and str(row.trial_id) in ranked
            freed += _strip(ckpt, (STATE,) if keep_weights else (STATE, WEIGHTS))
    return freed


def _strip(ckpt: Path, names) -> int:
    """Delete these files of a checkpoint folder; the folder and its meta.json stay, because Train's record
    lists the folder and `Result.from_path` refuses a run whose listed checkpoints are gone ("corrupted run
    directory")."""
    freed = 0
    for folder in (ckpt, *sorted(ckpt.glob("fold-*"))):  # a cross-validated trial's fold models too
        for name in names:
            path = folder / name
            if path.is_file():
                freed += path.stat().st_size
                path.unlink()
    return freed


def retain_refits(refit_runs: str) -> int:
    """A finished refit run keeps only its last checkpoint's weights (what predict loads); one that did not
    finish keeps everything, so `--resume` continues it. Returns the bytes freed."""
    if st.is_remote(refit_runs) or not Path(refit_runs).is_dir():
        return 0
    totals = {}  # run folder name -> its epochs, for the refit models the record says are done
    for entry in read_record(str(Path(refit_runs).parent), REFIT_RECORD).values():
        for model in refit_models(entry):
            if model.get("status") == "done":
                totals[Path(model["run"]).name] = entry.get("epochs")
    freed = 0
    for run in Path(refit_runs).iterdir():
        state = train_snapshot(run)
        latest = (state or {}).get("latest_checkpoint_result")
        total = totals.get(run.name)
        if not latest or total is None or latest.get("metrics", {}).get("epoch", 0) < total:
            continue
        for ckpt in run.glob("checkpoint_*"):
            if not ckpt.is_dir():  # checkpoint_manager_snapshot.json: Train's record, which predict reads
                continue
            freed += _strip(ckpt, (STATE,) if ckpt.name == latest["checkpoint_dir_name"] else (STATE, WEIGHTS))
    return freed

"""What a sweep keeps on disk: every checkpoint while a trial may resume, then only what predict can use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from visionsweep.search import storage as st
from visionsweep.search.leaderboard import UNFINISHED
from visionsweep.search.refit import REFIT_RECORD
from visionsweep.trainables.checkpoint import STATE, WEIGHTS


def prune_unregistered_checkpoints(train_runs: str) -> int:
    """Delete checkpoint folders that Train's own record (checkpoint_manager_snapshot.json) does not list.

    When ASHA stops a trial, Tune ends the trial actor and with it the Train controller, but the workers run on
    until Train's placement-group cleaner notices (about a second here) and may write one or two more
    checkpoints that no record points to: retention never deletes them, and resume never uses them."""


    if st.is_remote(train_runs) or not Path(train_runs).is_dir():
        return 0
    removed = 0
    for run in Path(train_runs).iterdir():
        snapshot = run / "checkpoint_manager_snapshot.json"
        if not snapshot.is_file():
            continue
        state = json.loads(snapshot.read_text())
        keep = {r["checkpoint_dir_name"] for r in state.get("checkpoint_results", [])}
        if state.get("latest_checkpoint_result"):
            keep.add(state["latest_checkpoint_result"]["checkpoint_dir_name"])
        for ckpt in run.glob("checkpoint_*"):
            if ckpt.is_dir() and ckpt.name not in keep:
                shutil.rmtree(ckpt)
                removed += 1
    return removed


def _snapshot(run: Path) -> dict | None:
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
    state and its latest checkpoint (when it is not the best) go; trials outside the top `top_k` also lose
    their weights (meta.json, with the metric history, stays). Unfinished trials keep everything for --resume.
    Returns the bytes freed."""
    if st.is_remote(train_runs) or board.empty or not Path(train_runs).is_dir():
        return 0
    freed = 0
    ranked = board[board["status"] != "error"].head(top_k)["trial_id"].astype(str).tolist()
    for row in board.itertuples():
        run = Path(train_runs) / f"train-{row.trial_id}"
        state = _snapshot(run) if row.status != UNFINISHED else None
        if state is None:
            continue
        best = _best_dir(state, metric, mode)
        for ckpt in run.glob("checkpoint_*"):
            if not ckpt.is_dir():
                continue
            doomed = [ckpt] if ckpt.name != best else [ckpt / STATE]
            if ckpt.name == best and str(row.trial_id) not in ranked:
                doomed.append(ckpt / WEIGHTS)
            for path in doomed:
                if path.exists():
                    freed += sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*"))
                                 if f.is_file())
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
    return freed


def retain_refits(refit_runs: str) -> int:
    """A finished refit run keeps only its last checkpoint's weights (what predict loads); one that did not
    finish keeps everything, so `--resume` continues it. Returns the bytes freed."""
    if st.is_remote(refit_runs) or not Path(refit_runs).is_dir():
        return 0
    freed = 0
    for run in Path(refit_runs).iterdir():
        state = _snapshot(run)
        latest = (state or {}).get("latest_checkpoint_result")
        total = None
        config = run.parent.parent / REFIT_RECORD
        if config.is_file():
            entry = json.loads(config.read_text()).get(run.name.removeprefix("refit-"), {})
            total = entry.get("epochs") if entry.get("status") == "done" else None
        if not latest or total is None or latest.get("metrics", {}).get("epoch", 0) < total:
            continue
        for ckpt in run.glob("checkpoint_*"):
            if not ckpt.is_dir():  # checkpoint_manager_snapshot.json: Train's record, which predict reads
                continue
            doomed = ckpt / STATE if ckpt.name == latest["checkpoint_dir_name"] else ckpt
            if doomed.exists():
                freed += sum(f.stat().st_size for f in ([doomed] if doomed.is_file() else doomed.rglob("*"))
                             if f.is_file())
                shutil.rmtree(doomed) if doomed.is_dir() else doomed.unlink()
    return freed

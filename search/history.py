"""Each trial's per-epoch metrics from a record that survives a crash: its Train run's latest checkpoint.

Tune's own record of a trial (result.json, progress.csv) starts again when a killed sweep is resumed: a trial
killed in epoch 2 and resumed from its epoch-1 checkpoint holds only epochs 2.. (as training_iteration 1..).
The Train run's checkpoint carries the whole history (meta.json "history", epochs 1..E, written with every
epoch's checkpoint), so the leaderboard, the curves and the report read that, and Tune's rows only for epochs
the checkpoint lacks."""

from __future__ import annotations

import pandas as pd


def train_history(train_run: str) -> pd.DataFrame | None:
    """The history in the Train run's latest registered checkpoint, or None (no run, no checkpoint yet)."""
    try:
        from visionsweep.trainables.checkpoint import read_meta
        from visionsweep.trainables.ray_train import read_result

        checkpoint = read_result(train_run).checkpoint
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as d:
            meta = read_meta(d)
    except Exception:  # a run that never checkpointed, or was never started: Tune's record is all there is
        return None
    history = pd.DataFrame(meta.history)
    return history if len(history) and "epoch" in history else None


def whole_history(tune_history: pd.DataFrame | None, train_run: str) -> pd.DataFrame:
    """Train's history for every epoch it holds, then Tune's rows for later epochs; each epoch once, in order."""
    tune_history = tune_history if tune_history is not None else pd.DataFrame()
    train = train_history(train_run)
    if train is None:
        return tune_history
    if "trial_id" in tune_history and len(tune_history):
        train = train.assign(trial_id=tune_history["trial_id"].iloc[0])
    later = tune_history[tune_history["epoch"] > train["epoch"].max()] if "epoch" in tune_history else tune_history.iloc[:0]
    return pd.concat([train, later], ignore_index=True).sort_values("epoch").reset_index(drop=True)

"""The sweep's leaderboard: one row per trial with its parameters, best and last metric, status and error."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from visionsweep.datasets import DataError
from visionsweep.search import storage as st
from visionsweep.search.history import whole_history
from visionsweep.search.space import flat_params

PARAMS = ("backbone", "max_lr", "aug", "image_size", "batch_size", "weight_decay", "freeze_epochs", "flip")


UNFINISHED = "unfinished (--resume continues it)"


def leaderboard(results, *, metric: str, mode: str, train_runs: str, max_epochs: int | None = None,
                statuses: dict | None = None, configs: dict | None = None, orders: dict | None = None
                ) -> pd.DataFrame:
    """From Tune's ResultGrid (+ the trials' saved statuses): sorted best first; failed trials last, with
    their error. A trial is "stopped early" by ASHA or the time budget, "unfinished" after Ctrl-C or a kill.
    `orders`: trial id -> the number the searcher created it with (creation_order), which breaks ties; without
    it, the results' own order."""
    rows = []
    for position, r in enumerate(results, start=1):
        trial_id = (r.metrics or {}).get("trial_id") or Path(r.path).name.rsplit("-", 1)[-1]
        order = (orders or {}).get(trial_id, position)
        config = r.config or (configs or {}).get(trial_id) or {}  # a trial that failed before reporting
        params = flat_params(config)
        # Train's record, whole after a crash; Tune's restarts at the resumed epoch (search/history.py)
        history = whole_history(r.metrics_dataframe, st.join(train_runs, f"train-{trial_id}"))
        saved = (statuses or {}).get(trial_id, "TERMINATED")
        seen = r.metrics_dataframe
        if saved == "TERMINATED" and seen is not None and "epoch" in seen and len(seen) and "epoch" in history:
            # An ended trial counts the epochs Tune judged: when ASHA stops a trial its worker may finish one
            # more epoch into Train's record, which no rung saw (it would make a stopped trial look "done").
            history = history[history["epoch"] <= seen["epoch"].max()]
        values = history[metric].dropna() if metric in history else pd.Series(dtype=float)
        best = (values.max() if mode == "max" else values.min()) if len(values) else math.nan
        epochs = int(history["epoch"].max()) if "epoch" in history and len(history) else 0
        if r.error is not None or saved == "ERROR":
            status = "error"
        elif saved != "TERMINATED":
            status = UNFINISHED
        elif max_epochs is not None and epochs < max_epochs:
            status = "stopped early"
        else:
            status = "done"
        error = "" if r.error is None else (str(r.error).strip().splitlines() or [""])[-1][:300]
        rows.append({"trial_id": trial_id, **{p: params.get(p) for p in PARAMS if p in params},
                     f"best_{metric}": best, f"last_{metric}": values.iloc[-1] if len(values) else math.nan,
                     "epochs": epochs, "status": status, "error": error, "order": order,
                     "train_run": st.join(train_runs, f"train-{trial_id}")})
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    key = f"best_{metric}"
    # Ties keep the order the trials ran in (they decide which trials keep weights and join the ensemble).
    board = board.sort_values([key, "order"], ascending=[mode == "min", True], na_position="last",
                              kind="stable").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def usable_rows(board: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials with a score, best first (failed ones and those that never reported left out)."""
    if board.empty:
        return board
    return board[board["status"] != "error"].dropna(subset=[f"best_{metric}"])


def ensemble_rows(board: pd.DataFrame, metric: str, top_k: int | None = None, *, selected: bool = True
                  ) -> pd.DataFrame:
    """The trials predict averages, in order: the best trial, whatever its status, then the trials that ran their
    whole schedule, the first `top_k` of them. One that early stopping cut short was judged worse at a rung and is
    under-trained (seen: a 0.23-accuracy member cost a 0.95 model 3 points). Retention keeps the weights of the
    first top_k of these. With `selected`, those the sweep's ensemble selection judged and left out (the board's
    `ensemble` column, search/ensemble.py) are dropped from the first top_k, not replaced by the next trials: the
    selection judged only those (and retention kept no weights beyond them)."""
    usable = usable_rows(board, metric)
    rest = usable.iloc[1:]
    rows = pd.concat([usable.head(1), rest[rest["status"] == "done"]])
    if top_k is not None:
        rows = rows.head(top_k)
    if selected and "ensemble" in rows and len(rows):
        rows = pd.concat([rows.head(1), rows.iloc[1:][rows.iloc[1:]["ensemble"] != "left out"]])
    return rows


def to_markdown(board: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return str(v).replace("|", "\\|")

    cols = [c for c in board.columns if c != "train_run"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in board[cols].itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_leaderboard(board: pd.DataFrame, sweep: str, *, metric: str) -> None:
    from visionsweep.search.refit import NOISE_RECORD, noise_summary, read_record

    st.write_text(st.join(sweep, "leaderboard.csv"), board.to_csv(index=False))
    noise = noise_summary(read_record(sweep, NOISE_RECORD), board, metric)
    notes = (f"{noise[0].upper()}{noise[1:]}. ci95_lo / ci95_hi: the bootstrap 95% interval of best_{metric}.\n\n"
             if noise else "")
    if "ensemble" in board:
        notes += ("ensemble: `predict` averages the members; a trial left out made the members' validation "
                  f"{metric} worse when added (ensemble.json).\n\n")
    if "refit" in board and (board["refit"] != "").any():
        notes += ("refit: the run that retrained the trial's configuration on all labelled images (train + valid), "
                  "which `predict` uses.\n\n")
    st.write_text(st.join(sweep, "leaderboard.md"), f"# Leaderboard ({metric})\n\n" + notes + to_markdown(board))


def creation_order(trials) -> dict:
    """trial id -> the number Tune's search generator gave the trial when it created it (its experiment tag
    "<n>_<params>"). Tune's own list of trials is not that order after a --resume (seen: the restored state listed
    trial 2 first), and ties on the metric, common on a few dozen validation images, are broken by it: without a
    fixed order a resumed sweep could rank another of the tied trials first and refit it."""
    orders = {}
    for t in trials:
        head = str(getattr(t, "experiment_tag", "") or "").split("_", 1)[0]
        if head.isdigit():
            orders[t.trial_id] = int(head)
    return orders


def sweep_leaderboard(sweep: str, *, with_histories: bool = False):
    """Rebuilt from Tune's own record of the sweep (works offline, and after a killed driver)."""
    from ray import tune

    from visionsweep.search.record import read_sweep_record

    info = read_sweep_record(sweep)
    try:
        analysis = tune.ExperimentAnalysis(sweep)
    except Exception as err:  # the driver died before Tune saved its first state
        raise DataError(f"{sweep} has no Tune results yet ({type(err).__name__}); run the sweep with --resume") from None
    results = tune.ResultGrid(analysis)
    statuses = {t.trial_id: t.status for t in analysis.trials}
    configs = {t.trial_id: t.config for t in analysis.trials}
    board = leaderboard(results, metric=info.metric, mode=info.mode, train_runs=st.join(sweep, "train_runs"),
                        max_epochs=info.epochs, statuses=statuses, configs=configs,
                        orders=creation_order(analysis.trials))
    from visionsweep.search.refit import annotate

    board = annotate(board, sweep, info.metric)  # noise.json and refit.json, when the sweep has them
    if not with_histories:
        return board
    histories = {}
    for r in results:
        if r.metrics_dataframe is not None and len(r.metrics_dataframe):
            trial_id = str(r.metrics_dataframe["trial_id"].iloc[0])
            histories[trial_id] = whole_history(r.metrics_dataframe, st.join(sweep, "train_runs", f"train-{trial_id}"))
    return board, histories

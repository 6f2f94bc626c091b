"""`visionsweep report`: leaderboard (CSV + markdown) and PNG plots of a sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from visionsweep.search import storage as st
from visionsweep.search.leaderboard import sweep_leaderboard, write_leaderboard
from visionsweep.search.refit import NOISE_RECORD, noise_summary, read_record
from visionsweep.search.record import read_sweep_record
from visionsweep.trainables.plots import new_axes, plot_lr_find, save
from visionsweep.datasets.console import say


# fANOVA fits a random forest to (parameters -> metric); from a handful of trials it ranks noise (the demo's 6
# trials rated the backbone 0.01 while the leaderboard split cleanly by backbone). Below this, no importance.
MIN_IMPORTANCE_TRIALS = 20


def report(sweep: str, *, out: Path | None = None, log=say) -> Path:
    info = read_sweep_record(sweep)
    metric, mode, top_k = info.metric, info.mode, info.top_k
    out = Path(out or (sweep if not st.is_remote(sweep) else Path(info.name))) / "report"
    out.mkdir(parents=True, exist_ok=True)
    board, histories = sweep_leaderboard(sweep, with_histories=True)
    write_leaderboard(board, sweep, metric=metric)
    board.to_csv(out / "leaderboard.csv", index=False)
    files = ["leaderboard.csv"]
    files.append(plot_best_vs_trial(board, metric, mode, out / "best_vs_trial.png"))
    files.append(plot_top_curves(board, histories, metric, top_k, out / "learning_curves.png"))
    importance = param_importance(board, metric, mode, info.search)
    if importance is not None:
        files.append(plot_importance(importance, out / "param_importance.png"))
        (out / "param_importance.json").write_text(json.dumps(importance, indent=1))
    else:  # an earlier report's plot must not stay beside a leaderboard it no longer describes
        for stale in ("param_importance.png", "param_importance.json"):
            (out / stale).unlink(missing_ok=True)
    for name in st.listdir(sweep):
        if name.startswith("lr_find") and name.endswith(".json"):
            curve = json.loads(st.read_text(st.join(sweep, name)))
            png = name.replace(".json", ".png")
            plot_lr_find(curve, out / png)
            files.append(png)
    log(board.drop(columns=["train_run"]).head(top_k * 3).to_string(index=False))
    noise = noise_summary(read_record(sweep, NOISE_RECORD), board, metric)
    if noise:
        log(noise)
    finished = _finished(board, metric)
    if finished < MIN_IMPORTANCE_TRIALS:
        log(f"parameter importance: not computed; {finished} finished trial(s) are too few for it to mean anything "
            f"(needs at least {MIN_IMPORTANCE_TRIALS}); compare the leaderboard's rows instead")
    if importance:
        log("parameter importance (Optuna fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in importance.items()))
    log(f"report: {out}/ ({', '.join(f for f in files if f)})")
    return out


def plot_best_vs_trial(board, metric, mode, path) -> str:
    order = board.sort_values("order")
    values = order[f"best_{metric}"].to_numpy(dtype=float)
    running = (np.fmax.accumulate if mode == "max" else np.fmin.accumulate)(np.where(np.isnan(values),
                                                                                     -np.inf if mode == "max" else np.inf,
                                                                                     values))
    fig, ax = new_axes()
    x = np.arange(1, len(values) + 1)
    for status, marker in (("done", "o"), ("stopped early", "x"), ("error", "s")):
        m = (order["status"] == status).to_numpy()
        ax.scatter(x[m], values[m], marker=marker, label=status)
    ax.step(x, np.where(np.isfinite(running), running, np.nan), where="post", label="best so far", color="black")
    ax.set_xlabel("trial (in start order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.legend()
    save(fig, path)
    return path.name


def plot_top_curves(board, histories, metric, top_k, path) -> str:
    fig, ax = new_axes()
    for row in board.head(top_k).itertuples():
        h = histories.get(row.trial_id)
        if h is not None and metric in h:
            ax.plot(h["epoch"], h[metric], "o-", label=f"{row.trial_id} {row.backbone} lr={row.max_lr:.1e}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"valid {metric}")
    ax.legend()
    ax.set_title(f"learning curves of the top {top_k} trials")
    save(fig, path)
    return path.name


def param_importance(board: pd.DataFrame, metric: str, mode: str, search: dict) -> dict | None:
    """Optuna's fANOVA importance over the finished trials (max_lr pooled across backbones; horizontal flips too
    when they were searched)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    done = board[board["status"] != "error"].dropna(subset=[f"best_{metric}"])
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return None
    lo = min([search["lr_range"][0]] + [r[0] for r in search["lr_ranges"].values()])
    hi = max([search["lr_range"][1]] + [r[1] for r in search["lr_ranges"].values()])
    dists = {"backbone": CategoricalDistribution(list(search["backbones"])),
             "max_lr": FloatDistribution(lo, hi, log=True), "aug": FloatDistribution(*search["aug_range"])}
    flips = search.get("search_flip") and "flip" in done and done["flip"].notna().all()
    if flips:
        dists["flip"] = CategoricalDistribution([True, False])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for row in done.itertuples():
        params = {"backbone": row.backbone, "max_lr": float(row.max_lr), "aug": float(row.aug)}
        if flips:
            params["flip"] = bool(row.flip)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=float(getattr(row, f"best_{metric}"))))
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study, normalize=True).items()
                if not math.isnan(v)}
    except (RuntimeError, ValueError):
        return None


def _finished(board: pd.DataFrame, metric: str) -> int:
    if board.empty or f"best_{metric}" not in board:
        return 0
    return int(len(board[board["status"] != "error"].dropna(subset=[f"best_{metric}"])))


def plot_importance(importance: dict, path: Path) -> str:
    fig, ax = new_axes((6, 3))
    names = list(importance)[::-1]
    ax.barh(names, [importance[n] for n in names])
    ax.set_xlabel("importance (fANOVA, normalised)")
    save(fig, path)
    return path.name

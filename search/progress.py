"""The sweep's console, printed by the driver from Tune's events: one line when a trial starts, a fastai-style
epoch row per result (tagged with the trial, so concurrent trials never blur), one line when it ends and why,
and a live done / running / best summary. Ray's own output stays in its session logs (`--verbose` shows it)."""

from __future__ import annotations

import math

from ray.tune import Callback

from visionsweep.search.space import flat_params
from visionsweep.datasets.console import say

# Epoch columns: fastai's, without the two that repeat others (error_rate = 1 - accuracy; valid_loss = log_loss
# unless label smoothing is on, when log_loss is the comparable one and valid_loss is what was optimised).
EPOCH_COLUMNS = ("train_loss", "valid_loss", "accuracy", "auc")


def searched_values(config: dict) -> str:
    """'max_lr 3.0e-03  aug 0.50  ...' from a Tune config (max LR is stored per backbone)."""
    parts = []
    config = flat_params(config)
    lr = config.get("max_lr")
    if lr is not None:
        parts.append(f"max_lr {lr:.1e}")
    for key, value in config.items():
        if key in ("backbone", "max_lr"):
            continue
        small = isinstance(value, float) and 0 < abs(value) < 0.01  # a searched weight decay, 1e-5 .. 1e-1
        parts.append(f"{key} {value:.1e}" if small else f"{key} {value:.2f}" if isinstance(value, float)
                     else f"{key} {value}")
    return "  ".join(parts)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f" {'-':>11}"
    return f" {value:>11.4f}"


class Progress(Callback):
    def __init__(self, *, metric: str, mode: str, total: int, max_epochs: int, epoch_budget: int | None = None,
                 log=say) -> None:
        self.metric, self.mode, self.total, self.max_epochs, self.log = metric, mode, total, max_epochs, log
        self.epoch_budget = epoch_budget
        self.columns = tuple(c for c in EPOCH_COLUMNS if c != "auc" or metric == "auc")
        if metric not in self.columns:
            self.columns += (metric,)
        self.best: tuple[float, str] | None = None
        self.done = 0
        self.last_epoch: dict[str, int] = {}
        self.header_shown = False

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks with the experiment state; a log function is no state (and `print`
        does not pickle once Ray Train has patched builtins.print in this process)."""
        state = self.__dict__.copy()
        state["log"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("epoch_budget", None)  # pickled by a sweep from before the epoch budget
        self.log = self.log or say
        self.header_shown = False

    def header(self) -> str:
        return f"{'trial':<12} {'epoch':>5}" + "".join(f" {c:>11}" for c in self.columns) + f" {'time_s':>7}"

    def _better(self, value) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])

    def _summary(self, trials, ending=None) -> str:
        """`ending`: the trial whose end is being reported (Tune calls back before it leaves RUNNING)."""
        running = sum(t.status == "RUNNING" and t is not ending for t in trials)
        best = f"best {self.metric} {self.best[0]:.4f} ({self.best[1]})" if self.best else "no result yet"
        if self.epoch_budget is not None:  # the trials' count is what the budget buys
            spent = sum(self.last_epoch.values())
            return f"[{self.done} done, {running} running, {spent}/{self.epoch_budget} trial-epochs] {best}"
        return f"[{self.done}/{self.total} done, {running} running] {best}"

    def on_trial_start(self, iteration, trials, trial, **info):
        self.log(f"trial {trial.trial_id} starts: {trial.config.get('backbone')}  {searched_values(trial.config)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not self.header_shown:
            self.log(self.header())
            self.header_shown = True
        value = result.get(self.metric)
        if self._better(value):
            self.best = (value, trial.trial_id)
        epoch = result.get("epoch")
        self.last_epoch[trial.trial_id] = epoch or 0
        cells = "".join(_fmt(result.get(c)) for c in self.columns)
        self.log(f"{trial.trial_id:<12} {epoch if epoch is not None else '-':>5}{cells} {result.get('time_s', 0):>7.1f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        epochs = self.last_epoch.get(trial.trial_id, 0)
        why = "done" if epochs >= self.max_epochs else f"stopped early by ASHA after epoch {epochs}"
        self.log(f"trial {trial.trial_id} {why}. {self._summary(trials, ending=trial)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        self.log(f"trial {trial.trial_id} FAILED (the leaderboard's error column says why); the sweep goes on. "
                 f"{self._summary(trials, ending=trial)}")

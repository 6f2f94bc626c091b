"""A Tune callback that prints one line per trial event: running / done counts and the best so far."""

from __future__ import annotations

import math

from ray.tune import Callback


class Progress(Callback):
    def __init__(self, *, metric: str, mode: str, total: int, log=print) -> None:
        self.metric, self.mode, self.total, self.log = metric, mode, total, log
        self.best: tuple[float, str] | None = None
        self.done = 0

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks with the experiment state; a log function is no state (and `print`
        does not pickle once Ray Train has patched builtins.print in this process)."""
        state = self.__dict__.copy()
        state["log"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.log = self.log or print

    def _better(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if self._better(value):
            self.best = (value, trial.trial_id)
        running = sum(t.status == "RUNNING" for t in trials)
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        cfg = trial.config
        lr = cfg.get("max_lr", {}).get(cfg.get("backbone"), float("nan")) if isinstance(cfg.get("max_lr"), dict) else 0
        self.log(f"[{self.done}/{self.total} done, {running} running] {trial.trial_id} {cfg.get('backbone')} "
                 f"lr={lr:.2e} aug={cfg.get('aug', 0):.2f} epoch {result.get('epoch')}: {self.metric}="
                 f"{value if value is None else round(value, 4)}  best {best}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        self.log(f"[{self.done}/{self.total} done] {trial.trial_id} {trial.config.get('backbone')} FAILED "
                 f"(see the leaderboard's error column); the sweep goes on")

"""Early stopping: Ray Tune's ASHA, with the free pass of the first trial to reach a rung made provisional.

ASHA (the asynchronous, stopping form Ray implements) decides at each rung with the results recorded there so far:
a trial continues when its metric is in the top 1/reduction_factor of them. The first trial to reach a rung has
nothing to be compared with and always continues, whatever it scored. With two trials starting together (a
sweep's first wave: the recipes) the faster one passes every rung it reaches first; seen in the textures sweep of
bench_search.py: a from-scratch resnet18 at valid 0.52 ran all 5 epochs beside a pretrained model at 1.00, 3 of a
15-epoch budget's trial-epochs. Here such a pass is provisional: while the trial trains on, each of its results
re-checks that rung with what has been recorded there since, and stops the trial once it falls below the rung's
cutoff. A trial that passes a later rung against real competition keeps its place (probation ends there).

The rungs are the sweep's own (`SearchConfig.rungs()`, the epochs its trials restart their one-cycle at), not the
ones Ray derives from max_t: Ray adds one at the last power of the factor short of max_t (epoch 4 of 5)."""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class ProvisionalASHA(ASHAScheduler):
    """ASHAScheduler (one bracket, as the sweep builds it) whose first-arrival passes are re-checked. Reads Ray
    2.60's bracket bookkeeping (`_trial_info`, `_Bracket._rungs`, `_Bracket.cutoff`); tests/test_search_asha.py
    fails if a Ray upgrade moves them."""

    def __init__(self, *, rungs: tuple[int, ...] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if rungs is not None:  # judged at exactly these epochs (Ray's bracket keeps them highest first)
            for bracket in self._brackets:
                bracket._rungs = [(milestone, {}) for milestone in sorted(rungs, reverse=True)]
        self._probation: dict[str, list[int]] = {}  # trial id -> rungs it passed with nothing to compare against

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        judged = self._rung_judging(trial, result)  # (milestone, results recorded there before this one) or None
        action = super().on_trial_result(tune_controller, trial, result)
        if action != TrialScheduler.CONTINUE or trial.trial_id not in self._trial_info:
            return action
        passes = self._probation.setdefault(trial.trial_id, [])
        if judged is not None:
            milestone, earlier = judged
            if earlier == 0:
                passes.append(milestone)
            else:
                passes.clear()  # it passed this rung against others: earlier free passes are behind it
        for milestone in passes:
            recorded = self._recorded(trial, milestone)
            cutoff = self._trial_info[trial.trial_id].cutoff(recorded)
            if cutoff is not None and recorded.get(trial.trial_id, cutoff) < cutoff:
                self._num_stopped += 1
                return TrialScheduler.STOP
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._probation.pop(trial.trial_id, None)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._probation.pop(trial.trial_id, None)
        super().on_trial_remove(tune_controller, trial)

    def _rung_judging(self, trial, result: dict) -> tuple[int, int] | None:
        """The rung this result is judged at, as _Bracket.on_result picks it, and how many results it had."""
        bracket = self._trial_info.get(trial.trial_id)
        if bracket is None or self._time_attr not in result or self._metric not in result:
            return None
        for milestone, recorded in bracket._rungs:  # highest milestone first
            if result[self._time_attr] >= milestone and trial.trial_id not in recorded:
                return milestone, len(recorded)
        return None

    def _recorded(self, trial, milestone: int) -> dict:
        return next(recorded for m, recorded in self._trial_info[trial.trial_id]._rungs if m == milestone)

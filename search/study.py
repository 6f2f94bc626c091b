"""The sweep's OptunaSearch, for a study that may be ahead of Tune's saved state.

The study (optuna.db in the sweep folder) is written at once; Tune's experiment state, the searcher's pickle with it,
only every few seconds. A driver killed in between (SIGKILL, out of memory, a lost head node) leaves a trial that
the study has finished but that Tune's state has running, and --resume runs it again from its latest checkpoint.
Its results and its end leave the study as it is: the values recorded when the trial really ended stand, and the
resumed sweep goes on instead of dying on optuna's UpdateFinishedTrialError inside Tune's loop. A trial the study
started after Tune's last save has no Tune trial at all: on restore it is marked failed, so the study (and
`optuna-dashboard`) shows no trial running for ever."""

from __future__ import annotations

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from visionsweep.datasets.console import say


class StudySearch(OptunaSearch):
    """With a FlipTest (--search-flip), each suggestion gets its trial's horizontal flips from it, and the pair's
    results go to it (search/fliptest.py)."""

    flip_test = None  # a sweep saved before --search-flip's paired test (--resume) has none

    def __init__(self, *args, flip_test=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flip_test = flip_test

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        if self.flip_test is None or not isinstance(config, dict):
            return config
        return self.flip_test.assign(trial_id, config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._tell_flip_test(trial_id, result)
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            self._completed_trials.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._tell_flip_test(trial_id, result)
        if trial_id not in self._completed_trials and not self._finished_in_study(trial_id):
            super().on_trial_complete(trial_id, result=result, error=error)
        self._completed_trials.add(trial_id)

    def _tell_flip_test(self, trial_id: str, result: dict | None) -> None:
        line = self.flip_test.observe(trial_id, result) if self.flip_test is not None else None
        if line:
            say(line)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        held = {ot_trial.number for ot_trial in self._ot_trials.values()}
        for orphan in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if orphan.number not in held:
                self._ot_study.tell(orphan.number, state=TrialState.FAIL)

    def _finished_in_study(self, trial_id: str) -> bool:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return False
        trials = self._ot_study.get_trials(deepcopy=False)
        return ot_trial.number < len(trials) and trials[ot_trial.number].state.is_finished()

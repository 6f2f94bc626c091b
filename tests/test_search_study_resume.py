"""The sweep's Optuna study lives in SQLite (optuna.db) and is written at once; Tune saves its own state, the
searcher's included, only every few seconds. A driver killed in between (SIGKILL, OOM, a lost head) leaves a study
that is ahead: a trial Optuna has finished is still running in Tune's saved state, and `--resume` runs it again.
Its results must not end the sweep (optuna's UpdateFinishedTrialError, seen in CI of test_search_resume), and the
study keeps the values it recorded. Driven as Tune drives it: save_to_dir before the trial ends, restore_from_dir
into a new searcher after. A trial the study started after that save has no Tune trial: it ends as failed, not
running for ever."""

import optuna
from ray.tune.search import ConcurrencyLimiter, SearchGenerator

from visionsweep.search.study import StudySearch
from visionsweep.search.sweep import optuna_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(trial):  # module level: the searcher is pickled on save, as Tune saves it
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)


def _searcher(path):
    return StudySearch(space=_space, metric="auc", mode="max", sampler=optuna.samplers.RandomSampler(seed=0),
                       **optuna_storage(str(path), "s"))


def _result(epoch, auc):
    return {"epoch": epoch, "auc": auc, "training_iteration": epoch}


def test_a_trial_the_study_finished_after_tunes_last_save_runs_again_on_resume_without_ending_the_sweep(tmp_path):
    search = _searcher(tmp_path)
    generator = SearchGenerator(ConcurrencyLimiter(search, max_concurrent=2))
    assert isinstance(search.suggest("a"), dict)
    search.on_trial_result("a", _result(1, 0.6))
    generator.save_to_dir(str(tmp_path), session_str="s")  # Tune's last save: trial a running
    search.on_trial_result("a", _result(2, 0.8))
    search.on_trial_complete("a", _result(2, 0.8))
    assert isinstance(search.suggest("b"), dict)          # the study has started b; then the driver dies

    restored = _searcher(tmp_path)
    SearchGenerator(ConcurrencyLimiter(restored, max_concurrent=2)).restore_from_dir(str(tmp_path))
    restored.on_trial_result("a", _result(2, 0.7))       # the rerun from its epoch-1 checkpoint
    restored.on_trial_complete("a", _result(2, 0.7))
    assert isinstance(restored.suggest("b"), dict)       # the search goes on: Tune asks for b again
    restored.on_trial_result("b", _result(1, 0.5))
    restored.on_trial_complete("b", _result(1, 0.5))

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    state = optuna.trial.TrialState
    assert [(t.state, t.value) for t in study.trials] == [(state.COMPLETE, 0.8), (state.FAIL, None),
                                                          (state.COMPLETE, 0.5)]  # the first b: no Tune trial
    assert study.trials[0].intermediate_values == {1: 0.6, 2: 0.8}

"""What a finished sweep keeps: the best weights of the top trials; everything an unfinished trial needs."""

import json

import pandas as pd

from visionsweep.search.leaderboard import UNFINISHED, ensemble_rows
from visionsweep.search.retention import retain


def _run(root, trial, accs):
    """A Train run folder as Ray Train leaves it: one checkpoint per epoch (weights, optimizer, meta), the
    snapshot listing them; the last is the latest."""
    run = root / f"train-{trial}"
    results = []
    for epoch, acc in enumerate(accs, start=1):
        ckpt = run / f"checkpoint_{epoch}"
        ckpt.mkdir(parents=True)
        for name, size in (("model.safetensors", 1000), ("train_state.pt", 2000), ("meta.json", 10)):
            (ckpt / name).write_bytes(b"x" * size)
        results.append({"checkpoint_dir_name": ckpt.name, "metrics": {"epoch": epoch, "accuracy": acc}})
    (run / "checkpoint_manager_snapshot.json").write_text(json.dumps(
        {"checkpoint_results": results, "latest_checkpoint_result": results[-1]}))
    return run


def test_ended_trials_keep_best_weights_of_the_top_k_and_unfinished_trials_keep_everything(tmp_path):
    runs = {t: _run(tmp_path, t, accs) for t, accs in
            {"a": [0.5, 0.9, 0.8], "b": [0.7, 0.85], "c": [0.6], "d": [0.4, 0.5], "e": [0.3]}.items()}
    board = pd.DataFrame({"trial_id": ["a", "b", "c", "d", "e"], "best_accuracy": [0.9, 0.85, 0.6, 0.5, None],
                          "status": ["done", "done", "stopped early", UNFINISHED, "error"]})
    freed = retain(str(tmp_path), board, metric="accuracy", mode="max", top_k=2)
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".json"}
    assert left == {
        "train-a/checkpoint_2/model.safetensors",   # best of a (epoch 2), top 2: weights, no optimizer state
        "train-b/checkpoint_2/model.safetensors",   # best of b, top 2
        *{f"train-d/checkpoint_{e}/{n}" for e in (1, 2) for n in ("model.safetensors", "train_state.pt")},
    }, left                                          # c (3rd) and the failed e: weights gone; d resumes
    assert (runs["c"] / "checkpoint_1" / "meta.json").is_file()  # the history stays for curves and the report
    assert all((run / "checkpoint_manager_snapshot.json").is_file() for run in runs.values())
    assert freed == 3000 * 2 + 2000 + 3000 + 2000 + 3000 + 3000
    # Every folder Train's record lists stays (Result.from_path refuses a run whose listed checkpoints are gone).
    assert all((run / f"checkpoint_{e}" / "meta.json").is_file() for run, n in zip(runs.values(), (3, 2, 1, 2, 1))
               for e in range(1, n + 1))


def test_the_trials_predicts_ensemble_reads_keep_their_weights(tmp_path):
    # predict's top-2 ensemble is the best trial and the next one that ran its whole schedule (c), passing over
    # b, which ASHA stopped early; b keeps its weights too (refit and the noise estimate read the top 2 by score).
    # Seen in a sweep: c's weights were deleted and `predict` failed with FileNotFoundError.
    for t, accs in {"a": [0.9], "b": [0.85], "c": [0.6], "d": [0.55]}.items():
        _run(tmp_path, t, accs)
    board = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "best_accuracy": [0.9, 0.85, 0.6, 0.55],
                          "status": ["done", "stopped early", "done", "done"]})
    assert ensemble_rows(board, "accuracy").head(2)["trial_id"].tolist() == ["a", "c"]
    retain(str(tmp_path), board, metric="accuracy", mode="max", top_k=2)
    left = {p.parent.parent.name for p in tmp_path.rglob("model.safetensors")}
    assert left == {"train-a", "train-b", "train-c"}, left


def test_a_finished_refit_keeps_its_last_weights_and_an_unfinished_one_everything(tmp_path):
    """Each refit model (one run per seed) of refit.json; a record written before refits took several seeds
    (one run per trial, no "models") is read as one model."""
    from visionsweep.search.retention import retain_refits

    runs = tmp_path / "refit_runs"
    made = [_run(runs, "a", [0.9, 0.95]), _run(runs, "a-seed43", [0.9, 0.9]), _run(runs, "b", [0.9]),
            _run(runs, "c", [0.8, 0.9])]
    for run in made:
        run.rename(run.with_name(run.name.replace("train-", "refit-")))
    (tmp_path / "refit.json").write_text(json.dumps({
        "a": {"run": "refit_runs/refit-a", "status": "done", "epochs": 2,
              "models": [{"run": "refit_runs/refit-a", "seed": 42, "status": "done"},
                         {"run": "refit_runs/refit-a-seed43", "seed": 43, "status": "done"}]},
        "b": {"run": "refit_runs/refit-b", "status": "error", "epochs": 2,
              "models": [{"run": "refit_runs/refit-b", "seed": 42, "status": "error"}]},
        "c": {"run": "refit_runs/refit-c", "status": "done", "epochs": 2}}))
    retain_refits(str(runs))
    left = {str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file() and p.suffix != ".json"}
    assert left == {"refit-a/checkpoint_2/model.safetensors", "refit-a-seed43/checkpoint_2/model.safetensors",
                    "refit-c/checkpoint_2/model.safetensors",
                    "refit-b/checkpoint_1/model.safetensors", "refit-b/checkpoint_1/train_state.pt"}, left
    for run in ("refit-a", "refit-b"):  # Train's record stays: predict finds the refit model through it
        assert (runs / run / "checkpoint_manager_snapshot.json").is_file()

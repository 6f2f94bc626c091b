"""--folds K end to end on tiny data: each trial trains K fold models side by side and is scored by their mean,
the noise interval comes from out-of-fold predictions of every labelled image, predict averages the K models
(--no-refit) or uses the refit model, and retention strips the fold models of trials outside the top k."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import visionsweep as vs
from digits import digits_csv_folder
from visionsweep.search.predict import resolve_sources
from visionsweep.trainables.checkpoint import member_dirs, read_meta

pytestmark = pytest.mark.slow


def test_a_cross_validated_sweep_scores_by_the_folds_and_predicts_with_their_ensemble(ray_cluster, tmp_path):
    data_dir = digits_csv_folder(tmp_path / "c" / "data", n_test=60)
    n_labelled = len(pd.read_csv(data_dir / "train.csv"))
    printed = []
    result = vs.sweep(data_dir, name="cv", storage=tmp_path / "sweeps", trials=2, epochs=2, backbones=["test_resnet"],
                      image_size=16, batch_size=32, pretrained=False, cpu=True, folds=3, refit=1, top_k=1,
                      early_stopping="none", log=printed.append)
    printed = "\n".join(map(str, printed))
    assert f"3-fold cross-validation over {n_labelled} labelled images" in printed
    board = result.leaderboard
    assert len(board) == 2 and (board["status"] == "done").all() and board["valid_n"].iloc[0] == n_labelled

    # The best trial's best checkpoint: the mean record plus three fold models; its score is the folds' mean.
    best = board.iloc[0]
    (label, ckpt), = resolve_sources(result.path, top_k=1, refit=False)
    with ckpt.as_directory() as d:
        meta = read_meta(d)
        folds = member_dirs(d)
        assert meta.folds == 3 and [f.name for f in folds] == ["fold-0", "fold-1", "fold-2"]
        per_fold = [read_meta(f).history[meta.epoch - 1]["auc"] for f in folds]
        assert all((f / "model.safetensors").is_file() for f in folds)
    assert best["best_auc"] == pytest.approx(np.mean(per_fold))
    noise = json.loads((tmp_path / "sweeps" / "cv" / "noise.json").read_text())
    assert noise["valid_n"] == n_labelled and "held it out" in noise["method"]

    # predict --no-refit: the K fold models averaged; by default the refit model (one, trained on everything).
    truth = pd.read_csv(data_dir.parent / "solution.csv")
    lines = []
    vs.predict(result.path, data_dir, out=tmp_path / "folds.csv", refit=False, log=lines.append)
    assert sum(", fold " in line and " of 3:" in line for line in lines) == 3 and "mean of 3 models" in lines[-1], lines
    folds_sub = pd.read_csv(tmp_path / "folds.csv")
    assert roc_auc_score(truth["is_eight"], folds_sub["is_eight"]) > 0.8
    lines = []
    vs.predict(result.path, data_dir, out=tmp_path / "refit.csv", log=lines.append)
    assert any("refit on all" in line for line in lines) and "one model" in lines[-1]

    # Retention (top_k 1, refit 1): the other trial's fold models lose their weights; their records stay.
    other = board.iloc[1]
    run = tmp_path / "sweeps" / "cv" / "train_runs" / f"train-{other['trial_id']}"
    assert list(run.glob("checkpoint_*/fold-0/meta.json")) and not list(run.glob("checkpoint_*/fold-*/model.*"))

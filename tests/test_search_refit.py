"""A notebook's sweep, predict and report, with refit, end to end on tiny data: `refit=1` retrains the best configuration on train + valid as a Ray
Train run, records it, and `predict` uses it (or the sweep's own checkpoint with --no-refit)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import visionsweep as vs
from digits import digits_csv_folder

from visionsweep.datasets.load import load_dataset
from visionsweep.datasets.spec import spec_from_dict
from visionsweep.search.predict import predict, resolve_sources
from visionsweep.datasets.split import train_valid_arrays
from visionsweep.trainables.inference import load_for_inference, predict_probs

pytestmark = pytest.mark.slow


def test_a_notebook_sweep_refits_the_best_configuration_and_predict_uses_it(ray_cluster, tmp_path, monkeypatch):
    """`import visionsweep` in a notebook: sweep, predict and report return typed results; the sweep refits its
    best configuration on train + valid as a Ray Train run, and predict uses that model (or, with refit=False,
    the trial's own best checkpoint)."""
    data_dir = digits_csv_folder(tmp_path / "cactus" / "data")
    storage = tmp_path / "sweeps"
    printed = []
    monkeypatch.setenv("WANDB_MODE", "offline")  # W&B runs written into the sweep folder, as a user without a key
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    result = vs.sweep(data_dir, name="rf", storage=storage, trials=2, epochs=2, backbones=["test_resnet"],
                      image_size=16, batch_size=32, pretrained=False, cpu=True, refit=1, log=printed.append,
                      mlflow=tracking, wandb="visionsweep-tests")
    printed = "\n".join(map(str, printed))
    assert isinstance(result.leaderboard, pd.DataFrame) and len(result.leaderboard) == 2
    assert result.metric == "auc" and result.best["best_auc"] == result.leaderboard["best_auc"].max()
    assert str(result.path) == str(storage / "rf")
    sweep = storage / "rf"
    board = pd.read_csv(sweep / "leaderboard.csv")
    best = board.iloc[0]
    assert best["refit"] == f"refit_runs/refit-{best['trial_id']}" and board["refit"].isna().sum() == 1, board
    record = json.loads((sweep / "refit.json").read_text())[best["trial_id"]]
    assert record["status"] == "done" and record["epochs"] == 2 and "not held-out" in record["valid_metrics"]
    spec = spec_from_dict({"root": data_dir})
    data = load_dataset(spec, log=lambda m: None)
    n_labelled = len(data.y_train) + (0 if data.y_valid is None else len(data.y_valid))
    assert record["train_images"] == n_labelled
    # Noise: the validation size and the best trial's bootstrap interval, in the CSV and the printed output.
    valid = train_valid_arrays(data, valid_pct=spec.valid_pct, seed=spec.seed)["y_valid"]
    assert best["valid_n"] == len(valid) and best["ci95_lo"] <= best["best_auc"] <= best["ci95_hi"]
    assert "bootstrap 95% interval" in printed and "refit-" in printed
    assert "ci95_lo" in (sweep / "leaderboard.md").read_text()

    # predict: the refit model by default, the trial's own best checkpoint with refit=False.
    lines = []
    out = tmp_path / "sub.csv"
    frame = vs.predict(sweep, data_dir, out=out, top_k=1, tta=False, log=lines.append)
    assert any("refit on all" in line for line in lines), lines
    (label, ckpt), = resolve_sources(str(sweep), top_k=1)
    assert f"refit_runs/refit-{best['trial_id']}" in label
    with ckpt.as_directory() as d:
        model, meta, task = load_for_inference(d, torch.device("cpu"))
        expected = predict_probs(model, task, data.x_test, device=torch.device("cpu"), tta=False)
        assert meta.epoch == 2
    written = pd.read_csv(out)
    assert list(frame.columns) == list(written.columns) and frame["id"].tolist() == written["id"].tolist()
    sample = pd.read_csv(data_dir / "sample_submission.csv")
    assert list(written.columns) == list(sample.columns) and written["id"].tolist() == sample["id"].tolist()
    np.testing.assert_allclose(written["is_eight"], expected[:, data.classes.index("1")], rtol=1e-6)
    truth = pd.read_csv(data_dir.parent / "solution.csv")
    assert roc_auc_score(truth["is_eight"], written["is_eight"]) > 0.8  # 2 epochs rank well, calibrate poorly

    lines = []
    predict(source=str(sweep), data=data, out=tmp_path / "own.csv", top_k=1, tta=False, refit=False,
            log=lines.append)
    assert any("best checkpoint of the sweep" in line and "--no-refit" in line for line in lines), lines
    assert not np.allclose(pd.read_csv(tmp_path / "own.csv")["is_eight"], written["is_eight"])
    assert (vs.report(result.path, log=lambda m: None) / "leaderboard.csv").is_file()

    # Trackers (Ray Tune's own callbacks): one MLflow run per trial in the sweep's experiment, every epoch logged;
    # one offline W&B run per trial in the sweep folder.
    import mlflow

    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(experiment_names=["rf"], output_format="list")
    assert len(runs) == 2, runs
    client = mlflow.MlflowClient(tracking)
    logged = []
    for run in runs:
        assert run.data.params["backbone"] == "test_resnet"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "auc")]
        assert steps == list(range(1, len(steps) + 1)), steps
        logged.append(len(steps))
    # Tune's events: a trial ASHA stopped after epoch 1 shows 1 step, and the leaderboard counts the same epochs
    # (not one its worker may have finished into Train's record after the stop); the best trial ran both.
    assert max(logged) == 2 and sorted(logged) == sorted(board["epochs"]), (logged, board)
    offline = sorted((sweep / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(any(d.glob("*.wandb")) for d in offline), offline


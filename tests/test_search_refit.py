"""A notebook's sweep, predict and report, with refit and cross-validation, end to end on tiny data: each trial a
2-fold cross-validation (`folds=2`: two fold models side by side, scored by their mean); `refit=1` retrains the best
configuration on train + valid, one Ray Train run per seed (refit_seeds, default 2), records them, and `predict`
averages them (or, with --no-refit, the trial's own fold models)."""

import json
import signal
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import torch
from sklearn.metrics import roc_auc_score

import visionsweep as vs
from digits import digits_csv_folder

from visionsweep.datasets.load import load_dataset
from visionsweep.datasets.spec import spec_from_dict
from visionsweep.search.predict import predict, resolve_sources
from visionsweep.trainables.checkpoint import member_dirs, read_meta
from visionsweep.trainables.inference import load_for_inference, predict_probs

pytestmark = pytest.mark.slow


def test_a_notebook_sweep_cross_validates_refits_the_best_configuration_and_predict_uses_it(ray_cluster, tmp_path,
                                                                                          monkeypatch):
    """`import visionsweep` in a notebook: sweep, predict and report return typed results; each trial is scored by
    its fold models' mean; the sweep refits its best configuration on train + valid (one seed, then a --resume adds
    the second: a Ray Train run per seed), and predict averages those models (or, with refit=False, the trial's fold
    models)."""
    data_dir = digits_csv_folder(tmp_path / "cactus" / "data")
    storage = tmp_path / "sweeps"
    printed = []
    monkeypatch.setenv("WANDB_MODE", "offline")  # W&B runs written into the sweep folder, as a user without a key
    import wandb  # noqa: F401  (this process's own temp folders, removed at its exit, made before the count below)

    def wandb_temp() -> set:
        temp = Path(tempfile.gettempdir())
        return set(temp.glob("tmp*wandb-*")) | set(temp.glob("visionsweep-wandb-*"))

    temp_before = wandb_temp()
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    handler = signal.getsignal(signal.SIGINT)
    result = vs.sweep(data_dir, name="rf", storage=storage, trials=2, epochs=2, backbones=["test_resnet"],
                      image_size=16, batch_size=32, pretrained=False, cpu=True, refit=1, refit_seeds=1, folds=2,
                      top_k=1, log=printed.append, mlflow=tracking, wandb="visionsweep-tests")
    printed = "\n".join(map(str, printed))
    # Ray ends each trial's W&B logging actor with ray.kill: wandb's temp folders (made at import, removed only at a
    # normal exit) went to the sweep's own temp dir, removed with it, not 2 per trial into the system's temp dir.
    assert not wandb_temp() - temp_before, sorted(map(str, wandb_temp() - temp_before))  # (others may go)
    # Tune's fit() leaves its own SIGINT handler behind; the sweep puts the notebook's back (else the first Ctrl-C
    # of the refit, or of anything after the sweep, would only set an event inside Tune).
    assert signal.getsignal(signal.SIGINT) is handler
    sweep = storage / "rf"
    first = json.loads((sweep / "refit.json").read_text())
    (trial, entry), = first.items()
    assert [(m["run"], m["seed"], m["status"]) for m in entry["models"]] == [(f"refit_runs/refit-{trial}", 42, "done")]
    # --resume with the default two seeds: the finished refit model is kept, only the missing seed is trained.
    resumed = []
    vs.sweep(data_dir, name="rf", storage=storage, trials=2, epochs=2, backbones=["test_resnet"], image_size=16,
             batch_size=32, pretrained=False, cpu=True, refit=1, folds=2, top_k=1, resume=True, log=resumed.append)
    resumed = "\n".join(map(str, resumed))
    job = ray.get_runtime_context().get_job_id()  # the notebook's job goes on: the refits leave no worker group held
    assert not [pg for pg, info in ray.util.placement_group_table().items()
                if pg.endswith(job) and info["state"] != "REMOVED"]
    assert resumed.count("already done, kept") == 1 and f"refit refit-{trial}-seed43: done" in resumed, resumed
    assert isinstance(result.leaderboard, pd.DataFrame) and len(result.leaderboard) == 2
    assert result.metric == "auc" and result.best["best_auc"] == result.leaderboard["best_auc"].max()
    assert str(result.path) == str(storage / "rf")
    board = pd.read_csv(sweep / "leaderboard.csv")
    best = board.iloc[0]
    assert best["refit"] == f"refit_runs/refit-{best['trial_id']}" and board["refit"].isna().sum() == 1, board
    assert best["refit_models"] == 2 and board.iloc[1]["refit_models"] == 0, board
    record = json.loads((sweep / "refit.json").read_text())[best["trial_id"]]
    assert record["status"] == "done" and record["epochs"] == 2 and "not held-out" in record["valid_metrics"]
    # One model per seed: the configuration's own (42), then 43, each a finished Ray Train run of its own.
    assert best["trial_id"] == trial
    runs = [f"refit_runs/refit-{best['trial_id']}", f"refit_runs/refit-{best['trial_id']}-seed43"]
    assert [(m["run"], m["seed"], m["status"]) for m in record["models"]] == [(runs[0], 42, "done"),
                                                                              (runs[1], 43, "done")], record
    spec = spec_from_dict({"root": data_dir})
    data = load_dataset(spec, log=lambda m: None)
    n_labelled = len(data.y_train) + (0 if data.y_valid is None else len(data.y_valid))
    assert record["train_images"] == n_labelled
    assert f"2-fold cross-validation over {n_labelled} labelled images" in printed

    # The best trial's best checkpoint: the mean record plus two fold models; its score is the folds' mean.
    (_, own), = resolve_sources(str(sweep), top_k=1, refit=False)
    with own.as_directory() as d:
        meta = read_meta(d)
        folds = member_dirs(d)
        assert meta.folds == 2 and [f.name for f in folds] == ["fold-0", "fold-1"]
        per_fold = [read_meta(f).history[meta.epoch - 1]["auc"] for f in folds]
        assert all((f / "model.safetensors").is_file() for f in folds)
    assert best["best_auc"] == pytest.approx(np.mean(per_fold))
    # Noise: from out-of-fold predictions of every labelled image; the size and the best trial's bootstrap
    # interval, in the CSV and the printed output.
    noise = json.loads((sweep / "noise.json").read_text())
    value = noise["trials"][best["trial_id"]]
    assert noise["valid_n"] == best["valid_n"] == n_labelled and "held it out" in noise["method"]
    assert best["ci95_lo"] <= value["value"] <= best["ci95_hi"]
    assert "bootstrap 95% interval" in printed and "refit-" in printed
    # predict's ensemble (top_k 1): the best trial alone, judged on the same out-of-fold predictions
    assert json.loads((sweep / "ensemble.json").read_text())["members"] == [best["trial_id"]]
    assert "ensemble for predict: 1 of 1 candidate trial(s)" in printed and best["ensemble"] == "member"
    assert "ci95_lo" in (sweep / "leaderboard.md").read_text()

    # predict: the refit model by default, the trial's own best checkpoint with refit=False.
    lines = []
    out = tmp_path / "sub.csv"
    frame = vs.predict(sweep, data_dir, out=out, top_k=1, tta=False, log=lines.append)
    assert any("refit on all" in line for line in lines), lines
    sources = resolve_sources(str(sweep), top_k=1)
    assert [label.split("(")[-1].split(";")[0] for label, _ in sources] == runs, sources
    assert "seed 42" in sources[0][0] and "seed 43" in sources[1][0]
    probs, weights, seeds = [], [], []
    for _, ckpt in sources:
        with ckpt.as_directory() as d:
            model, meta, task = load_for_inference(d, torch.device("cpu"))
            probs.append(predict_probs(model, task, data.x_test, device=torch.device("cpu"), tta=False))
            weights.append(torch.cat([p.flatten() for p in model.parameters()]))
            assert meta.epoch == 2
            seeds.append(meta.config["seed"])
    assert seeds == [42, 43] and not torch.equal(*weights)  # two models, not one twice
    expected = np.mean(probs, axis=0)
    assert "mean of 2 models" in lines[-1], lines
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
    assert sum("best checkpoint of the sweep" in line and "--no-refit" in line and ", fold " in line
               for line in lines) == 2 and "mean of 2 models" in lines[-1], lines
    own_sub = pd.read_csv(tmp_path / "own.csv")
    assert not np.allclose(own_sub["is_eight"], written["is_eight"])
    assert roc_auc_score(truth["is_eight"], own_sub["is_eight"]) > 0.8
    # Retention (top_k 1, refit 1): the other trial's fold models lose their weights; their records stay.
    other = board.iloc[1]
    run = sweep / "train_runs" / f"train-{other['trial_id']}"
    assert list(run.glob("checkpoint_*/fold-0/meta.json")) and not list(run.glob("checkpoint_*/fold-*/model.*"))
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

    # A refit model whose run folder is gone: predict uses the other and its line says which is missing.
    import shutil

    shutil.rmtree(sweep / "refit_runs" / f"refit-{trial}-seed43")
    labels = [label for label, _ in resolve_sources(str(sweep), top_k=1)]
    assert len(labels) == 1 and f"refit-{trial}-seed43 cannot be read" in labels[0], labels


def test_refits_side_by_side_count_no_more_cpus_than_the_machine_has(ray_cluster):
    """The session's head says 4 CPUs on whatever this machine has: runs side by side must not oversubscribe the
    cores (two demo refits at once on 4 logical CPUs of 2 cores: 52-57 s, against 19-22 s each in turn)."""
    import os

    from visionsweep.search.refit import _thread_cpus

    assert _thread_cpus([{"CPU": 4.0, "GPU": 0.0}]) == [{"CPU": min(4.0, os.cpu_count()), "GPU": 0.0}]
    assert _thread_cpus([{"CPU": 1.0}])[0]["CPU"] == 1.0

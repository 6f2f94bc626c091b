"""`visionsweep train` and `lr-find` for real: a local Ray cluster, 2 gloo DDP workers, a SIGKILLed worker."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

TINY = ["--backbone", "test_resnet", "--no-pretrained", "--cpu", "--batch-size", "32"]


def _train_workers() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::RayTrainWorker"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_train_survives_a_killed_worker_and_writes_the_run(ray_cluster, demo_data, tmp_path):
    """SIGKILL one of two DDP workers mid-run: the worker group restarts from the latest checkpoint
    (FailureConfig) and the run ends with every epoch exactly once."""
    out = tmp_path / "r1"
    cmd = [sys.executable, "-m", "visionsweep.search.cli", "train", demo_data, *TINY, "--image-size", "32", "--epochs", "5",
           "--workers", "2", "--out", out]
    proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env={**os.environ, "RAY_ADDRESS": ray_cluster})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    # Kill once epoch 2's row is out: by then epoch 1's checkpoint is registered with the controller
    # (a kill right after a checkpoint's files appear can beat its registration; Train then starts over).
    deadline = time.monotonic() + 300
    while not any(re.search(r"^\S*\s+2\s+\d+\.\d{4}\s", ln.split(")")[-1]) for ln in list(lines)):
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "epoch 2 did not finish within 300 s"
        time.sleep(0.1)
    victims = _train_workers()
    assert victims, "no Ray Train worker process to kill"
    os.kill(victims[-1], signal.SIGKILL)
    proc.wait(timeout=400)
    reader.join(timeout=10)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "resumed after epoch" in output
    history = pd.read_csv(out / "metrics.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert history["accuracy"].iloc[-1] > 0.3  # 10 classes: chance is 0.1
    for sub in ("best", "final"):
        assert (out / sub / "model.safetensors").stat().st_size > 0
        meta = json.loads((out / sub / "meta.json").read_text())
        assert meta["classes"] == [str(i) for i in range(10)] and meta["config"]["workers"] == 2
    assert json.loads((out / "final" / "meta.json").read_text())["epoch"] == 5
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert json.loads((out / "config.json").read_text())["train"]["backbone"] == "test_resnet"
    # The progress table (fastai style), once per epoch.
    assert output.count("train_loss  valid_loss") >= 1

    again = run_cli("train", demo_data, *TINY, "--epochs", "1", "--out", out, env={"RAY_ADDRESS": ray_cluster})
    assert again.returncode == 2 and "already holds a run" in again.stderr
    assert json.loads((out / "final" / "meta.json").read_text())["epoch"] == 5  # untouched

    # predict from the run folder (its best epoch), in the sample submission's format; no Ray needed.
    sub = tmp_path / "submission.csv"
    res = run_cli("predict", out, demo_data, "--out", sub, "--tta")
    assert res.returncode == 0, res.stderr[-3000:]
    written, sample = pd.read_csv(sub), pd.read_csv(demo_data / "sample_submission.csv")
    assert list(written.columns) == list(sample.columns) and written.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    truth = pd.read_csv(demo_data.parent / "solution.csv")
    label = sample.columns[1]
    assert (written[label].astype(str) == truth[label].astype(str)).mean() > 0.3  # 10 classes: chance is 0.1

    # --overwrite replaces the run (and only a visionsweep run: tests/test_ownership.py).
    res = run_cli("train", demo_data, *TINY, "--image-size", "16", "--epochs", "1", "--out", out, "--overwrite",
                  env={"RAY_ADDRESS": ray_cluster})
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "final" / "meta.json").read_text())["epoch"] == 1
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1]


def test_a_diverging_run_fails_once_with_the_fix_and_exit_1(ray_cluster, demo_data, tmp_path):
    """NaN loss is deterministic: Train's retries (max_failures 2) would only repeat it; one clear message."""
    res = run_cli("train", demo_data, "--backbone", "test_efficientnet", "--no-pretrained", "--cpu", "--batch-size",
                  "32", "--image-size", "16", "--epochs", "1", "--max-lr", "1e6", "--out", tmp_path / "r",
                  env={"RAY_ADDRESS": ray_cluster})
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "training loss is nan in epoch 1; lower --max-lr" in res.stderr and "Traceback" not in res.stderr
    assert (res.stdout + res.stderr).count("visionsweep run train:") == 1  # the worker group started once


def test_lr_find_command_suggests_and_plots(ray_cluster, demo_data, tmp_path):
    png = tmp_path / "lr.png"
    res = run_cli("lr-find", demo_data, *TINY, "--image-size", "16", "--workers", "2", "--out", png,
                  env={"RAY_ADDRESS": ray_cluster})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "suggested --max-lr" in res.stdout
    curve = json.loads(png.with_suffix(".json").read_text())
    lr = curve["suggestions"]["valley"]["lr"]
    assert 1e-7 <= lr <= 10 and png.stat().st_size > 1000


def test_more_workers_than_the_cluster_has_is_a_clear_error(ray_cluster, demo_data, tmp_path):
    res = run_cli("train", demo_data, *TINY, "--workers", "9", "--out", tmp_path / "r", env={"RAY_ADDRESS": ray_cluster})
    assert res.returncode == 2 and "--workers 9 needs 9 CPU(s)" in res.stderr
    assert not (tmp_path / "r").exists()  # checked before --out is created: no empty run folder left behind

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
from digits import digits_csv_folder
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.slow

TINY = ["--backbone", "test_resnet", "--no-pretrained", "--cpu", "--batch-size", "32"]
EPOCHS = 10  # fast epochs (~1-2 s): room for the kill, the restart and Ctrl-C before the end
EPOCH_ROW = re.compile(r"^\S*\s+(\d+)\s+\d+\.\d{4}\s")  # '<epoch>  <train_loss> ...' (after a worker's '(...)' prefix)


def _epoch_rows(lines) -> list[int]:
    return [int(m.group(1)) for ln in list(lines) if (m := EPOCH_ROW.match(ln.split(")")[-1]))]


def _processes(title: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", title], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _train_workers() -> list[int]:
    return _processes("ray::RayTrainWorker")


def _latest_registered_epoch(out) -> int:
    """The epoch of the run's latest checkpoint in Train's own record (what --resume continues from)."""
    snapshot = out / "ray" / "train" / "checkpoint_manager_snapshot.json"
    try:
        latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result") or {}
    except (OSError, ValueError):  # not written yet, or being replaced
        return 0
    return int(latest.get("metrics", {}).get("epoch", 0))


def test_train_survives_a_killed_worker_ctrl_c_and_resume(ray_cluster, tmp_path):
    """SIGKILL one of two DDP workers mid-run: the worker group restarts from the latest checkpoint
    (FailureConfig). Then Ctrl-C: exit 130 saying how to resume (Ray Train's own handler ended the process with
    status 1 and no message). `--resume` goes on after the last recorded epoch; the run ends with every epoch
    exactly once, best/ and final/ written."""
    data = digits_csv_folder(tmp_path / "c" / "data")  # 357 real digit images, 3 vs 8: fast epochs
    out = tmp_path / "r1"
    args = ["train", data, *TINY, "--image-size", "16", "--epochs", str(EPOCHS), "--workers", "2", "--out", out]
    proc = subprocess.Popen([sys.executable, "-m", "visionsweep.search.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT, env={**os.environ, "RAY_ADDRESS": ray_cluster})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def wait_for(done, what: str) -> None:
        deadline = time.monotonic() + 300
        while not done():
            assert proc.poll() is None, f"train ended before {what}:\n" + "".join(lines)
            assert time.monotonic() < deadline, f"no {what} within 300 s:\n" + "".join(lines)
            time.sleep(0.05)

    try:
        # Kill once Train's record lists a checkpoint (a kill before the controller registers one, ~2 s after its
        # epoch's row on fast epochs, makes Train start over from epoch 1: seen in CI).
        wait_for(lambda: _latest_registered_epoch(out) >= 1, "a registered checkpoint")
        victims = _train_workers()
        assert victims, "no Ray Train worker process to kill"
        # A run passes arrays, no Ray Datasets: none of Train's DatasetManager processes (~1.5 s of CPU per run).
        assert not _processes("ray::DatasetManager"), "a DatasetManager actor runs beside a run without datasets"
        os.kill(victims[-1], signal.SIGKILL)
        wait_for(lambda: any("resumed after epoch" in ln for ln in lines), "restart of the worker group")
        restarted = int(re.search(r"resumed after epoch (\d+)", "".join(lines)).group(1))
        wait_for(lambda: _latest_registered_epoch(out) > restarted, "checkpoint after the restart")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, "".join(lines)
    finally:  # a failure above must not leave the run holding the cluster's CPUs for the tests after
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    reader.join(timeout=10)
    first = "".join(lines)
    assert "interrupted" in first and "plus --resume" in first, first[-3000:]
    assert not (out / "final").exists() and max(_epoch_rows(lines)) < EPOCHS, first[-3000:]

    res = run_cli(*args, "--resume", env={"RAY_ADDRESS": ray_cluster})
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-4000:]
    saved = int(re.search(r"resumed after epoch (\d+) of %d" % EPOCHS, output).group(1))
    assert f"resume: from the checkpoint of epoch {saved} of {EPOCHS}" in output and saved > restarted, output
    assert _epoch_rows(output.splitlines()) == list(range(saved + 1, EPOCHS + 1)), output[-3000:]
    history = pd.read_csv(out / "metrics.csv")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert history["auc"].iloc[-1] > 0.8
    for sub in ("best", "final"):
        assert (out / sub / "model.safetensors").stat().st_size > 0
        meta = json.loads((out / sub / "meta.json").read_text())
        assert meta["classes"] == ["0", "1"] and meta["config"]["workers"] == 2
    assert json.loads((out / "final" / "meta.json").read_text())["epoch"] == EPOCHS
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert json.loads((out / "config.json").read_text())["train"]["backbone"] == "test_resnet"
    # The progress table (fastai style), once per epoch.
    assert first.count("train_loss  valid_loss") >= 1

    again = run_cli("train", data, *TINY, "--epochs", "1", "--out", out, env={"RAY_ADDRESS": ray_cluster})
    assert again.returncode == 2 and "already holds a run" in again.stderr
    assert json.loads((out / "final" / "meta.json").read_text())["epoch"] == EPOCHS  # untouched

    # predict from the run folder (its best epoch), in the sample submission's format; no Ray needed.
    sub = tmp_path / "submission.csv"
    res = run_cli("predict", out, data, "--out", sub, "--tta")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "TTA x2" in res.stdout, res.stdout[-2000:]  # the image and its mirror
    written, sample = pd.read_csv(sub), pd.read_csv(data / "sample_submission.csv")
    assert list(written.columns) == list(sample.columns) and written.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    truth = pd.read_csv(data.parent / "solution.csv")
    assert roc_auc_score(truth["is_eight"], written["is_eight"]) > 0.8

    # --overwrite replaces the run (and only a visionsweep run: tests/test_ownership.py).
    # (here with --no-flip, images with a handedness: the checkpoint says so and predict's TTA has no mirror view)
    res = run_cli("train", data, *TINY, "--image-size", "16", "--epochs", "1", "--out", out, "--overwrite",
                  "--no-flip", env={"RAY_ADDRESS": ray_cluster})
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((out / "final" / "meta.json").read_text())
    assert meta["epoch"] == 1 and meta["flip"] is False
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1]
    res = run_cli("predict", out, data, "--out", sub, "--tta", "--overwrite")
    assert res.returncode == 0 and "TTA x1" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]


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

"""What a person sees: `visionsweep demo` end to end, its console fastai-like and free of Ray's internals."""

import re

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

# Lines Ray prints that are not the user's business (what the demo showed before the console was built).
NOISE = [r"Reporting training result", r"RayDeprecationWarning", r"exclude_resources", r"PreemptionWatcher",
         r"PYTHON worker processes have been started", r"PlacementGroupCleaner", r"Configuration for experiment",
         r"To visualize your results with TensorBoard", r"A new study created", r"Token authentication is enabled",
         r"\(RayTrainWorker pid=", r"\(run_trial pid=", r"\(TrainController pid=", r"Traceback"]


def test_the_demo_runs_end_to_end_and_its_console_reads_like_fastai(ray_cluster, tmp_path):
    out = run_cli("demo", "--out", tmp_path / "demo", "--trials", "2", "--epochs", "2", timeout=900)
    console = out.stdout + out.stderr
    assert out.returncode == 0, console[-4000:]
    assert "other runs hold the rest" not in console, console[-4000:]  # the refit waits for nothing of its own
    for pattern in NOISE:
        assert not re.search(pattern, console), f"{pattern!r} on the console:\n{console[-4000:]}"
    lines = console.splitlines()
    starts = [ln for ln in lines if re.match(r"trial \w+ starts: \S+ +max_lr \d\.\de-\d\d +aug \d\.\d\d", ln)]
    ends = [ln for ln in lines if re.match(r"trial \w+ (done|stopped early by ASHA after epoch \d|FAILED)", ln)]
    assert len(starts) == 2 and len(ends) == 2, console
    header = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["trial", "epoch", "train_loss"])
    rows = [ln for ln in lines[header:] if re.match(r"\w+ +\d+ +\d+\.\d{4} ", ln)]
    assert len(rows) >= 2 + 1, console  # every trial's first epoch, and more for the ones that went on
    assert any(re.search(r"\[\d/2 done, \d running\] best accuracy 0\.\d{4}", ln) for ln in lines)
    board = next(i for i, ln in enumerate(lines) if ln.startswith("leaderboard ("))
    assert "and the refit models kept" in lines[board], lines[board]  # the demo refits its best configuration
    assert lines[board + 1].split()[:3] == ["rank", "trial_id", "backbone"] and len(lines[board + 1]) < 160
    assert max(len(ln) for ln in lines[board + 1:board + 5]) < 160  # compact: no absolute paths
    assert re.search(r"demo held-out score: accuracy 0\.\d{4}", console)
    # The refit's two seeds train at once (the test cluster has 4 CPUs, a refit run's worker 1 of them at least).
    assert "refit: 2 runs, 2 at a time" in console, console[-4000:]
    assert len(re.findall(r"(?m)^refit refit-\S+: done in \d+ s", console)) == 2, console[-4000:]
    sweep = next((tmp_path / "demo" / "sweeps").iterdir())
    assert (sweep / "leaderboard.csv").is_file() and (tmp_path / "demo" / f"submission-{sweep.name}.csv").is_file()

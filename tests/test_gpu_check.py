"""bench/gpu_check.sh stays runnable where there is no GPU: it checks what it would run and exits 0; its table
renders the benchmarks' result lines."""

import json
import os
import re
import subprocess
import sys

import torch

from conftest import ROOT


def test_gpu_check_without_cuda_checks_that_it_would_run_and_exits_0():
    args = ["--dry-run"] if torch.cuda.is_available() else []  # never the real thing from the test suite
    proc = subprocess.run([str(ROOT / "bench" / "gpu_check.sh"), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    reason = "--dry-run" if args else "no CUDA device on this machine, so no GPU figures"
    assert re.search(rf"gpu_check: {re.escape(reason)}; checked imports, the arguments of 3 benchmarks and "
                     rf"[1-9]\d* GPU tests collected", out), out
    assert "would run (pack" in out and "nothing measured (exit 0)" in out


def test_gpu_check_table_renders_every_step_and_says_what_did_not_run():
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_check

    def line(d):
        return "GPU_CHECK_RESULT " + json.dumps(d)

    step = {"bench": "step", "backbone": "resnet50", "size": 224, "batch": 128, "compile": False,
            "warmup_s": {"bare timm + PyTorch": 2.0, "visionsweep aug=0": 2.5},
            "images_per_s": {"bare timm + PyTorch": 3100.0, "visionsweep aug=0": 3050.0}, "ratio_aug0": 0.984}
    epoch = {"bench": "epoch", "backbone": "resnet18", "n_train": 14000, "n_valid": 3500, "src": 32, "size": 128,
             "batch": 64, "aug": 0.5, "compile": True, "epoch_s": {"visionsweep": [40.0, 2.1, 2.0], "bare": [35, 1.9, 1.9]},
             "median_s": {"visionsweep": 2.05, "bare": 1.9}, "ratio": 0.927}
    pack = {"bench": "pack", "per_gpu": 1, "trials": 4, "done": 4, "wall_s": 60.0, "trials_per_hour": 240.0,
            "busy_pct": None, "busy_samples": 0, "overhead_s": 7.5, "epoch_s_median": 2.0, "gpu_mem_peak_mib": 3000.0,
            "gpu_mem_after_mib": None, "gpu_mem_idle_mib": None}
    outcomes = {"tests": (0, ["5 passed in 80.1s"], 81.0), "step": (0, [line(step)], 100.0),
                "epoch": (None, ["partial output"], 150.0), "pack": (0, [line(pack), "k=2: skipped, 400 s spent"], 90.0)}
    text = gpu_check.table("NVIDIA H100", outcomes, "## header")
    assert "| CUDA tests (tests/test_gpu.py)" in text and "5 passed" in text
    assert "visionsweep 3,050, bare 3,100, ratio 0.984" in text and "| met" in text
    assert "cactus-size epoch | timed out 150.0 s, no result" in text.replace("  ", "")
    assert "240 trials/h, GPU busy n/a %" in text and "k=2: skipped" in text
    assert "per-trial start-up + tear-down overhead (1 per GPU) | 7.5 s" in " ".join(text.split())
    assert "epoch 150 s (timed out)" in text

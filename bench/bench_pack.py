"""Trial packing on one GPU: the same sweep at 1, 2, 4 and 8 trials per GPU; trials per hour and GPU busy time.

Each setting k is a real `search.sweep.run_sweep` of --trials trials x --epochs epochs of --backbone (resnet18,
random init) on a cactus-size set (17,500 images of 32 px, 20 % held out, upscaled to 128 px on the device, batch
64), with --gpus-per-trial 1/k and max_concurrent k. ASHA's grace period is the whole run, so no trial stops early
and every setting does the same work. One Ray cluster serves all settings, started as `visionsweep sweep` starts it
(`trainables.ray_session.ensure_ray`: every CPU, the GPUs, the dashboard).

Measured per setting, in the same run:
  trials/hour    trials / sweep wall time (from run_sweep's call to its return)
  GPU busy       NVML's utilization.gpu (share of time a kernel ran) sampled every 0.2 s during the sweep, mean
                 (pynvml, else Ray's bundled copy, else nvidia-smi)
  overhead       per-trial start-up and tear-down: (wall - time inside epochs / k) / trials, as
                 bench_sweep_overhead.py computes it (at k = 1 nothing overlaps: the cleanest figure)
  memory after   GPU memory in use once the sweep has returned (it should fall back to where it started)

    python bench/bench_pack.py [--per-gpu 1,2,4,8] [--trials 16] [--epochs 3] [--waves W --min-trials M]
                               [--time-limit S]

--waves W runs max(M, W * k) trials at setting k instead of --trials (a shorter check with the same number of
waves per setting); --time-limit skips the settings that would start after S seconds (said in the output).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


class GpuSampler:
    """Samples GPU utilisation and memory in a thread, without a CUDA context of its own."""

    def __init__(self, index: int = 0, period: float = 0.2) -> None:
        self.period, self.samples, self.source = period, [], None
        self._stop = threading.Event()
        self._nvml = None
        for name in ("pynvml", "ray._private.thirdparty.pynvml"):
            try:
                nvml = __import__(name, fromlist=["nvmlInit"])
                nvml.nvmlInit()
                self._handle = nvml.nvmlDeviceGetHandleByIndex(index)
                self._nvml, self.source = nvml, name
                break
            except Exception:  # not installed, or no driver
                continue
        self.index = index
        if self._nvml is not None and self.try_read() is None:  # NVML present but not answering (e.g. a sandbox)
            self._nvml, self.source = None, None
        if self._nvml is None and shutil.which("nvidia-smi"):
            self.source = "nvidia-smi"
            if self.try_read() is None:
                self.source = None

    def try_read(self) -> tuple[float, float] | None:
        try:
            return self.read()
        except Exception:
            return None

    def read(self) -> tuple[float, float] | None:
        """(utilization %, memory used MiB) now, or None."""
        if self._nvml is not None:
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu
            mem = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20
            return float(util), float(mem)
        if self.source == "nvidia-smi":
            out = subprocess.run(["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu,memory.used",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
            try:
                util, mem = (float(v) for v in out.strip().split(","))
                return util, mem
            except ValueError:
                return None
        return None

    def __enter__(self):
        self.samples = []
        self._stop.clear()

        def loop():
            while not self._stop.wait(self.period):
                s = self.try_read()
                if s is not None:
                    self.samples.append(s)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_loaded_data(tmp: Path, *, n: int, src: int):
    """A LoadedData as `load_dataset` returns it (a small real Kaggle-CSV folder for the submission format and the
    spec), with the training arrays swapped for n random images of src px (Aerial Cactus's size; the content
    does not change the timing)."""
    from visionsweep.datasets.load import load_dataset
    from visionsweep.datasets.spec import spec_from_dict
    from digits import digits_csv_folder

    spec = spec_from_dict({"root": digits_csv_folder(tmp / "data")})
    small = load_dataset(spec, log=lambda m: None)
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.75).astype(np.int64)
    x = rng.integers(0, 200, size=(n, src, src, 3), dtype=np.uint8) + (y * 55).astype(np.uint8)[:, None, None, None]
    return spec, dataclasses.replace(small, x_train=x, y_train=y, x_valid=None, y_valid=None)


def _mib(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} MiB"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-gpu", default="1,2,4,8", help="trials per GPU to try, comma-separated (default 1,2,4,8)")
    p.add_argument("--trials", type=int, default=16, help="trials per setting (default 16)")
    p.add_argument("--waves", type=int, default=None, help="instead of --trials: max(--min-trials, waves x k)")
    p.add_argument("--min-trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--n", type=int, default=17_500, help="images (train + valid), default 17,500")
    p.add_argument("--src", type=int, default=32)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time-limit", type=float, default=None, help="seconds; later settings are skipped")
    p.add_argument("--cpu", action="store_true",
                   help="smoke-test this script without a GPU: k trials at once on CPU workers (figures meaningless)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    per_gpu = [int(k) for k in args.per_gpu.split(",")]
    t_start = time.perf_counter()

    import ray
    from ray import tune

    from bench_step import print_header
    from visionsweep.search.config import SearchConfig
    from visionsweep.search.sweep import run_sweep
    from visionsweep.trainables.ray_session import ensure_ray

    import torch

    print_header("visionsweep trial-packing benchmark: one sweep per trials-per-GPU setting",
                 device=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
                 runs="1 sweep per setting")
    tmp = Path(tempfile.mkdtemp(prefix="vs-pack-"))
    spec, data = make_loaded_data(tmp, n=args.n, src=args.src)
    t = time.perf_counter()
    resources = ensure_ray(log=lambda m: None).resources
    print(f"ray cluster: {resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU (started in "
          f"{time.perf_counter() - t:.1f} s); data {args.n} x {args.src} px, 20 % held out, -> {args.size} px, "
          f"batch {args.batch}, {args.backbone}, {args.epochs} epochs per trial")
    if not resources.get("GPU") and not args.cpu:
        raise SystemExit("no GPU in the Ray cluster: trial packing is a GPU benchmark (--cpu smoke-tests the script)")
    sampler = GpuSampler()
    print(f"GPU sampling: {sampler.source or 'none available (busy % not measured)'}")
    idle = sampler.try_read()
    rows = []
    per_wave = 0.0  # seconds per wave of trials in the last setting: predicts the next one
    for k in per_gpu:
        trials = max(args.min_trials, args.waves * k) if args.waves else args.trials
        elapsed = time.perf_counter() - t_start
        expected = per_wave * -(-trials // k)
        if args.time_limit and elapsed + expected > args.time_limit:
            print(f"k={k}: skipped, {elapsed:.0f} s spent and it would take about {expected:.0f} s "
                  f"(--time-limit {args.time_limit:g} s)")
            rows.append({"per_gpu": k, "skipped": True})
            continue
        sc = SearchConfig(name=f"pack{k}", storage=str(tmp / "sweeps"), trials=trials, epochs=args.epochs, seed=0,
                          backbones=(args.backbone,), gpus_per_trial=0.0 if args.cpu else 1.0 / k, max_concurrent=k,
                          grace_period=args.epochs,
                          train={"image_size": args.size, "batch_size": args.batch, "pretrained": False,
                                 "max_failures": 0})
        with sampler:
            t0 = time.perf_counter()
            board = run_sweep(data=data, sc=sc, spec=spec, log=lambda m: None)
            wall = time.perf_counter() - t0
        per_wave = wall / -(-trials // k)
        grid = tune.ResultGrid(tune.ExperimentAnalysis(str(tmp / "sweeps" / sc.name)))
        inside = sum(float(r.metrics_dataframe["time_s"].sum()) for r in grid if r.metrics_dataframe is not None)
        epoch_s = [float(v) for r in grid if r.metrics_dataframe is not None for v in r.metrics_dataframe["time_s"]]
        busy = [u for u, _ in sampler.samples]
        peak_mem = max((m for _, m in sampler.samples), default=None)
        deadline = time.monotonic() + 20
        after = sampler.try_read()
        while after and idle and after[1] > idle[1] + 256 and time.monotonic() < deadline:
            time.sleep(1)
            after = sampler.try_read()
        row = {"per_gpu": k, "trials": trials, "done": int((board["status"] == "done").sum()), "wall_s": wall,
               "trials_per_hour": trials / wall * 3600, "busy_pct": statistics.mean(busy) if busy else None,
               "busy_samples": len(busy), "overhead_s": (wall - inside / k) / trials,
               "epoch_s_median": statistics.median(epoch_s) if epoch_s else None,
               "gpu_mem_peak_mib": peak_mem, "gpu_mem_after_mib": after[1] if after else None,
               "gpu_mem_idle_mib": idle[1] if idle else None}
        rows.append(row)
        busy_txt = f"{row['busy_pct']:.0f} %" if busy else "n/a"
        print(f"k={k}: {trials} trials ({row['done']} done) in {wall:.0f} s = {row['trials_per_hour']:.0f} trials/h; "
              f"GPU busy {busy_txt} ({len(busy)} samples); epoch {row['epoch_s_median'] or float('nan'):.2f} s "
              f"(median); per-trial overhead {row['overhead_s']:.1f} s; GPU memory peak {_mib(peak_mem)}, after "
              f"{_mib(row['gpu_mem_after_mib'])} (idle {_mib(row['gpu_mem_idle_mib'])})")
        print("GPU_CHECK_RESULT " + json.dumps({"bench": "pack", **row}))
        sys.stdout.flush()
    done = [r for r in rows if not r.get("skipped")]
    if done:
        best = max(done, key=lambda r: r["trials_per_hour"])
        print(f"best: {best['per_gpu']} trials per GPU, {best['trials_per_hour']:.0f} trials/h"
              + (f", GPU busy {best['busy_pct']:.0f} % (goal >= 80 %)" if best["busy_pct"] is not None else ""))
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

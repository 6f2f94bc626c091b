"""Per-trial overhead of a sweep: (sweep wall time - time inside training epochs) / trials.

8 trials x 1 epoch of test_resnet on 16 px digits, so nearly all of a trial's time is start-up: the Tune
trial actor, the Train controller, the worker processes (Python + torch imports), process-group setup and
model build. Baseline in the same run: the same sweep's epochs alone (the sum of the trials' epoch times).
Run: .venv/bin/python bench/bench_sweep_overhead.py [--trials 8] [--concurrent 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--concurrent", type=int, default=1, help="trials at once (1: overhead is not overlapped)")
    ap.add_argument("--reuse-actors", action="store_true", help="Tune reuses trial actor processes")
    args = ap.parse_args()

    import ray
    from ray import tune

    from visionsweep.datasets.load import load_dataset
    from visionsweep.datasets.spec import spec_from_dict
    from digits import digits_csv_folder
    from visionsweep.search.config import SearchConfig
    from visionsweep.search.sweep import run_sweep
    from visionsweep.trainables.provenance import provenance
    from visionsweep.trainables.ray_session import ensure_ray

    prov = provenance()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"# bench_sweep_overhead: {os.cpu_count()} x {cpu}; torch {prov['versions']['torch']}, ray "
          f"{prov['versions']['ray']}; git {prov['git_revision'][:12]}; {args.trials} trials x 1 epoch, "
          f"{args.concurrent} at a time; 1 sweep")
    tmp = Path(tempfile.mkdtemp(prefix="vs-overhead-"))
    root = digits_csv_folder(tmp / "c" / "data")
    spec = spec_from_dict({"root": root})
    data = load_dataset(spec, log=lambda m: None)
    t = time.perf_counter()
    ensure_ray(log=lambda m: None)
    init_s = time.perf_counter() - t
    sc = SearchConfig(name="overhead", storage=str(tmp / "sweeps"), trials=args.trials, epochs=1,
                      backbones=("test_resnet",), max_concurrent=args.concurrent, gpus_per_trial=0,
                      train={"image_size": 16, "batch_size": 32, "pretrained": False},
                      refit=0)  # the refit after the search is one more Train run, not per-trial overhead
    t = time.perf_counter()
    run_sweep(data=data, sc=sc, spec=spec, log=lambda m: None)
    wall = time.perf_counter() - t
    grid = tune.ResultGrid(tune.ExperimentAnalysis(str(tmp / "sweeps" / "overhead")))
    inside = sum(float(r.metrics_dataframe["time_s"].sum()) for r in grid)
    overhead = (wall - inside / args.concurrent) / args.trials
    print(f"ray.init (dashboard):            {init_s:6.1f} s")
    print(f"sweep wall time:                 {wall:6.1f} s")
    print(f"time inside epochs (all trials): {inside:6.1f} s")
    print(f"per-trial overhead:              {overhead:6.1f} s   (goal <= 10 s on 2 cores)")
    print(f"epoch time / trial wall time:    {inside / args.concurrent / wall:6.3f}   (share of the sweep spent training)")
    ray.shutdown()


if __name__ == "__main__":
    main()

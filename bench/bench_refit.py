"""bench_refit: a sweep's refit models side by side (what refit_top does now) against one after the other.

The refit step of a sweep trains the best configuration once per refit seed (two by default), each a Ray Train run.
This times those runs both ways in one run on one local cluster, alternating the order each round:

  in turn   search.refit.run_at_once(calls, 1): each run with all the cluster's CPUs (share_cpus, runs=1), as before
  at once   run_at_once(calls, K), K = search.refit.refits_at_once(...) on the cluster's CPUs as the refit counts them
            (_thread_cpus), each run with its share (share_cpus, runs=K)

Each run is the demo's refit: resnet18 from scratch, 32 px, batch 64, on the demo digits' 1438 labelled images
(datasets.demo.build_demo), `--epochs` epochs, seeds 42, 43, ... through the real `_refit_one` (make_trainer(...).fit()).
Prints each round's seconds, the medians and the ratio at once / in turn (< 1: side by side is faster).

Command: `python bench/bench_refit.py` (`--rounds 2 --epochs 2 --seeds 2`; about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2, help="refit runs per round (the sweep's --refit-seeds)")
    args = ap.parse_args(argv)

    import ray
    import torch

    from bench_step import print_header
    from visionsweep.datasets.demo import build_demo
    from visionsweep.datasets.load import load_dataset
    from visionsweep.datasets.spec import spec_from_dict
    from visionsweep.datasets.split import train_valid_arrays
    from visionsweep.search.refit import _refit_one, _thread_cpus, refit_arrays, refits_at_once, run_at_once
    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.ray_session import ensure_ray, share_cpus
    from visionsweep.trainables.ray_train import data_info, quiet_train_logs

    print_header("bench_refit: refit runs side by side vs one after the other", device=torch.device("cpu"),
                 runs=f"{args.rounds} rounds x {args.seeds} refit runs of {args.epochs} epochs, each way")
    quiet = lambda *_: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="bench-refit-") as tmp:
        data_dir = build_demo(Path(tmp) / "demo")
        spec = spec_from_dict({"root": data_dir})
        data = load_dataset(spec, log=quiet)
        arrays = refit_arrays(train_valid_arrays(data, valid_pct=spec.valid_pct, seed=spec.seed))
        base = TrainConfig(backbone="resnet18", max_lr=3e-3, aug=0.5, epochs=args.epochs, batch_size=64,
                           image_size=32, pretrained=False, workers=1, use_gpu=False)
        row = SimpleNamespace(epochs=args.epochs)
        setup = SimpleNamespace(info=data_info(data))
        with ensure_ray(log=quiet, log_to_driver=False) as session:
            ref = ray.put(arrays)
            nodes = _thread_cpus(session.nodes)
            k = refits_at_once(base, nodes, args.seeds)
            print(f"# cluster CPUs {ray.cluster_resources().get('CPU')}, counted {[n.get('CPU') for n in nodes]}; "
                  f"at once: {k} runs of {share_cpus(base, nodes, runs=k).cpus_per_worker:g} CPU(s); in turn: "
                  f"{share_cpus(base, nodes).cpus_per_worker:g} CPU(s)", flush=True)
            times = {"in turn": [], "at once": []}
            for r in range(args.rounds):
                order = ["in turn", "at once"] if r % 2 == 0 else ["at once", "in turn"]
                for mode in order:
                    at_once = 1 if mode == "in turn" else k
                    sweep = tempfile.mkdtemp(prefix="sweep-", dir=tmp)
                    cfg = share_cpus(base, nodes, runs=at_once)
                    calls = [functools.partial(_refit_one, sweep, dataclasses.replace(cfg, seed=42 + s), setup, ref,
                                               run=f"refit_runs/refit-bench-seed{42 + s}", row=row,
                                               n_all=len(arrays["y_train"]), log=quiet) for s in range(args.seeds)]
                    t0 = time.perf_counter()
                    with quiet_train_logs():
                        models = [m for _, m in run_at_once(calls, at_once)]
                    times[mode].append(time.perf_counter() - t0)
                    failed = [m for m in models if m["status"] != "done"]
                    print(f"round {r + 1} {mode}: {times[mode][-1]:.1f} s"
                          + (f" ({len(failed)} FAILED: {failed[0].get('error')})" if failed else ""), flush=True)
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"median: in turn {med['in turn']:.1f} s, at once {med['at once']:.1f} s; "
          f"ratio at once / in turn {med['at once'] / med['in turn']:.2f}")


if __name__ == "__main__":
    main()

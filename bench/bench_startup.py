"""Ray Train start-up benchmark: seconds from TorchTrainer.fit() to the first training step, 1 and 2 CPU workers.

One new local Ray cluster with the dashboard, timed once: by default as `visionsweep train` starts it
(trainables.ray_session.ensure_ray(num_cpus=4)), with --init plain by ray.init(address="local", num_cpus=4,
include_dashboard=True, dashboard_host="127.0.0.1"). Then --runs fits for each worker count, interleaved
(1, 2, 1, 2, ...).
Each fit is a real visionsweep run: trainables.ray_train.make_trainer(cfg, info, ray.put(arrays), ...) with a
tiny model (timm's test_resnet, random init) for one epoch on small digits arrays (tests/digits.py), gloo DDP on
CPUs. The per-worker function is a thin timing wrapper that calls the real
trainables.ray_train.train_loop_per_worker; it records time.time() at these points in every worker (same machine:
one clock) and writes them to a JSON file in a temp folder:

  proc_created the worker process's creation time (psutil)
  fn_start     first line of the per-worker function (Ray Train has already set up the gloo process group)
  imports      after importing trainables in the worker (torch is already there; timm comes in build)
  build_start  trainables.worker.build_model entered (after ray.get of the arrays, config parsing)
  build_end    the model is built
  prepared     ray.train.torch.prepare_model returned (DDP wrap, parameter broadcast)
  first_step   the first optimizer.step() returned (torch's global optimizer step post-hook)

build_model and prepare_model are wrapped by rebinding them in the worker process only; nothing else changes.
Reported, from t0 = just before trainer.fit(): fit() -> worker function start (slowest rank), worker function
start -> first step (rank 0, broken down), fit() -> first step, worker end -> fit() return, and fit() total.

Ray allows one local cluster per machine in practice (see RAY_NOTES: a second one breaks the first one's
placement-group cleanup), so this script waits (--wait-s) while another Ray instance runs here.

    python bench/bench_startup.py [--runs 3] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bench_step import print_header  # noqa: E402


def make_per_worker(out_dir: str):
    """A per-worker function (pickled by value, with out_dir) that times the real train_loop_per_worker."""

    def timed_train_loop_per_worker(config: dict) -> None:
        import time

        marks = {"fn_start": time.time()}
        import json
        import os
        import sys
        from pathlib import Path

        import psutil  # a Ray dependency

        marks["proc_created"] = psutil.Process().create_time()  # before fit() when Ray reused an idle worker
        marks["preloaded"] = [m for m in ("torch", "timm", "trainables") if m in sys.modules]

        import ray.train
        import ray.train.torch
        import torch
        from torch.optim.optimizer import register_optimizer_step_post_hook

        import visionsweep.trainables.ray_train as ray_train
        import visionsweep.trainables.worker as worker

        marks["imports"] = time.time()
        real_build, real_prepare = worker.build_model, ray.train.torch.prepare_model

        def build_model(*args, **kwargs):
            marks["build_start"] = time.time()
            out = real_build(*args, **kwargs)
            marks["build_end"] = time.time()
            return out

        def prepare_model(*args, **kwargs):
            out = real_prepare(*args, **kwargs)
            marks["prepared"] = time.time()
            return out

        def after_step(optimizer, args, kwargs) -> None:
            marks.setdefault("first_step", time.time())

        worker.build_model, ray.train.torch.prepare_model = build_model, prepare_model
        hook = register_optimizer_step_post_hook(after_step)
        try:
            ray_train.train_loop_per_worker(config)
        finally:
            hook.remove()
            worker.build_model, ray.train.torch.prepare_model = real_build, real_prepare
        marks["fn_end"] = time.time()
        marks["torch_threads"], marks["omp_num_threads"] = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
        rank = ray.train.get_context().get_world_rank()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(marks))

    return timed_train_loop_per_worker


def running_ray_instances() -> frozenset:
    from ray._private.services import find_gcs_addresses

    find_gcs_addresses.cache_clear()  # Ray caches a non-empty answer for the life of the process
    return find_gcs_addresses()


def wait_for_other_ray(wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    told = False
    while others := running_ray_instances():
        if time.monotonic() > deadline:
            raise SystemExit(f"another Ray instance is still running on this machine after {wait_s:.0f} s "
                             f"({', '.join(others)}); a second local cluster would break its "
                             f"placement-group cleanup. Stop it, or raise --wait-s")
        if not told:
            print(f"# waiting for another Ray instance on this machine to end (up to {wait_s:.0f} s) ...")
            sys.stdout.flush()
            told = True
        time.sleep(2)


def one_fit(workers: int, run: int, *, arrays_ref, info, args, storage: Path) -> dict:
    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.ray_train import make_trainer

    cfg = TrainConfig(backbone="test_resnet", pretrained=False, workers=workers, epochs=args.epochs,
                      batch_size=args.batch, image_size=args.image_size, max_failures=0)
    out_dir = Path(tempfile.mkdtemp(prefix=f"w{workers}r{run}-", dir=storage))
    t = time.time()
    trainer = make_trainer(cfg, info, arrays_ref, storage=storage, name=f"startup-w{workers}-r{run}",
                           per_worker=make_per_worker(str(out_dir)))
    t0 = time.time()
    trainer.fit()
    t_end = time.time()
    ranks = [json.loads(p.read_text()) for p in sorted(out_dir.glob("rank*.json"))]
    if len(ranks) != workers:
        raise SystemExit(f"expected timing files from {workers} worker(s), found {len(ranks)} in {out_dir}")
    r0 = ranks[0]
    return {
        "make_trainer": t0 - t,
        "fit_to_proc": max(r["proc_created"] for r in ranks) - t0,
        "proc_to_fn_start": r0["fn_start"] - r0["proc_created"],
        "fit_to_fn_start": max(r["fn_start"] for r in ranks) - t0,
        "imports": r0["imports"] - r0["fn_start"],
        "to_build": r0["build_start"] - r0["imports"],
        "build": r0["build_end"] - r0["build_start"],
        "prepare": r0["prepared"] - r0["build_end"],
        "to_first_step": r0["first_step"] - r0["prepared"],
        "fn_start_to_first_step": r0["first_step"] - r0["fn_start"],
        "fit_to_first_step": max(r["first_step"] for r in ranks) - t0,
        "first_step_to_fn_end": r0["fn_end"] - r0["first_step"],
        "teardown": t_end - max(r["fn_end"] for r in ranks),
        "fit_total": t_end - t0,
        "threads": [(r["torch_threads"], r["omp_num_threads"]) for r in ranks],
        "preloaded": r0["preloaded"],
    }


COLUMNS = [  # key, header, what it covers
    ("fit_to_proc", "fit->proc", "trainer.fit() to the (last) worker process's creation"),
    ("proc_to_fn_start", "proc->fn", "worker process boot: Ray worker, actor, torch import, gloo group (rank 0)"),
    ("fit_to_fn_start", "fit->fn", "controller, placement group, worker actors, gloo group (slowest rank)"),
    ("imports", "imports", "import trainables in the worker (timm is imported later, in build)"),
    ("to_build", "->build", "ray.get(arrays), config, checkpoint lookup"),
    ("build", "build", "import timm (first use), timm.create_model, data config"),
    ("prepare", "DDP", "ray.train.torch.prepare_model: move + DDP wrap (parameter broadcast)"),
    ("to_first_step", "->step1", "Batches, optimizer, first forward/backward/allreduce/step"),
    ("fn_start_to_first_step", "fn->step1", "worker function start to first step, rank 0"),
    ("fit_to_first_step", "fit->step1", "trainer.fit() to the first step (slowest rank)"),
    ("first_step_to_fn_end", "step1->end", "rest of training, validation, checkpoints (rank 0)"),
    ("teardown", "end->return", "last worker function end to fit() return: worker group and controller "
                                "shutdown (Train's placement-group cleaner stop included)"),
    ("fit_total", "fit total", "trainer.fit() call, start to return"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fits per worker count (default 3)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local cluster (default 4)")
    parser.add_argument("--init", choices=("visionsweep", "plain"), default="visionsweep",
                        help="start the cluster as `visionsweep train` does (trainables.ray_session.ensure_ray: "
                             "private local cluster, dashboard on 127.0.0.1, Train state tracking, placement-group "
                             "cleaner pointed at this cluster's state API), or with a plain ray.init(address="
                             "'local', num_cpus=N, include_dashboard=True, dashboard_host='127.0.0.1')")
    parser.add_argument("--images", type=int, default=30, help="digits per class, 10 classes (default 30)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per fit (default 1)")
    parser.add_argument("--batch", type=int, default=32, help="batch per worker (default 32)")
    parser.add_argument("--image-size", type=int, default=32, help="model input px (default 32; stored 16 px)")
    parser.add_argument("--wait-s", type=float, default=900, help="wait this long for another Ray instance "
                                                                   "on this machine to end (default 900)")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    print_header("visionsweep Ray Train start-up benchmark: trainer.fit() to the first training step",
                 device=torch.device("cpu"),
                 runs=f"cluster started once ({args.init}); {args.runs} fits per worker count {worker_counts}, "
                      f"interleaved; medians")
    from digits import digits_arrays

    arrays, info = digits_arrays(classes=tuple(range(10)), size=16, per_class=args.images, seed=0)
    print(f"# data: {len(arrays['y_train'])} train / {len(arrays['y_valid'])} valid digits, 16 px -> "
          f"{args.image_size} px; test_resnet (random init), {args.epochs} epoch(s), batch {args.batch}, gloo")
    os.environ.pop("RAY_ADDRESS", None)  # always a fresh local cluster: the cost a laptop user pays
    t = time.perf_counter()
    import ray

    t_import = time.perf_counter() - t
    wait_for_other_ray(args.wait_s)
    t = time.perf_counter()
    if args.init == "visionsweep":  # what `visionsweep train` does on a machine without RAY_ADDRESS
        from visionsweep.trainables.ray_session import ensure_ray

        ensure_ray(num_cpus=args.num_cpus)
        how = f"trainables.ray_session.ensure_ray(num_cpus={args.num_cpus})"
    else:
        # address="local": always a new cluster, never one that appeared since the check (ray.init(), given no
        # address, joins a running `ray start` cluster it finds)
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                 logging_level="WARNING")
        how = f"ray.init(address='local', num_cpus={args.num_cpus}, include_dashboard=True)"
    t_init = time.perf_counter() - t
    mine = ray.get_runtime_context().gcs_address
    print(f"import ray: {t_import:.2f} s (torch already imported);  {how}: {t_init:.2f} s")
    sys.stdout.flush()
    results: dict[int, list[dict]] = {w: [] for w in worker_counts}
    try:
        with tempfile.TemporaryDirectory(prefix="visionsweep-bench-startup-") as storage:
            t = time.perf_counter()
            arrays_ref = ray.put(arrays)
            print(f"ray.put(arrays): {time.perf_counter() - t:.3f} s")
            for run in range(1, args.runs + 1):
                for w in worker_counts:
                    r = one_fit(w, run, arrays_ref=arrays_ref, info=info, args=args, storage=Path(storage))
                    results[w].append(r)
                    others = running_ray_instances() - {mine}
                    if others:
                        print(f"# WARNING: another Ray instance ({', '.join(others)}) runs beside this one: its "
                              f"load is in these timings and its placement-group cleanup may fail")
                    print(f"# run {run}, {w} worker(s): " + ", ".join(f"{h} {r[k]:.2f}" for k, h, _ in COLUMNS)
                          + f" s; torch threads, OMP_NUM_THREADS per rank: {r['threads']}; already imported at "
                          f"function start: {r['preloaded']}")
                    sys.stdout.flush()
    finally:
        ray.shutdown()
    print(f"\nseconds, medians of {args.runs} runs (cluster start {t_init:.2f} s, once, not included):")
    print(f"| {'':<11} | " + " | ".join(f"{w} worker{'s' if w > 1 else ''}" for w in worker_counts) + " | covers |")
    print("|---|" + "---|" * len(worker_counts) + "---|")
    for k, h, what in [("make_trainer", "trainer", "make_trainer (TorchTrainer construction)")] + COLUMNS:
        cells = " | ".join(f"{statistics.median(r[k] for r in results[w]):.2f}" for w in worker_counts)
        print(f"| {h:<11} | {cells} | {what} |")


if __name__ == "__main__":
    main()

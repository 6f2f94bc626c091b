"""Per-trial overhead of a sweep: (sweep wall time - time inside training epochs / trials at once) / trials.

8 trials x 1 epoch of test_resnet on 16 px digits, so nearly all of a trial's time is start-up: the Tune
trial actor, the Train controller, the worker processes (Python + torch imports), process-group setup and
model build. Baseline in the same run: the same sweep's epochs alone (the sum of the trials' epoch times).
Two sweeps, one trial training at a time in each:
  capped   --max-concurrent 1: Tune starts a trial only when the previous one has ended (the whole start-up of
           every trial is paid in turn; what this bench measured before the start-ahead trial existed);
  ahead    each trial's worker takes every CPU, so the cluster's resources allow one trial at a time, as one GPU
           does for one-GPU trials: the sweep starts one more trial ahead (search.sweep.in_flight), whose driver
           and Train controller start up while the other trains.
Where the CPU goes (Linux): a thread reads every process's CPU time from /proc every 0.2 s during each sweep and
sums it by Ray process title (Tune's trial actors, Train's workers and synchronization actors, the rest). With one
training at a time, a trial's Train worker starts only when the previous trial's has ended, so the mean life of a
worker process (first to last sight) is a floor under the per-trial wall time that no overlap of the other
processes removes; and their CPU seconds per trial over the machine's cores are another.
Run: .venv/bin/python bench/bench_sweep_overhead.py [--trials 8] [--modes capped,ahead]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


GROUPS = {"ray::ImplicitFunc": "trial actors", "ray::RayTrainWorker": "Train workers",
          "ray::SynchronizationActor": "Train sync actors"}


class ProcessCPU(threading.Thread):
    """CPU seconds (user + system) of every process on the machine while it runs, by Ray process title, and each
    Train worker's life (first to last sight). A process seen only partly counts what it used while watched."""

    def __init__(self, period_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.period_s, self.stop_event, self.seen = period_s, threading.Event(), {}
        self.hz = os.sysconf("SC_CLK_TCK")

    def poll(self) -> None:
        now = time.monotonic()
        for pid in os.listdir("/proc"):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
            except (OSError, ValueError):
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            cpu = (int(fields[11]) + int(fields[12])) / self.hz
            entry = self.seen.setdefault((pid, fields[19]), {"cpu0": cpu, "first": now, "title": title})
            entry.update(cpu=cpu, last=now)
            if title.startswith("ray::"):  # a worker's title changes once it becomes an actor
                entry["title"] = title

    def run(self) -> None:
        while not self.stop_event.wait(self.period_s):
            self.poll()

    def finish(self) -> dict:
        self.stop_event.set()
        self.join()
        self.poll()
        totals: dict = {}
        for e in self.seen.values():
            group = GROUPS.get(e["title"], "driver, cluster, rest")
            totals[group] = totals.get(group, 0.0) + e["cpu"] - e["cpu0"]
        lives = [e["last"] - e["first"] for e in self.seen.values() if e["title"] == "ray::RayTrainWorker"]
        return {"cpu": totals, "worker_life": sum(lives) / len(lives) if lives else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--modes", default="capped,ahead", help="comma-separated: capped, ahead (see above)")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - {"capped", "ahead"}:
        ap.error(f"--modes takes capped and/or ahead, got {args.modes!r}")

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
          f"{prov['versions']['ray']}; git {prov['git_revision'][:12]}; {args.trials} trials x 1 epoch, one "
          f"training at a time; modes {', '.join(modes)}; 1 sweep each")
    tmp = Path(tempfile.mkdtemp(prefix="vs-overhead-"))
    root = digits_csv_folder(tmp / "c" / "data")
    spec = spec_from_dict({"root": root})
    data = load_dataset(spec, log=lambda m: None)
    t = time.perf_counter()
    session = ensure_ray(log=lambda m: None)
    init_s = time.perf_counter() - t
    cpus = session.resources.get("CPU", 1.0)
    print(f"ray.init (dashboard): {init_s:.1f} s; the cluster has {cpus:g} CPUs")
    rows, cpu = {}, {}
    for mode in modes:
        options = (dict(max_concurrent=1) if mode == "capped" else dict(cpus_per_worker=cpus))
        sc = SearchConfig(name=f"overhead-{mode}", storage=str(tmp / "sweeps"), trials=args.trials, epochs=1,
                          backbones=("test_resnet",), gpus_per_trial=0,
                          train={"image_size": 16, "batch_size": 32, "pretrained": False},
                          refit=0,  # the refit after the search is one more Train run, not per-trial overhead
                          **options)
        watch = ProcessCPU() if Path("/proc/self/stat").exists() else None
        if watch:
            watch.start()
        t = time.perf_counter()
        run_sweep(data=data, sc=sc, spec=spec, log=lambda m: None)
        wall = time.perf_counter() - t
        if watch:
            cpu[mode] = watch.finish()
        grid = tune.ResultGrid(tune.ExperimentAnalysis(str(tmp / "sweeps" / sc.name)))
        inside = sum(float(r.metrics_dataframe["time_s"].sum()) for r in grid)
        rows[mode] = (wall, inside, (wall - inside) / args.trials)  # one training at a time: epochs add up
    print(f"{'mode':8s} {'sweep wall s':>12s} {'inside epochs s':>15s} {'per-trial overhead s':>21s}  (goal <= 10 s)")
    for mode, (wall, inside, overhead) in rows.items():
        print(f"{mode:8s} {wall:12.1f} {inside:15.1f} {overhead:21.1f}")
    if len(rows) == 2:
        print(f"ratio ahead / capped per-trial overhead: {rows['ahead'][2] / rows['capped'][2]:.2f}")
    for mode, watched in cpu.items():
        per_trial = {group: s / args.trials for group, s in sorted(watched["cpu"].items())}
        total = sum(per_trial.values())
        wall_per_trial, cores = rows[mode][0] / args.trials, os.cpu_count()
        print(f"{mode}: CPU seconds per trial (all processes while the sweep ran): "
              + ", ".join(f"{group} {s:.1f}" for group, s in per_trial.items()) + f"; total {total:.1f}")
        print(f"{mode}: floors under the wall time per trial ({wall_per_trial:.1f} s): that CPU over {cores} cores "
              f"{total / cores:.1f} s (ratio wall / floor {wall_per_trial / (total / cores):.2f}); "
              f"a Train worker's life {watched['worker_life']:.1f} s")
    session.close()
    ray.shutdown()


if __name__ == "__main__":
    main()

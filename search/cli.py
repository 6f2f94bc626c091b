"""The `visionsweep` command line: parses flags, runs one subcommand, turns bad input into exit status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from visionsweep import __version__
from visionsweep.datasets import DataError
from visionsweep.search import api
from visionsweep.datasets.spec import LAYOUTS, RESIZE_METHODS, DatasetSpec
from visionsweep.search.config import EARLY_STOPPING, SEARCHERS, SearchConfig
from visionsweep.search.flags import Flag, add_fields, given_fields, register
from visionsweep.trainables.config import METRICS, TrainConfig
from visionsweep.datasets.errors import RunFailed

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1  # the command ran, but produced nothing usable (every trial of a sweep failed)


DATA_FLAGS = (
    Flag("layout", "how DATA is laid out", choices=LAYOUTS),
    Flag("train_csv", "labels file in DATA"),
    Flag("id_col", "id column of train.csv (default: the first)"),
    Flag("label_col", "label column of train.csv (default: the only other column)"),
    Flag("train_dir", "training images folder"),
    Flag("valid_dir", "validation class folders"),
    Flag("test_dir", "images to predict"),
    Flag("sample_csv", "sample submission in DATA"),
    Flag("label_regex", r"labels from file names, e.g. '^(?P<label>[a-z]+)\.' (write --label-regex=-... if it "
                        r"starts with -)"),
    Flag("positive_class", "binary tasks: the class whose probability is submitted"),
    Flag("vertical_flip", "orientation-free images (aerial, microscopy): vertical flips and 90-degree turns are valid"),
    Flag("flip", "images with a handedness (digits, text, signs): no horizontal flips in augmentation or TTA, as "
                 "fastai's do_flip=False", negate=True),
    Flag("cache_size", "cached image side in px (default: native, capped at 256)"),
    Flag("resize_method", "how non-square images are cached", choices=RESIZE_METHODS),
    Flag("cache_dir", "decoded-image cache (default $VISIONSWEEP_CACHE or ~/.cache/visionsweep)"),
    Flag("valid_pct", "random stratified holdout when there is no valid/"),
    Flag("seed", "split and training seed; in `sweep` also every trial's training and the TPE sampler"),
)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """DATA and the flags that override every guess about it (DatasetSpec's fields)."""
    g = p.add_argument_group("data layout (each flag overrides a guess)")
    g.add_argument("data", type=Path, help="the competition folder (train.csv + train/, or train/<class>/)")
    register(p, add_fields(g, DatasetSpec, DATA_FLAGS))


def cmd_check(args: argparse.Namespace) -> int:
    api.check(args.data, **given_fields(args))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from visionsweep.search.demo import run_demo

    run_demo(args.out, trials=args.trials, epochs=args.epochs)
    return 0


def add_train_args(p: argparse.ArgumentParser) -> None:
    """TrainConfig's flags (defaults live in the dataclass)."""
    g = p.add_argument_group("training")
    register(p, add_fields(g, TrainConfig, TRAIN_FLAGS))
    g.add_argument("--cpu", action="store_true", help="train on CPUs even when GPUs are available")


TRAIN_FLAGS = (
    Flag("backbone", "timm model name"),
    Flag("max_lr", "peak one-cycle learning rate (see lr-find)"),
    Flag("epochs", "epochs with the whole model trainable"),
    Flag("freeze_epochs", "head-only epochs first, as fastai's fine_tune"),
    Flag("batch_size", "images per worker per step"),
    Flag("image_size", "model input px (default: the backbone's pretrained size)"),
    Flag("aug", "augmentation strength in [0, 1]"),
    Flag("weight_decay", "AdamW decoupled weight decay"),
    Flag("workers", "DDP workers: GPUs, or CPU processes with --cpu"),
    Flag("gpus_per_worker", "train on GPUs, this many per worker, even where the Ray cluster has none yet (an "
                            "autoscaling cluster adds GPU nodes; default: 1 per worker when the cluster has GPUs)"),
    Flag("metric", "validation metric for the best checkpoint; auto: auc for binary tasks, else accuracy",
         choices=METRICS),
    Flag("weights", "weights file (safetensors or state dict) instead of the hub"),
    Flag("pretrained", "random init (no pretrained weights)", negate=True),
)


def cmd_train(args: argparse.Namespace) -> int:
    api.train(args.data, out=args.out, resume=args.resume, overwrite=args.overwrite, cpu=args.cpu,
              **given_fields(args))
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    api.lr_find(args.data, out=args.out, cpu=args.cpu, **given_fields(args))
    return 0


SWEEP_FLAGS = (
    Flag("name", "sweep name (its folder under --storage)"),
    Flag("storage", "local folder, NFS, or s3://bucket/prefix"),
    Flag("trials", "number of trials"),
    Flag("epochs", "epochs per trial, ASHA's max"),
    Flag("backbones", "comma-separated timm names"),
    Flag("workers_per_trial", "DDP workers per trial"),
    Flag("gpus_per_trial", "GPUs per trial; 0.5 lets two small trials share a GPU (default: 1 per worker when "
                           "the cluster has GPUs, else 0)"),
    Flag("metric", "the metric trials are ranked by; auto: auc for binary tasks, else accuracy", choices=METRICS),
    Flag("time_budget", "seconds; no new trials after it"),
    Flag("epoch_budget", "trial-epochs in all: trials keep starting (up to --trials) while one more whole trial "
                         "fits, so the epochs early stopping saves buy more trials"),
    Flag("max_concurrent", "trials at once (default: what the cluster fits)"),
    Flag("top_k", "leaderboard rows to highlight / predict's default ensemble"),
    Flag("searcher", "Optuna sampler (trial 1 is always the fastai recipe)", choices=SEARCHERS),
    Flag("startup_trials", "tpe: random trials (the recipe trials among them) before TPE models the results "
                           "(default: a third of the trials, or of those --epoch-budget pays for, within 3..10)"),
    Flag("early_stopping", "asha: successive halving at rungs 1, 2, 4 .. epochs within the first half of the run, "
                           "the one-cycle restarting at each rung; none: every trial runs all epochs",
         choices=EARLY_STOPPING),
    Flag("search_flip", "test horizontal flips (augmentation and TTA), for images that may have a handedness: the "
                        "recipe trial runs with them and again without them, and the later trials drop them when "
                        "the run without wins validation by more than one standard error (default: tested when "
                        "the data keeps flips and the sweep plans 10 trials or more)"),
    Flag("lr_find", "run fastai's lr_find per backbone first and search each max LR within x/÷4 of its valley"),
    Flag("keep_all", "keep every checkpoint with its optimizer state (default: once the sweep ends, the best "
                     "weights of the --top-k trials; unfinished trials keep all they need to resume)", flag="--keep"),
    Flag("refit", "retrain the top K configurations on train + valid after the search; predict uses them "
                  "(0 = off; with --resume a finished sweep is refit)"),
    Flag("refit_seeds", "models per refit configuration, one per seed (the configuration's, then +1, ...); "
                        "predict averages them (1 = one model; with --resume the missing seeds are refit)"),
    Flag("folds", "K-fold cross-validation over train + valid: a trial's score is the mean over K held-out folds, "
                  "its predictions the K models' ensemble (K times the compute; for small data)"),
    Flag("mlflow", "log every trial to MLflow at this tracking URI (e.g. sqlite:///mlflow.db, http://host:5000); "
                   "needs visionsweep[mlflow]", metavar="URI"),
    Flag("wandb", "log every trial to this Weights & Biases project (WANDB_MODE=offline: into the sweep folder); "
                  "needs visionsweep[wandb]", metavar="PROJECT"),
)
SWEEP_TRAIN_FLAGS = (  # TrainConfig fields fixed for every trial (also `train:` in --config)
    Flag("image_size", "model input px (default: each backbone's pretrained size)"),
    Flag("batch_size", "images per worker per step"),
    Flag("weights", "weights file for a single-backbone sweep"),
    Flag("pretrained", "random init (no pretrained weights)", negate=True),
)


def cmd_sweep(args: argparse.Namespace) -> int:
    api.sweep(args.data, config=args.config, resume=args.resume, cpu=args.cpu, source="flags", **given_fields(args))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    api.predict(args.source, args.data, out=args.out, top_k=args.top_k, tta=args.tta, overwrite=args.overwrite,
                refit=args.refit, **given_fields(args))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    api.report(args.sweep, out=args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionsweep", description=__doc__)
    parser.add_argument("--version", action="version", version=f"visionsweep {__version__}")
    verbose_help = ("also show what Ray prints (worker logs, Tune's reporter); by default it stays in Ray's session "
                    "logs (/tmp/ray/session_latest/logs)")
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    common = argparse.ArgumentParser(add_help=False)  # --verbose after the subcommand too
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", parents=[common], help="validate a DATA folder and print what visionsweep sees")
    add_data_args(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("train", parents=[common], help="one fine-tuning run (Ray Train TorchTrainer, DDP over --workers)")
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--out", type=Path, required=True, help="run directory (refused if it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("lr-find", parents=[common], help="fastai's learning-rate finder: suggested --max-lr and a plot")
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--out", type=Path, default=Path("lr_find.png"), help="plot (default lr_find.png; the curve "
                                                                          "goes to the same name .json)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("sweep", parents=[common], help="search backbone, max LR and augmentation with Ray Tune + Optuna + ASHA")
    add_data_args(p)
    g = p.add_argument_group("sweep (every option can also come from --config; flags win)")
    g.add_argument("--config", type=Path, help="YAML file of sweep options (see README 'Sweep')")
    register(p, add_fields(g, SearchConfig, SWEEP_FLAGS))
    g.add_argument("--resume", action="store_true", help="continue an interrupted sweep of this --name (or refit a finished one)")
    g = p.add_argument_group("fixed for every trial (also train: in --config)")
    register(p, add_fields(g, TrainConfig, SWEEP_TRAIN_FLAGS))
    g.add_argument("--cpu", action="store_true", help="CPU workers even when the cluster has GPUs")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("predict", parents=[common], help="predict test/ with the best trial(s) of a sweep, or a run, into a submission")
    p.add_argument("source", help="a sweep folder (storage/name), a `train` run folder, or a checkpoint folder")
    add_data_args(p)
    p.add_argument("--out", type=Path, default=Path("submission.csv"), help="submission file (default submission.csv)")
    p.add_argument("--top-k", type=int, help="average the top k trials of a sweep (default: the sweep's top_k, "
                                             "3 unless its config set another; 1 is the best trial alone)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: flips (8 dihedral with --vertical-flip; "
                                                      "none with --no-flip or a model trained with it)")
    p.add_argument("--no-refit", dest="refit", action="store_false",
                   help="a sweep: use the trials' own best checkpoints, not their refit models")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", parents=[common], help="leaderboard (CSV + markdown) and plots of a sweep")
    p.add_argument("sweep", help="the sweep folder (storage/name)")
    p.add_argument("--out", type=Path, help="where report/ goes (default: inside the sweep folder)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", parents=[common], help="the whole job on built-in data: digits -> sweep -> submission -> score")
    p.add_argument("--out", type=Path, default=Path("visionsweep-demo"), help="demo folder (default ./visionsweep-demo)")
    p.add_argument("--trials", type=int, default=6, help="sweep trials (default 6)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial (default 4)")
    p.set_defaults(func=cmd_demo)
    return parser


# Ray's own switches for a console a person reads; all read when `ray` is first imported, so main() sets them
# first (only where the user has not). Lines Ray's workers and raylet print that are not the user's business:
# the raylet's worker-pool warnings, Train's per-report INFO line and its PreemptionWatcher notice, placement-group
# cleanup. `--verbose` keeps everything.
QUIET_ENV = {
    "RAY_DEDUP_LOGS_SKIP_REGEX": r"worker processes have been started|Reporting training result|PreemptionWatcher"
                                 r"|PlacementGroupCleaner|RayDeprecationWarning|self\.exclude_resources",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",  # Ray's deprecation notices, here and in its worker processes
    "RAY_DISABLE_WORKER_LOG_PREFIX": "1",  # `train`'s epoch table without "(RayTrainWorker pid=...)" on every row
}


def quiet_console(verbose: bool) -> None:
    import os

    if verbose:
        os.environ["VISIONSWEEP_VERBOSE"] = "1"
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("RAY_ADDRESS"):
        # A private local cluster: token auth is Ray 2.60's default there, and saying so explicitly (before ray
        # is imported: the driver reads the mode then) keeps it on and spares the console Ray's notice about it.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_console(args.verbose)
    try:
        return args.func(args)
    except DataError as err:
        print(f"visionsweep {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunFailed as err:
        print(f"visionsweep {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as err:  # includes search.sweep.SweepInterrupted, whose message says how to resume
        print(f"visionsweep {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `visionsweep` command line: parses flags, runs one subcommand, turns bad input into exit status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from visionsweep import __version__
from visionsweep.datasets import DataError
from visionsweep.search import api
from visionsweep.search.config import EARLY_STOPPING, SEARCHERS
from visionsweep.trainables.config import METRICS
from visionsweep.datasets.errors import RunFailed

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1  # the command ran, but produced nothing usable (every trial of a sweep failed)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Flags that override every guess about the DATA folder (fields of datasets.DatasetSpec)."""
    g = p.add_argument_group("data layout (each flag overrides a guess)")
    g.add_argument("data", type=Path, help="the competition folder (train.csv + train/, or train/<class>/)")
    g.add_argument("--layout", choices=["auto", "csv", "folders", "filenames"])
    g.add_argument("--train-csv", help="labels file in DATA (default train.csv)")
    g.add_argument("--id-col", help="id column of train.csv (default: the first)")
    g.add_argument("--label-col", help="label column of train.csv (default: the only other column)")
    g.add_argument("--train-dir", help="training images folder (default train)")
    g.add_argument("--valid-dir", help="validation class folders (default valid)")
    g.add_argument("--test-dir", help="images to predict (default test)")
    g.add_argument("--sample-csv", help="sample submission in DATA (default sample_submission.csv)")
    g.add_argument("--label-regex", help=r"labels from file names, e.g. '^(?P<label>[a-z]+)\.' (write --label-regex=-... if it starts with -)")
    g.add_argument("--positive-class", help="binary tasks: the class whose probability is submitted")
    g.add_argument("--vertical-flip", action="store_true", default=None,
                   help="orientation-free images (aerial, microscopy): vertical flips and 90-degree turns are valid")
    g.add_argument("--cache-size", type=int, help="cached image side in px (default: native, capped at 256)")
    g.add_argument("--resize-method", choices=["crop", "squish"], help="how non-square images are cached")
    g.add_argument("--cache-dir", type=Path, help="decoded-image cache (default $VISIONSWEEP_CACHE or "
                                                  "~/.cache/visionsweep)")
    g.add_argument("--valid-pct", type=float, help="random stratified holdout when there is no valid/ (default 0.2)")
    g.add_argument("--seed", type=int, help="split and training seed (default 42); in `sweep` also every trial's "
                                            "training and the TPE sampler")


_DATA_FLAGS = {"data": "root", "layout": "layout", "train_csv": "train_csv", "id_col": "id_col",
               "label_col": "label_col", "train_dir": "train_dir", "valid_dir": "valid_dir", "test_dir": "test_dir",
               "sample_csv": "sample_csv", "label_regex": "label_regex", "positive_class": "positive_class",
               "vertical_flip": "vertical_flip", "cache_size": "cache_size", "resize_method": "resize_method",
               "cache_dir": "cache_dir", "valid_pct": "valid_pct", "seed": "seed"}


def data_options(args: argparse.Namespace) -> dict:
    """The data flags that were given, as DatasetSpec field names (the API's keyword arguments)."""
    return {field: getattr(args, flag) for flag, field in _DATA_FLAGS.items()
            if flag != "data" and getattr(args, flag, None) is not None}


def cmd_check(args: argparse.Namespace) -> int:
    api.check(args.data, **data_options(args))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from visionsweep.search.demo import run_demo

    run_demo(args.out, trials=args.trials, epochs=args.epochs)
    return 0


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Flags of trainables.TrainConfig (defaults live in the dataclass)."""
    g = p.add_argument_group("training")
    g.add_argument("--backbone", help="timm model name (default resnet18)")
    g.add_argument("--max-lr", type=float, help="peak one-cycle learning rate (default 3e-3; see lr-find)")
    g.add_argument("--epochs", type=int, help="epochs with the whole model trainable (default 5)")
    g.add_argument("--freeze-epochs", type=int, help="head-only epochs first, as fastai's fine_tune (default 0)")
    g.add_argument("--batch-size", type=int, help="images per worker per step (default 64)")
    g.add_argument("--image-size", type=int, help="model input px (default: the backbone's pretrained size)")
    g.add_argument("--aug", type=float, help="augmentation strength in [0, 1] (default 0.5)")
    g.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay (default 0.01)")
    g.add_argument("--workers", type=int, help="DDP workers: GPUs, or CPU processes with --cpu (default 1)")
    g.add_argument("--metric", choices=METRICS,
                   help="validation metric for the best checkpoint (default: auc for binary, else accuracy)")
    g.add_argument("--weights", help="weights file (safetensors or state dict) instead of the hub")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None,
                   help="random init (no pretrained weights)")
    g.add_argument("--cpu", action="store_true", help="train on CPUs even when GPUs are available")


_TRAIN_FLAGS = ("backbone", "max_lr", "epochs", "freeze_epochs", "batch_size", "image_size", "aug", "weight_decay",
                "workers", "metric", "weights", "pretrained", "seed")


def train_options(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in _TRAIN_FLAGS if k != "seed" and getattr(args, k, None) is not None}


def cmd_train(args: argparse.Namespace) -> int:
    api.train(args.data, out=args.out, resume=args.resume, overwrite=args.overwrite, cpu=args.cpu,
              **data_options(args), **train_options(args))
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    api.lr_find(args.data, out=args.out, cpu=args.cpu, **data_options(args), **train_options(args))
    return 0


_SWEEP_FLAGS = {"name": "name", "storage": "storage", "trials": "trials", "epochs": "epochs",
                "workers_per_trial": "workers_per_trial", "gpus_per_trial": "gpus_per_trial", "metric": "metric",
                "time_budget": "time_budget", "max_concurrent": "max_concurrent", "top_k": "top_k",
                "searcher": "searcher", "early_stopping": "early_stopping", "lr_find": "lr_find",
                "keep_all": "keep_all", "refit": "refit", "mlflow": "mlflow", "wandb": "wandb"}


def sweep_options(args: argparse.Namespace) -> dict:
    """Search flags, fixed training flags and data flags, as the API's keyword arguments (flags win over
    --config's YAML there)."""
    options = {key: getattr(args, flag) for flag, key in _SWEEP_FLAGS.items() if getattr(args, flag, None) is not None}
    if args.backbones:
        options["backbones"] = [b.strip() for b in args.backbones.split(",") if b.strip()]
    options.update({k: getattr(args, k) for k in ("image_size", "batch_size", "pretrained", "weights")
                    if getattr(args, k, None) is not None})
    return {**options, **data_options(args)}


def cmd_sweep(args: argparse.Namespace) -> int:
    api.sweep(args.data, config=args.config, resume=args.resume, cpu=args.cpu, source="flags", **sweep_options(args))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    api.predict(args.source, args.data, out=args.out, top_k=args.top_k, tta=args.tta, overwrite=args.overwrite,
                refit=args.refit, **data_options(args))
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
    g.add_argument("--name", help="sweep name (its folder under --storage)")
    g.add_argument("--storage", help="local folder, NFS, or s3://bucket/prefix (default ./sweeps)")
    g.add_argument("--trials", type=int, help="number of trials (default 20)")
    g.add_argument("--epochs", type=int, help="epochs per trial, ASHA's max (default 5)")
    g.add_argument("--backbones", help="comma-separated timm names (default resnet18,efficientnet_b0,convnext_nano)")
    g.add_argument("--workers-per-trial", type=int, help="DDP workers per trial (default 1)")
    g.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; 0.5 lets two small trials share a GPU")
    g.add_argument("--metric", choices=METRICS)
    g.add_argument("--time-budget", type=float, help="seconds; no new trials after it")
    g.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster fits)")
    g.add_argument("--top-k", type=int, help="leaderboard rows to highlight / predict's default ensemble")
    g.add_argument("--searcher", choices=SEARCHERS, help="Optuna sampler (default tpe; trial 1 is always "
                                                                 "the fastai recipe)")
    g.add_argument("--early-stopping", choices=EARLY_STOPPING,
                   help="asha (default): successive halving at rungs 1, 2, 4 .. epochs, the one-cycle restarting at "
                        "each rung; none: every trial runs all epochs")
    g.add_argument("--lr-find", action="store_true", default=None,
                   help="run fastai's lr_find per backbone first and search each max LR within x/÷4 of its valley")
    g.add_argument("--keep", dest="keep_all", action="store_true", default=None,
                   help="keep every checkpoint with its optimizer state (default: once the sweep ends, the best "
                        "weights of the --top-k trials; unfinished trials keep all they need to resume)")
    g.add_argument("--refit", type=int, help="retrain the top K configurations on train + valid after the search; "
                                             "predict uses them (default 1, 0 = off; with --resume a finished sweep "
                                             "is refit)")
    g.add_argument("--mlflow", metavar="URI", help="log every trial to MLflow at this tracking URI (e.g. "
                                                   "sqlite:///mlflow.db, http://host:5000); needs visionsweep[mlflow]")
    g.add_argument("--wandb", metavar="PROJECT", help="log every trial to this Weights & Biases project "
                                                      "(WANDB_MODE=offline: into the sweep folder); needs visionsweep[wandb]")
    g.add_argument("--resume", action="store_true", help="continue an interrupted sweep of this --name (or refit a finished one)")
    g = p.add_argument_group("fixed for every trial (also train: in --config)")
    g.add_argument("--image-size", type=int, help="model input px (default: each backbone's pretrained size)")
    g.add_argument("--batch-size", type=int, help="images per worker per step (default 64)")
    g.add_argument("--weights", help="weights file for a single-backbone sweep")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None)
    g.add_argument("--cpu", action="store_true", help="CPU workers even when the cluster has GPUs")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("predict", parents=[common], help="predict test/ with the best trial(s) of a sweep, or a run, into a submission")
    p.add_argument("source", help="a sweep folder (storage/name), a `train` run folder, or a checkpoint folder")
    add_data_args(p)
    p.add_argument("--out", type=Path, default=Path("submission.csv"), help="submission file (default submission.csv)")
    p.add_argument("--top-k", type=int, help="average the top k trials of a sweep (default: the sweep's top_k, "
                                             "3 unless its config set another; 1 is the best trial alone)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: flips (8 dihedral with --vertical-flip)")
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

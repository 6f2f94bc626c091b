"""The `visionsweep` command line: parses flags, runs one subcommand, turns bad input into exit status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from visionsweep.datasets import DataError, spec_from_dict
from visionsweep.datasets.errors import RunFailed
from visionsweep.datasets.ownership import check_outside

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


def spec_from_args(args: argparse.Namespace, base: dict | None = None):
    """DatasetSpec from flags; flags that were given win over `base` (e.g. a YAML config's `data:` section)."""
    values = dict(base or {})
    for flag, field in _DATA_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[field] = value
    return spec_from_dict(values)


def cmd_check(args: argparse.Namespace) -> int:
    from visionsweep.datasets.load import format_summary, load_dataset

    data = load_dataset(spec_from_args(args))
    print(format_summary(data.summary))
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
    g.add_argument("--metric", choices=["auto", "accuracy", "auc", "log_loss", "valid_loss", "error_rate"],
                   help="validation metric for the best checkpoint (default: auc for binary, else accuracy)")
    g.add_argument("--weights", help="weights file (safetensors or state dict) instead of the hub")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None,
                   help="random init (no pretrained weights)")
    g.add_argument("--cpu", action="store_true", help="train on CPUs even when GPUs are available")


_TRAIN_FLAGS = ("backbone", "max_lr", "epochs", "freeze_epochs", "batch_size", "image_size", "aug", "weight_decay",
                "workers", "metric", "weights", "pretrained", "seed")


def train_config_from_args(args: argparse.Namespace, base: dict | None = None):
    from visionsweep.trainables.config import config_from_dict

    values = dict(base or {})
    values.update({k: getattr(args, k) for k in _TRAIN_FLAGS if getattr(args, k, None) is not None})
    if "use_gpu" not in values:
        values["use_gpu"] = not args.cpu and _gpus_available()
    return config_from_dict(values)


def _gpus_available() -> bool:
    import os

    if os.environ.get("RAY_ADDRESS"):  # a cluster: its workers may have GPUs the driver lacks
        from visionsweep.trainables.ray_train import ensure_ray

        return ensure_ray().get("GPU", 0) > 0
    import torch

    return torch.cuda.is_available()


def cmd_train(args: argparse.Namespace) -> int:
    from visionsweep.datasets.load import load_dataset
    from visionsweep.trainables.ray_train import run_training

    spec = spec_from_args(args)
    check_outside(args.out, spec.root, "--out")
    cfg = train_config_from_args(args)
    data = load_dataset(spec)
    run_training(data=data, cfg=cfg, out_dir=args.out, valid_pct=spec.valid_pct, split_seed=spec.seed,
                 resume=args.resume, overwrite=args.overwrite)
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from visionsweep.datasets.load import load_dataset
    from visionsweep.trainables.ray_train import run_lr_find_job

    spec = spec_from_args(args)
    check_outside(args.out, spec.root, "--out")
    cfg = train_config_from_args(args)
    run_lr_find_job(data=load_dataset(spec), cfg=cfg, valid_pct=spec.valid_pct, split_seed=spec.seed,
                    out_png=args.out)
    return 0


_SWEEP_FLAGS = {"name": "name", "storage": "storage", "trials": "trials", "epochs": "epochs",
                "workers_per_trial": "workers_per_trial", "gpus_per_trial": "gpus_per_trial", "metric": "metric",
                "time_budget": "time_budget", "max_concurrent": "max_concurrent", "top_k": "top_k"}


def search_config_from_args(args: argparse.Namespace):
    """YAML first, then flags on top (flags win); the YAML's data: section feeds the DatasetSpec."""
    from visionsweep.search.config import load_yaml, search_config_from_dict

    values = load_yaml(args.config) if args.config else {}
    for flag, key in _SWEEP_FLAGS.items():
        if getattr(args, flag, None) is not None:
            values[key] = getattr(args, flag)
    if args.backbones:
        values["backbones"] = [b.strip() for b in args.backbones.split(",") if b.strip()]
    fixed = {k: getattr(args, k) for k in ("image_size", "batch_size", "pretrained", "weights")
             if getattr(args, k, None) is not None}
    if args.seed is not None:  # one seed for the whole sweep: split (below), every trial's training, the sampler
        values["seed"] = args.seed
        fixed["seed"] = args.seed
    if fixed:
        values["train"] = {**(values.get("train") or {}), **fixed}
    if args.cpu:
        if args.gpus_per_trial:
            raise DataError(f"--cpu and --gpus-per-trial {args.gpus_per_trial:g} contradict each other; drop one")
        values["gpus_per_trial"] = 0
    source = f"--config {args.config}" if args.config else "flags"
    sc = search_config_from_dict(values, source=source)
    spec = spec_from_args(args, base=sc.data)
    return sc, spec


def cmd_sweep(args: argparse.Namespace) -> int:
    from visionsweep.datasets.load import load_dataset
    from visionsweep.search.sweep import run_sweep

    sc, spec = search_config_from_args(args)
    check_outside(sc.storage, spec.root, "--storage")
    data = load_dataset(spec)
    run_sweep(data=data, sc=sc, spec=spec, resume=args.resume)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from visionsweep.datasets.load import load_dataset
    from visionsweep.search.predict import default_top_k, predict, sweep_spec

    spec = spec_from_args(args, base=sweep_spec(str(args.source)))
    top_k = args.top_k if args.top_k is not None else default_top_k(str(args.source))
    if top_k < 1:
        raise DataError(f"--top-k must be >= 1, got {top_k}")
    check_outside(args.out, spec.root, "--out")
    predict(source=str(args.source), data=load_dataset(spec), out=args.out, top_k=top_k, tta=args.tta,
            overwrite=args.overwrite)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from visionsweep.search.report import report

    report(str(args.sweep), out=args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionsweep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a DATA folder and print what visionsweep sees")
    add_data_args(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("train", help="one fine-tuning run (Ray Train TorchTrainer, DDP over --workers)")
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--out", type=Path, required=True, help="run directory (refused if it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("lr-find", help="fastai's learning-rate finder: suggested --max-lr and a plot")
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--out", type=Path, default=Path("lr_find.png"), help="plot (default lr_find.png; the curve "
                                                                          "goes to the same name .json)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("sweep", help="search backbone, max LR and augmentation with Ray Tune + Optuna + ASHA")
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
    g.add_argument("--metric", choices=["auto", "accuracy", "auc", "log_loss", "valid_loss", "error_rate"])
    g.add_argument("--time-budget", type=float, help="seconds; no new trials after it")
    g.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster fits)")
    g.add_argument("--top-k", type=int, help="leaderboard rows to highlight / predict's default ensemble")
    g.add_argument("--resume", action="store_true", help="continue an interrupted sweep of this --name")
    g = p.add_argument_group("fixed for every trial (also train: in --config)")
    g.add_argument("--image-size", type=int, help="model input px (default: each backbone's pretrained size)")
    g.add_argument("--batch-size", type=int, help="images per worker per step (default 64)")
    g.add_argument("--weights", help="weights file for a single-backbone sweep")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None)
    g.add_argument("--cpu", action="store_true", help="CPU workers even when the cluster has GPUs")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("predict", help="predict test/ with the best trial(s) of a sweep, or a run, into a submission")
    p.add_argument("source", help="a sweep folder (storage/name), a `train` run folder, or a checkpoint folder")
    add_data_args(p)
    p.add_argument("--out", type=Path, default=Path("submission.csv"), help="submission file (default submission.csv)")
    p.add_argument("--top-k", type=int, help="average the top k trials of a sweep (default: the sweep's top_k, "
                                             "3 unless its config set another; 1 is the best trial alone)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: flips (8 dihedral with --vertical-flip)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="leaderboard (CSV + markdown) and plots of a sweep")
    p.add_argument("sweep", help="the sweep folder (storage/name)")
    p.add_argument("--out", type=Path, help="where report/ goes (default: inside the sweep folder)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the whole job on built-in data: digits -> sweep -> submission -> score")
    p.add_argument("--out", type=Path, default=Path("visionsweep-demo"), help="demo folder (default ./visionsweep-demo)")
    p.add_argument("--trials", type=int, default=6, help="sweep trials (default 6)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial (default 4)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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

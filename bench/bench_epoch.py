"""Seconds per epoch on a cactus-size set: visionsweep's fit() vs a bare timm + PyTorch epoch, same model, batch,
precision and data, with and without torch.compile.

Data: --n images (default 17,500, Aerial Cactus's train set) of --src px (32) uint8 in memory, 20 % held out as in
a sweep (14,000 train / 3,500 valid), 2 classes, upscaled on the device to --size px (128). Content is random
(timing does not depend on it). Model: --backbone (resnet18) from random init, batch --batch (64, visionsweep's
default); on CUDA bf16 autocast + channels_last on both sides.

  visionsweep  trainables.loop.fit for --epochs epochs with its own pieces (worker.build_model, Batches,
               make_optimizer, the one-cycle schedule, per-sample augmentation at --aug), no checkpoints; an
               epoch's seconds are fit's own `time_s`: training + validation over the whole valid set.
  bare         bench_step.Bare's loop over the same epoch (gather by index, bilinear resize, normalise, AdamW, no
               augmentation, no schedule) + an eval pass over the valid set (logits, accuracy); timed with syncs.

Epoch 1 (warm-up: cuDNN autotuning, compile) is shown apart; the figure is the median of epochs 2..N, and the
ratio is bare seconds / visionsweep seconds (visionsweep's share of the bare loop's speed).

    python bench/bench_epoch.py [--epochs 3] [--compile off|on|both] [--aug 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_step import Bare, _mark, print_header  # noqa: E402


def make_data(n: int, src: int, *, valid_pct: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, src, src, 3), dtype=np.uint8)
    y = (rng.random(n) < 0.75).astype(np.int64)  # Aerial Cactus: about 3 in 4 images have a cactus
    n_valid = int(n * valid_pct)
    return {"x_train": x[n_valid:], "y_train": y[n_valid:], "x_valid": x[:n_valid], "y_valid": y[:n_valid]}


def visionsweep_epochs(arrays, *, args, device, compiled: bool) -> list[float]:
    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.loop import Batches, fit
    from visionsweep.trainables.worker import DataInfo, build_model

    cfg = TrainConfig(backbone=args.backbone, pretrained=False, image_size=args.size, aug=args.aug,
                      batch_size=args.batch, epochs=args.epochs, use_gpu=device.type == "cuda")
    info = DataInfo(classes=["0", "1"], positive_class="1", vertical_flip=True)
    model, task, _, _ = build_model(cfg, info, device=device, log=lambda m: None)
    model = model.to(device)
    if compiled:
        model.compile()
    train, valid = Batches(arrays["x_train"], arrays["y_train"], device), Batches(arrays["x_valid"], arrays["y_valid"], device)
    history = fit(model, cfg=cfg, task=task, train=train, valid=valid, device=device,
                  report=lambda e, m, s: None, write_checkpoint=lambda *a, **k: None, log=lambda m: None)
    return [h["time_s"] for h in history]


def bare_epochs(arrays, *, args, device, compiled: bool) -> list[float]:
    from visionsweep.trainables.loop import train_shard

    bare = Bare(args.backbone, arrays["x_train"], arrays["y_train"], size=args.size, device=device, num_classes=2)
    if compiled:
        bare.model.compile()
    xv, yv = torch.from_numpy(arrays["x_valid"]).to(device), torch.from_numpy(arrays["y_valid"]).to(device)
    n, batch, cuda = len(arrays["y_train"]), args.batch, device.type == "cuda"
    out = []
    for epoch in range(1, args.epochs + 1):
        t = _mark(device)
        order = train_shard(n, rank=0, world=1, seed=42, epoch=epoch)
        for _ in bare.steps(order, batch=batch, n=n // batch, seg=epoch):
            pass
        bare.model.eval()
        correct = torch.zeros((), device=device)
        with torch.no_grad():
            for s in range(0, len(yv), max(batch, 128)):
                x = xv[s:s + max(batch, 128)].permute(0, 3, 1, 2).float().div_(255.0)
                x = F.interpolate(x, size=(args.size, args.size), mode="bilinear", align_corners=False)
                x = (x - bare.mean) / bare.std
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    logits = bare.model(x)
                correct += (logits.argmax(1) == yv[s:s + max(batch, 128)]).sum()
        _ = float(correct) / len(yv)
        out.append(_mark(device) - t)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--n", type=int, default=17_500, help="images, train + valid (default 17,500)")
    p.add_argument("--src", type=int, default=32, help="stored image side, px (default 32)")
    p.add_argument("--size", type=int, default=128, help="model input side, px (default 128)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64, visionsweep's default)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per variant (>= 2; default 3)")
    p.add_argument("--aug", type=float, default=0.5, help="visionsweep's augmentation strength (default 0.5)")
    p.add_argument("--compile", choices=("off", "on", "both"), default="off")
    p.add_argument("--goal", type=float, default=3.0, help="seconds per epoch to meet (default 3)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2 (epoch 1 is warm-up)")
    device = torch.device(args.device)
    print_header("visionsweep epoch benchmark: fit() vs a bare timm + PyTorch epoch on a cactus-size set",
                 device=device, runs=f"{args.epochs} epochs per variant, median of epochs 2..{args.epochs}")
    arrays = make_data(args.n, args.src)
    print(f"{args.backbone}: {len(arrays['y_train'])} train / {len(arrays['y_valid'])} valid images, {args.src} px "
          f"-> {args.size} px, batch {args.batch}, visionsweep aug {args.aug:g}")
    for compiled in {"off": (False,), "on": (True,), "both": (False, True)}[args.compile]:
        times = {"visionsweep": visionsweep_epochs(arrays, args=args, device=device, compiled=compiled),
                 "bare": bare_epochs(arrays, args=args, device=device, compiled=compiled)}
        if device.type == "cuda":
            torch.cuda.empty_cache()
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        ratio = med["bare"] / med["visionsweep"]
        mode = "torch.compile" if compiled else "eager"
        for k, v in times.items():
            print(f"  {mode:<13} {k:<12} epoch 1 {v[0]:6.2f} s, then " + ", ".join(f"{t:.2f}" for t in v[1:])
                  + f" s (median {med[k]:.2f} s, {len(arrays['y_train']) / med[k]:,.0f} train img/s incl. validation)")
        verdict = "met" if med["visionsweep"] <= args.goal else "NOT met"
        print(f"  {mode}: visionsweep {med['visionsweep']:.2f} s/epoch, bare {med['bare']:.2f} s/epoch, ratio (bare s / "
              f"visionsweep s) {ratio:.3f}; goal <= {args.goal:g} s: {verdict}")
        print("GPU_CHECK_RESULT " + json.dumps({
            "bench": "epoch", "backbone": args.backbone, "n_train": len(arrays["y_train"]),
            "n_valid": len(arrays["y_valid"]), "src": args.src, "size": args.size, "batch": args.batch,
            "aug": args.aug, "compile": compiled, "epoch_s": times, "median_s": med, "ratio": ratio}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

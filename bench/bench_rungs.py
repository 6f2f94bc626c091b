"""Does a trial's metric at an early-stopping rung predict where it ends? One-cycle vs rung-aligned restarts.

For a grid of configurations (max LR x augmentation x backbone) on real data, each trained to full length under
each schedule, in-process through the real worker (trainables.worker.run_worker, no Ray):
  one-cycle      one cycle over all epochs (fastai's fit_one_cycle; what the sweep did before)
  restarts@R     the one-cycle restarts after each epoch in R (the ASHA rungs), so every rung sees an annealed model
it prints, per schedule, the Spearman rank correlation between the validation metric at each rung and the final
metric across configurations, whether the rung's top half holds the final best, and the final metric (mean and
best over configurations): a schedule fit for successive halving ranks trials at rung 1 as they end, and costs
little at full length.

  python bench/bench_rungs.py --data digits --epochs 5 --schedules none,1-2-4,1-3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

import numpy as np
import torch
from scipy.stats import spearmanr


def digits_arrays(size: int, seed: int = 0) -> tuple[dict, list[str]]:
    from sklearn.datasets import load_digits

    from visionsweep.datasets.split import stratified_split

    d = load_digits()
    img = torch.from_numpy(d.images).float()[:, None] / 16
    img = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    x = (img.clamp(0, 1) * 255).byte().repeat(1, 3, 1, 1).permute(0, 2, 3, 1).contiguous().numpy()
    y = d.target.astype(np.int64)
    tr, va = stratified_split(y, valid_pct=0.2, seed=seed)
    return {"x_train": x[tr], "y_train": y[tr], "x_valid": x[va], "y_valid": y[va]}, [str(i) for i in range(10)]


def folder_arrays(root: str, size: int) -> tuple[dict, list[str]]:
    """Any DATA folder visionsweep reads (e.g. one built by bench/search_data.py), split as a sweep splits it."""
    from pathlib import Path

    from visionsweep.datasets.load import load_dataset
    from visionsweep.datasets.spec import DatasetSpec
    from visionsweep.datasets.split import train_valid_arrays

    spec = DatasetSpec(root=Path(root))
    data = load_dataset(spec)
    return train_valid_arrays(data, valid_pct=spec.valid_pct, seed=spec.seed), list(data.classes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="'digits' or a DATA folder")
    p.add_argument("--source-px", type=int, default=32)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--schedules", default="none,1-2-4,1-3", help="comma list: none or rung epochs joined by '-'")
    p.add_argument("--lrs", default="1e-3,3e-3,1e-2,3e-2")
    p.add_argument("--augs", default="0.2,0.6")
    p.add_argument("--backbones", default="resnet18")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()

    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.worker import DataInfo, run_worker

    torch.set_num_threads(max(1, torch.get_num_threads()))
    arrays, classes = (digits_arrays(args.source_px) if args.data == "digits" else folder_arrays(args.data, args.source_px))
    binary = len(classes) == 2
    metric = "auc" if binary else "accuracy"
    info = DataInfo(classes=classes, positive_class=classes[-1] if binary else None, vertical_flip=False)
    schedules = [() if s == "none" else tuple(int(e) for e in s.split("-")) for s in args.schedules.split(",")]
    configs = list(itertools.product(args.backbones.split(","), [float(v) for v in args.lrs.split(",")],
                                     [float(v) for v in args.augs.split(",")]))
    print(f"# {args.data}: train {len(arrays['y_train'])} / valid {len(arrays['y_valid'])}, {len(classes)} classes, "
          f"{metric}; {len(configs)} configs x {len(schedules)} schedules x {args.epochs} epochs; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    curves: dict[tuple, list[float]] = {}
    t0 = time.perf_counter()
    for sched in schedules:
        for backbone, lr, aug in configs:
            cfg = TrainConfig(backbone=backbone, max_lr=lr, aug=aug, epochs=args.epochs, batch_size=args.batch,
                              image_size=args.image_size, pretrained=False, restarts=sched, metric=metric, seed=0)
            hist = run_worker(cfg, info, arrays, device=torch.device("cpu"), prepare_model=lambda m: m,
                              report=lambda *a: None, log=lambda m: None)
            curves[(sched, backbone, lr, aug)] = [h[metric] for h in hist]
            print(f"  {'-'.join(map(str, sched)) or 'one-cycle':>9} {backbone} lr {lr:g} aug {aug:g}: "
                  + " ".join(f"{v:.3f}" for v in curves[(sched, backbone, lr, aug)])
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n| schedule | rho(epoch 1, final) | rho(epoch 2, final) | best final in epoch-1 top half | final mean | "
          f"final best |\n|---|---|---|---|---|---|")
    for sched in schedules:
        rows = [curves[(sched, *c)] for c in configs]
        final = [r[-1] for r in rows]
        rho = [spearmanr([r[e] for r in rows], final).statistic for e in (0, 1)]
        top = sorted(range(len(rows)), key=lambda i: -rows[i][0])[: max(1, len(rows) // 2)]
        kept = max(final[i] for i in top) == max(final)
        print(f"| {'restarts@' + '-'.join(map(str, sched)) if sched else 'one-cycle'} | {rho[0]:.2f} | {rho[1]:.2f} "
              f"| {'yes' if kept else 'no'} | {statistics.mean(final):.3f} | {max(final):.3f} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

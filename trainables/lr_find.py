"""fastai's lr_find: exponentially rising LR over ~100 steps, smoothed loss, suggestions; weights restored."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from visionsweep.trainables.loop import Batches, Dist, Runner, make_optimizer, train_shard, unwrap
from visionsweep.trainables.plots import smooth

SKIP_START, SKIP_END = 10, 5  # fastai ignores the noisy first and the diverging last points


def lr_find(runner: Runner, train: Batches, *, cfg, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_it: int = 100, diverge: float = 4.0) -> dict:
    """Every DDP rank steps; each step's loss is averaged across ranks, so all ranks stop together.
    The model's weights and buffers are restored afterwards."""
    dist = Dist()
    net = unwrap(runner.model)
    saved = copy.deepcopy(net.state_dict())
    opt = make_optimizer(runner.model, cfg)
    runner.model.train()
    shard = train_shard(len(train), rank=dist.rank, world=dist.world, seed=cfg.seed, epoch=0)
    per_step = min(cfg.batch_size, len(shard))
    gen = torch.Generator(device=runner.device).manual_seed(cfg.seed + dist.rank)
    lrs, raw, best = [], [], math.inf
    try:
        for i in range(num_it):
            lr = start_lr * (end_lr / start_lr) ** (i / (num_it - 1))
            for g in opt.param_groups:
                g["lr"] = lr
            s = (i * per_step) % max(1, len(shard) - per_step + 1)
            xb, yb = train.get(shard[s:s + per_step])
            loss = runner.step(opt, xb, yb, strength=cfg.aug, gen=gen)
            value = dist.mean(loss.float()).item()
            lrs.append(lr)
            raw.append(value)
            smoothed = smooth(raw)[-1]
            best = min(best, smoothed)
            if not math.isfinite(smoothed) or (i > SKIP_START and smoothed > diverge * best):
                break
    finally:
        net.load_state_dict(saved)
    losses = smooth(raw).tolist()
    return {"lrs": lrs, "losses": losses, "suggestions": suggestions(lrs, losses)}


def suggestions(lrs: list[float], losses: list[float]) -> dict:
    """fastai's 'valley' (the longest descent, two thirds down it), 'steep' (steepest slope) and 'minimum'
    (the loss minimum's LR / 10), each with the loss there."""
    lo, hi = (SKIP_START, len(lrs) - SKIP_END) if len(lrs) > SKIP_START + SKIP_END + 5 else (0, len(lrs))
    x, y = np.array(lrs[lo:hi]), np.array(losses[lo:hi])
    out = {}
    n = len(y)
    lds, max_start, max_end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if y[i] < y[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    v = max(0, min(n - 1, max_start + int(sections) + int(sections / 2)))
    out["valley"] = {"lr": float(x[v]), "loss": float(y[v])}
    if n > 2:
        grads = np.gradient(y, np.log(x))
        s = int(np.argmin(grads))
        out["steep"] = {"lr": float(x[s]), "loss": float(y[s])}
    m = int(np.argmin(y))
    lr_min = float(x[m]) / 10
    out["minimum"] = {"lr": lr_min, "loss": float(np.interp(np.log(lr_min), np.log(x), y))}
    return out

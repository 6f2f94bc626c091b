"""fastai's one-cycle schedule as a pure function of the step: cosine warm-up then cosine annealing."""

from __future__ import annotations

import math


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def one_cycle(step: int, total_steps: int, *, max_lr: float, pct_start: float = 0.25, div: float = 25.0,
              final_div: float = 1e5, mom_max: float = 0.95, mom_min: float = 0.85) -> tuple[float, float]:
    """(lr, beta1) at `step` in [0, total_steps): lr rises max_lr/div -> max_lr over pct_start of the
    steps, then falls to max_lr/final_div; beta1 mirrors it, 0.95 -> 0.85 -> 0.95 (fastai's fit_one_cycle)."""
    if total_steps < 1 or not 0 <= step < total_steps:
        raise ValueError(f"step {step} outside [0, {total_steps})")
    warm = max(1, round(total_steps * pct_start))
    if step < warm:
        pct = step / warm
        return _cos(max_lr / div, max_lr, pct), _cos(mom_max, mom_min, pct)
    rest = max(1, total_steps - warm - 1)
    pct = min(1.0, (step - warm) / rest)
    return _cos(max_lr, max_lr / final_div, pct), _cos(mom_min, mom_max, pct)


def cycle_bounds(epochs: int, restarts=()) -> list[int]:
    """[0, b1, ..., epochs]: the epoch boundaries of the one-cycles in a run of `epochs` epochs that restarts
    its one-cycle after each epoch number in `restarts` (those outside (0, epochs) are ignored).

    Early stopping compares trials at rungs; a one-cycle judged mid-cycle (warm-up, peak LR, BatchNorm
    statistics of a fast-moving model) says little about where it ends. With a restart at every rung, each
    rung sees an annealed model (SGDR-style warm restarts aligned to successive halving)."""
    inner = sorted({int(r) for r in restarts if 0 < int(r) < epochs})
    return [0, *inner, epochs]


def cycle_at(epoch_index: int, bounds: list[int]) -> tuple[int, int]:
    """(first epoch, epochs) of the cycle holding 0-based `epoch_index`."""
    for lo, hi in zip(bounds, bounds[1:]):
        if lo <= epoch_index < hi:
            return lo, hi - lo
    raise ValueError(f"epoch index {epoch_index} outside {bounds}")

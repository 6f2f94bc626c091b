"""Plots saved as PNG files (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def smooth(values, beta: float = 0.98) -> np.ndarray:
    """fastai's debiased exponential moving average."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** i))
    return np.array(out)


def plot_learning_curve(meta: dict, path: Path) -> None:
    """Train loss per step (smoothed), valid loss and the metric per epoch."""
    history, steps = meta["history"], meta["step_losses"]
    per_epoch = len(steps) // max(1, len(history))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(steps) + 1), smooth(steps), label="train loss (smoothed)", alpha=0.8)
    ends = [per_epoch * h["epoch"] for h in history]
    ax.plot(ends, [h["valid_loss"] for h in history], "o-", label="valid loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    metric = meta["metric"]
    ax2 = ax.twinx()
    ax2.plot(ends, [h.get(metric, np.nan) for h in history], "s--", color="tab:green", label=metric)
    ax2.set_ylabel(metric)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best")
    ax.set_title(f"{meta['backbone']}: {metric} {history[-1].get(metric, float('nan')):.4f} after epoch "
                 f"{history[-1]['epoch']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_lr_find(result: dict, path: Path) -> None:
    """Loss vs learning rate (log scale) with the suggestions marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(result["lrs"], result["losses"])
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    markers = {"valley": "o", "steep": "^", "minimum": "s"}
    for name, s in result["suggestions"].items():
        ax.plot([s["lr"]], [s["loss"]], markers.get(name, "x"), markersize=9, label=f"{name}: {s['lr']:.2e}")
    ax.legend()
    ax.set_title("lr_find")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""Plots saved as PNG files. Built on Figure objects, never pyplot: no display needed, and importing this
module leaves a notebook's backend (inline plots) as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from visionsweep.trainables.checkpoint import CheckpointMeta


def new_axes(figsize: tuple[float, float] = (7, 4)):
    """(figure, axes) of a figure no GUI knows about; save it with save()."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)  # a PNG through Agg, whatever backend is in use


def smooth(values, beta: float = 0.98) -> np.ndarray:
    """fastai's debiased exponential moving average."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** i))
    return np.array(out)


def plot_learning_curve(meta: CheckpointMeta, path: Path) -> None:
    """Train loss per step (smoothed), valid loss and the metric per epoch."""
    history, steps = meta.history, meta.step_losses
    per_epoch = len(steps) // max(1, len(history))
    fig, ax = new_axes()
    ax.plot(np.arange(1, len(steps) + 1), smooth(steps), label="train loss (smoothed)", alpha=0.8)
    ends = [per_epoch * h["epoch"] for h in history]
    ax.plot(ends, [h["valid_loss"] for h in history], "o-", label="valid loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    metric = meta.metric
    ax2 = ax.twinx()
    ax2.plot(ends, [h.get(metric, np.nan) for h in history], "s--", color="tab:green", label=metric)
    ax2.set_ylabel(metric)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best")
    ax.set_title(f"{meta.backbone}: {metric} {history[-1].get(metric, float('nan')):.4f} after epoch "
                 f"{history[-1]['epoch']}")
    save(fig, path)


def plot_lr_find(result: dict, path: Path) -> None:
    """Loss vs learning rate (log scale) with the suggestions marked."""
    fig, ax = new_axes()
    ax.plot(result["lrs"], result["losses"])
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    markers = {"valley": "o", "steep": "^", "minimum": "s"}
    for name, s in result["suggestions"].items():
        ax.plot([s["lr"]], [s["loss"]], markers.get(name, "x"), markersize=9, label=f"{name}: {s['lr']:.2e}")
    ax.legend()
    ax.set_title("lr_find")
    save(fig, path)


def save_lr_find(result: dict, backbone: str, out_png: Path) -> None:
    """The plot, and the curve as JSON beside it (same name, .json)."""
    plot_lr_find(result, out_png)
    out_png.with_suffix(".json").write_text(json.dumps({"backbone": backbone, **result}, indent=1))

"""The training loop in plain PyTorch (no Ray): per-rank shards, one-cycle AdamW, augmentation on the
device, validation over the whole set across ranks, and resume from a checkpoint's state."""

from __future__ import annotations

import time
from pathlib import Path
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn

from visionsweep.datasets.augment import augment, prepare
from visionsweep.trainables.config import TrainConfig
from visionsweep.trainables.metrics import classification_metrics
from visionsweep.trainables.model import head_prefix, is_head_key
from visionsweep.trainables.schedule import cycle_at, cycle_bounds, one_cycle
from visionsweep.datasets.console import say

# Keep the whole uint8 dataset on the GPU when it takes less than this share of free memory:
# then a batch is one index op on the device, and the GPU never waits for the host.
GPU_DATA_SHARE = 0.25


@dataclass(frozen=True)
class Task:
    """What the loop needs to know about the labels and the images."""

    num_classes: int
    positive_index: int | None   # binary tasks: the class whose probability is scored (AUC)
    vertical_flip: bool          # orientation-free images
    image_size: int              # model input side, px
    mean: tuple[float, ...]      # the backbone's normalisation
    std: tuple[float, ...]
    flip: bool = True            # horizontal flips are valid (augmentation, TTA)


@dataclass(frozen=True)
class ResumeState:
    """Where a resumed run continues: after `epoch`, with the optimizer's state and the history so far."""

    epoch: int
    optimizer: dict
    history: list[dict]
    step_losses: list[float]


class Dist:
    """This process's place in the DDP group (a group of one without torch.distributed)."""

    def __init__(self) -> None:
        self.on = torch_dist.is_available() and torch_dist.is_initialized()
        self.rank = torch_dist.get_rank() if self.on else 0
        self.world = torch_dist.get_world_size() if self.on else 1

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.on:
            t = t.clone()
            torch_dist.all_reduce(t)
            t /= self.world
        return t

    def gather_rows(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's tensor (first dims may differ by rank), in rank order, on every rank."""
        if not self.on:
            return [t]
        n = torch.tensor([t.shape[0]], device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        torch_dist.all_gather(sizes, n)
        top = int(max(s.item() for s in sizes))
        padded = torch.zeros((top, *t.shape[1:]), dtype=t.dtype, device=t.device)
        padded[: t.shape[0]] = t
        parts = [torch.zeros_like(padded) for _ in range(self.world)]
        torch_dist.all_gather(parts, padded)
        return [p[: int(s.item())] for p, s in zip(parts, sizes)]


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def steps_per_epoch(n_train: int, world: int, batch_size: int) -> int:
    """Equal on every rank (DDP needs it): each rank's shard is n // world, the last partial batch dropped."""
    shard = n_train // world
    if shard < 2:
        raise ValueError(f"{n_train} training images cannot be split over {world} workers")
    return max(1, shard // batch_size)


def train_shard(n: int, *, rank: int, world: int, seed: int, epoch: int) -> np.ndarray:
    """This rank's indices for an epoch: one permutation seeded by (seed, epoch), the same on every rank."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    per_rank = n // world
    return perm[rank * per_rank:(rank + 1) * per_rank]


def valid_shard(n: int, *, rank: int, world: int) -> np.ndarray:
    """Strided: every sample exactly once over all ranks, none padded or duplicated."""
    return np.arange(rank, n, world)


def interleave(parts: list[torch.Tensor], n: int) -> torch.Tensor:
    """Undo valid_shard: rank r holds rows r, r + world, ..."""
    out = torch.empty((n, *parts[0].shape[1:]), dtype=parts[0].dtype, device=parts[0].device)
    for r, part in enumerate(parts):
        out[r::len(parts)] = part
    return out


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Four groups: body/head x decay/no-decay; norms and biases (1-d tensors) get no weight decay."""
    prefix = head_prefix(unwrap(model))
    groups = {(part, decay): [] for part in ("body", "head") for decay in (True, False)}
    for name, p in unwrap(model).named_parameters():
        part = "head" if is_head_key(name, prefix) else "body"
        groups[(part, p.ndim > 1)].append(p)
    return [{"params": ps, "part": part, "weight_decay": weight_decay if decay else 0.0}
            for (part, decay), ps in groups.items() if ps]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.max_lr / cfg.div,
                             betas=(cfg.mom_max, 0.99), eps=1e-5)


def schedule_at(step: int, *, cfg: TrainConfig, steps: int) -> tuple[float, float, float]:
    """(head lr, body lr, beta1) at a global step: a frozen-head one-cycle, then the full one-cycle (or one
    cycle per segment between `cfg.restarts`, counted in total epochs, frozen ones included)."""
    frozen_steps = cfg.freeze_epochs * steps
    kw = dict(pct_start=cfg.pct_start, div=cfg.div, final_div=cfg.final_div, mom_max=cfg.mom_max, mom_min=cfg.mom_min)
    if step < frozen_steps:
        lr, beta1 = one_cycle(step, frozen_steps, max_lr=cfg.max_lr, **kw)
        return lr, 0.0, beta1  # frozen body: LR 0 keeps DDP's gradient buckets intact (no requires_grad flips)
    step -= frozen_steps
    first, length = cycle_at(step // steps, cycle_bounds(cfg.epochs, (r - cfg.freeze_epochs for r in cfg.restarts)))
    lr, beta1 = one_cycle(step - first * steps, length * steps, max_lr=cfg.max_lr, **kw)
    body = lr / cfg.body_lr_div if cfg.freeze_epochs else lr
    return lr, body, beta1


def _set_hyper(opt: torch.optim.Optimizer, head_lr: float, body_lr: float, beta1: float) -> None:
    for g in opt.param_groups:
        g["lr"] = head_lr if g["part"] == "head" else body_lr
        g["betas"] = (beta1, g["betas"][1])


def to_device_uint8(x: np.ndarray, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # arrays from Ray's object store are read-only; we never write to them
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(x)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if t.numel() < GPU_DATA_SHARE * free:
            return t.to(device)
    # Too big for the GPU: stays where it is (zero-copy from Ray's object store); Batches.get gathers each
    # batch into pinned memory instead of pinning a copy of the whole set per worker.
    return t


class Batches:
    """uint8 images and labels; batches are gathered by index (on the device when the data lives there)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device) -> None:
        self.x = to_device_uint8(x, device)
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(self.x.device)  # labels live with the images
        self.device = device

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def get(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.from_numpy(idx)
        if self.x.is_cuda:  # indices go up through pinned memory: a pageable copy would sync with the GPU each step
            i = i.pin_memory().to(self.x.device, non_blocking=True)
            return self.x[i], self.y[i]
        if self.device.type == "cuda":  # host data: plain indexing gives a pageable batch, whose copy blocks
            return (gather_rows(self.x, i, pin=True).to(self.device, non_blocking=True),
                    gather_rows(self.y, i, pin=True).to(self.device, non_blocking=True))
        return self.x[i], self.y[i]


def gather_rows(x: torch.Tensor, i: torch.Tensor, *, pin: bool) -> torch.Tensor:
    """x[i] written into a fresh (pinned when `pin`) host tensor. Pinned blocks come from torch's caching host
    allocator, which reuses one only after the asynchronous copy that read it has finished."""
    out = torch.empty((len(i), *x.shape[1:]), dtype=x.dtype, pin_memory=pin)
    return torch.index_select(x, 0, i, out=out)


class Runner:
    """One model on one device: the pieces of a training step and of evaluation, shared by fit and lr_find."""

    def __init__(self, model: nn.Module, task: Task, device: torch.device, *, label_smoothing: float = 0.0) -> None:
        self.model, self.task, self.device = model, task, device
        self.cuda = device.type == "cuda"
        self.label_smoothing = label_smoothing

    def _inputs(self, xb: torch.Tensor, *, strength: float, gen: torch.Generator | None) -> torch.Tensor:
        t = self.task
        if strength > 0:
            x = augment(xb, strength=strength, size=t.image_size, mean=t.mean, std=t.std,
                        vertical_flip=t.vertical_flip, gen=gen, flip=t.flip)
        else:
            x = prepare(xb, size=t.image_size, mean=t.mean, std=t.std)
        return x.contiguous(memory_format=torch.channels_last) if self.cuda else x

    def loss(self, xb: torch.Tensor, yb: torch.Tensor, *, strength: float, gen: torch.Generator | None):
        x = self._inputs(xb, strength=strength, gen=gen)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            logits = self.model(x)
        return F.cross_entropy(logits.float(), yb, label_smoothing=self.label_smoothing)

    def step(self, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor, *, strength: float,
             gen: torch.Generator | None) -> torch.Tensor:
        """One optimiser step on a batch (augment, forward, loss, backward, step): the training step of fit,
        lr_find and bench/bench_step.py. Returns the loss, detached and on the device (no host sync)."""
        loss = self.loss(xb, yb, strength=strength, gen=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    @torch.no_grad()
    def logits(self, data: Batches, idx: np.ndarray, *, batch_size: int, transform=None,
               on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
        """Logits (float32) for data[idx], in order. Uses the unwrapped model: no DDP collectives, so
        ranks may run different numbers of batches. `on_batch(n)` after each batch (progress bars)."""
        net = unwrap(self.model)
        was_training = net.training
        net.eval()
        outs = []
        for s in range(0, len(idx), batch_size):
            xb, _ = data.get(idx[s:s + batch_size])
            x = self._inputs(xb, strength=0.0, gen=None)
            if transform is not None:
                x = transform(x)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
                outs.append(net(x).float())
            if on_batch is not None:
                on_batch(len(xb))
        net.train(was_training)
        if not outs:
            return torch.zeros((0, self.task.num_classes), device=self.device)
        return torch.cat(outs)


def evaluate(runner: Runner, valid: Batches, dist: Dist, *, batch_size: int) -> dict[str, float]:
    """Metrics over the WHOLE validation set: each rank predicts its strided shard, all ranks gather."""
    n = len(valid)
    logits = runner.logits(valid, valid_shard(n, rank=dist.rank, world=dist.world), batch_size=batch_size)
    full = interleave(dist.gather_rows(logits), n)
    return classification_metrics(full, valid.y, positive_index=runner.task.positive_index,
                                  label_smoothing=runner.label_smoothing)


ReportFn = Callable[[int, dict, Callable[[str], None] | None], None]


@dataclass
class Member:
    """A model fit trains: the run's only one, or one fold of a cross-validation."""

    model: nn.Module
    train: Batches
    valid: Batches
    resume: ResumeState | None = None


def fit(model: nn.Module, *, cfg: TrainConfig, task: Task, train: Batches, valid: Batches, device: torch.device,
        report: ReportFn, write_checkpoint: Callable[..., None], resume: ResumeState | None = None,
        log: Callable[[str], None] = say) -> list[dict]:
    """Train for cfg.total_epochs, calling report(epoch, metrics, save) after each; return the history.

    `save(dir)` (given to report on rank 0 only) writes the checkpoint for that epoch through
    `write_checkpoint(dir, model=..., optimizer=..., epoch=..., history=..., step_losses=...)`.
    `resume` (from a checkpoint) continues after its epoch with its optimizer state: the schedule step,
    shuffling and augmentation randomness are functions of (seed, epoch), so a resumed run takes the
    same path as an uninterrupted one."""
    return fit_members([Member(model, train, valid, resume)], cfg=cfg, task=task, device=device, report=report,
                       write_checkpoint=write_checkpoint, log=log)


def fit_members(members: list[Member], *, cfg: TrainConfig, task: Task, device: torch.device, report: ReportFn,
                write_checkpoint: Callable[..., None], log: Callable[[str], None] = say) -> list[dict]:
    """fit for one model or, side by side, for the K folds of a cross-validation: each epoch every member trains
    one epoch (its own optimizer, the same schedule) and is validated on its own held-out images; the epoch's
    metrics are the members' mean, the K-fold score ASHA compares. With K > 1, `save(dir)` writes member k to
    dir/fold-k and the mean history to dir itself (write_checkpoint(..., model=None, folds=K))."""
    dist = Dist()
    runs = [_MemberRun(m, Runner(m.model, task, device, label_smoothing=cfg.label_smoothing), make_optimizer(m.model, cfg),
                       steps=steps_per_epoch(len(m.train), dist.world, cfg.batch_size), seed=cfg.seed + 1000 * k)
            for k, m in enumerate(members)]
    resumed = members[0].resume
    if resumed is not None:
        for run in runs:
            run.opt.load_state_dict(run.member.resume.optimizer)
            run.history, run.step_losses = list(run.member.resume.history), list(run.member.resume.step_losses)
        log(f"resumed after epoch {resumed.epoch} of {cfg.total_epochs}")
    start_epoch = resumed.epoch + 1 if resumed is not None else 1
    history = [_mean_row([r.history[e] for r in runs]) for e in range(start_epoch - 1)]
    if dist.rank == 0 and start_epoch == 1:
        log(format_header(task, smoothing=cfg.label_smoothing > 0))
    for epoch in range(start_epoch, cfg.total_epochs + 1):
        t0 = time.perf_counter()
        for run in runs:
            run.history.append(_train_epoch(run, epoch, cfg=cfg, device=device, dist=dist))
        metrics = {**_mean_row([r.history[-1] for r in runs]), "time_s": time.perf_counter() - t0}
        history.append(metrics)
        if dist.rank == 0:
            log(format_row(metrics, task, smoothing=cfg.label_smoothing > 0))

        def save(path: str, _epoch=epoch) -> None:
            if len(runs) == 1:
                write_checkpoint(path, model=unwrap(runs[0].member.model), optimizer=runs[0].opt, epoch=_epoch,
                                 history=history, step_losses=runs[0].step_losses)
                return
            for k, run in enumerate(runs):
                write_checkpoint(str(Path(path) / f"fold-{k}"), model=unwrap(run.member.model), optimizer=run.opt,
                                 epoch=_epoch, history=run.history, step_losses=run.step_losses)
            steps = min(len(r.step_losses) for r in runs)
            write_checkpoint(path, model=None, optimizer=None, epoch=_epoch, history=history,
                             step_losses=np.mean([r.step_losses[:steps] for r in runs], axis=0).tolist(),
                             folds=len(runs))

        report(epoch, metrics, save if dist.rank == 0 else None)
    return history


@dataclass
class _MemberRun:
    """A member while fit_members trains it: its runner, optimizer, steps per epoch, seed and record so far."""

    member: Member
    runner: Runner
    opt: torch.optim.Optimizer
    steps: int
    seed: int
    history: list[dict] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)


def _train_epoch(run: _MemberRun, epoch: int, *, cfg: TrainConfig, device: torch.device, dist: Dist) -> dict:
    """One member's epoch: the one-cycle steps over its training images, then its whole validation set."""
    t0 = time.perf_counter()
    member, steps, seed = run.member, run.steps, run.seed
    member.model.train()
    idx = train_shard(len(member.train), rank=dist.rank, world=dist.world, seed=seed, epoch=epoch)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch * 1009 + dist.rank)
    losses = torch.zeros(steps, device=device)
    for b in range(steps):
        head_lr, body_lr, beta1 = schedule_at((epoch - 1) * steps + b, cfg=cfg, steps=steps)
        _set_hyper(run.opt, head_lr, body_lr, beta1)
        xb, yb = member.train.get(idx[b * cfg.batch_size:(b + 1) * cfg.batch_size])
        losses[b] = run.runner.step(run.opt, xb, yb, strength=cfg.aug, gen=gen)  # no .item(): no host sync per step
    train_loss = dist.mean(losses.mean()).item()
    if not np.isfinite(train_loss):
        raise FloatingPointError(f"training loss is {train_loss} in epoch {epoch}; lower --max-lr")
    metrics = evaluate(run.runner, member.valid, dist, batch_size=max(cfg.batch_size, 128))
    run.step_losses += losses.cpu().tolist()
    return {"epoch": epoch, "train_loss": train_loss, **metrics, "time_s": time.perf_counter() - t0, "lr": head_lr}


def _mean_row(rows: list[dict]) -> dict:
    """The members' metrics averaged key by key (one member: its own row)."""
    if len(rows) == 1:
        return dict(rows[0])
    return {key: (rows[0][key] if key in ("epoch", "lr") else float(np.mean([r[key] for r in rows])))
            for key in rows[0]}


# fastai's table, less the columns that repeat others: error_rate is 1 - accuracy, and log_loss equals
# valid_loss unless label smoothing is on (then valid_loss is the smoothed loss and log_loss the comparable one).
_COLUMNS = ["epoch", "train_loss", "valid_loss", "accuracy", "auc", "log_loss", "time_s"]


def _columns(task: Task, smoothing: bool) -> list[str]:
    return [c for c in _COLUMNS if (c != "auc" or task.positive_index is not None) and (c != "log_loss" or smoothing)]


def format_header(task: Task, *, smoothing: bool = False) -> str:
    return "  ".join(f"{c:>10}" for c in _columns(task, smoothing))


def format_row(metrics: dict, task: Task, *, smoothing: bool = False) -> str:
    cells = []
    for c in _columns(task, smoothing):
        v = metrics[c]
        cells.append(f"{v:>10d}" if c == "epoch" else f"{v:>10.2f}" if c == "time_s" else f"{v:>10.4f}")
    return "  ".join(cells)

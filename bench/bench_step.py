"""Training-step benchmark: visionsweep's loop vs a bare timm + PyTorch loop, same model, batch and precision.

Data is already in memory as uint8 (N, H, W, 3), as the loop keeps it. Three variants, measured in the same run,
interleaved: by default on the CPU one step of each in turn (A B C, B C A, ...; a neighbour's burst of load then
hits all three alike), on CUDA one segment of --steps steps of each in turn, order rotated every repeat:

  bare         timm.create_model + torch.optim.AdamW(model.parameters()) + F.cross_entropy; a batch is gathered
               by index, then uint8 -> float -> bilinear resize (F.interpolate, no antialias) -> normalise ->
               model -> loss -> backward -> step. No augmentation, no schedule.
  vs aug=0     the body of trainables.loop.fit's epoch, with its own pieces: worker.build_model, Batches.get,
               Runner.loss (datasets.augment.prepare: antialiased resize + normalise), make_optimizer (4 param
               groups), schedule_at + _set_hyper every step, the per-step loss kept on the device.
  vs aug=0.5   the same with per-sample augmentation on the device (datasets.augment.augment, one grid_sample).

Not timed: model build, the epoch's shuffle, the warm-up steps (which include the epoch's generator set-up),
validation, checkpoints.
On CUDA both sides use bf16 autocast and channels_last (model and input), exactly as the loop does, and the
timer synchronises the device. Models start from random init (pretrained=False); 10 classes.

    python bench/bench_step.py [--configs resnet18:32:64:64] [--steps 20] [--warmup 3] [--repeats 5]
                               [--compile off|on|both] [--no-aug-variant]

A config is backbone:source_px:model_px:batch. Default: resnet18:32:64:64 on CPU; on CUDA resnet50:224:224:128
(bf16) is added. --compile on applies torch.compile (nn.Module.compile(), default mode) to every variant's
model alike (the data path and optimizer stay eager); its compile time shows as the first warm-up's seconds.
Each config's result also goes out as one `GPU_CHECK_RESULT {json}` line (bench/gpu_check.py reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NUM_CLASSES = 10


# ------------------------------------------------------------------ header shared by the bench scripts

def cpu_description() -> str:
    """'N x MODEL' from /proc/cpuinfo (logical CPUs), else what platform knows."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{os.cpu_count()} x {platform.processor() or platform.machine()}"
    models = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
    n = sum(1 for ln in text.splitlines() if ln.startswith("processor"))
    return f"{n} x {models[0] if models else platform.machine()}"


def print_header(title: str, *, device: torch.device, runs: str) -> None:
    """Hardware, software versions, git revision and the number of runs: what a benchmark claim names."""
    from visionsweep.trainables.provenance import provenance

    prov = provenance(str(device))
    v = prov["versions"]
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"# {title}")
    print(f"# hardware: {cpu_description()} (affinity {len(os.sched_getaffinity(0))} CPUs), torch threads "
          f"{torch.get_num_threads()}, device {device}{gpu}, load average at start {os.getloadavg()[0]:.2f}")
    print(f"# software: python {v['python']}, torch {v['torch']}, timm {v['timm']}, ray {v['ray']}, "
          f"numpy {v['numpy']}")
    print(f"# git revision: {prov['git_revision']}")
    print(f"# runs: {runs}")
    sys.stdout.flush()


# ------------------------------------------------------------------ the variants

def _mark(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class Bare:
    """The baseline: what someone would write by hand around timm, without visionsweep."""

    def __init__(self, backbone: str, x: np.ndarray, y: np.ndarray, *, size: int, device: torch.device,
                 num_classes: int = NUM_CLASSES) -> None:
        import timm

        self.device, self.size, self.cuda = device, size, device.type == "cuda"
        torch.manual_seed(42)
        model = timm.create_model(backbone, pretrained=False, num_classes=num_classes).to(device)
        if self.cuda:
            model = model.to(memory_format=torch.channels_last)
        dc = timm.data.resolve_model_data_config(model)
        self.mean = torch.tensor(dc["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(dc["std"], device=device).view(1, 3, 1, 1)
        self.model = model
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        self.x = torch.from_numpy(x).to(device)
        self.y = torch.from_numpy(y).to(device)

    def steps(self, order: np.ndarray, *, batch: int, n: int, seg: int) -> Iterator[None]:
        """n training steps over `order`, yielding after each (the driver times them)."""
        self.model.train()
        idx_all = torch.from_numpy(order).to(self.device)
        for b in range(n):
            i = idx_all[b * batch:(b + 1) * batch]
            xb, yb = self.x[i], self.y[i]
            x = xb.permute(0, 3, 1, 2).float().div_(255.0)
            if x.shape[-1] != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            x = (x - self.mean) / self.std
            if self.cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
                logits = self.model(x)
            loss = F.cross_entropy(logits.float(), yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            yield


class Visionsweep:
    """trainables.loop's real pieces, stepped exactly as fit() steps them (see fit's epoch body)."""

    def __init__(self, backbone: str, x: np.ndarray, y: np.ndarray, *, size: int, batch: int, aug: float,
                 device: torch.device, segments: int, steps_per_segment: int) -> None:
        from visionsweep.trainables.config import TrainConfig
        from visionsweep.trainables.loop import Batches, Runner, make_optimizer
        from visionsweep.trainables.worker import DataInfo, build_model

        self.device = device
        self.cfg = TrainConfig(backbone=backbone, pretrained=False, image_size=size, aug=aug, batch_size=batch,
                               epochs=segments, use_gpu=device.type == "cuda")
        info = DataInfo(classes=[str(i) for i in range(NUM_CLASSES)], positive_class=None, vertical_flip=False)
        model, task, _, _ = build_model(self.cfg, info, device=device, log=lambda m: None)
        self.model = model.to(device)  # what prepare_model does for one process (plus DDP under Ray Train)
        self.runner = Runner(self.model, task, device, label_smoothing=self.cfg.label_smoothing)
        self.opt = make_optimizer(self.model, self.cfg)
        self.train = Batches(x, y, device)
        self.per_epoch = steps_per_segment

    def steps(self, order: np.ndarray, *, batch: int, n: int, seg: int) -> Iterator[None]:
        """fit()'s epoch body for n steps of epoch `seg` (one-cycle over cfg.epochs x per_epoch steps)."""
        from visionsweep.trainables.loop import _set_hyper, schedule_at

        cfg, device, runner, opt, train = self.cfg, self.device, self.runner, self.opt, self.train
        self.model.train()
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + seg * 1009)
        losses = torch.zeros(n, device=device)
        for b in range(n):
            # --- as in trainables.loop.fit
            head_lr, body_lr, beta1 = schedule_at((seg - 1) * self.per_epoch + b, cfg=cfg, steps=self.per_epoch)
            _set_hyper(opt, head_lr, body_lr, beta1)
            xb, yb = train.get(order[b * batch:(b + 1) * batch])
            losses[b] = runner.step(opt, xb, yb, strength=cfg.aug, gen=gen)
            # ---
            yield
        if not torch.isfinite(losses).all():
            raise FloatingPointError("non-finite training loss in the benchmark")


# ------------------------------------------------------------------ driver

def parse_config(text: str) -> tuple[str, int, int, int]:
    try:
        backbone, src, size, batch = text.split(":")
        return backbone, int(src), int(size), int(batch)
    except ValueError:
        raise SystemExit(f"--configs entry {text!r} must be backbone:source_px:model_px:batch, e.g. "
                         f"resnet18:32:64:64") from None


def bench_config(backbone: str, src: int, size: int, batch: int, *, args, device: torch.device,
                 compiled: bool = False) -> dict:
    from visionsweep.trainables.loop import train_shard

    per_segment = args.warmup + args.steps
    n = per_segment * batch  # every step a fresh batch, no wrap-around, as within one epoch of fit
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, src, src, 3), dtype=np.uint8)
    y = rng.integers(0, NUM_CLASSES, size=n).astype(np.int64)
    kw = dict(size=size, device=device)
    variants = {
        "bare timm + PyTorch": Bare(backbone, x, y, **kw),
        "visionsweep aug=0": Visionsweep(backbone, x, y, batch=batch, aug=0.0, segments=args.repeats,
                                         steps_per_segment=per_segment, **kw),
    }
    if args.aug_variant:
        variants[f"visionsweep aug={args.aug:g}"] = Visionsweep(backbone, x, y, batch=batch, aug=args.aug,
                                                                segments=args.repeats, steps_per_segment=per_segment,
                                                                **kw)
    if compiled:
        for v in variants.values():
            v.model.compile()  # in place: parameter names and the optimizer's references stay as they are
    names = list(variants)
    warm_s = {k: 0.0 for k in names}  # repeat 1's warm-up steps: includes torch.compile's compile time
    cuda = device.type == "cuda"
    per_step = args.interleave == "step" or not cuda  # per-step times exist (a CPU needs no sync to take them)
    # seconds[name][repeat] = the timed steps' seconds (per step), or [the whole segment's seconds]
    seconds: dict[str, list[list[float]]] = {k: [] for k in names}
    prec = ("bf16 autocast, channels_last" if cuda else "fp32") + (", torch.compile" if compiled else ", eager")
    print(f"\n{backbone}: {src} px uint8 -> {size} px, batch {batch}, {prec}; interleaved by {args.interleave}; "
          f"{args.steps} timed steps after {args.warmup} warm-up per variant and repeat, {args.repeats} repeats")
    for r in range(1, args.repeats + 1):
        order = train_shard(n, rank=0, world=1, seed=42, epoch=r)
        gens = {k: v.steps(order, batch=batch, n=per_segment, seg=r) for k, v in variants.items()}
        for k in names:
            seconds[k].append([])
        if args.interleave == "step":  # A B C, B C A, ...: neighbours' bursts of load hit every variant alike
            for _ in range(args.warmup):
                for k in names:
                    t = _mark(device)
                    next(gens[k])
                    warm_s[k] += (_mark(device) - t) if r == 1 else 0.0
            for b in range(args.steps):
                rot = (r - 1 + b) % len(names)
                for k in names[rot:] + names[:rot]:
                    t = _mark(device)
                    next(gens[k])
                    seconds[k][-1].append(_mark(device) - t)
        else:  # whole segments, order rotated per repeat; on CUDA a sync only at the segment's ends
            rot = (r - 1) % len(names)
            for k in names[rot:] + names[:rot]:
                t = _mark(device)
                for _ in range(args.warmup):
                    next(gens[k])
                t0 = _mark(device)
                warm_s[k] += (t0 - t) if r == 1 else 0.0
                marks = [t0]
                for _ in range(args.steps):
                    next(gens[k])
                    if not cuda:
                        marks.append(time.perf_counter())
                t1 = _mark(device)
                seconds[k][-1] += list(np.diff(marks)) if not cuda else [t1 - t0]
        for g in gens.values():
            next(g, None)  # finish: the loss check after the last step
        print(f"  repeat {r}: " + ", ".join(f"{k} {args.steps * batch / sum(seconds[k][-1]):.0f}" for k in names)
              + " images/s")
        sys.stdout.flush()

    def rate(secs: list[float]) -> float:
        return args.steps * batch / sum(secs)

    def all_steps(k: str) -> list[float]:
        return [t for rep in seconds[k] for t in rep]

    head = f"\n  {'variant':<26} {'images/s (median repeat)':>25} {'best repeat':>12}"
    print(head + (f" {'median-step images/s':>21}" if per_step else ""))
    for k in names:
        step = f" {batch / statistics.median(all_steps(k)):>21.1f}" if per_step else ""
        reps = [rate(rep) for rep in seconds[k]]
        print(f"  {k:<26} {statistics.median(reps):>25.1f} {max(reps):>12.1f}{step}")
    print(f"  warm-up ({args.warmup} steps, repeat 1{', with compiling' if compiled else ''}): "
          + ", ".join(f"{k} {warm_s[k]:.1f} s" for k in names))
    base = names[0]
    result = {"bench": "step", "backbone": backbone, "source_px": src, "size": size, "batch": batch,
              "device": torch.cuda.get_device_name(device) if cuda else "cpu", "compile": compiled,
              "precision": prec, "warmup_s": warm_s,
              "images_per_s": {k: statistics.median(rate(rep) for rep in seconds[k]) for k in names}}
    checks = [("(a) loop overhead", names[1], 0.97, "ratio_aug0")]
    if len(names) > 2:
        checks.append(("(b) with augmentation", names[2], None, "ratio_aug"))
    for label, k, goal, key in checks:
        per_repeat = statistics.median(rate(v) / rate(b) for v, b in zip(seconds[k], seconds[base]))
        parts = [f"{per_repeat:.3f} (median of {args.repeats} per-repeat ratios)"]
        primary = per_repeat
        if per_step:
            parts.append(f"{statistics.median(all_steps(base)) / statistics.median(all_steps(k)):.3f} (median steps)")
        if args.interleave == "step":  # the same round's steps ran back to back: the tightest pairing
            paired = statistics.median(tb / tv for tb, tv in zip(all_steps(base), all_steps(k)))
            parts.insert(0, f"{paired:.3f} (median of {len(all_steps(k))} back-to-back step pairs)")
            primary = paired
        verdict = "" if goal is None else f"   goal >= {goal}: {'met' if primary >= goal else 'NOT met'}"
        print(f"  {label}: {k} / bare images/s = " + ", ".join(parts) + verdict)
        result[key] = primary
    print("GPU_CHECK_RESULT " + json.dumps(result))
    sys.stdout.flush()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=None,
                        help="comma-separated backbone:source_px:model_px:batch (default resnet18:32:64:64, "
                             "plus resnet50:224:224:128 on CUDA)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per segment (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each segment (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of each variant (default 5)")
    parser.add_argument("--aug", type=float, default=0.5, help="augmentation strength of the third variant")
    parser.add_argument("--interleave", choices=("step", "segment"), default=None,
                        help="rotate the variants every step (default on CPU: the tightest pairing under a "
                             "neighbour's load) or every segment of --steps steps (default on CUDA: one sync per "
                             "segment keeps the loop's CPU/GPU overlap)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", choices=("off", "on", "both"), default="off",
                        help="torch.compile every variant's model (both: eager first, then compiled)")
    parser.add_argument("--no-aug-variant", dest="aug_variant", action="store_false",
                        help="leave out the third variant (visionsweep with --aug)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    args.interleave = args.interleave or ("segment" if device.type == "cuda" else "step")
    configs = args.configs or ("resnet18:32:64:64" + (",resnet50:224:224:128" if device.type == "cuda" else ""))
    print_header("visionsweep training-step benchmark: fit()'s step vs a bare timm + PyTorch loop",
                 device=device, runs=f"{args.repeats} repeats x {args.steps} timed steps after {args.warmup} "
                                     f"warm-up, per variant, interleaved by {args.interleave} (order rotated); "
                                     f"images/s medians, ratios vs bare")
    for text in configs.split(","):
        for compiled in {"off": (False,), "on": (True,), "both": (False, True)}[args.compile]:
            bench_config(*parse_config(text), args=args, device=device, compiled=compiled)


if __name__ == "__main__":
    main()

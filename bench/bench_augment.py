"""Augmentation benchmark: datasets.augment.augment (per-sample, one grid_sample) vs kornia and torchvision v2.

Per-sample augmentation at strength 0.5 (flip, rotate 10 deg, zoom up to 1.1, warp 0.2, lighting 0.2) of a
uint8 batch (B, H, W, 3) to a normalised (B, 3, S, S) float batch, on CUDA when available else the CPU,
measured in the same run against:

  kornia    nn.Sequential(RandomHorizontalFlip, RandomAffine, RandomPerspective, ColorJitter, Normalize)
            with same_on_batch=False (its per-sample mode), on the batch resized to S first;
            skipped with a note when kornia is not installed (it is not a visionsweep dependency)
  tv2-loop  torchvision.transforms.v2 (Resize, RandomHorizontalFlip, RandomAffine, RandomPerspective,
            ColorJitter) applied one image at a time in a Python loop, since a v2 transform called on a
            batch draws one set of parameters for the whole batch

    python bench/bench_augment.py [--batch 256] [--runs 10] [--sizes 32:224,32:64]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from visionsweep.datasets.augment import augment  # noqa: E402

STRENGTH = 0.5
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # only as a typical backbone's config


def batch_of(b: int, src: int, device) -> torch.Tensor:
    """Real-looking small images: random crops of scikit-image's cat, resized to src px."""
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    photo = skdata.chelsea()
    rng = np.random.default_rng(0)
    out = np.empty((b, src, src, 3), np.uint8)
    for i in range(b):
        s = int(rng.integers(120, 300))
        y, x = rng.integers(0, photo.shape[0] - s + 1), rng.integers(0, photo.shape[1] - s + 1)
        out[i] = np.asarray(Image.fromarray(photo[y:y + s, x:x + s]).resize((src, src), Image.Resampling.BILINEAR))
    return torch.from_numpy(out).to(device)


def timed(fn, runs: int, device) -> list[float]:
    fn()  # warm-up: kernels, caches, lazy imports
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


def ours(x, size, gen):
    return lambda: augment(x, strength=STRENGTH, size=size, mean=MEAN, std=STD, gen=gen)


def kornia_pipeline(size, device):
    try:
        import kornia
        import kornia.augmentation as K
    except ImportError:
        return None, "kornia not installed (pip install kornia to compare); it is not a visionsweep dependency"
    s = STRENGTH
    pipe = torch.nn.Sequential(
        K.RandomHorizontalFlip(p=0.5, same_on_batch=False),
        K.RandomAffine(degrees=20 * s, scale=(1.0, 1.0 + 0.2 * s), p=1.0, padding_mode="reflection",
                       same_on_batch=False),
        K.RandomPerspective(distortion_scale=0.4 * s, p=1.0, same_on_batch=False),
        K.ColorJitter(brightness=0.4 * s / 2, contrast=0.4 * s, p=1.0, same_on_batch=False),
        K.Normalize(mean=torch.tensor(MEAN), std=torch.tensor(STD)),
    ).to(device)

    def run(x):
        f = x.permute(0, 3, 1, 2).float().div_(255.0)
        f = torch.nn.functional.interpolate(f, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
        return pipe(f)
    return run, f"kornia {kornia.__version__}"


def tv2_pipeline(size):
    import torchvision
    from torchvision.transforms import v2

    s = STRENGTH
    t = v2.Compose([
        v2.Resize((size, size), antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        # bilinear, as ours and kornia's (v2 defaults to nearest, which is cheaper and blockier)
        v2.RandomAffine(degrees=20 * s, scale=(1.0, 1.0 + 0.2 * s), interpolation=v2.InterpolationMode.BILINEAR),
        v2.RandomPerspective(distortion_scale=0.4 * s, p=1.0, interpolation=v2.InterpolationMode.BILINEAR),
        v2.ColorJitter(brightness=0.4 * s / 2, contrast=0.4 * s),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=MEAN, std=STD),
    ])

    def run(x):
        chw = x.permute(0, 3, 1, 2)
        return torch.stack([t(img) for img in chw])
    return run, f"torchvision {torchvision.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--runs", type=int, default=10, help="timed repetitions after one warm-up (default 10)")
    parser.add_argument("--sizes", default="32:224,32:64", help="src:out pairs (default 32:224,32:64)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print("# visionsweep augmentation benchmark (per-sample random parameters, strength 0.5)")
    print(f"# hardware: {os.cpu_count()} CPU(s), torch threads {torch.get_num_threads()}, device {device} ({hw}), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"# software: python {platform.python_version()}, torch {torch.__version__}")
    print(f"# batch {args.batch}, runs: {args.runs} timed after 1 warm-up ({max(1, args.runs // 3)} for the "
          f"Python loop); images/s are medians; 'best' is the fastest run")
    for pair in args.sizes.split(","):
        src, size = (int(v) for v in pair.split(":"))
        x = batch_of(args.batch, src, device)
        gen = torch.Generator(device=device).manual_seed(0)
        results = {"visionsweep augment": timed(ours(x, size, gen), args.runs, device)}
        kornia_run, kornia_note = kornia_pipeline(size, device)
        if kornia_run is not None:
            results[f"{kornia_note} (same_on_batch=False)"] = timed(lambda: kornia_run(x), args.runs, device)
        tv_run, tv_note = tv2_pipeline(size)
        # the Python loop is slow: fewer runs keep the benchmark short, and its numbers are stable anyway
        results[f"{tv_note} v2, per-sample loop"] = timed(lambda: tv_run(x), max(1, args.runs // 3), device)
        print(f"\n{src}px -> {size}px")
        print(f"  {'pipeline':<44} {'images/s':>10} {'best':>10}")
        for name, times in results.items():
            print(f"  {name:<44} {args.batch / statistics.median(times):>10.0f} {args.batch / min(times):>10.0f}")
        base = statistics.median(results["visionsweep augment"])
        for name, times in results.items():
            if name != "visionsweep augment":
                print(f"  visionsweep vs {name}: {statistics.median(times) / base:.2f}x the images/s")
        if kornia_run is None:
            print(f"  note: {kornia_note}")


if __name__ == "__main__":
    main()

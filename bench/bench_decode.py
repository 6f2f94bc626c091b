"""Decode benchmark: load_dataset cold (decode + cache write) and warm (cache hit) vs a plain PIL loop.

Builds a dogs-vs-cats-like folder of N real-looking JPEGs (random crops of scikit-image's sample photos,
resized to about 500x375) in a temporary folder, then measures, in the same run:

  baseline  a single-threaded loop: PIL open -> convert("RGB") -> resize to the cache size -> numpy
  cold      load_dataset with an empty cache: listing, header probe, parallel decode, cache write
  warm      load_dataset again: listing + reading the cached array, nothing decoded

    python bench/bench_decode.py [--n 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from visionsweep.datasets import DatasetSpec  # noqa: E402
from visionsweep.datasets.load import load_dataset  # noqa: E402


def build_folder(root: Path, n: int, seed: int = 0) -> list[Path]:
    from skimage import data as skdata

    photos = [skdata.chelsea(), skdata.astronaut(), skdata.coffee(), skdata.rocket()]
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        out_w = int(rng.integers(400, 501))
        out_h = int(out_w * rng.uniform(0.7, 0.8))  # ~500x375, like dogs-vs-cats
        img = Image.fromarray(photo[y:y + ch, x:x + cw]).resize((out_w, out_h), Image.Resampling.BILINEAR)
        label = "cat" if i % 2 else "dog"
        path = root / "train" / f"{label}.{i}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def baseline(paths: list[Path], size: int) -> np.ndarray:
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as img:
            out[i] = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions of each measurement (default 3)")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the images and caches (default: system tmp)")
    args = parser.parse_args()

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench-decode-", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        paths = build_folder(work / "data", args.n)
        build_s = time.perf_counter() - t0
        spec_kw = dict(root=work / "data")
        print("# visionsweep decode benchmark")
        print(f"# hardware: {os.cpu_count()} CPU(s) ({platform.processor() or platform.machine()}), "
              f"device cpu (decoding never uses the GPU), load average {os.getloadavg()[0]:.2f}")
        print(f"# software: python {platform.python_version()}, torch {torch.__version__}, "
              f"pillow {Image.__version__}, numpy {np.__version__}")
        print(f"# data: {args.n} JPEGs ~500x375 (scikit-image photos, random crops), built in {build_s:.1f} s")
        print(f"# runs: {args.runs} per measurement; images/s are medians; 'best' is the fastest run")

        cold, warm, size = [], [], None
        for r in range(args.runs):
            cache = work / f"cache{r}"
            t = time.perf_counter()
            data = load_dataset(DatasetSpec(cache_dir=cache, **spec_kw), log=lambda *a: None)
            cold.append(time.perf_counter() - t)
            assert not data.summary["cache_hit"]
            size = data.image_size
            t = time.perf_counter()
            again = load_dataset(DatasetSpec(cache_dir=cache, **spec_kw), log=lambda *a: None)
            warm.append(time.perf_counter() - t)
            assert again.summary["cache_hit"]
            shutil.rmtree(cache)
        base = []
        for _ in range(args.runs):
            t = time.perf_counter()
            baseline(paths, size)
            base.append(time.perf_counter() - t)

        def rate(times):
            return args.n / statistics.median(times), args.n / min(times)

        print(f"# cache size chosen: {size} px; worker threads: {min(32, os.cpu_count() or 1)}; the baseline "
              f"resizes each whole image to {size}x{size}, visionsweep its centre square (its default crop)")
        print(f"{'measurement':<42} {'images/s':>12} {'best':>12} {'seconds':>9}")
        rows = [("baseline: 1-thread PIL open+convert+resize", base), ("visionsweep cold (probe+decode+cache)", cold),
                ("visionsweep warm (cache hit)", warm)]
        for name, times in rows:
            med, best = rate(times)
            print(f"{name:<42} {med:>12.0f} {best:>12.0f} {statistics.median(times):>9.3f}")
        print(f"cold vs baseline: {statistics.median(base) / statistics.median(cold):.2f}x the images/s")
        print(f"warm vs cold:     {statistics.median(cold) / statistics.median(warm):.1f}x faster")
        print(f"warm vs baseline: {statistics.median(base) / statistics.median(warm):.1f}x faster")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

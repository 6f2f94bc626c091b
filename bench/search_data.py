"""Held-out image competitions built from images that ship inside installed packages, for the search benchmark.

Each set is a Kaggle-style folder `<root>/<name>/data/` (what a user hands to visionsweep) plus
`<root>/<name>/solution.csv` (the test labels, kept outside DATA so no command can see them). Everything is a
real image shipped with scikit-learn or scikit-image (nothing generated), cut deterministically from `seed`:

| name      | source                                           | layout                          | metric   |
|-----------|--------------------------------------------------|---------------------------------|----------|
| digits    | sklearn load_digits (visionsweep's demo builder) | Kaggle CSV, 32 px PNG, L        | accuracy |
| textures  | skimage.data brick / grass / gravel photos       | train/<class>/ + valid/ + test/ | accuracy |
| faces     | skimage.data.lfw_subset (faces vs non-faces)     | Kaggle CSV, 25 px PNG, binary   | AUC      |
| photos    | skimage.data astronaut/chelsea/coffee/rocket/    | labels in file names, JPEG, RGB | accuracy |
|           | hubble_deep_field: which photo a patch is from   |                                 |          |

`photos` is the HELD-ASIDE set: never used while tuning the search; it only checks that a change to the search
that wins on digits / textures / faces also wins on data it was not tuned on.

Patches (textures, photos) come from disjoint blocks of each source photo: every grid block of the photo is
assigned to exactly one of train / valid / test, so a test patch never overlaps a training patch. A patch is a
random square of `min_side`..`max_side` px inside its block (scale varies), resized to the saved size.

Run as a script to build them: `python bench/search_data.py --out /tmp/vs-search-data [--seed 0]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

VERSION = 1
NAMES = ("digits", "textures", "faces", "photos")
HELD_ASIDE = "photos"
MARKER = ".search-data.json"


@dataclass(frozen=True)
class BenchSet:
    name: str
    data: Path              # the competition folder given to visionsweep
    solution: Path          # id,<label> for every test image (outside data)
    metric: str             # accuracy | auc
    label_col: str          # the value column of solution.csv / the submission
    positive: str | None    # AUC: the class whose probability the submission holds
    image_size: int         # model input px this set is meant for
    n_train: int            # labelled images (train + valid)
    n_test: int
    n_classes: int


# ---------------------------------------------------------------- patches from disjoint blocks


def _blocks(h: int, w: int, block: int) -> list[tuple[int, int]]:
    return [(r * block, c * block) for r in range(h // block) for c in range(w // block)]


def _assign_blocks(blocks, fractions: dict[str, float], rng) -> dict[str, list]:
    """Every block goes to exactly one split (at least one block each)."""
    order = rng.permutation(len(blocks))
    names = list(fractions)
    counts = [max(1, int(round(fractions[n] * len(blocks)))) for n in names]
    counts[0] = len(blocks) - sum(counts[1:])  # the first split (train) takes the rest
    if counts[0] < 1:
        raise ValueError(f"{len(blocks)} blocks are too few for splits {fractions}")
    out, start = {}, 0
    for n, k in zip(names, counts):
        out[n] = [blocks[i] for i in order[start:start + k]]
        start += k
    return out


def _patches(img: np.ndarray, blocks, n: int, *, block: int, min_side: int, max_side: int, size: int,
             rng) -> list[Image.Image]:
    mode = "L" if img.ndim == 2 else "RGB"
    out = []
    for _ in range(n):
        r0, c0 = blocks[rng.integers(len(blocks))]
        side = int(rng.integers(min_side, min(max_side, block) + 1))
        r = r0 + int(rng.integers(0, block - side + 1))
        c = c0 + int(rng.integers(0, block - side + 1))
        crop = Image.fromarray(np.ascontiguousarray(img[r:r + side, c:c + side]), mode)
        out.append(crop.resize((size, size), Image.Resampling.BICUBIC))
    return out


def _test_id(name: str, i: int, seed: int) -> str:
    """Opaque test ids (as Kaggle's), so no file name hints at the label."""
    return hashlib.sha1(f"{name}-{seed}-{i}".encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the sets


def _build_digits(tmp: Path, seed: int) -> dict:
    from visionsweep.datasets.demo import build_demo

    built = build_demo(tmp / "demo", size=32, test_pct=0.2, seed=seed)
    os.replace(built, tmp / "data")
    os.replace(tmp / "demo" / "solution.csv", tmp / "solution.csv")
    shutil.rmtree(tmp / "demo")
    return dict(metric="accuracy", label_col="label", positive=None, image_size=32)


TEXTURES = ("brick", "grass", "gravel")


def _build_textures(tmp: Path, seed: int, *, n_train=120, n_valid=30, n_test=80, size=64) -> dict:
    import skimage.data

    rng = np.random.default_rng(seed)
    data = tmp / "data"
    (data / "test").mkdir(parents=True)
    test_rows = []
    block = 128
    for cls in TEXTURES:
        img = getattr(skimage.data, cls)()  # 512x512 grayscale photo
        split = _assign_blocks(_blocks(*img.shape[:2], block), {"train": 0.625, "valid": 0.125, "test": 0.25}, rng)
        for part, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
            ims = _patches(img, split[part], n, block=block, min_side=48, max_side=128, size=size, rng=rng)
            for i, im in enumerate(ims):
                if part == "test":
                    test_rows.append((im, cls))
                else:
                    folder = data / part / cls
                    folder.mkdir(parents=True, exist_ok=True)
                    im.save(folder / f"{cls}_{i:04d}.png")
    order = rng.permutation(len(test_rows))
    ids, labels = [], []
    for k, j in enumerate(order):
        im, cls = test_rows[j]
        tid = _test_id("textures", k, seed)
        im.save(data / "test" / f"{tid}.png")
        ids.append(tid)
        labels.append(cls)
    pd.DataFrame({"id": ids, "label": TEXTURES[0]}).to_csv(data / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids, "label": labels}).to_csv(tmp / "solution.csv", index=False)
    return dict(metric="accuracy", label_col="label", positive=None, image_size=64)


def _build_faces(tmp: Path, seed: int, *, test_pct=0.25) -> dict:
    import skimage.data

    from visionsweep.datasets.split import stratified_split

    faces = skimage.data.lfw_subset()  # (200, 25, 25) floats in [0, 1]: 100 faces, then 100 non-faces
    images = (faces * 255.0).round().clip(0, 255).astype(np.uint8)
    labels = np.array([1] * 100 + [0] * 100)
    if len(images) != len(labels):
        raise RuntimeError(f"lfw_subset has {len(images)} images, expected 200 (100 faces + 100 non-faces)")
    train_idx, test_idx = stratified_split(labels, valid_pct=test_pct, seed=seed)
    rng = np.random.default_rng(seed)
    test_idx = test_idx[rng.permutation(len(test_idx))]
    data = tmp / "data"
    for sub in ("train", "test"):
        (data / sub).mkdir(parents=True)
    train_ids = [_test_id("faces-train", int(i), seed) for i in train_idx]
    test_ids = [_test_id("faces", int(i), seed) for i in test_idx]
    for i, tid in zip(train_idx, train_ids):
        Image.fromarray(images[i], "L").save(data / "train" / f"{tid}.png")
    for i, tid in zip(test_idx, test_ids):
        Image.fromarray(images[i], "L").save(data / "test" / f"{tid}.png")
    pd.DataFrame({"id": train_ids, "face": labels[train_idx]}).to_csv(data / "train.csv", index=False)
    pd.DataFrame({"id": test_ids, "face": 0.5}).to_csv(data / "sample_submission.csv", index=False)
    pd.DataFrame({"id": test_ids, "face": labels[test_idx]}).to_csv(tmp / "solution.csv", index=False)
    return dict(metric="auc", label_col="face", positive="1", image_size=64)


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")


def _build_photos(tmp: Path, seed: int, *, n_train=120, n_test=40, size=64) -> dict:
    import skimage.data

    rng = np.random.default_rng(seed + 1000)
    data = tmp / "data"
    for sub in ("train", "test"):
        (data / sub).mkdir(parents=True)
    block = 96
    test_rows = []
    for cls in PHOTOS:
        img = getattr(skimage.data, cls)()
        img = img[..., :3] if img.ndim == 3 else img
        split = _assign_blocks(_blocks(*img.shape[:2], block), {"train": 0.75, "test": 0.25}, rng)
        for i, im in enumerate(_patches(img, split["train"], n_train, block=block, min_side=40, max_side=96,
                                        size=size, rng=rng)):
            im.convert("RGB").save(data / "train" / f"{cls.replace('_', '')}.{i}.jpg", quality=90)
        for im in _patches(img, split["test"], n_test, block=block, min_side=40, max_side=96, size=size, rng=rng):
            test_rows.append((im, cls.replace("_", "")))
    order = rng.permutation(len(test_rows))
    ids, labels = [], []
    for k, j in enumerate(order, start=1):
        im, cls = test_rows[j]
        im.convert("RGB").save(data / "test" / f"{k}.jpg", quality=90)  # dogs-vs-cats Redux: ids are 1, 2, ...
        ids.append(str(k))
        labels.append(cls)
    pd.DataFrame({"id": ids, "label": "astronaut"}).to_csv(data / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids, "label": labels}).to_csv(tmp / "solution.csv", index=False)
    return dict(metric="accuracy", label_col="label", positive=None, image_size=64)


BUILDERS = {"digits": _build_digits, "textures": _build_textures, "faces": _build_faces, "photos": _build_photos}


def _count(data: Path) -> tuple[int, int]:
    exts = {".png", ".jpg"}
    test = sum(1 for p in (data / "test").iterdir() if p.suffix in exts)
    train = sum(1 for p in (data / "train").rglob("*") if p.suffix in exts)
    if (data / "valid").is_dir():
        train += sum(1 for p in (data / "valid").rglob("*") if p.suffix in exts)
    return train, test


def build(root: Path, name: str, *, seed: int = 0) -> BenchSet:
    """Build (or reuse, when built with the same version and seed) `root/name/{data, solution.csv}`."""
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(NAMES)}")
    root = Path(root).expanduser().resolve()
    out = root / name
    stamp = {"version": VERSION, "name": name, "seed": seed}
    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("stamp") == stamp:
        return built(root, name)
    if out.exists() and not marker.is_file():
        raise FileExistsError(f"{out} exists and is not a search-data folder; choose another root")
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info = BUILDERS[name](tmp, seed)
    truth = pd.read_csv(tmp / "solution.csv", dtype=str)
    n_train, n_test = _count(tmp / "data")
    info.update(n_train=n_train, n_test=n_test, n_classes=int(truth[info["label_col"]].nunique()))
    if len(truth) != n_test:
        raise RuntimeError(f"{name}: {n_test} test images but {len(truth)} solution rows")
    (tmp / MARKER).write_text(json.dumps({"stamp": stamp, "info": info}))
    if out.exists():
        shutil.rmtree(out)  # an older build of ours (the marker says so)
    os.replace(tmp, out)
    return built(root, name)


def built(root: Path, name: str) -> BenchSet:
    """The set `build` made under root, whatever its seed (never rebuilds)."""
    out = Path(root).expanduser().resolve() / name
    if not (out / MARKER).is_file():
        raise FileNotFoundError(f"{out} holds no set built by bench/search_data.py")
    info = json.loads((out / MARKER).read_text())["info"]
    return BenchSet(name=name, data=out / "data", solution=out / "solution.csv", **info)


def held_out(bs: BenchSet, submission: Path) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) for every test image, in solution.csv's order: for AUC, 0/1 truth and the submitted
    probability of the positive class; for accuracy, the two labels as strings."""
    truth = pd.read_csv(bs.solution, dtype={"id": str})
    pred = pd.read_csv(submission, dtype={"id": str})
    merged = truth.merge(pred, on="id", how="left", suffixes=("_true", "_pred"), validate="one_to_one")
    col_t, col_p = f"{bs.label_col}_true", f"{bs.label_col}_pred"
    if merged[col_p].isna().any():
        raise ValueError(f"{submission} lacks predictions for {int(merged[col_p].isna().sum())} test ids")
    if bs.metric == "auc":
        return (merged[col_t].astype(str) == bs.positive).astype(int).to_numpy(), merged[col_p].astype(float).to_numpy()
    return merged[col_t].astype(str).to_numpy(), merged[col_p].astype(str).to_numpy()


def metric_value(metric: str, truth: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, roc_auc_score

    return float(roc_auc_score(truth, pred) if metric == "auc" else accuracy_score(truth, pred))


def score(bs: BenchSet, submission: Path) -> float:
    """Held-out score of a submission file against the set's solution (scikit-learn metrics)."""
    return metric_value(bs.metric, *held_out(bs, submission))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="root folder for the sets")
    ap.add_argument("--datasets", default=",".join(NAMES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in args.datasets.split(","):
        bs = build(args.out, name, seed=args.seed)
        tag = "  (held aside: never tuned on)" if name == HELD_ASIDE else ""
        print(f"{name:9s} {bs.data}  train+valid {bs.n_train}, test {bs.n_test}, {bs.n_classes} classes, "
              f"metric {bs.metric}, {bs.image_size} px{tag}")


if __name__ == "__main__":
    main()

"""Loads a DATA folder into validated uint8 arrays, decoding every image once and caching the result on disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from visionsweep.datasets.errors import DataError, bullet_list
from visionsweep.datasets.images import decode_all, probe_all
from visionsweep.datasets.layout import Listing, _rel, list_dataset, positive_class
from visionsweep.datasets.spec import DatasetSpec
from visionsweep.datasets.submission import SubmissionFormat, submission_format
from visionsweep.datasets.console import say

CACHE_VERSION = 2  # 2: the cache size follows the typical image (90th percentile), not the largest
SIZE_PERCENTILE = 0.9  # one huge image among small ones must not set the size of the whole cache


@dataclass(frozen=True)
class LoadedData:
    """A dataset ready for training: arrays in listing order, labels as class indices, and what `check` prints."""

    x_train: np.ndarray              # (N, S, S, 3) uint8
    y_train: np.ndarray              # (N,) int64 class index
    x_valid: np.ndarray | None       # a given valid/ folder; None -> split x_train at train time
    y_valid: np.ndarray | None
    x_test: np.ndarray               # (T, S, S, 3) uint8, in submission order
    test_ids: list[str]
    classes: list[str]
    positive_class: str | None       # binary tasks only
    submission: SubmissionFormat
    vertical_flip: bool              # orientation-free data: vertical flips / 90-degree turns are valid
    flip: bool = True                # horizontal flips are valid (DatasetSpec.flip)
    summary: dict = field(default_factory=dict)
    sample: pd.DataFrame | None = None  # sample_submission.csv as read: write_submission checks ids/order/header

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays alone (what travels through Ray's object store)."""
        out = {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test}
        if self.x_valid is not None:
            out.update(x_valid=self.x_valid, y_valid=self.y_valid)
        return out


def default_cache_dir() -> Path:
    return Path(os.environ.get("VISIONSWEEP_CACHE", Path.home() / ".cache" / "visionsweep")).expanduser().resolve()


def cache_key(spec: DatasetSpec, paths: list[Path]) -> str:
    """Content hash of every image file's name, size and mtime plus the decoding options."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, spec.cache_size, spec.max_cache_size, spec.resize_method]).encode())
    for p in paths:
        st = p.stat()
        h.update(f"\0{_rel(p, spec.root)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def choose_cache_size(sizes: list[tuple[int, int]], spec: DatasetSpec) -> int:
    """Native size for small images, capped for large ones; the explicit --cache-size wins."""
    if spec.cache_size is not None:
        return spec.cache_size
    sides = sorted(min(w, h) for w, h in sizes)
    return min(spec.max_cache_size, sides[min(len(sides) - 1, int(SIZE_PERCENTILE * len(sides)))])


def size_outliers(paths: list[Path], sizes: list[tuple[int, int]], size: int, root: Path, cap: int) -> list[str]:
    """Warnings naming images far larger than the cache size chosen from the typical one (they are shrunk)."""
    big = [(p, w, h) for p, (w, h) in zip(paths, sizes) if min(w, h) > 2 * size]
    if not big or size >= cap:  # at the cap every large image is shrunk anyway
        return []
    return [f"{len(big)} image(s) are much larger than the typical image and are cached at {size} px like the "
            f"rest (--cache-size overrides):\n" + bullet_list([f"{_rel(p, root)} ({w}x{h})" for p, w, h in big],
                                                              limit=5)]


def _size_summary(sizes: Counter) -> str:
    common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
    more = f", and {len(sizes) - 3} other sizes" if len(sizes) > 3 else ""
    return common + more


def load_dataset(spec: DatasetSpec, *, log=say) -> LoadedData:
    """Validate DATA completely, then return its arrays from the cache, decoding only on a cache miss."""
    listing = list_dataset(spec)
    # The submission format and positive class depend on the listing alone: a bad --positive-class
    # or sample header fails here, before any decoding or cache write.
    pos, fmt = _submission_plan(listing, spec)
    paths = listing.all_images()
    cache_root = spec.cache_dir or default_cache_dir()
    if cache_root == spec.root or spec.root in cache_root.parents:
        raise DataError(f"the cache folder {cache_root} is inside DATA; visionsweep never writes into DATA. "
                        f"Set --cache-dir or VISIONSWEEP_CACHE to a folder outside it")
    key = cache_key(spec, paths)
    entry = cache_root / key
    t0 = time.perf_counter()
    cached = _read_cache(entry, len(paths))
    if cached is not None:
        images, meta = cached
        cache_hit = True
    else:
        images, meta = _decode(listing, spec, log=log)
        if os.path.isdir(entry):  # unusable (damaged by hand, an older format): replaced, not kept forever
            shutil.rmtree(entry, ignore_errors=True)
        _write_cache(entry, images, meta)
        cache_hit = False
    seconds = time.perf_counter() - t0
    return _assemble(listing, spec, images, meta, pos=pos, fmt=fmt, cache_hit=cache_hit, cache_entry=entry,
                     seconds=seconds)


def _submission_plan(listing: Listing, spec: DatasetSpec) -> tuple[str | None, SubmissionFormat]:
    value_cols = list(listing.sample.columns[1:]) if listing.sample is not None else []
    pos = positive_class(listing.classes, requested=spec.positive_class,
                         value_col=value_cols[0] if len(value_cols) == 1 else None)
    fmt = submission_format(classes=listing.classes, positive=pos, id_col=listing.id_col,
                            label_col=listing.label_col, sample=listing.sample)
    return pos, fmt


def _read_cache(entry: Path, count: int) -> tuple[np.ndarray, dict] | None:
    """The cached arrays and their metadata, or None when the entry is absent or unusable (then re-decoded)."""
    try:
        if not (entry / "meta.json").is_file():
            return None
        meta = json.loads((entry / "meta.json").read_text())
        images = np.load(entry / "images.npy")
    except (OSError, ValueError, EOFError):
        return None
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != count or meta.get("count") != count:
        return None
    return images, meta


def _decode(listing: Listing, spec: DatasetSpec, *, log) -> tuple[np.ndarray, dict]:
    paths = listing.all_images()
    probes = probe_all(paths)
    errors = [(p, r) for p, r in zip(paths, probes) if isinstance(r, str)]
    readable = [(p, r) for p, r in zip(paths, probes) if not isinstance(r, str)]
    if errors:
        # Decode the rest too, so that one message lists every bad file (truncated ones show only
        # when decoded), not one kind of problem per run.
        if readable:
            size = choose_cache_size([(w, h) for _, (w, h, _) in readable], spec)
            _, _, more = decode_all([p for p, _ in readable], size, spec.resize_method)
            errors = sorted(errors + more, key=lambda e: str(e[0]))
    else:
        sizes = [(w, h) for w, h, _ in probes]
        size = choose_cache_size(sizes, spec)
        notes = size_outliers(paths, sizes, size, spec.root, spec.max_cache_size) if spec.cache_size is None else []
        log(f"decoding {len(paths)} images at {size}x{size} px (once; later runs read the cache)")
        progress = (lambda n, total: log(f"  {n}/{total} decoded")) if len(paths) >= 10000 else None
        images, conversions, errors = decode_all(paths, size, spec.resize_method, progress=progress)
    if errors:
        lines = [f"{_rel(p, spec.root)} {why}" for p, why in errors]
        raise DataError(f"{len(errors)} image file(s) cannot be used; replace or delete them (and their rows in "
                        f"{spec.train_csv} / {spec.sample_csv}), then run again:\n" + bullet_list(lines))
    meta = {"version": CACHE_VERSION, "size": size, "count": len(paths),
            "sizes": [[w, h, n] for (w, h), n in Counter(sizes).items()], "conversions": dict(conversions),
            "files": [_rel(p, spec.root) for p in paths], "warnings": notes}
    return images, meta


def _write_cache(entry: Path, images: np.ndarray, meta: dict) -> None:
    """Atomic: a half-written entry is never visible under its final name."""
    tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        np.save(tmp / "images.npy", images)
        (tmp / "meta.json").write_text(json.dumps(meta))
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot write the decode cache in {entry.parent} ({err}); set --cache-dir or "
                        f"VISIONSWEEP_CACHE to a writable folder outside DATA with room for the arrays") from None
    try:
        os.replace(tmp, entry)
    except OSError:  # another process wrote the same entry first; both are identical
        shutil.rmtree(tmp, ignore_errors=True)


def _assemble(listing: Listing, spec: DatasetSpec, images: np.ndarray, meta: dict, *, pos: str | None,
              fmt: SubmissionFormat, cache_hit: bool, cache_entry: Path, seconds: float) -> LoadedData:
    index = {c: i for i, c in enumerate(listing.classes)}
    n_train, n_valid = len(listing.train), len(listing.valid or [])
    y_all = np.array([index[lab] for _, lab in listing.train + (listing.valid or [])], dtype=np.int64)
    sizes = Counter({(w, h): n for w, h, n in meta["sizes"]})
    conversions = meta["conversions"]
    train_counts = Counter(lab for _, lab in listing.train)
    valid_counts = Counter(lab for _, lab in (listing.valid or []))
    summary = {
        "data": str(spec.root),
        "layout": listing.layout,
        "classes": {c: {"train": train_counts[c], "valid": valid_counts[c]} for c in listing.classes},
        "train": n_train, "valid": n_valid if listing.valid is not None else None, "test": len(listing.test),
        "image_sizes": _size_summary(sizes),
        "cache_size": meta["size"],
        "id_col": listing.id_col, "label_col": listing.label_col,
        "positive_class": pos,
        "submission": fmt.describe(),
        "conversions": [f"{n} {kind} image(s) converted to RGB" for kind, n in sorted(conversions.items())],
        "warnings": listing.warnings + list(meta.get("warnings", [])),
        "cache": str(cache_entry), "cache_hit": cache_hit, "load_seconds": round(seconds, 2),
    }
    x_valid = images[n_train:n_train + n_valid] if listing.valid is not None else None
    return LoadedData(
        x_train=images[:n_train], y_train=y_all[:n_train],
        x_valid=x_valid, y_valid=y_all[n_train:] if listing.valid is not None else None,
        x_test=images[n_train + n_valid:], test_ids=[i for _, i in listing.test],
        classes=listing.classes, positive_class=pos, submission=fmt, vertical_flip=spec.vertical_flip, flip=spec.flip,
        summary=summary, sample=listing.sample)


def format_summary(summary: dict) -> str:
    """The text `visionsweep check` prints."""
    lines = [f"data:        {summary['data']}", f"layout:      {summary['layout']}"]
    valid = "random stratified holdout at train time" if summary["valid"] is None else summary["valid"]
    lines += [f"images:      train {summary['train']}, valid {valid}, test {summary['test']}",
              f"image sizes: {summary['image_sizes']}  (cached at {summary['cache_size']} px)",
              f"columns:     id {summary['id_col']!r}, label {summary['label_col']!r}",
              f"classes:     {len(summary['classes'])}"]
    for c, n in summary["classes"].items():
        extra = f", valid {n['valid']}" if summary["valid"] is not None else ""
        lines.append(f"  {c!s:<20} train {n['train']}{extra}")
    if summary["positive_class"] is not None:
        lines.append(f"positive:    {summary['positive_class']!r} (binary; override with --positive-class)")
    lines.append(f"submission:  {summary['submission']}")
    lines += [f"converted:   {c}" for c in summary["conversions"]] or ["converted:   none (all images RGB)"]
    state = "hit, nothing decoded" if summary["cache_hit"] else "written"
    lines.append(f"cache:       {summary['cache']} ({state}, {summary['load_seconds']} s)")
    lines += [f"warning:     {w}" for w in summary["warnings"]]
    return "\n".join(lines)

"""Builds small, real image folders (PIL-written files, real CSVs) in every supported layout for the tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (16, 16)


def pattern(size: tuple[int, int] = SIZE, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8: a gradient (so orientation is visible) plus seeded noise (so images differ)."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 // max(w - 1, 1), yy * 200 // max(h - 1, 1), np.full_like(xx, 100)], axis=-1)
    return np.clip(base + rng.integers(0, 50, (h, w, 3)), 0, 255).astype(np.uint8)


def write_image(path: Path, *, size: tuple[int, int] = SIZE, seed: int = 0, mode: str = "RGB",
                array: np.ndarray | None = None) -> Path:
    """Write a real image file; the format follows the extension, `mode` the stored colour mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(pattern(size, seed) if array is None else array)
    if mode == "RGB":
        img = rgb
    elif mode == "P":
        img = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode == "I;16":
        gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        img = Image.fromarray(gray)
    else:
        img = rgb.convert(mode)
    img.save(path)
    return path


def _ids(n: int, salt: str) -> list[str]:
    """Kaggle-style hex ids (Aerial Cactus names its files by a 32-digit hash)."""
    return [hashlib.md5(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def csv_dataset(root: Path, *, classes=("0", "1"), per_class: int = 6, n_test: int = 4, id_col: str = "id",
                label_col: str = "has_cactus", with_ext: bool = True, ext: str = ".jpg", sample: bool = True,
                size: tuple[int, int] = SIZE) -> Path:
    """Aerial-Cactus-like: train.csv (id,has_cactus) + train/ + test/ + sample_submission.csv."""
    root = Path(root)
    names = _ids(per_class * len(classes), "train")
    rows = []
    for i, name in enumerate(names):
        write_image(root / "train" / f"{name}{ext}", size=size, seed=i)
        rows.append((f"{name}{ext}" if with_ext else name, classes[i % len(classes)]))
    _write_csv(root / "train.csv", [id_col, label_col], rows)
    if n_test:
        test = _ids(n_test, "test")
        for i, name in enumerate(test):
            write_image(root / "test" / f"{name}{ext}", size=size, seed=1000 + i)
        if sample:
            _write_csv(root / "sample_submission.csv", [id_col, label_col],
                       [(f"{t}{ext}" if with_ext else t, "0.5") for t in test])
    return root


def folders_dataset(root: Path, *, classes=("cat", "dog"), per_class: int = 5, valid_per_class: int = 0,
                    n_test: int = 3, size: tuple[int, int] = SIZE) -> Path:
    """dogs-vs-cats-like: train/<class>/, optional valid/<class>/, test/1.jpg ..."""
    root = Path(root)
    seed = 0
    for c in classes:
        for i in range(per_class):
            write_image(root / "train" / c / f"{c}.{i}.jpg", size=size, seed=seed)
            seed += 1
        for i in range(valid_per_class):
            write_image(root / "valid" / c / f"{c}.{100 + i}.jpg", size=size, seed=seed)
            seed += 1
    for i in range(1, n_test + 1):
        write_image(root / "test" / f"{i}.jpg", size=size, seed=2000 + i)
    return root


def filenames_dataset(root: Path, *, classes=("cat", "dog"), per_class: int = 5, n_test: int = 4,
                      sample: bool = True, size: tuple[int, int] = SIZE) -> Path:
    """dogs-vs-cats Redux: train/cat.0.jpg ..., test/1.jpg ..., sample_submission.csv id,label (ids = stems)."""
    root = Path(root)
    seed = 0
    for c in classes:
        for i in range(per_class):
            write_image(root / "train" / f"{c}.{i}.jpg", size=size, seed=seed)
            seed += 1
    for i in range(1, n_test + 1):
        write_image(root / "test" / f"{i}.jpg", size=size, seed=3000 + i)
    if sample and n_test:
        _write_csv(root / "sample_submission.csv", ["id", "label"], [(str(i), "0.5") for i in range(1, n_test + 1)])
    return root


def _write_csv(path: Path, header: list[str], rows) -> None:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    Path(path).write_text("\n".join(lines) + "\n")


def read_lines(path: Path) -> list[str]:
    return Path(path).read_text().splitlines()


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root (hidden ones too) -> content hash, 'dir' or 'link', to prove nothing changed."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link"
            else:
                with open(p, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def cli(*args: str, cwd: Path, cache: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed `visionsweep` command line in a subprocess, as a user would."""
    exe = Path(sys.executable).parent / "visionsweep"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "visionsweep.search.cli"]
    env = dict(os.environ)
    if cache is not None:
        env["VISIONSWEEP_CACHE"] = str(cache)
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def check_as_user(roots: list[Path], cache: Path, uid: int = 65534) -> list[tuple[int, str]]:
    """`visionsweep check ROOT` for each root, in one fresh process that drops root for `uid` first.

    Returns (exit status, stderr) per root. Tests run as root in some sandboxes, where chmod 000 denies
    nothing; an unprivileged process sees the permissions a user would. The child imports everything it
    needs before dropping root, since the interpreter itself may live in a folder only root can read.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # not fork: the parent may hold threads (Ray, thread pools)
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_check_child, args=([str(r) for r in roots], str(cache), uid, send))
    proc.start()
    send.close()
    try:
        results = receive.recv()
    except EOFError:
        results = [(-1, "the child process died without an answer")] * len(roots)
    proc.join(60)
    return results


def _check_child(roots: list[str], cache: str, uid: int, conn) -> None:
    import contextlib
    import io
    import traceback

    from PIL import Image

    import visionsweep.datasets.load  # noqa: F401  (imported while still readable)
    import visionsweep.search.cli

    Image.init()
    results = []
    try:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    except OSError:
        conn.send([(-1, traceback.format_exc())] * len(roots))
        return
    os.environ["VISIONSWEEP_CACHE"] = cache
    for root in roots:
        err, code = io.StringIO(), 99
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = visionsweep.search.cli.main(["check", root])
        except BaseException:
            err.write(traceback.format_exc())
        results.append((code, err.getvalue()))
    conn.send(results)

"""Reads image files: a cheap header probe, then one full decode to RGB uint8 at the cache size."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL.ImageFile.LOAD_TRUNCATED_IMAGES stays False on purpose: a truncated file is an error, never
# silently padded with grey.
_GRAY_MODES = {"L", "1"}
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
_CONVERSION_NAMES = {"L": "grayscale", "1": "1-bit", "LA": "grayscale+alpha", "RGBA": "RGBA", "P": "palette",
                     "PA": "palette+alpha", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "LAB", "HSV": "HSV",
                     "RGBa": "RGBA", "La": "grayscale+alpha"}


def _threads() -> int:
    return max(1, min(32, os.cpu_count() or 1))


def probe(path: Path) -> tuple[int, int, str] | str:
    """(width, height, mode) from the header, or an error text. Does not decode pixels."""
    try:
        if path.stat().st_size == 0:
            return "is empty (0 bytes)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.width, img.height, img.mode
    except UnidentifiedImageError:
        return "is not an image PIL can read (wrong extension, or not an image at all)"
    except PermissionError:
        return "cannot be read: permission denied"
    except (OSError, ValueError, SyntaxError) as err:
        return f"cannot be opened ({err})"


def probe_all(paths: list[Path]) -> list[tuple[int, int, str] | str]:
    with ThreadPoolExecutor(_threads()) as pool:
        return list(pool.map(probe, paths, chunksize=64))


def to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """RGB copy of `img` and the name of the conversion made (None for RGB input)."""
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in _WIDE_MODES:
        arr = np.asarray(img)
        if arr.dtype.kind == "f":
            top = float(arr.max()) if arr.size and float(arr.max()) > 1.0 else 1.0
            arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            arr = arr.astype(np.int64)
            # 16-bit data scaled down by 256, not clipped at 255 (PIL's convert would clip).
            arr8 = (arr >> 8).astype(np.uint8) if arr.max(initial=0) > 255 else arr.astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB"), "16-bit"
    if mode in ("P", "PA") and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB"), _CONVERSION_NAMES.get(mode, mode)


def decode(path: Path, size: int, method: str) -> tuple[np.ndarray, str | None] | str:
    """(size, size, 3) uint8 array and the conversion made, or an error text (truncated, corrupt)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.format == "JPEG":
                    img.draft("RGB", (size, size))  # decode at a reduced scale: large JPEGs cost less
                img.load()
                img = ImageOps.exif_transpose(img)
                img, conversion = to_rgb(img)
                return _fit(img, size, method), conversion
    except UnidentifiedImageError:
        return "is not an image PIL can read (wrong extension, or not an image at all)"
    except (OSError, ValueError, SyntaxError) as err:
        msg = str(err)
        if "truncated" in msg or "broken data stream" in msg:
            return f"is truncated or corrupt ({msg})"
        return f"cannot be decoded ({msg})"


def _fit(img: Image.Image, size: int, method: str) -> np.ndarray:
    w, h = img.size
    if (w, h) != (size, size):
        if method == "squish":
            img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
        else:  # crop: shorter side to `size`, centre crop; aspect ratio kept
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def decode_all(paths: list[Path], size: int, method: str, *, progress=None) -> tuple[np.ndarray, Counter, list]:
    """Decode every image in parallel into one (N, size, size, 3) array; errors are collected, not skipped."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    conversions: Counter = Counter()
    errors: list[tuple[Path, str]] = []

    with ThreadPoolExecutor(_threads()) as pool:
        results = pool.map(lambda path: decode(path, size, method), paths, chunksize=32)
        for i, result in enumerate(results):  # counted in this thread only: no shared mutable state
            if isinstance(result, str):
                errors.append((paths[i], result))
            else:
                out[i], conversion = result
                if conversion:
                    conversions[conversion] += 1
            if progress is not None and (i + 1) % 2000 == 0:
                progress(i + 1, len(paths))
    errors.sort(key=lambda e: str(e[0]))
    return out, conversions, errors

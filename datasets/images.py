"""Reads image files: a cheap header probe, then one full decode to RGB uint8 at the cache size."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

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
        with Image.open(path) as img:
            return img.width, img.height, img.mode
    except UnidentifiedImageError:
        return "is not an image PIL can read (wrong extension, or not an image at all)"
    except PermissionError:
        return "cannot be read: permission denied"
    except Image.DecompressionBombError as err:
        return f"is too large to decode safely ({err})"
    except (OSError, ValueError, SyntaxError) as err:
        return _describe_error("cannot be opened", err)


def _describe_error(default: str, err: Exception) -> str:
    msg = str(err)
    if "truncated" in msg.lower() or "broken data stream" in msg:
        return f"is truncated or corrupt ({msg})"
    return f"{default} ({msg})"


@contextmanager
def _quiet_bombs():
    """Large-but-allowed images (more than PIL's warning threshold) decode without a warning each.

    Set around a whole thread pool, in the calling thread: warnings.catch_warnings() inside the
    workers would race on the process-wide filter list and could leave it changed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def probe_all(paths: list[Path]) -> list[tuple[int, int, str] | str]:
    with _quiet_bombs(), ThreadPoolExecutor(_threads()) as pool:
        return list(pool.map(probe, paths))


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
            arr = np.clip(arr.astype(np.int64), 0, None)
            top = int(arr.max(initial=0))
            # 16-bit data scaled down by 256, not clipped at 255 (PIL's convert would clip); 32-bit
            # integer data beyond 16 bits by its own maximum, so it never wraps around.
            if top > 65535:
                arr8 = (arr * 255 // top).astype(np.uint8)
            elif top > 255:
                arr8 = (arr >> 8).astype(np.uint8)
            else:
                arr8 = arr.astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB"), "16-bit"
    if mode in ("P", "PA") and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB"), _CONVERSION_NAMES.get(mode, mode)


def decode(path: Path, size: int, method: str) -> tuple[np.ndarray, str | None] | str:
    """(size, size, 3) uint8 array and the conversion made, or an error text (truncated, corrupt)."""
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # decode at a reduced scale: large JPEGs cost less
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of every upright image
            img, conversion = to_rgb(img)
            return _fit(img, size, method), conversion
    except UnidentifiedImageError:
        return "is not an image PIL can read (wrong extension, or not an image at all)"
    except Image.DecompressionBombError as err:
        return f"is too large to decode safely ({err})"
    except (OSError, ValueError, SyntaxError) as err:
        return _describe_error("cannot be decoded", err)


def _fit(img: Image.Image, size: int, method: str) -> np.ndarray:
    w, h = img.size
    if (w, h) != (size, size):
        if method == "squish":
            box = (0.0, 0.0, float(w), float(h))
        else:  # crop: the centred square of side min(w, h), aspect ratio kept
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        # One resample of the box straight to size x size: the cropped-away parts are never resampled.
        img = img.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def decode_all(paths: list[Path], size: int, method: str, *, progress=None) -> tuple[np.ndarray, Counter, list]:
    """Decode every image in parallel into one (N, size, size, 3) array; errors are collected, not skipped."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    conversions: Counter = Counter()
    errors: list[tuple[Path, str]] = []

    # A bar with the rate on a terminal for folders worth waiting on (tqdm turns itself off when stderr is no
    # terminal; `progress` then reports to the log).
    bar = tqdm(total=len(paths), desc="decoding", unit="img", disable=None if len(paths) >= 2000 else True,
               leave=False, mininterval=0.5)
    with _quiet_bombs(), ThreadPoolExecutor(_threads()) as pool, bar:
        results = pool.map(lambda path: decode(path, size, method), paths)
        for i, result in enumerate(results):  # counted in this thread only: no shared mutable state
            bar.update()
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

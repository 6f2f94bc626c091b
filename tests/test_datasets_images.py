"""Images that are not 8-bit RGB are converted (and counted), never rejected; decoding keeps orientation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visionsweep.datasets import DatasetSpec
from visionsweep.datasets.images import decode, probe, to_rgb
from visionsweep.datasets.load import format_summary, load_dataset
from imagefolders import pattern, write_image


def _load(root, **kw):
    return load_dataset(DatasetSpec(root=root, **kw), log=lambda *a: None)


def _mixed_folder(root):
    """train/<a|b>/ with one image of each colour mode, plus plain RGB ones."""
    modes = [("L", ".png"), ("RGBA", ".png"), ("P", ".png"), ("CMYK", ".jpg"), ("I;16", ".png"), ("1", ".png"),
             ("LA", ".png")]
    for i, (mode, ext) in enumerate(modes):
        write_image(root / "train" / ("a" if i % 2 else "b") / f"m{i}{ext}", mode=mode, seed=i)
    for i in range(3):
        write_image(root / "train" / "a" / f"rgb{i}.png", seed=50 + i)
        write_image(root / "train" / "b" / f"rgb{i}.png", seed=60 + i)
    return root


def test_mixed_modes_are_converted_and_counted(tmp_path):
    root = _mixed_folder(tmp_path / "data")
    assert {Image.open(p).mode for p in root.rglob("m*")} == {"L", "RGBA", "P", "CMYK", "I;16", "1", "LA"}
    data = _load(root)
    assert data.x_train.shape == (13, 16, 16, 3) and data.x_train.dtype == np.uint8
    assert data.summary["conversions"] == [
        "1 1-bit image(s) converted to RGB", "1 16-bit image(s) converted to RGB",
        "1 CMYK image(s) converted to RGB", "1 RGBA image(s) converted to RGB",
        "1 grayscale image(s) converted to RGB", "1 grayscale+alpha image(s) converted to RGB",
        "1 palette image(s) converted to RGB"]
    text = format_summary(data.summary)
    assert "converted:   1 CMYK image(s) converted to RGB" in text


@pytest.mark.parametrize("mode", ["L", "1", "I;16", "LA"])
def test_gray_modes_become_equal_channels(tmp_path, mode):
    path = write_image(tmp_path / "x.png", mode=mode)
    arr, conversion = decode(path, 16, "crop")
    assert conversion is not None
    assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    gray = np.asarray(Image.fromarray(pattern()).convert("L"))
    if mode == "1":
        assert set(np.unique(arr)) <= {0, 255}
    else:
        assert np.abs(arr[..., 0].astype(int) - gray).max() <= 1


def test_rgba_palette_and_cmyk_keep_colours(tmp_path):
    src = pattern()
    for mode, ext, tol in [("RGBA", ".png", 0), ("P", ".png", 80), ("CMYK", ".jpg", 40)]:
        arr, _ = decode(write_image(tmp_path / f"x{ext}", mode=mode), 16, "crop")
        err = np.abs(arr.astype(int) - src).mean()
        assert err <= tol / 4, (mode, err)


def test_16_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode == "I;16"
    arr, conversion = decode(tmp_path / "wide.png", 4, "squish")
    assert conversion == "16-bit"
    assert arr[0, :, 0].tolist() == [0, 1, 128, 255]  # PIL's own convert would give [0, 255, 255, 255]


def test_32_bit_integer_and_float_images_do_not_wrap(tmp_path):
    big = np.array([[0, 1 << 20, 1 << 24, (1 << 24) * 2]], dtype=np.int32).repeat(4, axis=0)
    Image.fromarray(big).save(tmp_path / "big.tif")
    assert Image.open(tmp_path / "big.tif").mode == "I"
    arr, _ = decode(tmp_path / "big.tif", 4, "squish")
    row = arr[0, :, 0].tolist()
    assert row == sorted(row) and row[0] == 0 and row[-1] == 255 and 120 <= row[2] <= 135
    img, kind = to_rgb(Image.fromarray(np.array([[0.0, 0.5, 1.0, 2.0]], dtype=np.float32)))
    assert kind == "16-bit" and np.asarray(img)[0, :, 0].tolist() == [0, 64, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:, :16] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out, _ = decode(tmp_path / "r.jpg", 16, "squish")
    # displayed upright, the white half is on top
    assert out[:8].mean() > 200 and out[8:].mean() < 50


def test_crop_and_squish_shapes_and_orientation(tmp_path):
    """A 40x20 image whose red grows left->right and green top->bottom."""
    w, h = 40, 20
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 6, yy * 12, np.zeros_like(xx)], -1).astype(np.uint8)
    path = write_image(tmp_path / "wide.png", array=arr)
    crop, _ = decode(path, 20, "crop")
    squish, _ = decode(path, 20, "squish")
    assert crop.shape == squish.shape == (20, 20, 3)
    for out in (crop, squish):
        assert out[:, 0, 0].mean() < out[:, -1, 0].mean()   # left darker red than right: not mirrored
        assert out[0, :, 1].mean() < out[-1, :, 1].mean()   # top darker green than bottom: not flipped
    # crop keeps the centre 20 columns at scale 1: red 60..174; squish spans the whole width
    assert np.array_equal(crop, arr[:, 10:30])
    assert squish[:, 0, 0].mean() < 15 and squish[:, -1, 0].mean() > 220
    tall, _ = decode(write_image(tmp_path / "tall.png", array=arr.transpose(1, 0, 2).copy()), 10, "crop")
    assert tall.shape == (10, 10, 3)


def test_probe_does_not_decode_and_reports_problems(tmp_path):
    path = write_image(tmp_path / "x.jpg", size=(30, 20))
    assert probe(path) == (30, 20, "RGB")
    (tmp_path / "empty.png").write_bytes(b"")
    assert probe(tmp_path / "empty.png") == "is empty (0 bytes)"
    (tmp_path / "text.png").write_text("hello")
    assert "not an image PIL can read" in probe(tmp_path / "text.png")
    assert isinstance(probe(tmp_path / "missing.png"), str)


def test_large_allowed_images_decode_quietly_and_filters_are_restored(tmp_path, monkeypatch):
    import warnings

    from visionsweep.datasets.images import decode_all, probe_all

    paths = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(6)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # 256 px: above the warning line, below the error line
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert all(isinstance(r, tuple) for r in probe_all(paths))
        out, _, errors = decode_all(paths, 16, "crop")
    assert errors == [] and out.shape == (6, 16, 16, 3)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == before

"""The decode cache: a second load decodes nothing; any file change invalidates; entries are atomic; sizes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import visionsweep.datasets.load
from visionsweep.datasets import DataError, DatasetSpec
from visionsweep.datasets.load import load_dataset
from imagefolders import csv_dataset, folders_dataset, snapshot, write_image


def _load(root, cache, **kw):
    return load_dataset(DatasetSpec(root=root, cache_dir=cache, **kw), log=lambda *a: None)


def _forbid_decoding(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("decoded although the cache should have been hit")
    monkeypatch.setattr(visionsweep.datasets.load, "decode_all", boom)
    monkeypatch.setattr(visionsweep.datasets.load, "probe_all", boom)


def test_second_load_decodes_nothing(tmp_path, monkeypatch):
    root = csv_dataset(tmp_path / "data", n_test=3)
    cache = tmp_path / "cache"
    first = _load(root, cache)
    assert first.summary["cache_hit"] is False
    _forbid_decoding(monkeypatch)
    second = _load(root, cache)
    assert second.summary["cache_hit"] is True
    for name, arr in first.arrays().items():
        assert np.array_equal(arr, second.arrays()[name]), name
    assert second.test_ids == first.test_ids and second.summary["conversions"] == first.summary["conversions"]
    assert second.summary["image_sizes"] == first.summary["image_sizes"]


def test_default_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONSWEEP_CACHE", str(tmp_path / "envcache"))
    root = csv_dataset(tmp_path / "data", n_test=0)
    data = load_dataset(DatasetSpec(root=root), log=lambda *a: None)
    assert data.summary["cache"].startswith(str((tmp_path / "envcache").resolve()))
    assert (tmp_path / "envcache").is_dir()


def test_touching_one_file_invalidates(tmp_path):
    root = folders_dataset(tmp_path / "data", n_test=2)
    cache = tmp_path / "cache"
    first = _load(root, cache)
    path = root / "train" / "cat" / "cat.0.jpg"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = _load(root, cache)
    assert second.summary["cache_hit"] is False and second.summary["cache"] != first.summary["cache"]
    assert _load(root, cache).summary["cache_hit"] is True


def test_rewriting_one_file_invalidates_and_shows_new_pixels(tmp_path):
    root = folders_dataset(tmp_path / "data", n_test=0)
    cache = tmp_path / "cache"
    first = _load(root, cache)
    write_image(root / "train" / "cat" / "cat.0.jpg", array=np.zeros((16, 16, 3), np.uint8))
    second = _load(root, cache)
    assert second.summary["cache_hit"] is False
    assert second.x_train[0].max() < 10 and first.x_train[0].max() > 100
    assert np.array_equal(second.x_train[1:], first.x_train[1:])


def test_adding_or_reordering_images_invalidates(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=3)
    cache = tmp_path / "cache"
    key = _load(root, cache).summary["cache"]
    lines = (root / "sample_submission.csv").read_text().splitlines()
    (root / "sample_submission.csv").write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n")
    reordered = _load(root, cache)
    assert reordered.summary["cache"] != key and reordered.summary["cache_hit"] is False


def test_cache_options_are_part_of_the_key(tmp_path):
    root = folders_dataset(tmp_path / "data", n_test=0, size=(24, 16))
    cache = tmp_path / "cache"
    crop = _load(root, cache)
    squish = _load(root, cache, resize_method="squish")
    sized = _load(root, cache, cache_size=12)
    assert len({crop.summary["cache"], squish.summary["cache"], sized.summary["cache"]}) == 3
    assert not squish.summary["cache_hit"] and not sized.summary["cache_hit"]
    assert not np.array_equal(crop.x_train, squish.x_train)


def test_entry_is_written_atomically(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=2)
    cache = tmp_path / "cache"
    data = _load(root, cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 1 and ".tmp-" not in entries[0]
    entry = cache / entries[0]
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "meta.json"]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["count"] == 14 and meta["size"] == 16 and len(meta["files"]) == 14
    assert np.load(entry / "images.npy").shape == (14, 16, 16, 3)
    assert not list(cache.rglob("*.tmp-*"))
    assert data.summary["cache"] == str(entry)


def test_damaged_entry_is_replaced_not_trusted(tmp_path):
    root = csv_dataset(tmp_path / "data", n_test=0)
    cache = tmp_path / "cache"
    first = _load(root, cache)
    npy = cache / os.listdir(cache)[0] / "images.npy"
    npy.write_bytes(npy.read_bytes()[:100])
    second = _load(root, cache)
    assert second.summary["cache_hit"] is False
    assert np.array_equal(second.x_train, first.x_train)
    assert _load(root, cache).summary["cache_hit"] is True
    assert not list(cache.rglob("*.tmp-*"))


def test_cache_never_written_into_data(tmp_path, monkeypatch):
    root = csv_dataset(tmp_path / "data", n_test=2)
    before = snapshot(root)
    monkeypatch.setenv("VISIONSWEEP_CACHE", str(root / "train" / "cache"))
    with pytest.raises(DataError, match="inside DATA"):
        load_dataset(DatasetSpec(root=root), log=lambda *a: None)
    _load(root, tmp_path / "cache")
    assert snapshot(root) == before


# ---------------------------------------------------------------- the cached size

def test_native_size_for_small_images(tmp_path):
    root = folders_dataset(tmp_path / "data", size=(24, 16), n_test=0)
    write_image(root / "train" / "cat" / "big.png", size=(40, 20))
    data = _load(root, tmp_path / "cache")
    # the typical shorter side (90th percentile): one larger image does not set the size of all the others
    assert data.summary["cache_size"] == 16 and data.x_train.shape[1:] == (16, 16, 3)
    assert "24x16 (10), 40x20 (1)" == data.summary["image_sizes"]
    for i in range(3):  # once larger images are common, none is upscaled more than needed
        write_image(root / "train" / "dog" / f"big{i}.png", size=(40, 20))
    assert _load(root, tmp_path / "cache").summary["cache_size"] == 20


def test_large_images_are_capped(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=2, size=(300, 280), n_test=0)
    data = _load(root, tmp_path / "cache")
    assert data.summary["cache_size"] == 256 and data.x_train.shape == (4, 256, 256, 3)
    capped = _load(root, tmp_path / "cache", max_cache_size=64)
    assert capped.x_train.shape == (4, 64, 64, 3)


def test_explicit_cache_size_wins(tmp_path):
    root = folders_dataset(tmp_path / "data", per_class=2, size=(300, 280), n_test=0)
    assert _load(root, tmp_path / "cache", cache_size=48).x_train.shape == (4, 48, 48, 3)
    small = folders_dataset(tmp_path / "small", per_class=2, size=(16, 16), n_test=0)
    up = _load(small, tmp_path / "cache", cache_size=32, max_cache_size=8)
    assert up.x_train.shape == (4, 32, 32, 3)


@pytest.mark.parametrize("method", ["crop", "squish"])
def test_resize_method_content(tmp_path, method):
    w, h = 48, 24
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 5, yy * 10, np.zeros_like(xx)], -1).astype(np.uint8)
    root = tmp_path / "data"
    for c in ("a", "b"):
        write_image(root / "train" / c / "1.png", array=arr)
        write_image(root / "train" / c / "2.png", array=arr)
    x = _load(root, tmp_path / "cache", resize_method=method, cache_size=24).x_train[0]
    assert x.shape == (24, 24, 3)
    if method == "crop":
        assert np.array_equal(x, arr[:, 12:36])  # the centre, unscaled
    else:
        assert x[:, 0, 0].mean() < 10 and x[:, -1, 0].mean() > 220  # the whole width, squeezed
    assert x[0, :, 1].mean() < x[-1, :, 1].mean()  # top stays on top

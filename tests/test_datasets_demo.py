"""The digits demo: a valid Kaggle-CSV folder that `check` accepts; reused when present; foreign folders refused."""

from __future__ import annotations

import pandas as pd
import pytest

from visionsweep.datasets import DataError, DatasetSpec
from visionsweep.datasets.demo import build_demo
from visionsweep.datasets.load import load_dataset
from imagefolders import cli, snapshot


def test_demo_builds_a_checkable_competition_and_is_reused(tmp_path):
    out = tmp_path / "demo"
    data_dir = build_demo(out, size=16)
    assert data_dir == out.resolve() / "data"
    assert sorted(p.name for p in data_dir.iterdir()) == ["sample_submission.csv", "test", "train", "train.csv"]
    solution = pd.read_csv(out / "solution.csv", dtype=str)
    sample = pd.read_csv(data_dir / "sample_submission.csv", dtype=str)
    assert solution["id"].tolist() == sample["id"].tolist()  # the test labels live outside DATA, same order
    assert not list(out.parent.glob(".demo.tmp-*"))

    data = load_dataset(DatasetSpec(root=data_dir), log=lambda *a: None)
    s = data.summary
    assert s["layout"] == "csv" and data.classes == [str(d) for d in range(10)]
    assert s["train"] + s["test"] == 1797 and s["test"] == len(solution)
    assert all(n["train"] >= 130 for n in s["classes"].values())
    assert s["conversions"] == ["1797 grayscale image(s) converted to RGB"]
    assert data.submission.kind == "label" and data.x_train.shape[1:] == (16, 16, 3)

    before = snapshot(out)
    assert build_demo(out, size=16) == data_dir  # reused: nothing rewritten
    assert snapshot(out) == before
    with pytest.raises(DataError, match="built with other options"):
        build_demo(out, size=24)
    assert snapshot(out) == before

    r = cli("check", data_dir, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "classes:     10" in r.stdout and "1797 grayscale image(s) converted to RGB" in r.stdout
    assert f"test {s['test']}" in r.stdout


def test_demo_refuses_a_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    before = snapshot(out)
    with pytest.raises(DataError, match="is not a visionsweep demo folder.*nothing was written"):
        build_demo(out)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder beside it
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        build_demo(tmp_path / "file")


def test_demo_into_an_empty_folder(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    data_dir = build_demo(out, size=8)
    assert (data_dir / "train.csv").is_file() and (out / ".visionsweep.json").is_file()

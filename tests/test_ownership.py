"""The ownership marker: every command that writes or deletes acts only on folders visionsweep marked, checked
by the marker's content; nothing is written into DATA. All of these fail before Ray starts."""

import json

import pytest

from conftest import cli_in_process

from digits import digits_csv_folder
from imagefolders import snapshot
from visionsweep.datasets import DataError, ownership
from visionsweep.search.runs import prepare_run_dir
from visionsweep.trainables.config import TrainConfig

TINY = ["--backbone", "test_resnet", "--epochs", "1", "--image-size", "16", "--no-pretrained", "--cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return digits_csv_folder(tmp_path_factory.mktemp("own") / "data", n_test=10)


def _hf_folder(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    (path / "model.safetensors").write_bytes(b"\0" * 64)
    (path / "tokenizer.json").write_text("{}")
    return path


def test_marker_is_checked_by_content(tmp_path):
    hf = _hf_folder(tmp_path / "hf")
    assert ownership.folder_kind(hf) is None
    old_run = tmp_path / "old_run"
    old_run.mkdir()
    (old_run / "config.json").write_text(json.dumps({"visionsweep_run": True, "train": {}}))
    assert ownership.folder_kind(old_run) == "run"
    old_sweep = tmp_path / "old_sweep"
    old_sweep.mkdir()
    (old_sweep / "sweep.json").write_text('{"visionsweep_sweep": true}')
    assert ownership.folder_kind(old_sweep) == "sweep"
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sweep.json").write_text('{"name": "someone else"}')
    (fake / ownership.MARKER).write_text("not json")
    assert ownership.folder_kind(fake) is None
    ownership.write_marker(tmp_path / "new", "run")
    assert ownership.folder_kind(tmp_path / "new") == "run"


def test_overwrite_never_deletes_a_hugging_face_folder(tmp_path):
    hf = _hf_folder(tmp_path / "bert")
    before = snapshot(hf)
    with pytest.raises(DataError, match="not a visionsweep run"):
        prepare_run_dir(hf, overwrite=True, resume=False)
    with pytest.raises(DataError, match="not a visionsweep run"):
        prepare_run_dir(hf, overwrite=False, resume=True)
    assert snapshot(hf) == before


def test_train_overwrite_on_a_foreign_folder_exits_2_and_keeps_it(data, tmp_path):
    hf = _hf_folder(tmp_path / "bert")
    before = snapshot(hf)
    res = cli_in_process("train", data, *TINY, "--out", hf, "--overwrite")
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.count("error:") == 1 and "not a visionsweep run" in res.stderr and "Traceback" not in res.stderr
    assert snapshot(hf) == before


def test_train_out_inside_data_is_refused_and_writes_nothing(data, tmp_path):
    before = snapshot(data)
    res = cli_in_process("train", data, *TINY, "--out", data / "train" / "run1", "--workers", "1000")
    assert res.returncode == 2 and "inside the DATA folder" in res.stderr and "--out" in res.stderr, res.stderr
    assert snapshot(data) == before
    assert not (data / "train" / "run1").exists()


def test_a_refused_train_leaves_no_out_folder(data, tmp_path):
    """--workers beyond the cluster is found before --out is created."""
    from visionsweep.trainables import ray_session

    out = tmp_path / "run"
    action = prepare_run_dir(out, overwrite=False, resume=False)
    assert action == "new" and not out.exists()
    with pytest.raises(DataError, match="--workers 1000"):
        ray_session.check_resources(TrainConfig(workers=1000), [{"CPU": 2.0}])
    assert not out.exists()


def test_sweep_refuses_other_visionsweep_folders_and_fake_markers(data, tmp_path):
    storage = tmp_path / "sweeps"
    fake = storage / "new"
    fake.mkdir(parents=True)
    (fake / "sweep.json").write_text('{"name": "not ours"}')
    before = snapshot(storage)
    res = cli_in_process("sweep", data, "--name", "new", "--storage", storage, "--trials", "1", "--epochs", "1",
                  "--backbones", "test_resnet", "--cpu", "--resume")
    assert res.returncode == 2 and "no visionsweep sweep to resume" in res.stderr, res.stderr[-2000:]
    assert snapshot(storage) == before

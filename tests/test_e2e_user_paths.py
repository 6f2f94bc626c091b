"""End-to-end: a sweep over a class-folder competition with its own valid/ folder, predicted in both multi-class
submission formats (a label column; one probability column per class). Real CLI subprocesses, the session's Ray
cluster, test_resnet, digits. (`train --resume` after Ctrl-C: tests/test_trainables_ray.py.)"""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

# Three digit classes, named so that alphabetical order (one, seven, zero) differs from the digits' order and from
# the per-class sample's column order below: a column mapped by position instead of by name shows.
DIGITS = {0: "zero", 1: "one", 7: "seven"}
N_TRAIN, N_VALID, N_TEST = 120, 20, 20  # per class (digits has ~178 of each)
SIZE = 16


def _digit_folders(root: Path) -> tuple[Path, dict[str, str]]:
    """train/<class>/, valid/<class>/, test/<n>.png and sample_submission.csv (id,label; ids in a shuffled order,
    not the files' order). Returns DATA and the held-out test labels {id: class}."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    truth: dict[str, str] = {}
    test_items = []
    for digit, name in DIGITS.items():
        idx = rng.permutation(np.flatnonzero(d.target == digit))
        splits = {"train": idx[:N_TRAIN], "valid": idx[N_TRAIN:N_TRAIN + N_VALID],
                  "test": idx[N_TRAIN + N_VALID:N_TRAIN + N_VALID + N_TEST]}
        for part in ("train", "valid"):
            (root / part / name).mkdir(parents=True)
            for i in splits[part]:
                _digit_image(d.images[i]).save(root / part / name / f"{name}.{i}.png")
        test_items += [(i, name) for i in splits["test"]]
    (root / "test").mkdir()
    for n, (i, name) in enumerate(test_items, start=1):
        _digit_image(d.images[i]).save(root / "test" / f"{n}.png")
        truth[str(n)] = name
    ids = [str(n) for n in rng.permutation(np.arange(1, len(test_items) + 1))]
    pd.DataFrame({"id": ids, "label": "zero"}).to_csv(root / "sample_submission.csv", index=False)
    return root, truth


def _digit_image(pixels: np.ndarray):
    from PIL import Image

    return Image.fromarray((pixels / 16 * 255).astype(np.uint8), "L").resize((SIZE, SIZE), Image.BICUBIC)


@pytest.fixture(scope="module")
def digits_data(tmp_path_factory):
    return _digit_folders(tmp_path_factory.mktemp("digits3") / "data")


@pytest.fixture(scope="module")
def folder_sweep(ray_cluster, digits_data, tmp_path_factory):
    """`visionsweep sweep --lr-find --search-flip --verbose` on the class-folder DATA: lr_find first, then 2 trials x 2
    epochs of test_resnet (the recipe with and without horizontal flips), no refit (predict then uses the trials'
    best checkpoints, which never saw valid/)."""
    data, _ = digits_data
    storage = tmp_path_factory.mktemp("sweeps")
    res = run_cli("sweep", data, "--name", "folders3", "--storage", storage, "--trials", "2", "--epochs", "2",
                  "--backbones", "test_resnet", "--image-size", str(SIZE), "--batch-size", "16", "--no-pretrained",
                  "--cpu", "--refit", "0", "--early-stopping", "none", "--lr-find", "--search-flip", "--verbose", timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return storage / "folders3", res.stdout + res.stderr


def _accuracy(labels: pd.Series, ids: pd.Series, truth: dict[str, str]) -> float:
    return float(np.mean([lab == truth[str(i)] for i, lab in zip(ids, labels)]))


def test_sweep_validates_on_the_valid_folder_and_predicts_both_multiclass_formats(folder_sweep, digits_data, tmp_path):
    path, console = folder_sweep
    data, truth = digits_data
    n_train, n_valid = N_TRAIN * len(DIGITS), N_VALID * len(DIGITS)
    assert len(list((data / "valid").rglob("*.png"))) == n_valid

    # valid/ is the validation set, not a --valid-pct holdout of train/ (which would be 72 of 360 images): the console,
    # sweep.json's data summary and the leaderboard's valid_n all count the valid/ folder's images.
    assert f"train {n_train} / valid {n_valid} images" in console, console[-3000:]
    # --refit 0: the leaderboard's header names what the folder keeps, and no refit models.
    header = next(ln for ln in console.splitlines() if ln.startswith("leaderboard ("))
    assert "best weights of the top" in header and "refit" not in header, header
    record = json.loads((path / "sweep.json").read_text())
    assert record["data"]["valid"] == n_valid and record["data"]["train"] == n_train, record["data"]
    board = pd.read_csv(path / "leaderboard.csv")
    assert len(board) == 2 and set(board["status"]) <= {"done", "stopped early"}, board
    assert (board["valid_n"].dropna() == n_valid).all() and board["valid_n"].notna().any(), board

    # --verbose: what Ray's processes print reaches the console too (by default it stays in Ray's session logs).
    assert re.search(r"\((run_trial|RayTrainWorker|TrainController) pid=", console), console[-3000:]
    # --lr-find: the max LR is searched within x/÷LR_FIND_SPAN of the valley of lr_find's curve, saved in the sweep.
    from visionsweep.search.lr_ranges import LR_FIND_SPAN

    valley = json.loads((path / "lr_find" / "test_resnet.json").read_text())["suggestions"]["valley"]["lr"]
    saved = record["search"]["lr_ranges"]["test_resnet"]
    assert saved == pytest.approx([valley / LR_FIND_SPAN, valley * LR_FIND_SPAN])
    assert (path / "lr_find" / "test_resnet.png").stat().st_size > 0
    # Trial 1, the recipe's 3e-3, is clipped into the new range (sampled ones: test_search_space).
    assert board["max_lr"].between(saved[0] * (1 - 1e-9), saved[1] * (1 + 1e-9)).all(), board
    # --search-flip: trial 2 is the recipe without horizontal flips, and each trial's checkpoints say how it trained
    # (predict's TTA follows them); once both have ended, the console says what the later trials would run with.
    board = board.sort_values("order")
    assert board["flip"].tolist() == [True, False] and board["max_lr"].nunique() == 1, board
    assert re.search(rf"flips: the recipe scored [01]\.\d{{3}} with them, [01]\.\d{{3}} without \(validation accuracy at "
                     rf"epoch 2, {n_valid} images\): the trials from now on run with(out)? them", console), console[-3000:]
    for trial_id, flip in zip(board["trial_id"], board["flip"]):
        metas = list((path / "train_runs" / f"train-{trial_id}").glob("checkpoint_*/meta.json"))
        assert metas and all(json.loads(m.read_text())["flip"] is flip for m in metas), (trial_id, metas)

    # (a) sample_submission.csv is id,label: one predicted class name per row, in the sample's id order.
    sub_a = tmp_path / "labels.csv"
    res = run_cli("predict", path, data, "--out", sub_a)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    sample_a = pd.read_csv(data / "sample_submission.csv", dtype=str)
    written_a = pd.read_csv(sub_a, dtype=str)
    assert list(written_a.columns) == ["id", "label"]
    assert written_a["id"].tolist() == sample_a["id"].tolist()
    assert set(written_a["label"]) <= set(DIGITS.values()), written_a["label"].unique()
    acc_a = _accuracy(written_a["label"], written_a["id"], truth)
    assert acc_a > 0.75, acc_a  # 3 classes: chance is 1/3 (measured 0.97)

    # (b) the same competition whose sample_submission.csv is id,<one column per class> (in its own column order):
    # one probability per class and row, summing to 1, each column that class's (argmax agrees with (a)).
    data_b = tmp_path / "data_per_class"
    shutil.copytree(data, data_b)
    columns = ["zero", "one", "seven"]
    pd.DataFrame({"id": sample_a["id"], **{c: 0.0 for c in columns}}).to_csv(data_b / "sample_submission.csv",
                                                                          index=False)
    sub_b = tmp_path / "probs.csv"
    import visionsweep as vs  # the Python API this time (the same code path as the command, minus 5 s of imports)

    vs.predict(path, data_b, out=sub_b)
    written_b = pd.read_csv(sub_b, dtype={"id": str})
    assert list(written_b.columns) == ["id", *columns]
    assert written_b["id"].tolist() == sample_a["id"].tolist()
    probs = written_b[columns].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    argmax = pd.Series(np.array(columns)[probs.argmax(axis=1)])
    assert (argmax.to_numpy() == written_a["label"].to_numpy()).mean() >= 0.95  # ties aside, the same predictions
    acc_b = _accuracy(argmax, written_b["id"], truth)
    assert acc_b > 0.75, acc_b

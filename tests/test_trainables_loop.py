"""The plain-PyTorch training loop, without Ray: learning, whole-set metrics, resume, lr_find, DDP on gloo."""

import dataclasses
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from visionsweep.trainables.checkpoint import read_meta
from visionsweep.trainables.config import TrainConfig
from visionsweep.trainables.inference import predict_probs, tta_transforms
from visionsweep.trainables.loop import Batches, Dist, Runner, Task, evaluate, unwrap
from visionsweep.trainables.lr_find import lr_find
from visionsweep.trainables.worker import build_model, run_worker

from digits import digits_arrays

CPU = torch.device("cpu")


def _cfg(**kw):
    base = dict(backbone="test_resnet", pretrained=False, image_size=32, batch_size=32, epochs=3, max_lr=3e-3,
                aug=0.3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _run(cfg, arrays, info, tmp_path, *, resume_dir=None, stop_after=None):
    """Fit in this process; checkpoints of every epoch go to tmp_path/epoch-N."""
    seen = []

    def report(epoch, metrics, save):
        save(str(tmp_path / f"epoch-{epoch}"))
        seen.append(metrics)
        if stop_after == epoch:
            raise KeyboardInterrupt  # a crash right after the checkpoint was written

    try:
        run_worker(cfg, info, arrays, device=CPU, prepare_model=lambda m: m, report=report, resume_dir=resume_dir,
                   log=lambda m: None)
    except KeyboardInterrupt:
        pass
    return seen


def test_loss_falls_and_the_model_learns(tmp_path):
    arrays, info = digits_arrays(classes=(0, 1, 2), size=16)
    history = _run(_cfg(epochs=3), arrays, info, tmp_path)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["accuracy"] > 0.75  # chance is 0.33
    assert "auc" not in history[-1]  # multi-class: no AUC
    meta = read_meta(tmp_path / "epoch-3")
    assert meta.backbone == "test_resnet" and meta.classes == ["0", "1", "2"] and meta.epoch == 3
    assert meta.provenance["versions"]["torch"] and meta.provenance["git_revision"]


def test_binary_task_reports_auc(tmp_path):
    arrays, info = digits_arrays(classes=(3, 8), size=16)
    history = _run(_cfg(epochs=1), arrays, info, tmp_path)
    assert 0.0 <= history[0]["auc"] <= 1.0


def test_resumed_run_follows_the_uninterrupted_one(tmp_path):
    """Crash after epoch 2 of 4, resume from the epoch-2 checkpoint: same epochs, schedule and weights."""
    arrays, info = digits_arrays(classes=(0, 1), size=16, per_class=60)
    cfg = _cfg(epochs=4)
    straight = _run(cfg, arrays, info, tmp_path / "a")
    first = _run(cfg, arrays, info, tmp_path / "b", stop_after=2)
    assert [h["epoch"] for h in first] == [1, 2]
    rest = _run(cfg, arrays, info, tmp_path / "b", resume_dir=tmp_path / "b" / "epoch-2")
    assert [h["epoch"] for h in rest] == [3, 4]
    meta = read_meta(tmp_path / "b" / "epoch-4")
    assert [h["epoch"] for h in meta.history] == [1, 2, 3, 4]
    assert len(meta.step_losses) == len(read_meta(tmp_path / "a" / "epoch-4").step_losses)
    assert rest[-1]["lr"] == pytest.approx(straight[-1]["lr"])  # the schedule ended where it should
    for a, b in zip(straight, first + rest):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-4)


def test_lr_find_suggests_a_finite_lr_in_range_and_leaves_the_model_unchanged():
    arrays, info = digits_arrays(classes=(0, 1, 2), size=16)
    cfg = _cfg()
    model, task, _, _ = build_model(cfg, info, device=CPU)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(Runner(model, task, CPU), Batches(arrays["x_train"], arrays["y_train"], CPU), cfg=cfg)
    for s in result["suggestions"].values():
        assert np.isfinite(s["lr"]) and 1e-7 <= s["lr"] <= 10
    assert 10 < len(result["lrs"]) <= 100
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------ DDP over two gloo processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, arrays, info, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = _cfg(epochs=1, batch_size=16)
        model, task, _, _ = build_model(cfg, info, device=CPU)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        reported = []
        from visionsweep.trainables.loop import fit

        fit(ddp, cfg=cfg, task=task, train=Batches(arrays["x_train"], arrays["y_train"], CPU),
            valid=Batches(arrays["x_valid"], arrays["y_valid"], CPU), device=CPU,
            report=lambda e, m, s: reported.append(m), write_checkpoint=lambda *a, **k: None, log=lambda m: None)
        flat = torch.cat([p.detach().flatten() for p in unwrap(ddp).parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        out[rank] = {"same_weights": all(torch.equal(gathered[0], g) for g in gathered),
                     "metrics": reported[-1], "state": {k: v.clone() for k, v in unwrap(ddp).state_dict().items()},
                     "dist": (Dist().rank, Dist().world)}
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_agree_and_metrics_cover_the_whole_validation_set():
    arrays, info = digits_arrays(classes=(0, 1, 2), size=16, per_class=50)
    arrays["x_valid"], arrays["y_valid"] = arrays["x_valid"][:37], arrays["y_valid"][:37]  # odd: uneven shards
    out = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(2, _free_port(), arrays, info, out), nprocs=2, join=True)
    assert out[0]["same_weights"] and out[1]["same_weights"]
    assert out[0]["dist"] == (0, 2) and out[1]["dist"] == (1, 2)
    drop_time = [{k: v for k, v in out[r]["metrics"].items() if k != "time_s"} for r in (0, 1)]
    assert drop_time[0] == drop_time[1]
    # The same model evaluated in one process gives the same numbers as the 2-rank evaluation.
    cfg = _cfg(epochs=1, batch_size=16)
    model, task, _, _ = build_model(cfg, info, device=CPU)
    model.load_state_dict(out[0]["state"])
    single = evaluate(Runner(model, task, CPU), Batches(arrays["x_valid"], arrays["y_valid"], CPU), Dist(),
                      batch_size=8)
    assert single["accuracy"] == out[0]["metrics"]["accuracy"]
    for key in ("valid_loss", "log_loss"):  # other eval batch size here: float summation order differs
        assert single[key] == pytest.approx(out[0]["metrics"][key], rel=1e-4)


def test_batches_gather_rows_by_index_and_the_staging_copy_matches_plain_indexing():
    """Batches.get on the CPU and gather_rows (the host gather the pinned CUDA path stages batches through)
    return exactly data[idx]; tests/test_gpu.py checks the pinned and on-GPU paths themselves."""
    from visionsweep.trainables.loop import gather_rows

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 4, 5, 3), dtype=np.uint8)
    y = rng.integers(0, 5, 20).astype(np.int64)
    data = Batches(x, y, CPU)
    for idx in (rng.permutation(20)[:7], np.arange(19, -1, -3), np.array([4, 4, 0])):
        xb, yb = data.get(idx)
        assert torch.equal(xb, torch.from_numpy(x[idx])) and torch.equal(yb, torch.from_numpy(y[idx]))
        staged = gather_rows(torch.from_numpy(x), torch.from_numpy(idx), pin=False)
        assert staged.is_contiguous() and torch.equal(staged, torch.from_numpy(x[idx]))
        assert torch.equal(gather_rows(torch.from_numpy(y), torch.from_numpy(idx), pin=False), torch.from_numpy(y[idx]))


def test_k_fold_cross_validation_trains_the_folds_side_by_side_and_resumes(tmp_path):
    """--folds: K models, each validated on its own fold; the reported epoch is their mean; a checkpoint holds
    every fold (fold-k/) and resumes all of them."""
    from visionsweep.datasets.split import fold_splits, stratified_folds
    from visionsweep.trainables.checkpoint import member_dirs

    arrays, info = digits_arrays(classes=(0, 1, 2), size=16, per_class=40)
    n_all = len(arrays["y_train"]) + len(arrays["y_valid"])
    fold = stratified_folds(np.concatenate([arrays["y_train"], arrays["y_valid"]]), folds=3, seed=0)
    assert sorted(np.bincount(fold)) == [40, 40, 40] and len(fold) == n_all
    with_folds = {**arrays, "fold": fold}
    cfg = _cfg(epochs=2)
    history = _run(cfg, with_folds, info, tmp_path / "cv")
    meta = read_meta(tmp_path / "cv" / "epoch-2")
    assert meta.folds == 3 and [h["epoch"] for h in meta.history] == [1, 2]
    dirs = member_dirs(tmp_path / "cv" / "epoch-2")
    assert [d.name for d in dirs] == ["fold-0", "fold-1", "fold-2"]
    per_fold = [read_meta(d).history[-1]["accuracy"] for d in dirs]
    assert history[-1]["accuracy"] == pytest.approx(np.mean(per_fold))
    assert len({round(a, 6) for a in per_fold}) > 1  # three different models, three different held-out sets
    # each fold validated on its own images, none it trained on
    for part in fold_splits(arrays, fold):
        assert len(part["y_valid"]) == 40 and len(part["y_train"]) == 80
    # a crash after epoch 1 resumes every fold and ends where the straight run ended
    _run(cfg, with_folds, info, tmp_path / "b", stop_after=1)
    rest = _run(cfg, with_folds, info, tmp_path / "b", resume_dir=tmp_path / "b" / "epoch-1")
    assert [h["epoch"] for h in rest] == [2]
    assert rest[-1]["train_loss"] == pytest.approx(history[-1]["train_loss"], rel=1e-4)
    assert [h["epoch"] for h in read_meta(tmp_path / "b" / "epoch-2").history] == [1, 2]


def test_tta_changes_nothing_for_a_flip_invariant_model():
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))  # invariant to every flip/turn
    task = Task(num_classes=4, positive_index=None, vertical_flip=True, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    cpu = torch.device("cpu")
    plain = predict_probs(model, task, images, device=cpu, tta=False)
    np.testing.assert_allclose(predict_probs(model, task, images, device=cpu, tta=True), plain, rtol=1e-6)
    assert len(tta_transforms(True)) == 8 and len(tta_transforms(False)) == 2
    # ... and a model that is not flip invariant does change under TTA (the test can fail).
    asym = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    assert not np.allclose(predict_probs(asym, task, images, device=cpu, tta=True),
                           predict_probs(asym, task, images, device=cpu, tta=False))
    # Images with a handedness (--no-flip: digits, text): no mirrored view, so TTA is the image alone.
    chiral = Task(num_classes=4, positive_index=None, vertical_flip=False, image_size=16, mean=(0.5,) * 3,
                  std=(0.25,) * 3, flip=False)
    assert len(tta_transforms(False, flip=False)) == 1
    np.testing.assert_array_equal(predict_probs(asym, chiral, images, device=cpu, tta=True),
                                  predict_probs(asym, chiral, images, device=cpu, tta=False))


def test_a_checkpoint_keeps_whether_flips_are_valid_and_older_ones_read_as_flipped(tmp_path):
    """meta.json carries `flip` (predict's TTA follows it); checkpoints written before the flag have none and were
    trained with flips."""
    from visionsweep.trainables.checkpoint import CheckpointMeta

    values = dict(backbone="test_resnet", classes=["a", "b"], positive_class=None, vertical_flip=False,
                  image_size=16, mean=[0.5] * 3, std=[0.25] * 3, metric="accuracy", mode="max", epoch=1, history=[],
                  step_losses=[], config={}, weights_source="random init", provenance={})
    assert CheckpointMeta.from_json(values).task.flip is True
    written = CheckpointMeta.from_json({**values, "flip": False}).to_json()
    assert written["flip"] is False and CheckpointMeta.from_json(written).task.flip is False


def test_a_runs_own_flip_setting_overrides_the_datas(tmp_path):
    """A sweep with --search-flip sets TrainConfig.flip per trial: the run trains without mirrored images and its
    checkpoint says so (predict's TTA then has no mirror view); flip None keeps the data's setting."""
    arrays, info = digits_arrays(classes=(0, 1), size=16)
    runs = {}
    for flip in (None, False):
        runs[flip] = _run(_cfg(epochs=1, aug=1.0, flip=flip), arrays, info, tmp_path / str(flip))
        assert read_meta(tmp_path / str(flip) / "epoch-1").flip is (flip is None)
    assert runs[None][0]["valid_loss"] != runs[False][0]["valid_loss"]  # the same seed, other augmentation
    chiral = dataclasses.replace(info, flip=False)  # --no-flip data, a run that turns flips back on
    _run(_cfg(epochs=1, flip=True), arrays, chiral, tmp_path / "on")
    assert read_meta(tmp_path / "on" / "epoch-1").flip is True

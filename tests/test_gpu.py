"""The CUDA paths for real (skipped without CUDA): bf16 + channels_last training, the on-GPU and pinned data
paths, predict and lr_find on the GPU, and a sweep packing four trials on one GPU.

Run on a GPU machine with `bench/gpu_check.sh` (which installs Ray/Optuna from the wheel kit first), or
`python -m pytest -q -m gpu tests/test_gpu.py`."""

import time

import numpy as np
import pytest
import torch

from visionsweep.trainables import loop
from visionsweep.trainables.config import TrainConfig
from visionsweep.trainables.inference import load_for_inference, predict_probs
from visionsweep.trainables.loop import Batches, Runner, gather_rows
from visionsweep.trainables.lr_find import lr_find
from visionsweep.trainables.worker import build_model, run_worker

from digits import digits_arrays, digits_csv_folder

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


def _cfg(**kw):  # as tests/test_trainables_loop.py's CPU runs
    base = dict(backbone="test_resnet", pretrained=False, image_size=32, batch_size=32, epochs=3, max_lr=3e-3,
                aug=0.3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _fit(cfg, arrays, info, device, tmp_path=None):
    seen = []

    def report(epoch, metrics, save):
        if tmp_path is not None:
            save(str(tmp_path / f"epoch-{epoch}"))
        seen.append(metrics)

    run_worker(cfg, info, arrays, device=device, prepare_model=lambda m: m.to(device), report=report,
               log=lambda m: None)
    return seen


@pytest.mark.parametrize("data_on_gpu", [True, False], ids=["data-on-gpu", "pinned"])
def test_fit_in_bf16_channels_last_reaches_the_cpu_accuracy_band(tmp_path, monkeypatch, data_on_gpu):
    if not data_on_gpu:
        monkeypatch.setattr(loop, "GPU_DATA_SHARE", 0.0)  # as for a dataset too big for the GPU
    arrays, info = digits_arrays(classes=(0, 1, 2), size=16)
    cfg = _cfg()
    model, _, _, _ = build_model(cfg, info, device=CUDA, log=lambda m: None)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # what the loop trains on the GPU
    gpu = _fit(cfg, arrays, info, CUDA, tmp_path)
    cpu = _fit(cfg, arrays, info, CPU)
    assert [h["epoch"] for h in gpu] == [1, 2, 3]
    assert gpu[-1]["train_loss"] < 0.5 * gpu[0]["train_loss"]
    assert gpu[-1]["accuracy"] > 0.75  # the CPU test's bar; chance is 0.33
    assert abs(gpu[-1]["accuracy"] - cpu[-1]["accuracy"]) <= 0.1, (gpu[-1], cpu[-1])
    assert abs(gpu[-1]["valid_loss"] - cpu[-1]["valid_loss"]) <= 0.25 * cpu[-1]["valid_loss"] + 0.05


def test_on_gpu_and_pinned_data_paths_give_the_same_batches(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 24, 24, 3), dtype=np.uint8)
    y = rng.integers(0, 7, 300).astype(np.int64)
    on_gpu = Batches(x, y, CUDA)
    assert on_gpu.x.is_cuda
    monkeypatch.setattr(loop, "GPU_DATA_SHARE", 0.0)  # as for a dataset too big for the GPU
    pinned = Batches(x, y, CUDA)
    assert not pinned.x.is_cuda
    assert gather_rows(pinned.x, torch.arange(5), pin=True).is_pinned()
    orders = [rng.permutation(300)[:64] for _ in range(12)] + [np.arange(299, 250, -1)]
    # Many batches in flight before anything is compared: a staging buffer reused too early would show here.
    a = [on_gpu.get(i) for i in orders]
    b = [pinned.get(i) for i in orders]
    torch.cuda.synchronize()
    for i, (xa, ya), (xb, yb) in zip(orders, a, b):
        assert xa.device == xb.device == CUDA and ya.device == yb.device == CUDA
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xb.cpu(), torch.from_numpy(x[i])) and torch.equal(yb.cpu(), torch.from_numpy(y[i]))


@pytest.mark.parametrize("data_on_gpu", [True, False], ids=["data-on-gpu", "pinned"])
def test_training_steps_never_wait_for_the_gpu(monkeypatch, data_on_gpu):
    """fit()'s step (as trainables.loop.fit runs it) with CUDA's sync debug mode set to error: a blocking copy,
    an .item() or a tensor built from a Python list on the device would raise here."""
    from visionsweep.trainables.loop import _set_hyper, make_optimizer, schedule_at, train_shard

    if not data_on_gpu:
        monkeypatch.setattr(loop, "GPU_DATA_SHARE", 0.0)
    arrays, info = digits_arrays(classes=(0, 1, 2), size=16)
    cfg = _cfg(aug=0.5)
    model, task, _, _ = build_model(cfg, info, device=CUDA, log=lambda m: None)
    model = model.to(CUDA)
    runner, opt = Runner(model, task, CUDA), make_optimizer(model, cfg)
    train = Batches(arrays["x_train"], arrays["y_train"], CUDA)
    assert train.x.is_cuda == data_on_gpu
    idx = train_shard(len(train), rank=0, world=1, seed=0, epoch=1)
    gen = torch.Generator(device=CUDA).manual_seed(0)
    losses = torch.zeros(4, device=CUDA)

    def step(b):
        head_lr, body_lr, beta1 = schedule_at(b, cfg=cfg, steps=4)
        _set_hyper(opt, head_lr, body_lr, beta1)
        xb, yb = train.get(idx[b * cfg.batch_size:(b + 1) * cfg.batch_size])
        losses[b] = runner.step(opt, xb, yb, strength=cfg.aug, gen=gen)  # fit's own step

    step(0)  # first use: lazy initialisation (cuBLAS handles, optimizer state) may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for b in range(1, 4):
            step(b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(losses).all()


def test_predict_on_cuda_matches_the_cpu(tmp_path):
    arrays, info = digits_arrays(classes=(3, 8), size=16)
    _fit(_cfg(epochs=3), arrays, info, CPU, tmp_path)
    images = arrays["x_valid"]
    probs = {}
    for device in (CPU, CUDA):
        model, _, task = load_for_inference(tmp_path / "epoch-3", device)
        probs[device.type] = predict_probs(model, task, images, device=device, tta=True, batch_size=64)
    assert probs["cuda"].shape == probs["cpu"].shape == (len(images), 2)
    np.testing.assert_allclose(probs["cuda"], probs["cpu"], atol=0.05)  # bf16 autocast on the GPU
    clear = np.abs(probs["cpu"][:, 1] - 0.5) > 0.1  # bf16 may flip a coin toss, never a clear call
    assert clear.sum() >= len(images) // 4
    assert (probs["cuda"].argmax(1) == probs["cpu"].argmax(1))[clear].all()


def test_lr_find_on_cuda_suggests_a_finite_lr_and_leaves_the_model_unchanged():
    arrays, info = digits_arrays(classes=(0, 1, 2), size=16)
    cfg = _cfg()
    model, task, _, _ = build_model(cfg, info, device=CUDA, log=lambda m: None)
    model = model.to(CUDA)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(Runner(model, task, CUDA), Batches(arrays["x_train"], arrays["y_train"], CUDA), cfg=cfg)
    for s in result["suggestions"].values():
        assert np.isfinite(s["lr"]) and 1e-7 <= s["lr"] <= 10
    assert 10 < len(result["lrs"]) <= 100 and all(np.isfinite(result["losses"][:10]))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def _gpu_used_mib() -> float:
    free, total = torch.cuda.mem_get_info(CUDA)
    return (total - free) / 2**20


@pytest.mark.slow
def test_four_trials_share_one_gpu_every_trial_reports_and_memory_is_released(ray_cluster, tmp_path):
    import ray

    from visionsweep.datasets.load import load_dataset
    from visionsweep.datasets.spec import spec_from_dict
    from visionsweep.search.config import SearchConfig
    from visionsweep.search.sweep import run_sweep

    assert ray.cluster_resources().get("GPU", 0) >= 1, "the test cluster sees no GPU"
    spec = spec_from_dict({"root": digits_csv_folder(tmp_path / "c" / "data")})
    data = load_dataset(spec, log=lambda m: None)
    torch.cuda.init()
    before = _gpu_used_mib()
    sc = SearchConfig(name="packed", storage=str(tmp_path / "sweeps"), trials=4, epochs=2, seed=0,
                      backbones=("test_resnet",), gpus_per_trial=0.25, grace_period=2,
                      train={"image_size": 32, "batch_size": 32, "pretrained": False, "max_failures": 0})
    lines = []
    board = run_sweep(data=data, sc=sc, spec=spec, log=lines.append)
    text = "\n".join(map(str, lines))
    assert "4 at a time" in text and "GPU x 0.25" in text, text
    assert len(board) == 4 and (board["status"] == "done").all(), board.to_string()
    assert (board["epochs"] == 2).all() and board["best_auc"].between(0, 1).all(), board.to_string()
    # Each trial's worker process held a CUDA context and the data; all of it goes when the trials end.
    deadline = time.monotonic() + 60
    while _gpu_used_mib() > before + 256 and time.monotonic() < deadline:
        time.sleep(1)
    assert _gpu_used_mib() <= before + 256, f"GPU memory in use {_gpu_used_mib():.0f} MiB, {before:.0f} before"

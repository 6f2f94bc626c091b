"""Backbones: a timm model with a new head, pretrained weights from the hub or a file, and its preprocessing."""

from __future__ import annotations

import difflib
import os
import socket
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from visionsweep.datasets import DataError
from visionsweep.datasets.console import say

HUB_HOST = "huggingface.co"
# timm (with torchvision, ~2 s) is imported inside the functions: the Tune trial actor and the Train
# controller import this module but never build a model, and each sweep trial starts both afresh.


def _timm():
    """timm, imported without W&B. Where wandb is installed, `import timm` imports it too (timm.utils.summary's
    optional logging): 0.6 s more in every process that builds a model, and two folders wandb creates in the temp
    dir at import and removes at a normal exit, which a Ray worker ended with the cluster leaves behind (96 in one
    run of the test suite). visionsweep never logs to W&B through timm (--wandb logs from Ray's logger actor), so
    wandb is blocked while timm imports, and importable again after (sys.modules[name] = None makes `import name`
    fail, as the import system documents)."""
    import sys

    if "timm" not in sys.modules and "wandb" not in sys.modules:
        sys.modules["wandb"] = None  # type: ignore[assignment]
        try:
            import timm  # noqa: F401
        finally:
            del sys.modules["wandb"]
    import timm

    return timm


def check_backbone(name: str) -> None:
    timm = _timm()

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; list them with python -c 'import timm; print(timm.list_models())'"
        raise DataError(f"--backbone {name!r} is not a timm model name{hint}")


def check_image_size(name: str, image_size: int | None, num_classes: int) -> None:
    """A 2-image forward pass at `image_size` (random init, no download), so a backbone that cannot take the
    size fails here, with exit status 2, not in every trial."""
    timm = _timm()

    check_backbone(name)
    if image_size is None:
        return
    model = timm.create_model(name, pretrained=False, num_classes=num_classes).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, image_size, image_size))
    except Exception as err:
        native = model.pretrained_cfg.get("input_size", (3, 0, 0))[-1]
        raise DataError(f"--backbone {name} cannot take --image-size {image_size} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200]}); use its native size {native} or a backbone that "
                        f"accepts any size (CNNs such as resnet18)") from None


def head_prefix(model: nn.Module) -> str:
    """The classifier's module name as timm records it ('fc', 'classifier', 'head.fc')."""
    return model.pretrained_cfg.get("classifier") or "classifier"


def is_head_key(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def data_config(model: nn.Module, image_size: int | None) -> dict:
    """Input size, mean and std from the backbone's own pretrained config (nothing hard-codes ImageNet)."""
    timm = _timm()

    cfg = timm.data.resolve_model_data_config(model)
    size = image_size or int(cfg["input_size"][-1])
    return {"image_size": size, "mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]]}


@contextmanager
def _hub_offline():
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: flip its constant, not only the variable."""
    from huggingface_hub import constants

    old_env, old_const = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], constants.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def pretrained_available(backbone: str, *, weights: str | None = None, online: bool | None = None) -> bool:
    """Whether create_model would load pretrained weights for this backbone: a weights file, or timm's
    pretrained weights in the hub's local cache or on a reachable hub. Asks nothing of the network but one
    connection probe (pass `online`, hub_reachable()'s answer, to share one probe across backbones)."""
    timm = _timm()

    if weights is not None:
        return True
    cfg = timm.models.get_pretrained_cfg(backbone)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return False
    from huggingface_hub import try_to_load_from_cache

    repo = hub_id.split("@")[0]
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(repo, name), str):
            return True
    return hub_reachable() if online is None else online


def create_model(backbone: str, num_classes: int, *, pretrained: bool, weights: str | None = None,
                 log=say) -> tuple[nn.Module, str]:
    """(model, where its weights came from). Pretrained weights: `weights` file, else the hub's local cache,
    else the hub when reachable, else a loud warning and random init (the offline case). A classifier that did
    not come with the weights starts at zero (zero_head)."""
    model, source, new_head = _build(backbone, num_classes, pretrained=pretrained, weights=weights, log=log)
    if new_head:
        zero_head(model)
    return model, source


def zero_head(model: nn.Module) -> None:
    """A new classifier starts at zero: every class equally likely, whatever the scale of the features, and the
    body's first gradients wait until the head has learnt something (BiT's head init). timm's own init for
    EfficientNets draws U(+-1/sqrt(classes)), meant for 1000 classes: on 3 classes it gave pretrained lite0 valid
    logits of about +-12 (loss 12.5, chance accuracy after its head-only epoch, where a zero head reached 0.82, and
    1.00 instead of 0.56 at the end); measured in the closing note of this change."""
    heads = model.get_classifier()
    with torch.no_grad():
        for head in heads if isinstance(heads, (tuple, list)) else (heads,):
            for p in head.parameters():
                p.zero_()


def _build(backbone: str, num_classes: int, *, pretrained: bool, weights: str | None,
           log) -> tuple[nn.Module, str, bool]:
    """(model, source, whether its classifier is new)."""
    timm = _timm()

    check_backbone(backbone)
    if weights is not None:
        path = Path(weights)
        state = read_state_dict(path)  # a clear error for a missing file, a pickle or a file that holds no tensors
        made = timm_file_model(backbone, num_classes, path, log=log)
        if made is not None:
            return made
        model = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
        return (model, *load_weights(model, path, log=log, state=state))
    if not pretrained:
        return (timm.create_model(backbone, pretrained=False, num_classes=num_classes),
                "random init (--no-pretrained)", True)

    def hub(source: str):
        model = timm.create_model(backbone, pretrained=True, num_classes=num_classes)
        # timm drops the checkpoint's classifier when the class count differs from the one it was trained on
        return model, source, num_classes != (model.pretrained_cfg.get("num_classes") or 1000)

    try:
        with _hub_offline():  # the local cache first: no network round trips, no 45 s of retries offline
            return hub("pretrained (hub cache)")
    except Exception:
        pass
    if hub_reachable():
        try:
            return hub("pretrained (hub)")
        except Exception as err:  # e.g. a model that has no pretrained weights
            reason = f"{type(err).__name__}: {err}"
    else:
        reason = f"{HUB_HOST} is not reachable"
    msg = (f"WARNING: no pretrained weights for {backbone} ({reason}); training from RANDOM INIT, which needs far "
           f"more data and epochs. Pass --weights FILE, or run once with internet to fill the hub cache.")
    warnings.warn(msg, stacklevel=2)
    log("!" * 100 + "\n" + msg + "\n" + "!" * 100)
    return timm.create_model(backbone, pretrained=False, num_classes=num_classes), "random init (offline)", True


def timm_file_model(backbone: str, num_classes: int, path: Path, *,
                    log=say) -> tuple[nn.Module, str, bool] | None:
    """(model, source, new head?) through timm's own pretrained-file path, or None when timm cannot place every tensor of the
    file (key names of another library: load_weights maps those by position). timm's loader takes the EMA weights
    when the file has them, strips DDP's "module." prefixes and applies the architecture's checkpoint filter.

    The model is built with the architecture's own class count, so timm loads strictly (given another count it
    drops the head and then ignores every name it cannot place: a file of foreign names would load nothing,
    silently); a task with another class count then gets a new head."""
    timm = _timm()

    cfg = timm.models.get_pretrained_cfg(backbone)
    classes = getattr(cfg, "num_classes", None) or 1000
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = timm.create_model(backbone, pretrained=True, num_classes=classes,
                                      pretrained_cfg_overlay={"file": str(path)})
    except Exception:  # names or shapes timm cannot place
        return None
    if classes == num_classes:
        how = "head from the file"
    else:
        model.reset_classifier(num_classes)
        how = "new head: " + ", ".join(k for k in model.state_dict() if is_head_key(k, head_prefix(model)))
    msg = f"loaded {path.name} through timm's pretrained-file loader (timm key names); {how}"
    log(msg)
    return model, msg, classes != num_classes


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"--weights {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as err:
        raise DataError(f"--weights {path} is not a safetensors file or a plain state dict loadable with "
                        f"weights_only=True ({type(err).__name__}: {str(err)[:200]})") from None
    for key in ("state_dict_ema", "model_ema", "state_dict", "model", "model_state_dict"):  # timm's order: EMA first
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"--weights {path} does not hold a state dict of tensors")
    return obj


def load_weights(model: nn.Module, path: Path, *, log=say,
                 state: dict[str, torch.Tensor] | None = None) -> tuple[str, bool]:
    """Load a file's body tensors strictly; the head stays new unless its shape already fits. Returns the log line
    and whether the head is new.

    Keys are matched by name; when the names differ but the tensors correspond one to one in order and
    shape (e.g. the efficientnet-lite0 package's file on timm's tf_efficientnet_lite0), they are mapped
    by position and the log says so. Any other mismatch is an error naming the first differing tensor."""
    state = read_state_dict(path) if state is None else state  # `state`: the file, already read
    source = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    prefix = head_prefix(model)
    body = [k for k in target if not is_head_key(k, prefix)]
    head = [k for k in target if is_head_key(k, prefix)]
    if all(k in source for k in body):
        mapping = {k: k for k in body + [h for h in head if h in source]}
        how = "by name"
    elif len(source) == len(target):
        mapping = dict(zip(target, source))  # by position: the file's head sits where the model's does
        how = "by position (key names differ, order and shapes match)"
    else:
        missing = next(k for k in body if k not in source)
        raise DataError(f"--weights {path} does not fit {type(model).__name__}: the model's tensor {missing!r} is "
                        f"not in the file, and the counts differ ({len(source)} in the file, {len(target)} in the "
                        f"model) so they cannot be mapped by position; use weights made for this backbone")
    new_state, kept_new_head = {}, []
    for tk, sk in mapping.items():
        want, got = target[tk].shape, source[sk].shape
        if want != got:
            if tk in head:
                kept_new_head.append(tk)  # 1000 ImageNet classes vs this task's classes: the head is new
                continue
            raise DataError(f"--weights {path}: tensor {sk!r} has shape {tuple(got)} but the model's {tk!r} needs "
                            f"{tuple(want)} (first differing tensor, matched {how.split(' (')[0]}); use weights "
                            f"made for this backbone")
        new_state[tk] = source[sk]
    missing = [k for k in body if k not in new_state]
    if missing:
        raise DataError(f"--weights {path}: no tensor for {missing[0]!r} (and {len(missing) - 1} more)")
    model.load_state_dict(new_state, strict=False)
    msg = f"loaded {len(new_state)} tensors from {path.name} {how}; new head: {', '.join(kept_new_head) or 'none'}"
    log(msg)
    return msg, any(k not in new_state for k in head)

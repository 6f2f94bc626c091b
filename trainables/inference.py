"""Loading a checkpoint for inference and predicting class probabilities with test-time augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from visionsweep.datasets.split import labelled
from visionsweep.trainables.checkpoint import CheckpointMeta, load_weights_into, member_dirs, read_meta
from visionsweep.trainables.loop import Batches, Runner, Task
from visionsweep.trainables.model import create_model


def load_for_inference(directory: str | Path, device: torch.device) -> tuple[torch.nn.Module, CheckpointMeta, Task]:
    meta = read_meta(directory)
    model, _ = create_model(meta.backbone, len(meta.classes), pretrained=False)
    load_weights_into(model, directory)
    model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, meta, meta.task


def tta_transforms(vertical_flip: bool, flip: bool = True) -> list:
    """Horizontal flips; all 8 dihedral transforms when vertical flips are valid for the data (aerial images);
    the image alone when mirror images are not (`flip` False: digits, text)."""
    hflip = [lambda x: x, lambda x: x.flip(-1)] if flip else [lambda x: x]
    if not vertical_flip:
        return hflip
    return [(lambda x, k=k, f=f: f(torch.rot90(x, k, dims=(-2, -1)))) for k in range(4) for f in hflip]


@torch.no_grad()
def predict_probs(model: torch.nn.Module, task: Task, images: np.ndarray, *, device: torch.device, tta: bool,
                  batch_size: int = 256, desc: str | None = None) -> np.ndarray:
    """(N, C) softmax probabilities, averaged over the TTA transforms. With `desc`, a progress bar with the
    rate (images x views per second) on a terminal, for test sets worth waiting on."""
    from tqdm.auto import tqdm

    runner = Runner(model, task, device)
    data = Batches(images, np.zeros(len(images), dtype=np.int64), device)
    idx = np.arange(len(images))
    transforms = tta_transforms(task.vertical_flip, task.flip) if tta else [None]
    with tqdm(total=len(images) * len(transforms), desc=desc, unit="img", leave=False, mininterval=0.5,
              disable=None if desc and len(images) >= 1000 else True) as bar:
        probs = sum(runner.logits(data, idx, batch_size=batch_size, transform=t, on_batch=bar.update)
                    .double().softmax(1) for t in transforms)
    return (probs / len(transforms)).cpu().numpy()


def held_out_probs(directory: str | Path, arrays: dict[str, np.ndarray], device: torch.device
                   ) -> tuple[np.ndarray, np.ndarray, CheckpointMeta, Task]:
    """(probabilities, labels, meta, task) on the images the checkpoint did not train on, no TTA: the valid
    set, or for a cross-validation's folds each labelled image predicted by the fold that held it out."""
    meta = read_meta(directory)
    if meta.folds == 1:
        model, meta, task = load_for_inference(directory, device)
        return predict_probs(model, task, arrays["x_valid"], device=device, tta=False), arrays["y_valid"], meta, task
    x, y = labelled(arrays)
    probs = np.zeros((len(y), len(meta.classes)))
    for k, member in enumerate(member_dirs(directory)):
        model, _, task = load_for_inference(member, device)
        held = arrays["fold"] == k
        probs[held] = predict_probs(model, task, x[held], device=device, tta=False)
    return probs, y, meta, task

"""Batched, per-sample augmentation on the tensor's own device, scaled by one strength in [0, 1].

All geometric parts (flip, vertical flip / 90-degree turns, rotation, zoom, warp) compose into one 3x3
matrix per sample and cost a single grid_sample, which also resizes to the model's input size, as
fastai does its batch transforms on the GPU. Lighting (brightness, contrast) follows, then the model's
mean/std. Strength 0 is the identity (only resize + normalise).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentLimits:
    """What strength 1 means; strength s scales every limit by s (fastai's defaults are about s = 0.5)."""

    rotate_deg: float = 20.0     # max rotation, degrees
    zoom: float = 0.2            # max zoom-in: scale up to 1 + zoom (crops the centre)
    warp: float = 0.4            # max perspective warp (fastai's max_warp=0.2 at s = 0.5)
    lighting: float = 0.4        # max brightness shift and log-contrast change
    p_flip: float = 0.5          # probability of a horizontal flip (any s > 0)


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1]."""
    return x_uint8.permute(0, 3, 1, 2).float().div_(255.0)


@functools.lru_cache(maxsize=64)
def _stats(mean: tuple, std: tuple, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Made once per device: a tensor built from a Python list on a GPU is a blocking copy (a host sync per step).
    return (torch.tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1),
            torch.tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1))


def stats(mean, std, *, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) as (1, C, 1, 1) tensors on x's device and dtype, cached."""
    return _stats(tuple(float(v) for v in mean), tuple(float(v) for v in std), like.dtype, like.device)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    m, s = stats(mean, std, like=x)
    return (x - m) / s


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def prepare(x_uint8: torch.Tensor, *, size: int, mean, std) -> torch.Tensor:
    """Evaluation path: uint8 batch -> resized, normalised float batch, no randomness."""
    return normalize(resize(to_float(x_uint8), size), mean, std)


def _uniform(b: int, lo: float, hi: float, gen, device) -> torch.Tensor:
    return torch.rand(b, generator=gen, device=device) * (hi - lo) + lo


def random_matrices(b: int, *, strength: float, vertical_flip: bool, limits: AugmentLimits,
                    gen: torch.Generator | None, device, flip: bool = True) -> torch.Tensor:
    """(b, 3, 3) maps from output to input coordinates in [-1, 1], fresh randomness per sample. `flip` False: no
    mirror images (the draws are the same, so a seed gives the same rotations, zooms and warps either way)."""
    s = strength
    flip = torch.where(torch.rand(b, generator=gen, device=device) < (limits.p_flip if flip else 0.0), -1.0, 1.0)
    angle = _uniform(b, -limits.rotate_deg * s, limits.rotate_deg * s, gen, device) * (math.pi / 180)
    if vertical_flip:  # orientation-free data: any of the 8 dihedral symmetries, then a small rotation
        angle = angle + torch.randint(0, 4, (b,), generator=gen, device=device) * (math.pi / 2)
    zoom = 1.0 / _uniform(b, 1.0, 1.0 + limits.zoom * s, gen, device)  # < 1: samples a smaller window
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    m = torch.zeros(b, 3, 3, device=device)
    m[:, 0, 0], m[:, 0, 1] = cos * flip, -sin
    m[:, 1, 0], m[:, 1, 1] = sin * flip, cos
    # Shift within the room the zoom leaves, so zoomed views are not always centred.
    room = 1.0 - zoom
    m[:, 0, 2] = _uniform(b, -1, 1, gen, device) * room
    m[:, 1, 2] = _uniform(b, -1, 1, gen, device) * room
    m[:, 2, 2] = 1.0
    # Perspective warp: a small projective term, as fastai's `warp` tilts the image plane.
    m[:, 2, 0] = _uniform(b, -limits.warp * s, limits.warp * s, gen, device) * 0.5
    m[:, 2, 1] = _uniform(b, -limits.warp * s, limits.warp * s, gen, device) * 0.5
    return m


def augment(x_uint8: torch.Tensor, *, strength: float, size: int, mean, std, vertical_flip: bool = False,
            limits: AugmentLimits = AugmentLimits(), gen: torch.Generator | None = None, flip: bool = True
            ) -> torch.Tensor:
    """Training path: (B, H, W, 3) uint8 on any device -> augmented, resized, normalised (B, 3, size, size)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"augmentation strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return prepare(x_uint8, size=size, mean=mean, std=std)
    x = to_float(x_uint8)
    b, device = x.shape[0], x.device
    if x.shape[-1] > 2 * size:  # downscale first so grid_sample's bilinear taps do not alias
        x = resize(x, 2 * size)
    m = random_matrices(b, strength=strength, vertical_flip=vertical_flip, limits=limits, gen=gen, device=device,
                        flip=flip)
    # Output pixel centres in grid_sample's align_corners=False coordinates: with an identity matrix
    # this reproduces prepare()'s resize exactly (linspace(-1, 1) would shift and stretch by half a pixel).
    lin = (torch.arange(size, device=device, dtype=x.dtype) * 2 + 1) / size - 1
    gx, gy = lin.view(1, 1, size), lin.view(1, size, 1)

    def row(i: int) -> torch.Tensor:  # row i of each matrix applied to every (x, y, 1): (B, S, S) by broadcasting
        return m[:, i, 0].view(b, 1, 1) * gx + m[:, i, 1].view(b, 1, 1) * gy + m[:, i, 2].view(b, 1, 1)

    w = row(2).clamp_min(1e-3)
    grid = torch.stack([row(0) / w, row(1) / w], dim=-1)                        # (B, S, S, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    light = limits.lighting * strength
    contrast = torch.exp(_uniform(b, -light, light, gen, device)).view(b, 1, 1, 1)
    bright = _uniform(b, -light / 2, light / 2, gen, device).view(b, 1, 1, 1)
    # Lighting ((x - 0.5) * contrast + 0.5 + bright), the clamp to [0, 1] and the normalisation, fused into
    # one multiply-add and one clamp in normalised units: two passes over the batch instead of eight.
    m_, s_ = stats(mean, std, like=x)
    scale = contrast / s_
    offset = (0.5 - 0.5 * contrast + bright - m_) / s_
    return torch.addcmul(offset, x, scale).clamp_(min=-m_ / s_, max=(1 - m_) / s_)

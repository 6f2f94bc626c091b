"""Per-sample batch augmentation on the tensor's device: identity at strength 0, randomness per sample, limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionsweep.datasets.augment import AugmentLimits, augment, prepare

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
MEAN, STD = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)  # deliberately not ImageNet's
PLAIN = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
FLIP_ONLY = AugmentLimits(rotate_deg=0, zoom=0, warp=0, lighting=0)
NOTHING = AugmentLimits(rotate_deg=0, zoom=0, warp=0, lighting=0, p_flip=0)


def _batch(b=4, s=16, seed=0, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, s, s, 3), generator=g, dtype=torch.uint8).to(device)


def _gen(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


def _top_bottom(b=16, s=16, device="cpu") -> torch.Tensor:
    x = torch.zeros(b, s, s, 3, dtype=torch.uint8)
    x[:, : s // 2] = 230
    x[:, s // 2:] = 20
    return x.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [16, 24, 8])
def test_strength_zero_is_prepare(device, size):
    x = _batch(device=device)
    out = augment(x, strength=0.0, size=size, mean=MEAN, std=STD, gen=_gen(device))
    assert torch.equal(out, prepare(x, size=size, mean=MEAN, std=STD))
    assert out.shape == (4, 3, size, size) and out.dtype == torch.float32 and out.device.type == device


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [16, 32])
def test_all_limits_zero_is_exactly_prepare(device, size):
    """The single grid_sample is exact at identity: no half-pixel shift or border stretch sneaks in."""
    x = _batch(device=device)
    out = augment(x, strength=1.0, size=size, mean=MEAN, std=STD, limits=NOTHING, gen=_gen(device))
    assert torch.allclose(out, prepare(x, size=size, mean=MEAN, std=STD), atol=1e-5)


def test_prepare_uses_given_mean_and_std():
    x = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)
    out = prepare(x, size=8, mean=MEAN, std=STD)
    for c in range(3):
        assert torch.allclose(out[:, c], torch.tensor((1.0 - MEAN[c]) / STD[c]))
    zero = prepare(torch.zeros_like(x), size=8, mean=PLAIN[0], std=PLAIN[1])
    assert torch.equal(zero, torch.zeros(2, 3, 8, 8))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("src, size", [(32, 224), (32, 64), (64, 16)])
def test_shape_dtype_and_range(device, src, size):
    x = _batch(b=3, s=src, device=device)
    out = augment(x, strength=1.0, size=size, mean=PLAIN[0], std=PLAIN[1], gen=_gen(device))
    assert out.shape == (3, 3, size, size) and out.dtype == torch.float32 and out.device.type == device
    assert out.min() >= 0.0 and out.max() <= 1.0 and torch.isfinite(out).all()


@pytest.mark.parametrize("device", DEVICES)
def test_randomness_is_per_sample(device):
    x = _batch(b=1, device=device).repeat(8, 1, 1, 1)
    out = augment(x, strength=1.0, size=16, mean=MEAN, std=STD, gen=_gen(device))
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j]) for i in range(8) for j in range(i + 1, 8))


@pytest.mark.parametrize("device", DEVICES)
def test_seeded_generator_reproduces(device):
    x = _batch(device=device)
    a = augment(x, strength=0.7, size=24, mean=MEAN, std=STD, gen=_gen(device, 5))
    b = augment(x, strength=0.7, size=24, mean=MEAN, std=STD, gen=_gen(device, 5))
    c = augment(x, strength=0.7, size=24, mean=MEAN, std=STD, gen=_gen(device, 6))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_flip_only_keeps_a_mirror_symmetric_image_and_mirrors_others():
    half = _batch(b=1, s=16)[:, :, :8]
    sym = torch.cat([half, half.flip(2)], dim=2).repeat(16, 1, 1, 1)  # left-right mirror symmetric
    out = augment(sym, strength=1.0, size=16, mean=MEAN, std=STD, limits=FLIP_ONLY, gen=_gen("cpu"))
    ref = prepare(sym, size=16, mean=MEAN, std=STD)
    assert torch.allclose(out, ref, atol=1e-5)
    asym = _batch(b=1, s=16).repeat(32, 1, 1, 1)
    out = augment(asym, strength=1.0, size=16, mean=MEAN, std=STD, limits=FLIP_ONLY, gen=_gen("cpu"))
    ref = prepare(asym, size=16, mean=MEAN, std=STD)
    same = [torch.allclose(o, ref[0], atol=1e-5) for o in out]
    mirrored = [torch.allclose(o, ref[0].flip(-1), atol=1e-5) for o in out]
    assert all(s != m for s, m in zip(same, mirrored))  # each sample is one or the other
    assert 4 <= sum(mirrored) <= 28                       # p_flip 0.5, per sample


def test_lighting_keeps_the_mean_within_its_limits():
    grey = torch.full((32, 16, 16, 3), 128, dtype=torch.uint8)
    limits = AugmentLimits(rotate_deg=0, zoom=0, warp=0, lighting=0.4, p_flip=0)
    out = augment(grey, strength=1.0, size=16, mean=PLAIN[0], std=PLAIN[1], limits=limits, gen=_gen("cpu"))
    means = out.mean(dim=(1, 2, 3))
    # contrast leaves mid-grey alone; brightness moves it by at most lighting / 2
    assert ((means - 128 / 255).abs() <= 0.2 + 1e-6).all()
    assert means.std() > 0.01  # and it does move, per sample
    geometric = augment(grey, strength=1.0, size=16, mean=PLAIN[0], std=PLAIN[1],
                        limits=AugmentLimits(lighting=0), gen=_gen("cpu"))
    assert torch.allclose(geometric, torch.full_like(geometric, 128 / 255), atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_without_vertical_flip_top_stays_on_top(device):
    x = _top_bottom(b=64, device=device)
    limits = AugmentLimits(rotate_deg=0, zoom=0, warp=0, lighting=0)
    for strength, lim in [(1.0, limits), (1.0, AugmentLimits())]:  # also with default rotate/zoom/warp
        out = augment(x, strength=strength, size=16, mean=PLAIN[0], std=PLAIN[1], vertical_flip=False, limits=lim,
                      gen=_gen(device))
        top, bottom = out[:, :, :8].mean(dim=(1, 2, 3)), out[:, :, 8:].mean(dim=(1, 2, 3))
        assert (top > bottom + 0.3).all()


@pytest.mark.parametrize("device", DEVICES)
def test_vertical_flip_turns_some_samples(device):
    x = _top_bottom(b=64, device=device)
    limits = AugmentLimits(rotate_deg=0, zoom=0, warp=0, lighting=0)
    out = augment(x, strength=1.0, size=16, mean=PLAIN[0], std=PLAIN[1], vertical_flip=True, limits=limits,
                  gen=_gen(device))
    top, bottom = out[:, :, :8].mean(dim=(1, 2, 3)), out[:, :, 8:].mean(dim=(1, 2, 3))
    left, right = out[:, :, :, :8].mean(dim=(1, 2, 3)), out[:, :, :, 8:].mean(dim=(1, 2, 3))
    upside_down = int((bottom > top + 0.3).sum())
    sideways = int(((left - right).abs() > 0.3).sum())
    assert upside_down >= 5 and sideways >= 5 and int((top > bottom + 0.3).sum()) >= 5


def test_strength_scales_the_change():
    x = _batch(b=64, s=16)
    ref = prepare(x, size=16, mean=PLAIN[0], std=PLAIN[1])
    no_flip = AugmentLimits(p_flip=0)
    diffs = [(augment(x, strength=s, size=16, mean=PLAIN[0], std=PLAIN[1], limits=no_flip, gen=_gen("cpu"))
              - ref).abs().mean().item() for s in (0.1, 0.5, 1.0)]
    assert diffs[0] < diffs[1] < diffs[2]


def test_bad_strength():
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\], got 1.5"):
        augment(_batch(), strength=1.5, size=16, mean=MEAN, std=STD)


def test_uint8_input_is_not_modified():
    x = _batch()
    before = x.clone()
    augment(x, strength=1.0, size=32, mean=MEAN, std=STD)
    assert torch.equal(x, before)
    assert np.asarray(x).dtype == np.uint8


def _left_right(b=64, s=16, device="cpu") -> torch.Tensor:
    x = torch.zeros(b, s, s, 3, dtype=torch.uint8)
    x[:, :, : s // 2] = 230
    x[:, :, s // 2:] = 20
    return x.to(device)


def test_no_flip_never_mirrors_and_keeps_every_other_draw():
    """--no-flip (DatasetSpec.flip False, fastai's do_flip=False) for digits and text: with flips allowed, some
    samples come out mirrored (left bright half on the right); without, none does, and the rotations, zooms and
    warps of the same seed are the same (the flip's draw is still made)."""
    from visionsweep.datasets.augment import random_matrices

    x = _left_right()
    limits = AugmentLimits(rotate_deg=0, zoom=0, warp=0, lighting=0)
    for flip, mirrored in [(True, lambda n: n >= 10), (False, lambda n: n == 0)]:
        out = augment(x, strength=1.0, size=16, mean=PLAIN[0], std=PLAIN[1], limits=limits, gen=_gen("cpu"),
                      flip=flip)
        left, right = out[:, :, :, :8].mean(dim=(1, 2, 3)), out[:, :, :, 8:].mean(dim=(1, 2, 3))
        assert mirrored(int((right > left + 0.3).sum())), flip
    m_flip, m_not = (random_matrices(256, strength=1.0, vertical_flip=False, limits=AugmentLimits(), gen=_gen("cpu"),
                                     device="cpu", flip=f) for f in (True, False))
    det = torch.linalg.det(m_not[:, :2, :2])
    assert (det > 0).all() and (torch.linalg.det(m_flip[:, :2, :2]) < 0).any()  # a mirror has a negative determinant
    assert torch.equal(m_flip[:, :, 1:], m_not[:, :, 1:]) and torch.equal(m_flip[:, 0, 0].abs(), m_not[:, 0, 0].abs())

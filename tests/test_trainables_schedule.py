"""The one-cycle schedule as a pure function of the step."""

import math

import pytest

from visionsweep.trainables.config import TrainConfig
from visionsweep.trainables.loop import schedule_at
from visionsweep.trainables.schedule import one_cycle


def test_one_cycle_shape_matches_fastai():
    total, max_lr = 100, 1e-2
    lrs, moms = zip(*(one_cycle(s, total, max_lr=max_lr) for s in range(total)))
    assert lrs[0] == pytest.approx(max_lr / 25)
    peak = max(range(total), key=lambda s: lrs[s])
    assert peak == 25 and lrs[peak] == pytest.approx(max_lr)
    assert lrs[-1] == pytest.approx(max_lr / 1e5)
    assert all(a <= b for a, b in zip(lrs[:26], lrs[1:26]))          # warm-up rises
    assert all(a >= b for a, b in zip(lrs[25:], lrs[26:]))            # annealing falls
    assert moms[0] == pytest.approx(0.95) and moms[25] == pytest.approx(0.85) and moms[-1] == pytest.approx(0.95)


def test_one_cycle_rejects_steps_outside_the_run():
    with pytest.raises(ValueError):
        one_cycle(10, 10, max_lr=1e-3)


def test_frozen_phase_gives_body_zero_then_a_lower_lr():
    cfg = TrainConfig(max_lr=1e-2, epochs=2, freeze_epochs=1, body_lr_div=10)
    head, body, _ = schedule_at(3, cfg=cfg, steps=10)
    assert body == 0.0 and head > 0
    head, body, _ = schedule_at(15, cfg=cfg, steps=10)
    assert body == pytest.approx(head / 10)
    head, body, _ = schedule_at(29, cfg=cfg, steps=10)
    assert math.isclose(head, 1e-2 / 1e5)
    # Without a frozen phase the body follows the head.
    head, body, _ = schedule_at(5, cfg=TrainConfig(max_lr=1e-2, epochs=1), steps=10)
    assert head == body

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


def test_cycle_bounds_split_the_run_at_the_restarts():
    from visionsweep.trainables.schedule import cycle_at, cycle_bounds

    assert cycle_bounds(5) == [0, 5]
    assert cycle_bounds(5, (1, 2, 4)) == [0, 1, 2, 4, 5]
    assert cycle_bounds(5, (4, 1, 0, 5, 9, 1)) == [0, 1, 4, 5]   # sorted, deduplicated, outside (0, 5) ignored
    assert [cycle_at(e, [0, 1, 2, 4, 5]) for e in range(5)] == [(0, 1), (1, 1), (2, 2), (2, 2), (4, 1)]
    with pytest.raises(ValueError):
        cycle_at(5, [0, 1, 5])


def test_restarts_anneal_the_model_at_every_rung_and_restart_after():
    steps, max_lr = 10, 1e-2
    cfg = TrainConfig(max_lr=max_lr, epochs=5, restarts=(1, 2, 4))
    lr = [schedule_at(s, cfg=cfg, steps=steps)[0] for s in range(5 * steps)]
    for rung in (1, 2, 4, 5):  # the last step before each rung (and the end) is fully annealed
        assert lr[rung * steps - 1] == pytest.approx(max_lr / cfg.final_div)
    for start in (1, 2, 4):    # and the next epoch starts a new warm-up from max_lr / div
        assert lr[start * steps] == pytest.approx(max_lr / cfg.div)
    assert max(lr[2 * steps:4 * steps]) == pytest.approx(max_lr)  # a two-epoch cycle still peaks at max_lr
    single = [schedule_at(s, cfg=TrainConfig(max_lr=max_lr, epochs=5), steps=steps)[0] for s in range(5 * steps)]
    assert single[steps - 1] > max_lr / 2  # what ASHA judged before: epoch 1 of one long cycle, near the peak


def test_restarts_count_frozen_epochs_and_the_frozen_phase_is_its_own_cycle():
    steps = 4
    cfg = TrainConfig(max_lr=1e-2, epochs=3, freeze_epochs=1, restarts=(1, 2))  # total epochs 4, rungs at 1, 2
    lr = [schedule_at(s, cfg=cfg, steps=steps)[0] for s in range(4 * steps)]
    assert lr[steps - 1] == pytest.approx(1e-2 / cfg.final_div)        # end of the frozen cycle (rung 1)
    assert lr[2 * steps - 1] == pytest.approx(1e-2 / cfg.final_div)    # rung 2 (after one unfrozen epoch)
    assert lr[2 * steps] == pytest.approx(1e-2 / cfg.div)              # then one two-epoch cycle to the end
    assert lr[-1] == pytest.approx(1e-2 / cfg.final_div)

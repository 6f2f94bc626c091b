"""--search-flip: the hand run with and without horizontal flips, then the winner for every later trial.

The recipe trial of the user's first backbone runs with flips (fastai's do_flip) and its twin, the next trial, without
them: a paired test at the same values. Every other trial runs with the pair's verdict, which is the data's setting
(flips on) until the twin beats the recipe on the validation accuracy by more than one standard error of the
difference, at an epoch both reached where the model is annealed (the end, or a rung where one-cycle restarts). The
verdict is revised each time the pair reaches such an epoch. TPE does not search flips: left to it, they took 7 of a
20-trial textures sweep where flips are right, and a plain categorical drew poor learning rates for its no-flip
trials on digits where they are wrong (bench/README.md, 2026-12-07).

By default (search_flip None) the test runs when the data leaves flips on and the sweep plans MIN_TRIALS trials or
more: on images where flips are right the twin costs one trial (20-trial textures sweep: the same held-out score with
and without the test), where they are wrong it is worth far more (20-trial digits sweep: 0.964 -> 0.986)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


# The twin is at most a tenth of the sweep's trials (a sixth, in 6-trial sweeps, cost 1-3 test images where flips
# are right).
MIN_TRIALS = 10


def flips_tested(search_flip: bool | None, *, data_flip: bool, vertical_flip: bool, recipe_first: bool,
                 planned_trials: int) -> bool:
    """Whether the sweep runs the flip test: as asked, or by default (None) when flips are on in the data and not
    all eight flips and turns are valid (--vertical-flip), the recipe runs first and the sweep is long enough."""
    if search_flip is not None:
        return search_flip
    return data_flip and not vertical_flip and recipe_first and planned_trials >= MIN_TRIALS


def twin_wins(with_flip: float, without: float, n: int) -> bool:
    """True when the no-flip twin's accuracy beats the recipe's by more than one standard error of the difference of
    two proportions measured on the same n validation images (independent errors assumed: a conservative margin)."""
    if n <= 0:
        return False
    se = math.sqrt(max(with_flip * (1 - with_flip), 0.0) / n + max(without * (1 - without), 0.0) / n)
    return without - with_flip > max(se, 1.0 / n) + 1e-9  # more than one image, whatever the rounding


@dataclass
class FlipTest:
    pair: int                     # index (in suggestion order) of the recipe trial; its twin is the next one
    n_valid: int                  # validation images the accuracies are measured on
    judged: tuple[int, ...]       # epochs where a trial's model is annealed (the rungs it restarts at, the last)
    flips: dict = field(default_factory=dict)    # trial id -> its flip value, in suggestion order
    members: dict = field(default_factory=dict)  # the pair: trial id -> flip value
    scores: dict = field(default_factory=lambda: {True: {}, False: {}})  # pair member -> {epoch: accuracy}
    verdict: bool = True          # flips for the trials after the pair (the data's setting until the twin wins)
    compared_at: int = 0          # the epoch of the latest verdict (0: none yet)

    def assign(self, trial_id: str, config: dict) -> dict:
        """The trial's config with its flip value: on for the recipe, off for its twin, the verdict for the rest."""
        if trial_id not in self.flips:
            index = len(self.flips)
            if index in (self.pair, self.pair + 1):
                self.members[trial_id] = index == self.pair
            self.flips[trial_id] = self.members.get(trial_id, self.verdict)
        return {**config, "flip": self.flips[trial_id]}

    def observe(self, trial_id: str, result: dict | None) -> str | None:
        """Records a pair member's validation accuracy at an annealed epoch; returns a line for the console when the
        pair has a new epoch in common (the verdict is made again there)."""
        member = self.members.get(trial_id)
        if member is None or not result:
            return None
        epoch, accuracy = result.get("epoch"), result.get("accuracy")
        if not isinstance(epoch, (int, float)) or not isinstance(accuracy, (int, float)) or math.isnan(accuracy):
            return None
        if int(epoch) not in self.judged:
            return None
        self.scores[member][int(epoch)] = float(accuracy)
        common = set(self.scores[True]) & set(self.scores[False])
        if not common or max(common) <= self.compared_at:
            return None
        self.compared_at = max(common)
        a, b = self.scores[True][self.compared_at], self.scores[False][self.compared_at]
        self.verdict = not twin_wins(a, b, self.n_valid)
        return (f"flips: the recipe scored {a:.3f} with them, {b:.3f} without (validation accuracy at epoch "
                f"{self.compared_at}, {self.n_valid} images): the trials from now on run "
                f"{'with' if self.verdict else 'without'} them")

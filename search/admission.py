"""When a sweep may start its next trial, beyond Tune's cap on trials at once: a budget of trial-epochs, and the
trial started ahead of the free slots waiting for the first wave to be under way.

Budget: trials keep starting while the epochs trained, plus a whole schedule for each running trial, leave room for
one more; the epochs early stopping saves buy more trials (successive halving under a fixed budget, as ASHA is meant
to be run) instead of ending the sweep sooner.

Start-ahead (search.sweep.in_flight): Tune keeps one trial more than the slots running; that trial's workers wait for
a slot. In the first wave every trial asks for its workers at about the same moment, and whichever Train controller
is quicker takes a slot: the trial started ahead could train before trial 1 (the recipe) and change what ASHA
compares. So it is only started once the first wave holds the slots: `slots` Train worker groups are placed
(`PlacedWorkers`), or `slots` trials have reported an epoch; after that at most one trial waits at a time and the
slots go in Tune's order. Waiting for the first epoch alone made the second trial of a sweep of one-epoch trials
start up only after the first had ended."""

from __future__ import annotations

import time

from ray.tune.search import Searcher


class PlacedWorkers:
    """How many of this job's Train worker groups the cluster has placed since the sweep began: placement groups
    in state CREATED whose bundles ask for CPUs or GPUs (a trial driver's ask for neither:
    search.sweep.driver_resources), created by this Ray job (a placement group's id ends with its job's id: another
    job on a shared cluster does not count), less those there before. Asked at most every 0.25 s (one GCS call,
    ~3 ms on a local cluster)."""

    def __init__(self) -> None:
        self.before, self.seen, self.checked = self._placed(), set(), 0.0

    @staticmethod
    def _placed() -> set[str]:
        import ray
        from ray.util import placement_group_table

        job = ray.get_runtime_context().get_job_id()
        return {pg for pg, info in placement_group_table().items() if info.get("state") == "CREATED"
                and pg.endswith(job)
                and any(b.get("CPU", 0) > 0 or b.get("GPU", 0) > 0 for b in info.get("bundles", {}).values())}

    def __call__(self) -> int:
        if time.monotonic() - self.checked >= 0.25:
            self.checked = time.monotonic()
            self.seen |= self._placed() - self.before
        return len(self.seen)


class Admission(Searcher):
    """Wraps the sweep's searcher (OptunaSearch)."""

    placed = None  # an Admission Tune pickled before this attribute existed (--resume of an older sweep) has none

    def __init__(self, searcher: Searcher, *, epochs: int, budget: int | None = None,
                 slots: int | None = None, placed=None) -> None:
        self.searcher, self.epochs, self.budget, self.slots = searcher, int(epochs), budget, slots
        self.placed = placed  # () -> worker groups placed since the sweep began (PlacedWorkers); None: epochs only
        self.trained: dict[str, int] = {}  # trial id -> epochs it reported
        self.live: set[str] = set()
        self.warmed = slots is None      # the first wave holds the slots (start-ahead only)
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def committed(self) -> int:
        """Epochs trained by ended trials plus a whole schedule for each running one (an upper bound)."""
        return sum(n for t, n in self.trained.items() if t not in self.live) + self.epochs * len(self.live)

    def suggest(self, trial_id: str):
        if self.budget is not None and self.committed() + self.epochs > self.budget:
            # no room for one more whole trial: wait for the running ones (ASHA may stop them early and free
            # epochs), or end the search when none is left
            return Searcher.FINISHED if not self.live else None
        if not self.warmed and len(self.live) >= self.slots:
            if self.placed is None or self.placed() < self.slots:
                return None  # the trial started ahead waits until the first wave holds the slots
            self.warmed = True
        config = self.searcher.suggest(trial_id)
        if config not in (None, Searcher.FINISHED):
            self.live.add(trial_id)
            self.trained[trial_id] = 0
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._count(trial_id, result)
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._count(trial_id, result)
        self.live.discard(trial_id)  # a trial that failed before its first epoch frees its slot: no wait on it
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def _count(self, trial_id: str, result: dict | None) -> None:
        epoch = (result or {}).get("epoch")
        if isinstance(epoch, (int, float)):
            self.trained[trial_id] = max(self.trained.get(trial_id, 0), int(epoch))
        if not self.warmed and sum(1 for n in self.trained.values() if n) >= self.slots:
            self.warmed = True

    # Tune's other calls go to the wrapped searcher.
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def add_evaluated_point(self, *args, **kwargs):
        return self.searcher.add_evaluated_point(*args, **kwargs)

    def on_pause(self, trial_id: str) -> None:
        self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(trial_id)

    # Tune saves a wrapper (a searcher with a `.searcher`) by its get_state and the wrapped searcher by its own save
    # (SearchGenerator.save_to_dir), and restores them the same way on --resume.
    def get_state(self) -> dict:
        return {"trained": dict(self.trained), "live": sorted(self.live), "budget": self.budget, "epochs": self.epochs,
                "slots": self.slots, "warmed": self.warmed}

    def set_state(self, state: dict) -> None:
        self.trained, self.live = dict(state["trained"]), set(state["live"])
        self.budget, self.epochs, self.slots, self.warmed = (state["budget"], state["epochs"], state["slots"],
                                                             state["warmed"])

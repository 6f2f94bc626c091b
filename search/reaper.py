"""Frees the Train worker groups that stopped trials leave behind, from the sweep's own process.

When Tune stops a trial (ASHA, or the end of the sweep) it kills the trial's actor; the trial's Train controller,
which runs in that actor (trainables.ray_train), dies with it, and the placement group it made for its workers
stays: Ray removes a group made by a (non-detached) actor only once its job has ended too. Ray Train 2.60 starts
a detached `PlacementGroupCleaner` actor per run for this: one more Ray process per trial (~1.9 s of CPU on 2
cores, measured in a sweep), which asks the state API (the dashboard) every second. A sweep's trials run without it
(`make_trainer(pg_cleaner=False)`); `Reaper`, a thread of the sweep process, removes every group of this job whose
creating actor is dead, read from the GCS's placement-group table (~0.4 ms a call on a local cluster). A group
whose creator is dead can never be used again, so nothing live is touched: Tune's own groups for the trial
actors are made by the driver (no creating actor), and a running controller's group is its creator's. What the
sweep process cannot cover, its own end, Ray does: a group whose creating actor and job are both dead is removed
by the GCS.

A sweep in a process that outlives it (a notebook, the test suite) must leave nothing either: its job goes on, so
Ray never removes what is left, and the next `train` (which asks for every CPU) waits for ever. CI saw that: a
controller killed as its trial ended registered a new worker group on its way out, after the sweep's last pass. So
the block's end waits (at most `settle_s`) for the actors started in it to be dead, then passes once more. And a
creator not flagged dead in the group's row is looked up in the actor table: a group registered after its creator
died may never be flagged (not seen; one look-up per running trial's group)."""

from __future__ import annotations

import threading
import time


def _creator_dead(row) -> bool:
    if row.creator_actor_dead:
        return True
    from ray._private.state import state

    return state.actor_table(row.creator_actor_id.hex()).get("State") == "DEAD"


def orphaned_groups(job_id: str) -> list[bytes]:
    """Ids of this job's placement groups, not removed, whose creating actor is dead."""
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    table = gcs_pb2.PlacementGroupTableData
    rows = (table.FromString(raw) for raw in state._connect_and_get_accessor().get_placement_group_table())
    return [row.placement_group_id for row in rows
            if row.creator_job_id.hex() == job_id and row.state != table.REMOVED and not row.is_detached
            and set(row.creator_actor_id) != {0xFF} and _creator_dead(row)]  # all-0xFF: made by a driver


def remove_orphans(job_id: str) -> int:
    from ray import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    orphans = orphaned_groups(job_id)
    for pg_id in orphans:
        remove_placement_group(PlacementGroup(PlacementGroupID(pg_id)))
    return len(orphans)


def live_actors(job_id: str) -> set[str]:
    """This job's actors that are not dead and not detached (detached ones, e.g. Train's state actor, outlive
    every run by design)."""
    import ray
    from ray._private.state import state

    rows = state.actor_table(None, job_id=ray.JobID.from_hex(job_id)).values()
    return {a["ActorID"] for a in rows if a["State"] != "DEAD" and not a["IsDetached"]}


class Reaper:
    """`with Reaper():` removes orphaned groups every `every_s` seconds; as the block ends it waits, at most
    `settle_s`, for the actors started in it to be dead (Tune has killed them; their children follow), then
    passes once more."""

    def __init__(self, every_s: float = 0.25, settle_s: float = 20.0) -> None:
        self.every_s, self.settle_s, self.removed = every_s, settle_s, 0
        self.unsettled: set[str] = set()  # actors started in the block still alive when settle_s ran out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._before: set[str] = set()

    def _pass(self, job_id: str) -> None:
        try:
            self.removed += remove_orphans(job_id)
        except Exception:  # noqa: BLE001 - a GCS hiccup: ask again next time; Ray removes them at the job's end
            pass

    def _settle(self, job_id: str) -> None:
        deadline = time.monotonic() + self.settle_s
        while True:
            try:
                self.unsettled = live_actors(job_id) - self._before
            except Exception:  # noqa: BLE001 - as in _pass
                pass
            if not self.unsettled or time.monotonic() > deadline:
                return
            self._pass(job_id)
            time.sleep(self.every_s / 5)

    def _run(self, job_id: str) -> None:
        while not self._stop.wait(self.every_s):
            self._pass(job_id)
        self._settle(job_id)
        self._pass(job_id)  # one last pass, once nothing the block started can make a group

    def __enter__(self) -> "Reaper":
        import ray

        job_id = ray.get_runtime_context().get_job_id()
        self._before = live_actors(job_id)
        self._thread = threading.Thread(target=self._run, args=(job_id,), name="visionsweep-reaper", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

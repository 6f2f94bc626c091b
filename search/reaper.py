"""Frees the Train worker groups that stopped trials leave behind, from the sweep's own process.

When Tune stops a trial (ASHA, or the end of the sweep) it kills the trial's actor; the trial's Train controller
dies with it, and the placement group the controller made for its workers stays: Ray removes a group made by a
(non-detached) actor only once its job has ended too. Ray Train 2.60 starts a detached `PlacementGroupCleaner`
actor per run for this: one more Ray process per trial (~1.9 s of CPU on 2 cores, measured in a sweep), which
asks the state API (the dashboard) every second. A sweep's trials run without it
(`make_trainer(pg_cleaner=False)`); `Reaper`, a thread of the sweep process, removes every group of this job whose
creating actor is dead, read from the GCS's placement-group table (~0.4 ms a call on a local cluster). A group
whose creator is dead can never be used again, so nothing live is touched: Tune's own groups for the trial
actors are made by the driver (no creating actor), and a running controller's group is its creator's. What the
sweep process cannot cover, its own end, Ray does: a group whose creating actor and job are both dead is removed
by the GCS."""

from __future__ import annotations

import threading


def orphaned_groups(job_id: str) -> list[bytes]:
    """Ids of this job's placement groups, not removed, whose creating actor is dead."""
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    table = gcs_pb2.PlacementGroupTableData
    rows = (table.FromString(raw) for raw in state._connect_and_get_accessor().get_placement_group_table())
    return [row.placement_group_id for row in rows
            if row.creator_job_id.hex() == job_id and row.state != table.REMOVED and not row.is_detached
            and row.creator_actor_dead and set(row.creator_actor_id) != {0xFF}]  # all-0xFF: made by a driver


def remove_orphans(job_id: str) -> int:
    from ray import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    orphans = orphaned_groups(job_id)
    for pg_id in orphans:
        remove_placement_group(PlacementGroup(PlacementGroupID(pg_id)))
    return len(orphans)


class Reaper:
    """`with Reaper():` removes orphaned groups every `every_s` seconds, and once more as the block ends."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s, self.removed = every_s, 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self, job_id: str) -> None:
        while True:
            stopping = self._stop.wait(self.every_s)
            try:
                self.removed += remove_orphans(job_id)
            except Exception:  # noqa: BLE001 - a GCS hiccup: ask again next time; Ray removes them at the job's end
                pass
            if stopping:  # one last pass as the block ends
                return

    def __enter__(self) -> "Reaper":
        import ray

        self._thread = threading.Thread(target=self._run, args=(ray.get_runtime_context().get_job_id(),),
                                        name="visionsweep-reaper", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

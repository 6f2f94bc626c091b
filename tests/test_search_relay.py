"""A trial's reports reach Tune through Ray's key-value store (search.relay), and the worker group of a Train
controller that died with its trial is freed by the sweep process (search.reaper): the two Ray processes per
trial that Ray's own integration starts (a queue actor, a placement-group cleaner) are not needed."""

import threading
import time

import pytest
import ray
from ray.experimental import internal_kv
from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

from visionsweep.search.reaper import Reaper, orphaned_groups
from visionsweep.search.relay import NAMESPACE, KVReport, new_channel, relay


class _Checkpoint:
    path = "/sweeps/s/train_runs/train-t1/checkpoint_000004"


def _fit_reporting(callback: KVReport, epochs: int, *, then=None):
    """Calls the callback as Train's controller does after each report; the last one right before returning."""
    def fit():
        for epoch in range(1, epochs + 1):
            callback.after_report(None, [{"epoch": epoch, "loss": 1 / epoch}],
                                  _Checkpoint() if epoch == epochs else None)
            if epoch < epochs:
                time.sleep(0.03)
        if then is not None:
            raise then
        return "fit's result"
    return fit


def test_relay_hands_every_report_on_in_order_in_the_callers_thread(ray_cluster):
    channel = new_channel("t1")
    got, threads = [], set()

    def report(metrics):
        got.append(metrics)
        threads.add(threading.current_thread())

    assert relay(_fit_reporting(KVReport(channel), 6), channel, report) == "fit's result"
    assert [m["epoch"] for m in got] == [1, 2, 3, 4, 5, 6]  # the last one, put as fit() returned, too
    assert got[-1]["checkpoint_path"] == _Checkpoint.path and "checkpoint_path" not in got[0]
    assert threads == {threading.current_thread()}  # Tune's session wants its trial's own thread
    assert not internal_kv._internal_kv_list(channel, namespace=NAMESPACE)  # nothing left in the GCS


def test_relay_raises_what_fit_raised_after_handing_on_its_reports(ray_cluster):
    channel = new_channel("t2")
    got = []
    with pytest.raises(RuntimeError, match="worker group failed"):
        relay(_fit_reporting(KVReport(channel), 2, then=RuntimeError("worker group failed")), channel, got.append)
    assert [m["epoch"] for m in got] == [1, 2]
    assert not internal_kv._internal_kv_list(channel, namespace=NAMESPACE)


@ray.remote(num_cpus=0)
class _Controller:
    """Stands where Train's controller stands: an actor that makes its workers' placement group."""

    def make_group(self, cpus: float) -> str:
        self.pg = placement_group([{"CPU": cpus}])
        ray.get(self.pg.ready())
        return self.pg.id.hex()

    def make_group_then_exit(self, cpus: float, after_s: float) -> None:
        """As a controller killed with its trial can still place a new worker group on its way out."""
        time.sleep(after_s)
        self.make_group(cpus)
        ray.actor.exit_actor()


def _state(pg_hex: str):
    return placement_group_table().get(pg_hex, {}).get("state")


def test_reaper_frees_the_group_of_a_dead_actor_and_nothing_live(ray_cluster):
    drivers = placement_group([{"CPU": 0.5}])  # made by the driver, as Tune makes its trial actors' groups
    ray.get(drivers.ready())
    live, dying = _Controller.remote(), _Controller.remote()
    kept, doomed = ray.get(live.make_group.remote(0.5)), ray.get(dying.make_group.remote(0.5))
    job = ray.get_runtime_context().get_job_id()
    try:
        with Reaper(every_s=0.1) as reaper:
            ray.kill(dying)  # as Tune kills a stopped trial, and its controller with it
            deadline = time.monotonic() + 15
            while _state(doomed) != "REMOVED" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _state(doomed) == "REMOVED"
            time.sleep(0.5)  # a few more passes
            assert _state(kept) == "CREATED" and _state(drivers.id.hex()) == "CREATED"
        assert reaper.removed == 1 and orphaned_groups(job) == []
    finally:
        ray.kill(live)
        remove_placement_group(drivers)


def test_the_reapers_end_waits_for_the_actors_started_in_it_and_frees_their_last_groups(ray_cluster):
    """A sweep in a process that outlives it (a notebook, this suite) must leave no group: its job goes on, so Ray
    never frees one, and the next `train` waits for ever for the CPU it holds (CI: a controller placed a group as its
    trial ended, after the sweep's last pass). The block's end waits for the actors it started, then frees their
    groups; an actor alive before the block is not waited for."""
    older = _Controller.remote()
    kept = ray.get(older.make_group.remote(0.25))
    job = ray.get_runtime_context().get_job_id()
    try:
        with Reaper(every_s=0.1) as reaper:
            late = _Controller.remote()
            late.make_group_then_exit.remote(0.25, after_s=1.5)  # still alive as the block ends
        assert not reaper.unsettled and reaper.removed == 1  # the group it made on its way out
        assert orphaned_groups(job) == [] and _state(kept) == "CREATED"
    finally:
        ray.kill(older)

"""The Ray session object: what a command (or a notebook call) leaves behind in its process."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from visionsweep.trainables.ray_session import RaySession, ensure_ray

OWN_CLUSTER = """
import os, ray
from visionsweep.trainables.ray_session import ensure_ray
os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] = "user's"
with ensure_ray(num_cpus=1, log=print) as session:
    assert session.owned and ray.is_initialized(), session
    assert session.resources["CPU"] == 1 and session.resources["visionsweep_trial"] == 1, session.resources
    assert session.dashboard_url.startswith("127.0.0.1:"), session.dashboard_url
    assert os.environ["RAY_API_SERVER_ADDRESS"] == "http://" + session.dashboard_url
    assert os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "0"
    assert session.local  # this machine alone: a sweep may start a trial ahead of its free slots
    with ensure_ray(log=print) as inner:  # a later call in the same process (a notebook, a benchmark) joins it
        assert not inner.owned and inner.local, inner
    assert ray.is_initialized()
assert not ray.is_initialized()
assert "RAY_API_SERVER_ADDRESS" not in os.environ
assert os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "user's"
print("closed cleanly")
"""


@pytest.mark.slow
def test_a_session_that_started_ray_shuts_it_down_and_puts_the_environment_back():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    proc = subprocess.run([sys.executable, "-c", OWN_CLUSTER], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0 and "closed cleanly" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.slow
def test_a_session_that_found_ray_running_leaves_it_running(ray_cluster):
    import ray

    before = dict(os.environ)
    with ensure_ray(log=print) as session:
        assert not session.owned and session.resources.get("CPU", 0) >= 1
        assert not session.local  # a `ray start` cluster joined by address: it may autoscale
        assert os.environ["VISIONSWEEP_TEST_DASHBOARD"].endswith(session.dashboard_url)
    assert ray.is_initialized() and ray.cluster_resources() and dict(os.environ) == before


def test_closing_puts_back_each_variable_as_it_was(monkeypatch):
    monkeypatch.setenv("VS_SESSION_SET", "old")
    monkeypatch.delenv("VS_SESSION_NEW", raising=False)
    session = RaySession({}, None, owned=False, _env_before={"VS_SESSION_SET": "old", "VS_SESSION_NEW": None})
    os.environ.update(VS_SESSION_SET="new", VS_SESSION_NEW="new")
    session.close()
    assert os.environ["VS_SESSION_SET"] == "old" and "VS_SESSION_NEW" not in os.environ
    session.close()  # twice is harmless
    assert os.environ["VS_SESSION_SET"] == "old"


def test_a_run_that_asks_for_cpus_other_runs_hold_says_it_waits(ray_cluster):
    """Ray Train waits for its workers' CPUs for ever without a word (the CI hang); `train` and `lr-find` say it."""
    import time

    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.ray_session import say_if_busy

    cfg = TrainConfig(backbone="test_resnet", workers=2, cpus_per_worker=2.0)  # the whole test cluster, as `train`
    held = placement_group([{"CPU": 1}])
    ray.get(held.ready())
    said = []
    try:
        assert say_if_busy(cfg, log=said.append)
        assert said == ["the Ray cluster has 3 of the 4 CPU it asks for free now (other runs hold the rest): this run "
                        "waits until they end (Ctrl-C stops it)"]
    finally:
        remove_placement_group(held)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not say_if_busy(cfg, log=said.append) and len(said) == 1


def test_refits_at_once_say_they_wait_and_a_group_freed_a_moment_later_is_not_a_wait(ray_cluster):
    """The refits start as the sweep's last trials end: Ray's view of the free CPUs lags their end, so a shortfall
    is looked at again for a few seconds before it is said; a real one is said for all the runs that go at once."""
    import threading

    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from visionsweep.trainables.config import TrainConfig
    from visionsweep.trainables.ray_session import say_if_busy

    cfg = TrainConfig(backbone="test_resnet", workers=1, cpus_per_worker=2.0)  # 2 refits at once: all 4 CPUs
    said = []
    held = placement_group([{"CPU": 1}])
    ray.get(held.ready())
    try:
        assert say_if_busy(cfg, log=said.append, runs=2, who="the 2 refit runs at once wait", settle_s=0.5)
        assert said == ["the Ray cluster has 3 of the 4 CPU they ask for free now (other runs hold the rest): the 2 "
                        "refit runs at once wait until they end (Ctrl-C stops it)"]
        threading.Timer(1.0, remove_placement_group, args=(held,)).start()  # "a run that ends just now"
        assert not say_if_busy(cfg, log=said.append, runs=2, settle_s=20) and len(said) == 1
    finally:
        if ray.util.placement_group_table(held)["state"] != "REMOVED":
            remove_placement_group(held)

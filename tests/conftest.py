"""Shared fixtures: an isolated decode cache, one real local Ray cluster per test session, the demo data."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers (digits.py, ...)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never wait on the hub
# The session's Ray head uses token auth (`ray start` clusters get it only when asked, RAY_NOTES); ray reads
# this when it is imported, so it is set before any test module imports ray.
os.environ["RAY_AUTH_MODE"] = "token"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session decodes into its own cache, never the user's ~/.cache."""
    monkeypatch.setenv("VISIONSWEEP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _live_groups(job: str | None = None) -> dict:
    """Placement groups not removed (of one job, or all), as Ray's table has them."""
    from ray.util.placement_group import placement_group_table

    return {pg: info for pg, info in placement_group_table().items()
            if info.get("state") in ("CREATED", "PENDING", "RESCHEDULING") and (job is None or pg.endswith(job))}


def _remove_groups(groups) -> None:
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    for pg in groups:
        try:
            remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(pg)))
        except Exception:  # removed meanwhile
            pass


def _dead_jobs() -> set[str]:
    from ray._private.state import jobs

    return {j["JobID"] for j in jobs() if j.get("IsDead")}


def _wait_for_idle_cpus(timeout: float = 60) -> str:
    """'' once every CPU of the cluster is free again, else what holds them (the groups not removed)."""
    import time

    import ray

    deadline = time.monotonic() + timeout
    while True:
        free, total = ray.available_resources().get("CPU", 0.0), ray.cluster_resources().get("CPU", 0.0)
        if free >= total:
            return ""
        if time.monotonic() > deadline:
            job, dead = ray.get_runtime_context().get_job_id(), _dead_jobs()
            held = "\n".join(f"  {pg} ({'this pytest job' if pg.endswith(job) else 'job ' + pg[-8:]}"
                             f"{', dead' if pg[-8:] in dead else ''}): "
                             f"{info['state']}, bundles {list(info['bundles'].values())}"
                             for pg, info in _live_groups().items())
            return f"{free:g} of {total:g} CPUs free after {timeout:g} s; groups not removed:\n{held or '  none'}"
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def _ray_cluster_left_as_found(request):
    """A test on the session's cluster starts with every CPU free, or fails saying what holds them, instead of
    waiting for ever: `train` and `lr-find` ask for every CPU, and twice in CI a group left behind hung the
    killed-worker test and every `train` after it (the first time a Train group of an in-process sweep, placed by
    its controller as its trial ended; a job that outlives a sweep never frees it: the sweep's Reaper now waits for
    such controllers, search/reaper.py). After each test, groups this process's Ray job still holds are removed:
    a leftover fails one test, with its holder named, not the rest of the suite."""
    if "ray_cluster" in request.fixturenames:
        held = _wait_for_idle_cpus()
        if held:
            ours = sys.modules["ray"].get_runtime_context().get_job_id()
            _remove_groups(pg for pg in _live_groups() if pg[-8:] in {ours, *_dead_jobs()})  # the suite goes on
            pytest.fail(f"the session's Ray cluster is not idle before this test: {held}")
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        _remove_groups(_live_groups(ray.get_runtime_context().get_job_id()))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_bin() -> list[str]:
    ray_bin = [str(Path(sys.executable).parent / "ray")]
    if not Path(ray_bin[0]).exists():  # Ray installed with `pip --target` (bench/gpu_check.sh): no script beside python
        ray_bin = [sys.executable, "-m", "ray.scripts.scripts"]
    return ray_bin


def _node_env(dashboard_url: str) -> dict:
    # Train's placement-group cleaner must find this cluster's state API, not whatever cluster last
    # wrote /tmp/ray/ray_current_cluster (another engineer's, or a dead one). One machine: no preemption
    # watcher (as `visionsweep` itself starts local clusters, trainables/ray_session.py LOCAL_ENV).
    from visionsweep.trainables.ray_session import LOCAL_ENV

    return {**os.environ, "RAY_API_SERVER_ADDRESS": dashboard_url, **LOCAL_ENV}


@pytest.fixture(scope="session")
def ray_cluster():
    """One real Ray head for the whole session, started as on a cluster: `ray start --head` with token
    authentication, the dashboard (and Jobs API) on 127.0.0.1 and the trial-driver resource.

    Two Ray instances on one machine break Ray's placement-group cleanup (RAY_NOTES), so tests never start
    their own: this process and CLI subprocesses join through RAY_ADDRESS. 4 logical CPUs on a 2-core
    machine let trials and their workers start together. `--block` under our Popen means teardown stops
    this head alone (never a global `ray stop`)."""
    import time

    import ray

    from visionsweep.trainables.ray_session import TRIAL_RESOURCE, WORKER_ENV

    port, dash = _free_port(), _free_port()
    ray_bin = _ray_bin()
    if not (Path.home() / ".ray" / "auth_token").exists():  # a fresh machine: `ray start` in token mode needs one
        subprocess.run([*ray_bin, "get-auth-token", "--generate"], check=True, capture_output=True)
    head = subprocess.Popen(
        [*ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=4",
         f'--resources={{"{TRIAL_RESOURCE}": 1}}', "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         "--include-dashboard=true", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=_node_env(f"http://127.0.0.1:{dash}"))
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            ray.init(address=address, runtime_env={"env_vars": WORKER_ENV}, logging_level="WARNING")
            break
        except Exception:
            if time.monotonic() > deadline or head.poll() is not None:
                head.kill()
                raise
            time.sleep(1)
    os.environ["RAY_ADDRESS"] = address
    os.environ["VISIONSWEEP_TEST_DASHBOARD"] = f"http://127.0.0.1:{dash}"
    yield address
    ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
    _stop(head, wait=5)


def _stop(node: subprocess.Popen, *, wait: float) -> None:
    node.terminate()
    try:
        node.wait(timeout=wait)
    except subprocess.TimeoutExpired:  # `ray start --block` stopping every process gracefully took 10-30 s
        import signal

        os.killpg(node.pid, signal.SIGKILL)  # its own session: this node's processes alone
        node.wait(timeout=30)


def _wait_for_live_nodes(n: int, timeout: float = 90) -> None:
    import time

    import ray

    deadline = time.monotonic() + timeout
    while sum(1 for node in ray.nodes() if node.get("Alive")) != n:
        assert time.monotonic() < deadline, f"the session's Ray cluster did not reach {n} live node(s)"
        time.sleep(0.5)


@contextlib.contextmanager
def extra_ray_node(num_cpus: int):
    """A second node joins the session's cluster for the block (its own raylet on this machine, as
    `ray start --address` adds a machine to a cluster) and leaves it after: a cluster of two nodes."""
    node = subprocess.Popen(
        [*_ray_bin(), "start", f"--address={os.environ['RAY_ADDRESS']}", "--block", f"--num-cpus={num_cpus}",
         "--disable-usage-stats"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=_node_env(os.environ["VISIONSWEEP_TEST_DASHBOARD"]))
    try:
        _wait_for_live_nodes(2)
        yield
    finally:
        _stop(node, wait=30)
        _wait_for_live_nodes(1)  # the tests after see the one-node cluster again


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from visionsweep.datasets.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo") / "vsd")


def run_cli(*args, env: dict | None = None, timeout: float = 600, cwd=None) -> subprocess.CompletedProcess:
    """The real `visionsweep` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "visionsweep.search.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)


def cli_in_process(*args) -> subprocess.CompletedProcess:
    """The command's own `main()` in this process, for input that must be refused before Ray starts: the same
    exit status and output as `run_cli`, without a new interpreter's 3 s of imports. The environment and warning
    filters it sets are restored after; if Ray was started, that is a failure (and it is shut down)."""
    import contextlib
    import io
    import warnings

    from visionsweep.search.cli import main

    out, err, env = io.StringIO(), io.StringIO(), dict(os.environ)
    ray_before = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse errors
                code = exc.code
    finally:
        os.environ.clear()
        os.environ.update(env)
    if not ray_before and "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
        raise AssertionError(f"`visionsweep {' '.join(map(str, args))}` started Ray before refusing its input")
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def build_wheel(tmp_path: Path) -> Path:
    """The project as a wheel, built from a copy of the tree (pip builds in the source folder: build/, egg-info)."""
    import shutil

    src, dist = tmp_path / "wheel-src", tmp_path / "dist"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", ".whl", "build", "*.egg-info",
                                                             "__pycache__", "visionsweep-demo", "sweeps", "runs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "-w", str(dist), str(src)], check=True, capture_output=True)
    return next(dist.glob("visionsweep-*.whl"))

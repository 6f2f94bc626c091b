"""Shared fixtures: an isolated decode cache, one real local Ray cluster per test session, the demo data."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers (digits.py, ...)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never wait on the hub


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session decodes into its own cache, never the user's ~/.cache."""
    monkeypatch.setenv("VISIONSWEEP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (with the dashboard, as users run it) for the whole session.

    Two cluster instances on one machine break Ray's placement-group cleanup (RAY_NOTES), so tests
    never start their own: CLI subprocesses join this one through RAY_ADDRESS. 4 logical CPUs on a
    2-core machine let a Tune trial and its 2 workers start together."""
    import ray

    ctx = ray.init(num_cpus=4, include_dashboard=True, dashboard_host="127.0.0.1", logging_level="WARNING")
    yield ctx.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from datasets.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo") / "vsd")


def run_cli(*args, env: dict | None = None, timeout: float = 600, cwd=None) -> subprocess.CompletedProcess:
    """The real `visionsweep` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "search.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)

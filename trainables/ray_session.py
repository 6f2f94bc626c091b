"""The Ray session: connect to a cluster or start a private local one (dashboard on loopback, token auth),
and the resource policy of one run (CPU shares, clear errors for more workers than the cluster has)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from visionsweep.datasets import DataError
from visionsweep.trainables.config import TrainConfig
from visionsweep.datasets.console import say

TRIAL_RESOURCE = "visionsweep_trial"  # sweeps: trial drivers take this, never a CPU a worker needs
# Train's controller sees a report, or that the run ended, only when it polls its workers (every
# RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, Ray's default 2 s): up to 2 s of latency per report, and a sweep's trial ends
# (and frees its workers for the next) only once its last report reached Tune. Polled every 0.5 s here. Tried once
# before, with Ray's TuneReportCallback, that hung a trial of the suite's notebook sweep (the trial's thread blocked
# in Tune's session, queue.put, when Train's last report reached it after fit() had returned); a sweep's trials now
# hand every report to Tune before fit()'s thread is done with (search.relay). bench_sweep_overhead, 3 interleaved
# pairs: 10.3, 10.1, 9.3 s per trial against 10.5, 10.4, 10.0 s at 2 s.
WORKER_ENV = {"RAY_TRAIN_ENABLE_STATE_TRACKING": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}
# A cluster visionsweep starts on this machine: no spot nodes to watch. Train's preemption watcher is one more
# actor per run (about 1 s of each trial's start on 2 cores); clusters keep it. A sweep starts one trial ahead of
# its free slots (search.sweep.in_flight): that trial's workers wait for a slot as long as a running trial trains,
# so not Train's 60 s before it tears the pending group down and asks again (visionsweep sizes every run to this
# cluster, so a request that can never be met is refused before it is made).
LOCAL_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "86400"}


def verbose() -> bool:
    """`--verbose` (VISIONSWEEP_VERBOSE=1): Ray's own output on the console too, not only in its session logs."""
    return os.environ.get("VISIONSWEEP_VERBOSE") == "1"


@dataclasses.dataclass
class RaySession:
    """The Ray connection one command works in. `with ensure_ray(...) as session:`: on leaving, a cluster this
    session started (or connected to) is shut down (disconnected) and the environment variables it set are put
    back; a session that found Ray already running in the process (a test cluster, a notebook's own ray.init)
    leaves it as it was."""

    resources: dict
    dashboard_url: str | None  # as Ray gives it (host:port); None when Ray does not say
    owned: bool
    local: bool = False  # a private cluster this session started on this machine: it cannot grow (no autoscaler)
    nodes: list = dataclasses.field(default_factory=list)  # each live node's resources (cluster_nodes())
    _env_before: dict = dataclasses.field(default_factory=dict, repr=False)

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()
        for key, value in self._env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.owned, self._env_before = False, {}

    def __enter__(self) -> "RaySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ensure_ray(*, num_cpus: int | None = None, log=say, log_to_driver: bool = True) -> RaySession:
    """Connect to RAY_ADDRESS's cluster, or start a local one with the dashboard on 127.0.0.1 (Ray 2.60 turns
    token authentication on for it; visionsweep keeps it on and makes the token file private).

    `log_to_driver=False` (sweeps, unless --verbose) keeps what Ray's workers print in the session logs: the
    sweep's console is built by the driver from Tune's events instead."""
    import ray

    if ray.is_initialized():
        return RaySession(ray.cluster_resources(), _running_dashboard_url(), owned=False, local=_started_here(),
                          nodes=cluster_nodes())
    worker_env = {**WORKER_ENV, **({"VISIONSWEEP_VERBOSE": "1"} if verbose() else {})}
    common = dict(log_to_driver=log_to_driver or verbose(), logging_level="WARNING",
                  runtime_env={"env_vars": worker_env})
    env_before: dict = {}
    if os.environ.get("RAY_ADDRESS"):  # a cluster (or `ray job submit`, which sets it)
        ctx = ray.init(**common)
    else:  # a private local cluster: never an unrelated `ray start` instance found on this machine
        for attempt in range(3):  # a free port may be taken by another process before Ray binds it
            port = _dashboard_port(preferred=8265 if attempt == 0 else 0)
            # Train's placement-group cleaner finds the state API by "auto" address, i.e. the last `ray start`
            # cluster's file in /tmp/ray, which may be another (or a dead) cluster: point it at this one.
            api = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}", **LOCAL_ENV}
            common["runtime_env"] = {"env_vars": {**worker_env, **api}}
            env_before = {k: os.environ.get(k) for k in api} | env_before
            os.environ.update(api)  # the driver's own Train runs read them too; put back by close()
            try:
                ctx = ray.init(address="local", num_cpus=num_cpus, resources={TRIAL_RESOURCE: 1.0},
                               include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port, **common)
                break
            except Exception as err:
                if "port" not in str(err).lower() or attempt == 2:
                    RaySession({}, None, owned=True, _env_before=env_before).close()
                    raise
                ray.shutdown()
        tighten_token_file(log=log)
    return RaySession(ray.cluster_resources(), ctx.dashboard_url or None, owned=True,
                      local=not os.environ.get("RAY_ADDRESS"), nodes=cluster_nodes(), _env_before=env_before)


def _running_dashboard_url() -> str | None:
    """The dashboard of the Ray this process already joined (None when Ray does not say)."""
    try:
        from ray._private import services, worker

        return worker.global_worker.node.webui_url or services.get_webui_url_from_internal_kv() or None
    except Exception:  # private API: a later Ray may move it; the console then points at `ray dashboard`
        return None


def _started_here() -> bool:
    """Whether the Ray this process joined is a cluster it started itself (`ray.init()` without an address, e.g. a
    notebook's, or an earlier ensure_ray): then it is this machine alone, with no autoscaler."""
    try:
        from ray._private import worker

        return bool(worker._global_node is not None and worker._global_node.is_head())
    except Exception:  # private API: a later Ray may move it; then treat it as a cluster
        return False


def _dashboard_port(preferred: int = 8265) -> int:
    """Ray's usual 8265 when free, else any free port."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return sock.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port for the Ray dashboard")


def tighten_token_file(log=say) -> None:
    """Ray writes ~/.ray/auth_token readable by every local user (0644); the token is the cluster's key."""
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    try:
        if token.is_file() and token.stat().st_mode & 0o077:
            token.chmod(0o600)
    except OSError as err:
        log(f"warning: could not make {token} private ({err}); other users of this machine can read it")


def cluster_nodes() -> list[dict]:
    """Each live node's resources: Ray places a worker's bundle (its CPUs and GPUs) on one node, so what fits is
    counted per node, not from the cluster's totals."""
    import ray

    nodes = [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]
    return nodes or [ray.cluster_resources()]


def bundle(cpus: float, gpus: float = 0.0) -> dict:
    """What one Train worker asks Ray for."""
    return {"CPU": cpus, **({"GPU": gpus} if gpus > 0 else {})}


def worker_bundle(cfg: TrainConfig) -> dict:
    return bundle(cfg.cpus_per_worker, cfg.gpus_per_worker if cfg.use_gpu else 0.0)


def cluster_totals(nodes: list[dict]) -> dict:
    """The nodes' CPUs and GPUs added up."""
    return {key: sum(n.get(key, 0.0) for n in nodes) for key in ("CPU", "GPU")}


def workers_that_fit(nodes: list[dict], bundle: dict) -> int:
    """How many workers asking `bundle` the nodes hold, each worker on one node (an idle cluster; Train packs a
    run's workers on as few nodes as hold them). 1e-9: 0.3 / 0.1 is 2.9999999999999996 in floats; Ray fits 3."""
    asks = {k: v for k, v in bundle.items() if v > 0}
    return sum(min(int(node.get(k, 0.0) / v + 1e-9) for k, v in asks.items()) for node in nodes) if asks else 2**31


def largest_node(nodes: list[dict]) -> str:
    """The most CPUs and the most GPUs that one node has, as error messages say them."""
    cpu, gpu = (max((n.get(key, 0.0) for n in nodes), default=0.0) for key in ("CPU", "GPU"))
    return f"at most {cpu:g} CPU / {gpu:g} GPU on one node"


def share_cpus(cfg: TrainConfig, nodes: list[dict], *, runs: int = 1) -> TrainConfig:
    """`runs` runs alone on CPUs (one by default): each worker gets the largest equal share of the CPUs that
    still places every worker on one node. Ray sets a worker's OMP_NUM_THREADS from its CPUs, so the default
    1 CPU left one core of two idle (measured 0.6x). Shares of the cluster's total asked one worker for more CPUs
    than any node had: on a 4 + 2 CPU cluster `train` waited for ever for a 6-CPU worker."""
    if cfg.use_gpu or cfg.cpus_per_worker != 1.0:
        return cfg
    need = cfg.workers * runs
    most = int(max((n.get("CPU", 0.0) for n in nodes), default=1.0))
    share = max((s for s in range(2, most + 1) if workers_that_fit(nodes, {"CPU": s}) >= need), default=1)
    return dataclasses.replace(cfg, cpus_per_worker=float(share)) if share > 1 else cfg


def check_resources(cfg: TrainConfig, nodes: list[dict], *, can_grow: bool = False, log=say) -> None:
    """`--workers` beyond the cluster's GPUs/CPUs is a clear error, not a hang. On a cluster that can grow (not
    the local one visionsweep starts), GPUs it does not have yet are asked for all the same (`--gpus-per-worker`:
    an autoscaler adds GPU nodes while the workers wait), with a note through `log`."""
    totals = cluster_totals(nodes)
    if cfg.use_gpu:
        have, need = totals["GPU"], cfg.workers * cfg.gpus_per_worker
        if need > have and can_grow:
            log(f"the Ray cluster has {have:g} GPU(s) now and this run asks for {need:g}: its workers wait for the "
                f"cluster to add GPU nodes (Train gives up after RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S)")
            return
        if need > have:
            raise DataError(f"--workers {cfg.workers} needs {need:g} GPU(s) but the Ray cluster has {have:g}; "
                            f"lower --workers, or add --cpu to train on CPUs")
    have, need = totals["CPU"], cfg.workers * cfg.cpus_per_worker
    if need > have:
        raise DataError(f"--workers {cfg.workers} needs {need:g} CPU(s) but the Ray cluster has {have:g}; "
                        f"lower --workers")
    fit = workers_that_fit(nodes, worker_bundle(cfg))
    if fit < cfg.workers:
        raise DataError(f"--workers {cfg.workers}: each worker needs "
                        f"{' + '.join(f'{v:g} {k}' for k, v in worker_bundle(cfg).items())} on one node, and the "
                        f"Ray cluster's nodes hold {fit} such workers ({largest_node(nodes)}); "
                        f"lower --workers")


def say_if_busy(cfg: TrainConfig, log=say, *, runs: int = 1, who: str = "this run waits",
                settle_s: float = 3.0) -> bool:
    """A run that asks for more than the cluster has free right now waits for it: Ray Train retries every 60 s,
    for ever, and says nothing. Say so once, before the run starts (True when it was said). `runs` runs of this
    shape at once ask for `runs` times as much (the refits). The free resources are Ray's view of a moment ago, so
    runs that ended just now (a sweep's last trials, before its refits) may still show as holding their CPUs: a
    shortfall is looked at again for up to `settle_s` seconds before it is said."""
    import time

    import ray

    asks = {k: v * cfg.workers * runs for k, v in worker_bundle(cfg).items() if v > 0}
    asker = "it asks" if runs == 1 else "they ask"
    deadline = time.monotonic() + settle_s
    while True:
        free, total = ray.available_resources(), ray.cluster_resources()
        # Only what other runs hold: GPUs the cluster does not have yet (an autoscaler adds them) check_resources names.
        short = [f"{free.get(k, 0.0):g} of the {v:g} {k} {asker} for" for k, v in asks.items()
                 if free.get(k, 0.0) + 1e-9 < v <= total.get(k, 0.0) + 1e-9]
        if not short or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if short:
        log(f"the Ray cluster has {' and '.join(short)} free now (other runs hold the rest): {who} until they end "
            f"(Ctrl-C stops it)")
    return bool(short)

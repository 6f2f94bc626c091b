"""How many refit runs go at once, and the runner that keeps to it (pure Python: no Ray)."""

import threading
import time

import pytest

from visionsweep.search.refit import refits_at_once, run_at_once
from visionsweep.trainables.config import TrainConfig
from visionsweep.trainables.ray_session import share_cpus


def test_refits_go_as_many_at_once_as_the_cluster_holds_at_one_runs_shape():
    gpu = TrainConfig(workers=1, use_gpu=True, gpus_per_worker=1.0)
    assert refits_at_once(gpu, [{"CPU": 16.0, "GPU": 8.0}], 2) == 2          # 2 refit seeds on an 8-GPU cluster
    assert refits_at_once(gpu, [{"CPU": 16.0, "GPU": 8.0}], 12) == 8
    assert refits_at_once(gpu, [{"CPU": 16.0, "GPU": 1.0}], 2) == 1          # one GPU: one after the other
    two_gpus, fifth = TrainConfig(workers=2, use_gpu=True), TrainConfig(workers=1, use_gpu=True, gpus_per_worker=0.2)
    assert refits_at_once(two_gpus, [{"CPU": 16.0, "GPU": 3.0}], 3) == 1
    assert refits_at_once(fifth, [{"CPU": 16.0, "GPU": 1.0}], 9) == 5
    assert refits_at_once(TrainConfig(workers=1, use_gpu=True, gpus_per_worker=1.0, cpus_per_worker=8.0),
                          [{"CPU": 16.0, "GPU": 8.0}], 4) == 2              # the CPUs run out first
    cpu = TrainConfig(workers=1)
    assert refits_at_once(cpu, [{"CPU": 2.0}], 2) == 2                       # a 2-core machine: the start-ups overlap
    assert share_cpus(cpu, [{"CPU": 2.0}], runs=2).cpus_per_worker == 1.0   # ... each with one core
    assert share_cpus(cpu, [{"CPU": 8.0}], runs=2).cpus_per_worker == 4.0
    assert refits_at_once(TrainConfig(workers=2), [{"CPU": 2.0}], 2) == 1
    assert refits_at_once(cpu, [{"CPU": 2.0}], 1) == 1


def test_refits_count_what_each_node_holds():
    """A run's workers each sit on one node: a GPU node's runs, not the head's CPUs, bound the refits."""
    gpu_nodes = [{"CPU": 4.0, "visionsweep_trial": 1.0}, {"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert refits_at_once(TrainConfig(workers=1, use_gpu=True), gpu_nodes, 2) == 2
    assert refits_at_once(TrainConfig(workers=1, use_gpu=True, cpus_per_worker=5.0), gpu_nodes, 2) == 1
    cpu = TrainConfig(workers=1)
    assert refits_at_once(cpu, [{"CPU": 8.0}, {"CPU": 8.0}], 2) == 2
    assert share_cpus(cpu, [{"CPU": 8.0}, {"CPU": 8.0}], runs=2).cpus_per_worker == 8.0   # one run per node


def test_run_at_once_keeps_to_its_limit_and_yields_each_result_with_its_index():
    running, most, lock = 0, 0, threading.Lock()

    def call(i: int, seconds: float):
        def run():
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(seconds)
            with lock:
                running -= 1
            return i * 10
        return run

    calls = [call(0, 1.0), call(1, 0.05), call(2, 0.05), call(3, 0.05)]
    results = list(run_at_once(calls, 2))
    assert sorted(results) == [(0, 0), (1, 10), (2, 20), (3, 30)] and most == 2
    assert results[0] == (1, 10)  # yielded as they end, not in order
    assert list(run_at_once(calls, 1)) == [(0, 0), (1, 10), (2, 20), (3, 30)]


def test_run_at_once_hands_an_error_to_the_caller():
    def boom():
        raise RuntimeError("worker thread failed")

    with pytest.raises(RuntimeError, match="worker thread failed"):
        list(run_at_once([boom, lambda: 1], 2))


@pytest.mark.parametrize("to", ["the process", "another thread"])
def test_ctrl_c_while_refits_run_at_once_reaches_the_caller_at_once(to):
    """The main thread waits on the runs' threads: a Ctrl-C there must raise now, not when the runs end (the sweep
    then says how to resume; the runs, owned by the process, end with it). The kernel may hand a Ctrl-C to any of
    the process's threads; Python runs its handler in the main thread only: waiting without waking, that main
    thread did not see it until a run ended (30 s here). The test installs Python's own Ctrl-C handler, as a
    command in a terminal has it: pytest started in the background by a non-interactive shell inherits SIGINT
    ignored (both cases then failed in CI, "DID NOT RAISE" after 60 s)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_while_four_calls_run_two_at_a_time(to)
    finally:
        signal.signal(signal.SIGINT, before)


def _ctrl_c_while_four_calls_run_two_at_a_time(to: str) -> None:
    import os
    import signal

    ended = threading.Event()
    started = []

    def slow():
        started.append(1)
        ended.wait(30)
        return 1

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT) if to == "the process"
                        else signal.pthread_kill(threading.get_ident(), signal.SIGINT)).start()
        list(run_at_once([slow] * 4, 2))
    assert time.monotonic() - t0 < 10
    ended.set()  # the two running calls end, their slots free up: the other two must not start
    time.sleep(0.5)
    assert len(started) == 2


def test_the_sigint_handler_tune_leaves_behind_is_put_back():
    """Tune's fit() returns with its own SIGINT handler still installed; the first Ctrl-C of the refit after it
    would only set an event (seen: a sweep interrupted during its refit ran on to the end)."""
    import signal

    from visionsweep.trainables.ray_train import sigint_handler_kept

    before = signal.getsignal(signal.SIGINT)
    with sigint_handler_kept():
        signal.signal(signal.SIGINT, lambda *_: None)  # what Tune's fit() leaves
    assert signal.getsignal(signal.SIGINT) is before


def test_an_interactive_session_refits_one_at_a_time(monkeypatch):
    """A notebook's kernel outlives a Ctrl-C: threads there would train on after it, so refit_top runs the refits in
    turn in the main thread (each Ctrl-C aborts the run it interrupts)."""
    import sys
    import types

    from visionsweep.search.refit import _interactive

    assert not _interactive()  # pytest, like the command line
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: None  # imported (tqdm.auto does), no shell running
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert not _interactive()
    ipython.get_ipython = lambda: object()  # a notebook's kernel
    assert _interactive()
    assert refits_at_once(TrainConfig(workers=1, use_gpu=True), [{"CPU": 16.0, "GPU": 8.0}], 2) == 1

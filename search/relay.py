"""How a trial's Train run reports to Tune without the queue actor that Ray's own integration starts per trial.

Ray's `TuneReportCallback` creates a `ray.util.queue.Queue`, one more Ray process per trial (~1.2 s of CPU
starting up and importing Ray on 2 cores). Here the Train controller writes each of rank 0's reports to Ray's
key-value store (in the GCS) under the trial's channel (`KVReport`), and the trial reads them back in order while
fit() runs in a thread (`relay`). The controller runs in that thread's event loop (trainables.ray_train,
`controller_in_process`); the store also carries the reports where it is an actor of its own (fit() outside an
actor). The other processes a trial no longer starts: Train's placement-group cleaner (search.reaper) and the
TrainController actor."""

from __future__ import annotations

import pickle
import threading
import uuid

from ray.experimental import internal_kv as kv
from ray.train.v2.api.callback import UserCallback

NAMESPACE = "visionsweep"


class KVReport(UserCallback):
    """In the Train controller: rank 0's metrics of every report, plus the checkpoint's path as Ray's
    TuneReportCallback adds it, go to `<channel>/<n>` (n = 1, 2, ...)."""

    def __init__(self, channel: str) -> None:
        self.channel, self.sent = channel, 0

    def after_report(self, run_context, metrics: list, checkpoint) -> None:
        item = dict(metrics[0])
        if checkpoint:
            item["checkpoint_path"] = checkpoint.path
        self.sent += 1
        kv._internal_kv_put(f"{self.channel}/{self.sent}", pickle.dumps(item), namespace=NAMESPACE)


def new_channel(trial_id: str) -> str:
    """One per fit() call: a restored trial's new run never reads its previous run's reports."""
    return f"report/{trial_id}/{uuid.uuid4().hex[:8]}"


def relay(fit, channel: str, report, *, poll_s: float = 0.05):
    """Runs fit() in a thread and hands each report that `KVReport` puts under `channel` to report(metrics), in
    order, from the calling thread (Tune's session wants its trial's thread). Returns fit()'s result, or raises
    what it raised, once every report is handed on: a report is in the store before its run can end."""
    outcome: dict = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = fit()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread below
            outcome["error"] = err
        finally:
            done.set()

    threading.Thread(target=target, name="visionsweep-fit", daemon=True).start()
    seen = 0
    try:
        while True:
            ended = done.is_set()  # before draining: whatever the run reported is in the store by now
            while (item := kv._internal_kv_get(key := f"{channel}/{seen + 1}", namespace=NAMESPACE)) is not None:
                kv._internal_kv_del(key, namespace=NAMESPACE)  # a trial Tune kills leaves at most its unread ones
                seen += 1
                report(pickle.loads(item))
            if ended:
                break
            done.wait(poll_s)
    finally:
        kv._internal_kv_del(f"{channel}/", del_by_prefix=True, namespace=NAMESPACE)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]

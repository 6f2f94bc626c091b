"""sweep.json, the record a sweep leaves in its folder: what was searched, how it is scored and how DATA was read.
Written once by `sweep`; read by predict, report and the leaderboard through read_sweep_record (one parser)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from visionsweep.datasets import DataError
from visionsweep.search import storage as st

SWEEP_MARKER = "sweep.json"


@dataclass(frozen=True)
class SweepRecord:
    search: dict                                  # the SearchConfig as run (dataclasses.asdict)
    metric: str                                   # the metric trials are ranked by
    mode: str                                     # "max" | "min"
    spec: dict = field(default_factory=dict)      # DatasetSpec options (root excluded): predict reads DATA the same way
    data: dict = field(default_factory=dict)      # the loaded data's summary
    provenance: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.search["name"])

    @property
    def epochs(self) -> int:
        return int(self.search["epochs"])

    @property
    def top_k(self) -> int:
        """predict's default ensemble size (SearchConfig.top_k)."""
        return int(self.search.get("top_k", 1))

    def to_json(self) -> str:
        return json.dumps({"visionsweep_sweep": True, "search": self.search, "metric": self.metric, "mode": self.mode,
                           "spec": self.spec, "data": self.data, "provenance": self.provenance},
                          indent=1, default=str)


def is_sweep(path: str) -> bool:
    return st.exists(st.join(path, SWEEP_MARKER))


def read_sweep_record(path: str) -> SweepRecord:
    if not is_sweep(path):
        raise DataError(f"{path} is not a visionsweep sweep (no {SWEEP_MARKER})")
    raw = json.loads(st.read_text(st.join(path, SWEEP_MARKER)))
    missing = [key for key in ("search", "metric", "mode") if key not in raw]
    if missing:
        raise DataError(f"{SWEEP_MARKER} in {path} has no {missing[0]!r}: it was not written by `visionsweep sweep`, "
                        f"or was edited; restore it or run the sweep again")
    return SweepRecord(search=raw["search"], metric=raw["metric"], mode=raw["mode"], spec=raw.get("spec", {}),
                       data=raw.get("data", {}), provenance=raw.get("provenance", {}))


def write_sweep_record(path: str, record: SweepRecord) -> None:
    st.write_text(st.join(path, SWEEP_MARKER), record.to_json())

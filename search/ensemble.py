"""Which trials predict averages: forward selection on the validation predictions (Caruana et al. 2004's ensemble
selection, as AutoGluon builds its weighted ensembles), over the candidates of the ensemble rule (ensemble_rows).

A trial joins when adding it does not make the ensemble's validation metric worse. A far weaker member drags an
average down (textures, budget sweep: a done from-scratch resnet18 at valid 0.52 beside a pretrained model at 1.00
took held-out accuracy from 0.983 to 0.946), while a weaker but different one can still help (digits, random
search: a lite0 at 0.79 beside two resnet18s at 0.93-0.94 raised held-out accuracy from 0.947 to 0.958), which a
fixed score threshold cannot tell apart. Candidates are taken in rank order, each at most once (no weights): with a
validation set of a few dozen to a few hundred images, fewer decisions overfit it less."""

from __future__ import annotations

import json

import numpy as np

from visionsweep.search import storage as st

ENSEMBLE_RECORD = "ensemble.json"  # {metric, mode, valid_n, candidates, members, left_out, values}; read with
                                   # search.refit.read_record, as the sweep's other records


def select(candidates: list[str], probs: dict[str, np.ndarray], score, mode: str = "max"
           ) -> tuple[list[str], dict[str, float]]:
    """(members, the metric after each candidate was tried): candidates in rank order, the first always in; `score`
    maps (N, C) probabilities to the metric (`mode` max: higher is better, min: lower); a candidate joins when the
    mean of the members' and its probabilities scores at least as well as the members' alone. Candidates without
    probabilities are left out (they cannot be judged)."""
    judged = [c for c in candidates if c in probs]
    if not judged:
        return [], {}
    members = [judged[0]]
    current = score(probs[judged[0]])
    values = {judged[0]: current}
    for trial in judged[1:]:
        value = score(np.mean([probs[m] for m in [*members, trial]], axis=0))
        values[trial] = value
        if (value >= current) if mode == "max" else (value <= current):
            members.append(trial)
            current = value
    return members, values


def write_record(sweep: str, *, metric: str, mode: str, valid_n: int, candidates: list[str], members: list[str],
                 values: dict[str, float]) -> dict:
    record = {"metric": metric, "mode": mode, "valid_n": int(valid_n), "candidates": candidates, "members": members,
              "left_out": [t for t in candidates if t in values and t not in members], "values": values,
              "method": "forward selection in rank order on the validation predictions of each candidate's best "
                        "checkpoint (no TTA): a candidate joins when the ensemble's validation metric does not get "
                        "worse; 'values' is that metric after each candidate was tried"}
    st.write_text(st.join(sweep, ENSEMBLE_RECORD), json.dumps(record, indent=1))
    return record


def summary(record: dict) -> str:
    """One line for the sweep's output."""
    if not record or not record.get("members"):
        return ""
    metric, values, members = record["metric"], record["values"], record["members"]
    dropped = record.get("left_out", [])
    text = (f"ensemble for predict: {len(members)} of {len(record['candidates'])} candidate trial(s), "
            f"{', '.join(members)} (validation {metric} {values[members[-1]]:.4f} together, "
            f"{values[members[0]]:.4f} for the best alone)")
    if dropped:
        text += "; left out " + ", ".join(f"{t} (it made it {values[t]:.4f})" for t in dropped)
    return text

"""Experiment trackers users already run, through Ray Tune's own logger callbacks (optional extras):
MLflow (`--mlflow URI`, `pip install 'visionsweep[mlflow]'`) and Weights & Biases (`--wandb PROJECT`,
`pip install 'visionsweep[wandb]'`). One tracker run per trial, with its sampled configuration and every epoch's
metrics; the trials of a sweep share an MLflow experiment / a W&B group named after the sweep."""

from __future__ import annotations

import importlib.util
import os

from visionsweep.datasets import DataError
from visionsweep.search import storage as st
from visionsweep.search.config import SearchConfig


def check_tracking(sc: SearchConfig) -> None:
    """Before Ray starts: the tracker's package is installed, and W&B has a key or runs offline."""
    for flag, value, package, extra in (("--mlflow", sc.mlflow, "mlflow", "mlflow"),
                                        ("--wandb", sc.wandb, "wandb", "wandb")):
        if value is not None and importlib.util.find_spec(package) is None:
            raise DataError(f"{flag} {value} needs the {package} package: pip install 'visionsweep[{extra}]' "
                            f"(nothing was run)")
    if sc.wandb is not None and os.environ.get("WANDB_MODE") not in ("offline", "disabled") \
            and not os.environ.get("WANDB_API_KEY") and not _wandb_logged_in():
        raise DataError(f"--wandb {sc.wandb}: no W&B API key; run `wandb login`, set WANDB_API_KEY, or set "
                        f"WANDB_MODE=offline to write the runs into the sweep folder (`wandb sync` them later)")


def _wandb_logged_in() -> bool:
    import wandb

    try:
        return bool(wandb.Api().api_key)
    except Exception:
        return False


def tracking_callbacks(sc: SearchConfig, sweep_path: str) -> list:
    """Ray Tune's MLflow / W&B logger callbacks for the sweep's flags (none without them)."""
    callbacks = []
    if sc.mlflow is not None:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(tracking_uri=sc.mlflow, experiment_name=sc.name,
                                              tags={"visionsweep_sweep": sweep_path}, save_artifact=False))
    if sc.wandb is not None:
        from visionsweep.search.wandb_callback import QuietWandbLoggerCallback

        extra = {}
        if os.environ.get("WANDB_MODE"):  # the logging actors do not inherit the driver's environment
            extra["mode"] = os.environ["WANDB_MODE"]
        if not st.is_remote(sweep_path):
            extra["dir"] = sweep_path  # offline runs land in <sweep>/wandb/
        callbacks.append(QuietWandbLoggerCallback(project=sc.wandb, group=sc.name, **extra))
    return callbacks

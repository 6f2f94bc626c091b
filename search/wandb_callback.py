"""Ray Tune's W&B logger callback, minus its noise at interpreter exit. Imported only for `--wandb` (it imports Ray).

Ray's `WandbLoggerCallback.__del__` calls `ray.is_initialized()`; when the callback outlives the sweep (Tune keeps
it with the experiment) it runs at interpreter shutdown, after Ray's module globals are gone, and prints
"Exception ignored in ... 'NoneType' object has no attribute 'is_initialized'" as the command exits."""

from ray.air.integrations.wandb import WandbLoggerCallback


class QuietWandbLoggerCallback(WandbLoggerCallback):
    def __del__(self):
        try:
            super().__del__()
        except AttributeError:  # interpreter shutdown: the logging actors went with the cluster
            pass

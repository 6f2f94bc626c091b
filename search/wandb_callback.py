"""Ray Tune's W&B logger callback, minus what it leaves behind. Imported only for `--wandb` (it imports Ray).

- Noise at interpreter exit: Ray's `WandbLoggerCallback.__del__` calls `ray.is_initialized()`; when the callback
  outlives the sweep (Tune keeps it with the experiment) it runs at interpreter shutdown, after Ray's module globals
  are gone, and prints "Exception ignored in ... 'NoneType' object has no attribute 'is_initialized'" as the command
  exits.
- wandb's temp folders: `import wandb` makes two folders in the temp dir (`tmp*wandb-media`, `tmp*wandb-artifacts`)
  that only a normal exit removes. Ray starts one logging actor per trial and ends it with `ray.kill`, so each trial
  left both in /tmp (2 per trial: 16 after one run of the test suite). The logging actors here get a temp dir of
  their own (TMPDIR), one folder per sweep, removed when the sweep ends."""

import os
import shutil
import tempfile

import ray
from ray.air.integrations.wandb import WANDB_ENV_VAR, WandbLoggerCallback
from ray.air.util.node import _force_on_current_node


class QuietWandbLoggerCallback(WandbLoggerCallback):
    _temp_dir: str | None = None

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs):
        if not self._remote_logger_class:  # Ray's own actor options (ray.air.integrations.wandb), plus TMPDIR
            self._temp_dir = tempfile.mkdtemp(prefix="visionsweep-wandb-")  # the actors run on this node
            env = {"TMPDIR": self._temp_dir}
            if WANDB_ENV_VAR in os.environ:  # not set where the user authenticated with `wandb login`
                env[WANDB_ENV_VAR] = os.environ[WANDB_ENV_VAR]
            self._remote_logger_class = ray.remote(num_cpus=0, **_force_on_current_node(),
                                                   runtime_env={"env_vars": env}, max_restarts=-1,
                                                   max_task_retries=-1)(self._logger_actor_cls)
        super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)

    def on_experiment_end(self, trials, **info):
        super().on_experiment_end(trials, **info)  # waits for each actor's wandb.finish, then kills the actors
        self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __del__(self):
        try:
            super().__del__()
            self._remove_temp_dir()  # a sweep that ended without on_experiment_end
        except AttributeError:  # interpreter shutdown: the logging actors went with the cluster
            pass

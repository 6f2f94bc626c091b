"""The project's packages are the ones imported (Hugging Face's `datasets` shares the name)."""

from pathlib import Path

import visionsweep.datasets


def test_datasets_is_this_project():
    assert Path(visionsweep.datasets.__file__).parent.parent == Path(__file__).parent.parent
    assert hasattr(visionsweep.datasets, "DatasetSpec")


def test_importing_the_plots_leaves_a_notebooks_matplotlib_backend_alone(tmp_path):
    """A notebook's inline backend stays on after `import visionsweep` code that plots (plots use Figure objects)."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import visionsweep.search.report as r, visionsweep.trainables"
            ".plots as p; p.plot_lr_find({'lrs': [1e-5, 1e-3, 1e-1], 'losses': [1.0, 0.5, 2.0], 'suggestions': {}}, "
            f"{str(tmp_path / 'lr.png')!r}); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "svg" and (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"


def test_a_worker_that_builds_a_model_and_is_killed_leaves_nothing_in_the_temp_dir(tmp_path):
    """With wandb installed (the test extras have it), `import timm` imports it, and wandb makes two folders in the
    temp dir that only a normal exit removes: a Ray worker ended with its cluster left them behind, 96 per test-suite
    run. A process that builds a model through visionsweep imports no wandb, and W&B stays importable after it."""
    import os
    import subprocess
    import sys

    def leftovers(code: str) -> list[str]:
        temp = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        temp.mkdir()
        out = subprocess.run([sys.executable, "-c", code + "; import os; os._exit(0)"], capture_output=True,
                             text=True, timeout=300, env={**os.environ, "TMPDIR": str(temp)})
        assert out.returncode == 0, out.stderr[-2000:]
        return sorted(p.name for p in temp.iterdir() if "wandb" in p.name)  # (torch may add a compile cache)

    # What a killed worker left before: the premise of this test (if wandb stops doing it, this line says so).
    assert leftovers("import timm") != []
    # Nothing of wandb's in the temp dir once the model is built (wandb makes its folders as it imports), then
    # `import wandb` works as usual in the same process.
    built = ("import os, sys, tempfile; from visionsweep.trainables.model import check_image_size; "
             "check_image_size('test_resnet', 16, 2); assert 'wandb' not in sys.modules, 'wandb imported'; "
             "assert not [p for p in os.listdir(tempfile.gettempdir()) if 'wandb' in p], 'wandb folders'; "
             "import wandb.sdk")
    assert leftovers(built) != []  # from the late `import wandb`: W&B still works after a model was built

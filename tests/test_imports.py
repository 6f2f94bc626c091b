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

"""visionsweep installs as `visionsweep.*` and lives beside packages that own `datasets`, `search`, `trainables`."""

import os
import pickle
import subprocess
import sys

from conftest import build_wheel


def _foreign(site, name: str) -> None:
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(f"OWNER = 'foreign {name}'\ndef load_dataset(*a, **k):\n    return 'hf'\n")


def test_the_wheel_installs_beside_a_package_that_owns_datasets(tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    wheel = build_wheel(tmp_path)
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    for name in ("datasets", "search", "trainables"):
        _foreign(site, name)
    (work / "datasets" / "train").mkdir(parents=True)  # a user's data folder named datasets/ in the working dir
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import datasets, search, timm.data, visionsweep, visionsweep.datasets, visionsweep.search.cli, "
            "visionsweep.search.sweep\n"
            "assert datasets.load_dataset() == 'hf' and search.OWNER == 'foreign search', (datasets, search)\n"
            "assert hasattr(visionsweep.datasets, 'DatasetSpec')\n"
            "print(visionsweep.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=site, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().startswith(str(site / "visionsweep")), out.stdout  # the wheel, not the source tree
    for cmd in ([sys.executable, "-m", "visionsweep.search.cli", "--help"], [sys.executable, "-m", "visionsweep", "--help"]):
        out = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        assert out.returncode == 0 and "usage: visionsweep" in out.stdout, (cmd, out.stderr[-3000:])


def test_sweeps_saved_under_the_old_top_level_names_still_unpickle():
    from visionsweep.search.config import SearchConfig
    from visionsweep.search.sweep import _SpaceFn, pre_namespace_pickles

    blob = pickle.dumps(_SpaceFn(SearchConfig(name="old", trials=3)), protocol=0)
    old = blob.replace(b"visionsweep.search.", b"search.")  # what a sweep saved before the rename holds
    assert b"csearch.sweep\n_SpaceFn" in old or b"search.sweep" in old
    with pre_namespace_pickles():
        restored = pickle.loads(old)
    assert restored.sc.trials == 3 and type(restored) is _SpaceFn
    assert "search" not in sys.modules and "search.sweep" not in sys.modules  # aliases gone afterwards
    legacy = pre_namespace_pickles()  # run_sweep enters one instance twice on --resume (restore, then fit)
    for _ in range(2):
        with legacy:
            assert pickle.loads(old).sc.trials == 3
    assert "search" not in sys.modules

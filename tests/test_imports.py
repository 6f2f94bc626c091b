"""The project's packages are the ones imported (Hugging Face's `datasets` shares the name)."""

from pathlib import Path

import visionsweep.datasets


def test_datasets_is_this_project():
    assert Path(visionsweep.datasets.__file__).parent.parent == Path(__file__).parent.parent
    assert hasattr(visionsweep.datasets, "DatasetSpec")

"""The project's packages are the ones imported (Hugging Face's `datasets` shares the name)."""

from pathlib import Path

import datasets


def test_datasets_is_this_project():
    assert Path(datasets.__file__).parent.parent == Path(__file__).parent.parent
    assert hasattr(datasets, "DatasetSpec")

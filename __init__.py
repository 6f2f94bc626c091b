"""visionsweep: a Kaggle-style image folder -> the best fine-tuned timm CNN it can find -> submission.csv.

Sub-packages, imports pointing one way: `visionsweep.datasets` <- `visionsweep.trainables` <- `visionsweep.search`.
The API for notebooks and scripts (`visionsweep.search.api`): check, train, lr_find, sweep, predict, report.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("visionsweep")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_API = ("check", "train", "lr_find", "sweep", "predict", "report", "SweepResult", "search_config")
__all__ = ["__version__", "DataError", *_API]


def __getattr__(name: str):
    """The API imports torch and Ray only when first used: `import visionsweep` stays instant."""
    if name in _API:
        from visionsweep.search import api

        return getattr(api, name)
    if name == "DataError":
        from visionsweep.datasets import DataError

        return DataError
    raise AttributeError(f"module 'visionsweep' has no attribute {name!r}")

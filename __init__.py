"""visionsweep: a Kaggle-style image folder -> the best fine-tuned timm CNN it can find -> submission.csv.

Sub-packages, imports pointing one way: `visionsweep.datasets` <- `visionsweep.trainables` <- `visionsweep.search`.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("visionsweep")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

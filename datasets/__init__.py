"""visionsweep's data layer: a Kaggle-style image folder -> validated, cached uint8 arrays, splits,
device-side augmentation and submission files. Imports no other project package, no ray, no optuna."""

from visionsweep.datasets.errors import DataError
from visionsweep.datasets.spec import DatasetSpec, spec_from_dict

__all__ = ["DataError", "DatasetSpec", "spec_from_dict"]

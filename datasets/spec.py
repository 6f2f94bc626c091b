"""DatasetSpec: where a dataset's files are and how to read them, with every guess overridable."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from visionsweep.datasets.errors import DataError
from visionsweep.datasets.typed import coerce_fields

LAYOUTS = ("auto", "csv", "folders", "filenames")
RESIZE_METHODS = ("crop", "squish")


@dataclass(frozen=True)
class DatasetSpec:
    root: Path                           # the DATA folder
    layout: str = "auto"                 # auto | csv (train.csv + train/) | folders (train/<class>/) | filenames
    train_dir: str = "train"             # folder of training images, relative to root
    valid_dir: str = "valid"             # folders layout: a given valid/<class>/ wins over the random split
    test_dir: str = "test"               # folder of images to predict (optional)
    train_csv: str = "train.csv"         # csv layout: labels file
    sample_csv: str = "sample_submission.csv"  # optional; fixes the submission's ids, order and columns
    id_col: str | None = None            # csv layout: id column of train.csv (default: the first column)
    label_col: str | None = None         # csv layout: label column (default: the only other column)
    label_regex: str = r"^(?P<label>[^._\-\s]+)[._\-]"  # filenames layout: label from the file name
    positive_class: str | None = None    # binary tasks: the class whose probability is submitted
    vertical_flip: bool = False          # orientation-free data (aerial, microscopy): vertical flips and 90-degree turns are valid
    flip: bool = True                    # horizontal flips in augmentation and TTA (fastai's do_flip); False for images
                                         # with a handedness (digits, text, signs), whose mirror image is another thing
    cache_size: int | None = None        # cached image side in px; None = native size, capped at max_cache_size
    max_cache_size: int = 256            # cap on the cached side for large images, px
    resize_method: str = "crop"          # crop (shorter side to size, centre crop) | squish (both sides to size)
    cache_dir: Path | None = None        # decoded-array cache; default $VISIONSWEEP_CACHE or ~/.cache/visionsweep
    valid_pct: float = 0.2               # random stratified holdout fraction when no valid/ folder exists
    seed: int = 42                       # split seed

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "root", Path(self.root).expanduser().resolve())
        except (RuntimeError, OSError) as err:  # Python < 3.13 raises RuntimeError on a symlink loop
            raise DataError(f"DATA {self.root} cannot be resolved ({err}); a symlink loop? Pass the real "
                            f"folder") from None
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().resolve())
        if self.layout not in LAYOUTS:
            raise DataError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.resize_method not in RESIZE_METHODS:
            raise DataError(f"--resize-method must be one of {', '.join(RESIZE_METHODS)}, got {self.resize_method!r}")
        if self.vertical_flip and not self.flip:
            raise DataError("--vertical-flip (all 8 flips and turns of orientation-free images) and --no-flip (no "
                            "mirror images) contradict each other; give one of them")
        if not 0.0 < self.valid_pct < 1.0:
            raise DataError(f"--valid-pct must be between 0 and 1 (exclusive), got {self.valid_pct}")
        if self.cache_size is not None and not 8 <= self.cache_size <= 2048:
            raise DataError(f"--cache-size must be between 8 and 2048 px, got {self.cache_size}")
        if not 8 <= self.max_cache_size <= 2048:
            raise DataError(f"--max-cache-size must be between 8 and 2048 px, got {self.max_cache_size}")


def spec_from_dict(values: dict, source: str = "data options") -> DatasetSpec:
    """Build a DatasetSpec from a dict (CLI flags, YAML), rejecting unknown keys by name."""
    known = {f.name for f in dataclasses.fields(DatasetSpec)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DataError(f"unknown dataset option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "root" not in values:
        raise DataError("the DATA folder is required")
    return DatasetSpec(**coerce_fields(DatasetSpec, values, source))

"""A sweep's YAML is read into typed fields: YAML 1.1's string numbers become numbers; wrong types name the key."""

import pytest

from visionsweep.datasets import DataError
from visionsweep.search.config import load_yaml, search_config_from_dict


def _config(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: s\n" + text)
    return search_config_from_dict(load_yaml(path), source=f"--config {path}")


def test_exponents_without_a_dot_are_numbers(tmp_path):
    sc = _config(tmp_path, "weight_decay_range: [1e-4, 1e-1]\ntime_budget: 1e4\nlr_range: [1e-4, 3e-2]\n"
                           "lr_ranges: {resnet18: [1e-5, 1e-3]}\ntrain: {label_smoothing: 1e-1, max_failures: 1}\n"
                           "data: {valid_pct: 0.25}\n")
    assert sc.weight_decay_range == (1e-4, 0.1) and sc.time_budget == 10000.0 and sc.lr_range == (1e-4, 3e-2)
    assert sc.lr_ranges == {"resnet18": [1e-5, 1e-3]} and sc.train == {"label_smoothing": 0.1, "max_failures": 1}
    assert sc.data == {"valid_pct": 0.25}


@pytest.mark.parametrize("text, key", [
    ("epochs: 5.5\n", "epochs"),
    ("trials: many\n", "trials"),
    ("lr_range: [1e-4]\n", "lr_range"),
    ("aug_range: [0, high]\n", r"aug_range\[1\]"),
    ("train: {batch_size: 32.5}\n", "batch_size"),
    ("train: {pretrained: maybe}\n", "pretrained"),
    ("data: {valid_pct: lots}\n", "valid_pct"),
    ("lr_ranges: {resnet18: [1e-5, x]}\n", r"lr_ranges\[resnet18\]\[1\]"),
    ("restart_at_rungs: 3\n", "restart_at_rungs"),
])
def test_a_wrong_type_is_one_error_naming_the_key_and_the_file(tmp_path, text, key):
    with pytest.raises(DataError, match=rf"--config .*sweep.yaml.*{key} must be"):
        _config(tmp_path, text)

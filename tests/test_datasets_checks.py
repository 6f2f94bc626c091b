"""Checks that run before anything trains (issue 11): the cache size follows the typical image, and a class
with a single training image but a given valid/ folder is named in a warning."""



from digits import digits_csv_folder
from imagefolders import write_image
from visionsweep.datasets import spec_from_dict
from visionsweep.datasets.load import load_dataset


def test_one_huge_image_does_not_set_the_cache_size(tmp_path):
    data = digits_csv_folder(tmp_path / "data", n_test=4)
    write_image(data / "train" / "huge.png", size=(1200, 1000))
    (data / "train.csv").write_text((data / "train.csv").read_text() + "huge.png,1\n")
    loaded = load_dataset(spec_from_dict({"root": data}), log=lambda m: None)
    assert loaded.image_size == 16
    assert any("train/huge.png (1200x1000)" in w for w in loaded.summary["warnings"]), loaded.summary["warnings"]


def test_a_single_image_class_beside_a_valid_folder_is_named(tmp_path):
    root = tmp_path / "data"
    for split, n in (("train", 4), ("valid", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                write_image(root / split / c / f"{c}{i}.png", seed=i)
    write_image(root / "train" / "fox" / "fox0.png", seed=9)
    loaded = load_dataset(spec_from_dict({"root": root, "layout": "folders"}), log=lambda m: None)
    assert loaded.classes == ["cat", "dog", "fox"]
    assert any("single training image" in w and "'fox'" in w for w in loaded.summary["warnings"])

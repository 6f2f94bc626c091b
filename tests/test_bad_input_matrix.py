"""Every kind of bad input through the real command: exit 2, one message naming the file/row/flag and the
fix, and DATA plus an earlier sweep's folder byte-for-byte untouched."""

import shutil
from pathlib import Path

import pytest

from conftest import cli_in_process

from digits import digits_csv_folder
from imagefolders import snapshot

SWEEP = ["--name", "new", "--trials", "2", "--epochs", "1", "--backbones", "test_resnet", "--image-size", "16",
         "--no-pretrained", "--cpu"]


def _truncate(d):
    first = sorted((d / "train").iterdir())[0]
    from PIL import Image

    Image.open(first).convert("RGB").save(d / "train" / "t.jpg", "JPEG")
    raw = (d / "train" / "t.jpg").read_bytes()
    (d / "train" / "t.jpg").write_bytes(raw[: len(raw) // 2])
    (d / "train.csv").write_text((d / "train.csv").read_text() + "t.jpg,1\n")


def _append_row(d, row):
    (d / "train.csv").write_text((d / "train.csv").read_text() + row + "\n")


# (id, how to break DATA, extra flags, words the message must contain)
CASES = [
    ("truncated-jpeg", _truncate, [], ["train/t.jpg", "truncated"]),
    ("zero-byte", lambda d: (d / "train" / "00100.png").write_bytes(b""), [], ["train/00100.png", "empty"]),
    ("text-as-png", lambda d: (d / "train" / "00100.png").write_text("not an image"), [], ["00100.png", "not an image"]),
    ("id-without-file", lambda d: _append_row(d, "missing.png,1"), [], ["missing.png", "line", "no image"]),
    ("duplicate-id", lambda d: _append_row(d, (d / "train.csv").read_text().splitlines()[1]), [], ["duplicate", "line"]),
    ("missing-label-column", lambda d: (d / "train.csv").write_text(
        "\n".join(r.split(",")[0] for r in (d / "train.csv").read_text().splitlines()) + "\n"), [], ["label"]),
    ("single-class", lambda d: (d / "train.csv").write_text(
        "\n".join(r.rsplit(",", 1)[0] + ",1" if i else r for i, r in enumerate(
            (d / "train.csv").read_text().splitlines())) + "\n"), [], ["single class"]),
    ("test-ids-differ", lambda d: (d / "test" / "00000.png").rename(d / "test" / "extra.png"),
     [], ["sample_submission.csv", "00000.png", "extra.png"]),
    ("unknown-backbone", None, ["--backbones", "resnet-18"], ["--backbone 'resnet-18'", "resnet18"]),
    ("bad-lr-range", None, ["--config", "{cfg}"], ["lr_range"]),
    ("image-size-too-small", None, ["--backbones", "vit_tiny_patch16_224"], ["cannot take --image-size 16", "224"]),
    ("yaml-unknown-key", None, ["--config", "{cfg}"], ["unknown key", "learning_rate"]),
    ("storage-not-writable", None, ["--storage", "/proc/visionsweep-sweeps"], ["--storage", "not writable"]),
    ("fractional-gpus-with-ddp", None, ["--gpus-per-trial", "0.5", "--workers-per-trial", "2", "-cpu"],
     ["--workers-per-trial 1"]),
    ("cpu-and-gpus", None, ["--gpus-per-trial", "1"], ["--cpu and --gpus-per-trial 1 contradict"]),
    ("vertical-flip-and-no-flip", None, ["--vertical-flip", "--no-flip"], ["--vertical-flip", "--no-flip",
                                                                           "contradict"]),
    ("search-flip-and-no-flip", None, ["--search-flip", "--no-flip"], ["--search-flip", "--no-flip", "drop one"]),
    ("train-option-every-trial-rejects", None, ["--config", "{cfg}"], ["--batch-size must be >= 2", "test_resnet"]),
    ("train-key-the-sweep-owns", None, ["--config", "{cfg}"], ["workers is set by the sweep", "--workers-per-trial"]),
    ("wandb-without-a-key", None, ["--wandb", "proj"], ["--wandb proj", "wandb login", "WANDB_MODE=offline"]),
]
YAML = {"bad-lr-range": "lr_range: [0.1, 0.001]\n", "yaml-unknown-key": "learning_rate: 0.1\n",
        "train-option-every-trial-rejects": "train: {batch_size: 1}\n", "train-key-the-sweep-owns": "train: {workers: 2}\n"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return digits_csv_folder(tmp_path_factory.mktemp("pristine") / "data", n_test=10)


@pytest.mark.parametrize("case, breaks, flags, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_message_and_touches_nothing(pristine, tmp_path, monkeypatch, case, breaks, flags,
                                                                words):
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no `wandb login` of this machine's user
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    if breaks:
        breaks(data)
    storage = tmp_path / "sweeps"
    earlier = storage / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "sweep.json").write_text('{"visionsweep_sweep": true}')
    (earlier / "leaderboard.csv").write_text("rank,trial_id\n1,abc\n")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(YAML.get(case, ""))
    before_data, before_sweeps = snapshot(data), snapshot(storage)
    args = [a.replace("{cfg}", str(cfg)) for a in flags]
    if "--storage" not in args:
        args += ["--storage", str(storage)]
    sweep = [a for a in SWEEP if not ("-cpu" in args and a == "--cpu")]  # "-cpu": this case runs without --cpu
    res = cli_in_process("sweep", data, *sweep, *[a for a in args if a != "-cpu"])
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stderr.count("error:") == 1, res.stderr
    for word in words:
        assert word in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert snapshot(data) == before_data
    assert snapshot(storage) == before_sweeps
    assert not Path(storage / "new").exists()


def test_a_foreign_folder_with_the_sweep_name_is_never_touched(pristine, tmp_path):
    storage = tmp_path / "sweeps"
    (storage / "new").mkdir(parents=True)
    (storage / "new" / "thesis.tex").write_text("precious")
    res = cli_in_process("sweep", pristine, *SWEEP, "--storage", storage)
    assert res.returncode == 2 and "is not a visionsweep sweep" in res.stderr
    assert (storage / "new" / "thesis.tex").read_text() == "precious"
    res = cli_in_process("sweep", pristine, *SWEEP, "--storage", storage, "--resume")
    assert res.returncode == 2 and "no visionsweep sweep to resume" in res.stderr


# ---------------------------------------------------------------- found by `check`, before Ray starts (issue 11)

def _set_label(d, line, value):
    """Line numbers as in the file (the header is line 1)."""
    lines = (d / "train.csv").read_text().splitlines()
    lines[line - 1] = lines[line - 1].rsplit(",", 1)[0] + "," + value
    (d / "train.csv").write_text("\n".join(lines) + "\n")


def _one_image_class(d):
    shutil.copy(d / "train" / "00100.png", d / "train" / "lonely.png")
    _append_row(d, "lonely.png,2")


def _continuous(d):
    lines = (d / "train.csv").read_text().splitlines()
    (d / "train.csv").write_text("\n".join([lines[0]] + [f"{r.split(',')[0]},{0.37 + i * 0.0131:.4f}"
                                                         for i, r in enumerate(lines[1:])]) + "\n")


def _to_filenames(d, stray=True):
    """Labels in file names (zero.N.png / one.N.png), plus one stray IMG_0001.png."""
    lines = (d / "train.csv").read_text().splitlines()[1:]
    for row in lines:
        name, lab = row.split(",")
        (d / "train" / name).rename(d / "train" / f"{['zero', 'one'][int(lab)]}.{name}")
    (d / "train.csv").unlink()
    if stray:
        shutil.copy(d / "test" / "00000.png", d / "train" / "IMG_0001.png")


def _to_folders_with_nested(d):
    for row in (d / "train.csv").read_text().splitlines()[1:]:
        name, lab = row.split(",")
        (d / "train" / lab).mkdir(exist_ok=True)
        (d / "train" / name).rename(d / "train" / lab / name)
    (d / "train.csv").unlink()
    (d / "train" / "1" / "extra").mkdir()
    for p in sorted((d / "train" / "1").glob("*.png"))[:5]:
        p.rename(d / "train" / "1" / "extra" / p.name)


def _test_subfolder(d):
    (d / "sample_submission.csv").unlink()
    (d / "test" / "batch2").mkdir()
    for p in sorted((d / "test").glob("*.png"))[:3]:
        p.rename(d / "test" / "batch2" / p.name)


def _blank_lines_then_missing(d):
    lines = (d / "train.csv").read_text().splitlines()
    (d / "train.csv").write_text("\n".join(lines[:1] + ["", "", ""] + lines[1:] + ["missing.png,1"]) + "\n")


def _upper_ext(d):
    (d / "train" / "00100.png").rename(d / "train" / "00100.PNG")


def _nfd_name(d):
    import unicodedata

    shutil.copy(d / "train" / "00100.png", d / "train" / unicodedata.normalize("NFD", "café.png"))
    _append_row(d, unicodedata.normalize("NFC", "café.png") + ",1")


def _stem_two_files(d):
    text = (d / "train.csv").read_text().replace("00100.png,", "00100,")
    (d / "train.csv").write_text(text)
    shutil.copy(d / "train" / "00100.png", d / "train" / "00100.jpg")


# (id, how to break DATA, extra flags, words the message must contain); run through `check` (no Ray)
CHECK_CASES = [
    ("class-with-one-image", _one_image_class, [], ["class(es)", "'2'", "lonely.png", "single image"]),
    ("nan-label", lambda d: _set_label(d, 2, "NaN"), [], ["line 2", "missing-value"]),
    ("null-label", lambda d: _set_label(d, 3, "null"), [], ["line 3", "missing-value"]),
    ("one-and-one-point-zero", lambda d: _set_label(d, [i for i, r in enumerate(
        (d / "train.csv").read_text().splitlines(), 1) if r.endswith(",1")][0], "1.0"), [], ["'1.0'", "same number"]),
    ("three-and-oh-three", lambda d: _set_label(d, [i for i, r in enumerate(
        (d / "train.csv").read_text().splitlines(), 1) if r.endswith(",1")][0], "01"), [], ["'01'", "same number"]),
    ("continuous-labels", _continuous, [], ["continuous", "--label-col"]),
    ("label-col-is-the-id", None, ["--label-col", "id"], ["--label-col", "single image"]),
    ("renamed-train-csv", lambda d: (d / "train.csv").rename(d / "train_labels.csv"), [],
     ["file names", "--train-csv train_labels.csv"]),
    ("stray-file-name", _to_filenames, [], ["'IMG'", "IMG_0001.png", "--label-regex"]),
    ("images-in-class-subfolder", _to_folders_with_nested, [], ["train/1/extra/", "sub-folders"]),
    ("test-images-in-subfolder", _test_subfolder, [], ["test/batch2/", "sub-folders"]),
    ("same-image-by-name-and-stem", lambda d: _append_row(d, "00100,0"), [], ["twice", "00100"]),
    ("symlink-loop", lambda d: (d / "train" / "loop").symlink_to("loop"), [], ["train/loop", "symlink loop"]),
    ("line-numbers-after-blank-lines", _blank_lines_then_missing, [], ["line 352: missing.png"]),
    ("upper-case-extension", _upper_ext, [], ["00100.png", "found '00100.PNG'", "upper/lower case"]),
    ("nfd-file-name", _nfd_name, [], ["café.png", "Unicode"]),
    ("stem-matches-two-files", _stem_two_files, [], ["00100", "matches 2 files"]),
]


@pytest.mark.parametrize("case, breaks, flags, words", CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_check_finds_it_before_ray_starts(pristine, tmp_path, case, breaks, flags, words):
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    if breaks:
        breaks(data)
    before = snapshot(data)
    res = cli_in_process("check", data, *flags)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stderr.count("error:") == 1, res.stderr
    for word in words:
        assert word in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert snapshot(data) == before


def test_data_that_is_a_symlink_loop_is_one_message(tmp_path):
    (tmp_path / "data").symlink_to("data")
    res = cli_in_process("check", tmp_path / "data")
    assert res.returncode == 2 and "symlink loop" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_trailing_commas_in_every_row_are_read(pristine, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    for name in ("train.csv", "sample_submission.csv"):
        lines = (data / name).read_text().splitlines()
        (data / name).write_text("\n".join(lines[:1] + [r + "," for r in lines[1:]]) + "\n")
    res = cli_in_process("check", data)
    assert res.returncode == 0, res.stderr
    assert "classes:     2" in res.stdout


@pytest.mark.parametrize("flags, words", [
    (["--max-lr", "inf"], ["--max-lr must be a finite number"]),
    (["--weight-decay", "inf"], ["--weight-decay must be a finite number"]),
], ids=["max-lr-inf", "weight-decay-inf"])
def test_train_flags_that_would_go_nan_are_refused(pristine, tmp_path, flags, words):
    out = tmp_path / "run"
    res = cli_in_process("train", pristine, "--backbone", "test_resnet", "--cpu", "--out", out, *flags)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    for word in words:
        assert word in res.stderr, res.stderr
    assert not out.exists()

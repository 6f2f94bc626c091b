"""Every kind of bad input through the real command: exit 2, one message naming the file/row/flag and the
fix, and DATA plus an earlier sweep's folder byte-for-byte untouched."""

import shutil
from pathlib import Path

import pytest

from conftest import run_cli

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
]
YAML = {"bad-lr-range": "lr_range: [0.1, 0.001]\n", "yaml-unknown-key": "learning_rate: 0.1\n"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return digits_csv_folder(tmp_path_factory.mktemp("pristine") / "data", n_test=10)


@pytest.mark.parametrize("case, breaks, flags, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_message_and_touches_nothing(pristine, tmp_path, case, breaks, flags, words):
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
    res = run_cli("sweep", data, *sweep, *[a for a in args if a != "-cpu"])
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
    res = run_cli("sweep", pristine, *SWEEP, "--storage", storage)
    assert res.returncode == 2 and "is not a visionsweep sweep" in res.stderr
    assert (storage / "new" / "thesis.tex").read_text() == "precious"
    res = run_cli("sweep", pristine, *SWEEP, "--storage", storage, "--resume")
    assert res.returncode == 2 and "no visionsweep sweep to resume" in res.stderr

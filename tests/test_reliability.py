"""Faults and doors: a killed checkpoint writer leaves no half file, the Ray token file is private, no secrets."""

import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from conftest import ROOT
from visionsweep.trainables.checkpoint import read_meta, read_train_state
from visionsweep.trainables.ray_session import tighten_token_file

WRITER = """
import sys, timm, torch
from visionsweep.trainables.checkpoint import CheckpointMeta, write_checkpoint
model = timm.create_model("resnet50", pretrained=False)   # ~100 MB of weights: each write takes a while
opt = torch.optim.AdamW(model.parameters())
print("ready", flush=True)
i = 0
while True:
    i += 1
    meta = CheckpointMeta(backbone="resnet50", classes=["a", "b"], positive_class="b", vertical_flip=False,
                          image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, metric="auc", mode="max", epoch=i,
                          history=[{"epoch": i}], step_losses=[], config={}, weights_source="random", provenance={})
    write_checkpoint(sys.argv[1], model=model, optimizer=opt, meta=meta)
"""


@pytest.mark.parametrize("delay", [0.3, 1.1, 2.3])
def test_a_killed_checkpoint_writer_never_leaves_a_half_written_checkpoint(tmp_path, delay):
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ckpt)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = {p.name for p in ckpt.iterdir()} if ckpt.exists() else set()
    # Whatever exists under its final name is whole; leftovers are hidden temporaries only.
    assert all(n in {"model.safetensors", "train_state.pt", "meta.json", "config.json"} or n.startswith(".") for n in names), names
    if "model.safetensors" in names:
        assert len(load_file(str(ckpt / "model.safetensors"))) > 100
    if "train_state.pt" in names:
        assert "optimizer" in read_train_state(ckpt)
    if "meta.json" in names:
        assert read_meta(ckpt).epoch >= 1


def test_the_ray_token_file_is_made_private(tmp_path, monkeypatch):
    token = tmp_path / "auth_token"
    token.write_text("secret")
    token.chmod(0o644)  # as Ray 2.60 writes it
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    tighten_token_file()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


@pytest.mark.slow
def test_the_session_cluster_dashboard_listens_on_loopback_only(ray_cluster):
    port = os.environ["VISIONSWEEP_TEST_DASHBOARD"].rsplit(":", 1)[1]
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    binds = [line.split()[3] for line in listening.splitlines() if line.split()[3].endswith(f":{port}")]
    assert binds and all(b.startswith("127.0.0.1:") for b in binds), binds


# Real-looking keys only: AWS's documented placeholder (AKIA...EXAMPLE), which the cluster-config test plants
# in memory to prove its own scan works, and short dummy values are not credentials.
SECRET = re.compile(r"AKIA[0-9A-Z]{16}|aws_secret_access_key\s*[=:]\s*[A-Za-z0-9/+]{30,}|"
                    r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def test_no_credentials_in_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".lock"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{name}: {m.group(0)[:12]}..." for m in SECRET.finditer(text) if not m.group(0).endswith("EXAMPLE")]
    assert not hits, hits

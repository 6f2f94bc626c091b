"""`import visionsweep` in a notebook: the same names as the flags, typed results."""

import subprocess
import sys

import pytest

import visionsweep as vs
from digits import digits_csv_folder


def test_import_is_light_and_the_api_is_there():
    code = "import sys, visionsweep as vs; assert callable(vs.sweep); print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr  # torch / Ray load on first use only
    assert vs.__version__ and set(vs.__all__) >= {"check", "train", "lr_find", "sweep", "predict", "report"}


def test_check_returns_the_summary_and_rejects_unknown_options(tmp_path):
    data = digits_csv_folder(tmp_path / "data")
    summary = vs.check(data, log=lambda m: None)
    assert summary["layout"] == "csv" and set(summary["classes"]) == {"0", "1"}
    with pytest.raises(vs.DataError, match="unknown option.*bogus"):
        vs.check(data, bogus=1)


def test_messages_go_through_the_visionsweep_logger_an_api_user_can_route(tmp_path, capsys):
    import logging

    data = digits_csv_folder(tmp_path / "data")
    vs.check(data)  # by default: standard output, as the command prints
    assert "layout" in capsys.readouterr().out
    logger, routed = logging.getLogger("visionsweep"), []
    handler = logging.Handler()
    handler.emit = lambda record: routed.append(record.getMessage())
    saved = logger.handlers[:]
    logger.handlers = [handler]
    try:
        vs.check(data)
    finally:
        logger.handlers = saved
    assert any("layout" in line for line in routed) and capsys.readouterr().out == ""


def test_sweep_options_split_into_search_training_and_data_options(tmp_path):
    yaml = tmp_path / "s.yaml"
    yaml.write_text("name: a\ntrials: 3\ntrain: {batch_size: 16}\ndata: {label_col: is_eight}\n")
    sc, data_options = vs.search_config(config=yaml, trials=5, image_size=32, valid_pct=0.3, cpu=True)
    assert (sc.name, sc.trials, sc.gpus_per_trial) == ("a", 5, 0)          # keyword arguments win over the YAML
    assert sc.train == {"batch_size": 16, "image_size": 32}                  # fixed TrainConfig fields
    assert data_options == {"label_col": "is_eight", "valid_pct": 0.3}       # DatasetSpec fields
    with pytest.raises(vs.DataError, match="unknown option"):
        vs.search_config(name="a", tirals=3)

# A notebook's sweep, predict and report end to end: test_search_refit.py.

"""A sweep submitted as a Ray job through the Jobs API of a `ray start --head` cluster, as on a real cluster."""

import os
import sys
import time
import zipfile

import pandas as pd
import pytest
import requests

from conftest import ROOT, build_wheel

from digits import digits_csv_folder

pytestmark = pytest.mark.slow


def test_the_dashboard_refuses_requests_without_the_token(ray_cluster):
    url = os.environ["VISIONSWEEP_TEST_DASHBOARD"] + "/api/jobs/"
    assert requests.get(url, timeout=10).status_code in (401, 403)


def test_sweep_as_a_ray_job_succeeds_and_leaves_results_in_storage(ray_cluster, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    data = digits_csv_folder(tmp_path / "c" / "data")
    storage = tmp_path / "sweeps"
    # As the README ships the current code to a cluster: the package folder of its wheel in the job's py_modules.
    # (A .whl in py_modules is pip-installed *with its dependencies* into the job's folder: torch and Ray again,
    # ahead of the cluster's own on PYTHONPATH, and 100 s of installing here.)
    ship = tmp_path / "ship"
    zipfile.ZipFile(build_wheel(tmp_path)).extractall(ship)
    client = JobSubmissionClient(os.environ["VISIONSWEEP_TEST_DASHBOARD"])  # adds the token (RAY_AUTH_MODE=token)
    entrypoint = (f"{sys.executable} -c 'import visionsweep, torch; print(\"visionsweep from\", visionsweep.__file__); "
                  f"print(\"torch from\", torch.__file__)' && "
                  f"{sys.executable} -m visionsweep sweep {data} --name job1 --storage {storage} --trials 1 "
                  f"--epochs 1 --backbones test_resnet --image-size 16 --batch-size 32 --no-pretrained --cpu --refit 0")  # refit: test_search_refit
    for attempt in range(30):  # the head's job agent may still be starting: "No available agent ... try again"
        try:
            job = client.submit_job(entrypoint=entrypoint, runtime_env={"py_modules": [str(ship / "visionsweep")]})
            break
        except RuntimeError as err:
            if "try again" not in str(err) or attempt == 29:
                raise
            time.sleep(2)
    deadline = time.monotonic() + 600
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, client.get_job_logs(job)[-3000:]
        time.sleep(2)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    assert "leaderboard (auc" in logs
    shipped = next(line for line in logs.splitlines() if line.startswith("visionsweep from"))
    assert "runtime_resources" in shipped and str(ROOT) not in shipped, shipped  # the job ran the shipped code
    torch_from = next(line for line in logs.splitlines() if line.startswith("torch from"))
    assert "runtime_resources" not in torch_from, torch_from  # ... with the cluster's own dependencies
    board = pd.read_csv(storage / "job1" / "leaderboard.csv")
    assert len(board) == 1 and board["best_auc"].notna().all()

"""A real MLflow tracking server (the team setting): training logs through its REST API, and its UI answers."""

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pytest
from conftest import answers, wait_until

from integration._helpers import EXPERIMENT, RECIPE, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root",
        (root / "artifacts").as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if not wait_until(lambda: answers(url + "/health"), 90, alive=lambda: proc.poll() is None):
        proc.kill()
        proc.wait()
    if proc.poll() is not None:
        pytest.fail("mlflow server did not start:\n" + (root / "server.log").read_text()[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_training_logs_to_a_tracking_server(server, har_small, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    m = run(har_small, tmp_path, experiment=EXPERIMENT)
    client = mlflow.MlflowClient(server)
    r = client.get_run(m["mlflow_run_id"])
    assert r.info.status == "FINISHED" and r.data.tags["variant"] == "uniform"
    assert len(client.get_metric_history(r.info.run_id, "train_loss")) == RECIPE["epochs"]
    assert {"model.pt", "metrics.json"} <= {a.path for a in client.list_artifacts(r.info.run_id)}
    html = urllib.request.urlopen(server + "/", timeout=10).read().decode()
    assert "<html" in html.lower()  # the UI a user opens

"""Fixtures of the integration tier: a small stratified subset of the real UCI HAR data, and MLflow's tracking
URI following each test's $MLFLOW_TRACKING_URI."""

import pytest


@pytest.fixture(autouse=True)
def _mlflow_uri_per_test(monkeypatch):
    """Lightning's MLFlowLogger pins MLflow's process-wide tracking URI (mlflow.set_tracking_uri), which then wins
    over $MLFLOW_TRACKING_URI: unpin it around each test, so that a test's store is the one its environment names.
    (monkeypatch is set up first, so it restores the environment after this teardown.)"""
    import mlflow

    mlflow.set_tracking_uri(None)
    yield
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def har_small(tmp_path_factory, data_dir):
    """The real HAR data prepared with 600 / 200 / 300 train / val / test windows (har.npz, har.json)."""
    from nvmxbar import data

    out = tmp_path_factory.mktemp("har")
    src = data.find_source("har", data_dir, download=False)
    data.prepare("har", src, out / "har.npz", out / "har.json", seed=0, limit={"train": 600, "val": 200, "test": 300})
    return out

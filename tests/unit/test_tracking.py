"""The tracking seam (nvmxbar.tracking) on a real sqlite MLflow store, and per-job logging (nvmxbar.logs)."""

import logging

import mlflow
import pytest

from nvmxbar import logs, tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.default_uri(tmp_path))
    mlflow.set_tracking_uri(tracking.default_uri(tmp_path))  # MLflow caches the URI per process
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_experiments_are_model_training_experiments(store):
    ids = tracking.ensure_experiments({"har": "nvx-har"}, store)
    exp = mlflow.MlflowClient().get_experiment(ids["har"])
    assert exp.name == "nvx-har" and exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.tags["dataset"] == "har"
    assert tracking.ensure_experiments({"har": "nvx-har"}, store) == ids  # idempotent


def test_stage_run_finishes_nests_and_records(store):
    with tracking.stage_run("nvx-har", run_name="parent", tags={"rule": "train"}, params={"a": {"b": 1}}) as parent:
        parent.log_metric("acc", 0.5)
    with tracking.stage_run("nvx-har", run_name="child", tags={"rule": "map"}, parent=parent.id) as child:
        child.log_metrics({"x": 1.0, "y": 2.0})
    p, c = tracking.run_of(parent.id), tracking.run_of(child.id)
    assert p["status"] == "FINISHED" and p["params"] == {"a.b": "1"} and p["metrics"]["acc"] == 0.5
    assert c["status"] == "FINISHED" and c["tags"]["mlflow.parentRunId"] == parent.id
    assert c["metrics"] == {"x": 1.0, "y": 2.0}


def test_stage_run_is_failed_when_the_stage_raises(store):
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.stage_run("nvx-har", run_name="bad") as run:
            raise RuntimeError("boom")
    assert tracking.run_of(run.id)["status"] == "FAILED"


def test_stage_run_resumes_the_same_run(store):
    with tracking.stage_run("nvx-har", run_name="first") as run:
        pass
    with tracking.stage_run("nvx-har", run_name="ignored", resume=run.id) as again:
        again.log_metric("epoch", 3)
    r = tracking.run_of(run.id)
    assert again.id == run.id and r["tags"]["resumed"] == "true" and r["metrics"]["epoch"] == 3
    assert len(mlflow.search_runs(experiment_names=["nvx-har"], output_format="list")) == 1


def test_the_seeds_of_one_model_share_one_group_run_even_when_jobs_race(store):
    """Parallel trainings of one model (its seeds) find or create the same parent run; other settings, another."""
    from concurrent.futures import ThreadPoolExecutor

    tracking.ensure_experiments({"har": "nvx-har"}, store)

    def group(key):
        return tracking.group_run("nvx-har", key=key, run_name="har/uniform/b2", tags={"rule": "group"}, lock_dir=store)

    with ThreadPoolExecutor(4) as pool:  # flock excludes per open file, so threads race like processes
        ids = list(pool.map(group, ["k1"] * 6))
    assert len(set(ids)) == 1 and group("k1") == ids[0]
    assert group("k2") != ids[0]
    runs = mlflow.search_runs(experiment_names=["nvx-har"], output_format="list")
    assert sorted(r.data.tags["group_key"] for r in runs) == ["k1", "k2"]
    assert all(r.info.status == "FINISHED" for r in runs)  # a container, never left RUNNING
    assert tracking.group_run(None, key="k1", run_name="x", tags={}, lock_dir=store) is None  # tracking off


def test_no_experiment_means_a_run_that_records_nothing(store):
    with tracking.stage_run(None, run_name="off") as run:
        run.log_metric("acc", 1.0)
        run.log_params({"a": 1})
    assert not run and run.id is None
    assert mlflow.MlflowClient().search_experiments(filter_string="name = 'nvx-har'") == []


def test_job_log_writes_one_file_per_job_and_restores_logging(tmp_path):
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    log = logging.getLogger("nvmxbar.test")
    with logs.job_log(tmp_path / "a.log"):
        log.info("epoch 1/2 done")
        logging.getLogger("lightning.pytorch").info("GPU available: False")  # a banner the job log leaves out
    with pytest.raises(ValueError), logs.job_log(tmp_path / "b.log"):
        raise ValueError("bad input named here")
    a, b = (tmp_path / "a.log").read_text(), (tmp_path / "b.log").read_text()
    assert "nvmxbar.test" in a and "epoch 1/2 done" in a and "GPU available" not in a
    assert "bad input named here" in b and "Traceback" in b and "epoch 1/2" not in b
    assert (list(root.handlers), root.level) == before


def test_importing_the_package_changes_no_global_state():
    """Nothing global changes on import: no logging handlers or levels, no warning filters, no plot backend. The
    libraries are imported first: their own import-time settings are theirs, not the package's."""
    import subprocess
    import sys

    code = (
        "import logging, warnings, matplotlib\n"
        "import torch, lightning, mlflow, optuna, pandas, seaborn, numpy, yaml, jsonschema, tqdm\n"
        "from lightning.pytorch.loggers import MLFlowLogger\n"
        "state = lambda: (list(logging.getLogger().handlers), logging.getLogger().level,\n"
        "    logging.getLogger('lightning.pytorch').level, list(warnings.filters), matplotlib.get_backend())\n"
        "s0 = state()\n"
        "import nvmxbar.stages.train, nvmxbar.stages.report, nvmxbar.stages.nas_unipolar_search\n"
        "import nvmxbar.stages.evaluate_noise, nvmxbar.stages.estimate_cost, nvmxbar.stages.map_crossbar\n"
        "assert state() == s0, (s0, state())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]

"""The tracking seam (nvmxbar.tracking) on a real sqlite MLflow store, and per-job logging (nvmxbar.logs)."""

import importlib.util
import logging
import shutil

import mlflow
import pytest
from conftest import REPO, make_synthetic_npz

from nvmxbar import files, logs, tracking


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """One empty sqlite store, its schema migrated once (seconds) for the whole session: each test copies it."""
    root = tmp_path_factory.mktemp("empty_store")
    mlflow.set_tracking_uri(tracking.default_uri(root))
    tracking.client()  # creates and migrates it
    mlflow.set_tracking_uri(None)
    return root / "mlflow.db"


@pytest.fixture
def store(tmp_path, monkeypatch, empty_store):
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.default_uri(tmp_path))
    mlflow.set_tracking_uri(tracking.default_uri(tmp_path))  # MLflow caches the URI per process
    yield tmp_path
    mlflow.set_tracking_uri(None)


def ui_urls():
    """tools/ui_urls.py (a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("ui_urls", REPO / "tools" / "ui_urls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_every_run_names_its_stage_as_its_source(store):
    """The runs table's Source column: ``rule <rule>`` (a JOB), from the run's rule tag or its name's first word; a
    resumed run keeps its own, and the group run of a model's seeds is made by rule train."""
    with tracking.stage_run("nvx-har", run_name="map_crossbar har/uniform/b2 seed 0", tags={"rule": "map"}) as a:
        pass
    with tracking.stage_run("nvx-har", run_name="prepare_data har") as b:
        pass
    with tracking.stage_run("nvx-har", run_name="other name", resume=a.id):
        pass
    group = tracking.group_run("nvx-har", key="k", run_name="har/uniform/b2", tags={"rule": "group"}, lock_dir=store)
    source = {r: tracking.run_of(r)["tags"] for r in (a.id, b.id, group)}
    assert {r: t["mlflow.source.name"] for r, t in source.items()} == {
        a.id: "rule map",
        b.id: "rule prepare_data",
        group: "rule train",
    }
    assert {t["mlflow.source.type"] for t in source.values()} == {"JOB"}


def test_a_training_run_lists_its_data_splits_as_dataset_inputs(store, tmp_path):
    """The runs table's Dataset column: one input per split, named <dataset>-<split>, the npz's sha256 as digest
    (MLflow's 36 characters), the npz as source, its context; logging them again adds none."""
    npz = make_synthetic_npz(tmp_path / "har.npz")
    sha = files.sha256_file(npz)
    rows = {"train": 96, "val": 48, "test": 48}
    with tracking.stage_run("nvx-har", run_name="train har/uniform/b2 seed 0", tags={"rule": "train"}) as run:
        run.log_splits(npz, "har", sha, rows, "train")
        run.log_splits(npz, "har", sha, rows, "train")
    with tracking.stage_run("nvx-har", run_name="train har/float seed 1") as both:
        both.log_splits(npz, "har", sha, rows, "train+val")
    tracking.Run(None).log_splits(npz, "har", sha, rows, "train")  # tracking off: nothing, no error

    def inputs(run_id):
        got = mlflow.MlflowClient().get_run(run_id).inputs.dataset_inputs
        return {i.dataset.name: (i.dataset, {t.key: t.value for t in i.tags}) for i in got}

    got = inputs(run.id)
    assert sorted(got) == ["har-test", "har-train", "har-val"]
    assert {n: tags["mlflow.data.context"] for n, (_, tags) in got.items()} == {
        "har-train": "training",
        "har-val": "validation",
        "har-test": "testing",
    }
    ds = got["har-train"][0]
    assert ds.digest == sha[:36] and len(sha) == 64 and str(npz.resolve()) in ds.source
    assert '"num_rows": 96' in ds.profile
    assert inputs(both.id)["har-val"][1]["mlflow.data.context"] == "training"  # fit on train+val


def test_ui_urls_prints_one_runs_table_address_per_experiment(store):
    """``make ui``'s list: each experiment's runs table (#/experiments/<id>/runs), read from the store; MLflow's
    empty Default experiment left out; a store that does not exist is named, and not created."""
    ids = tracking.ensure_experiments({"har": "nvx-har", "cifar10": "nvx-cifar10"}, store)
    tool = ui_urls()
    lines = tool.lines(tracking.default_uri(store), "http://127.0.0.1:5055/")
    assert lines == [
        f"nvx-cifar10  http://127.0.0.1:5055/#/experiments/{ids['cifar10']}/runs",
        f"nvx-har  http://127.0.0.1:5055/#/experiments/{ids['har']}/runs",
    ]
    missing = store / "none" / "mlflow.db"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        tool.lines(f"sqlite:///{missing}", "http://127.0.0.1:5055")
    assert not missing.parent.exists()


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

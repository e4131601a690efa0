"""Search workers on several machines sharing one Optuna study in PostgreSQL (nas_unipolar.storage).

Three Snakemake runs, each in a folder of its own (three "machines" that share no file: no journal, no file lock,
no search_run.json in common), each run the real nas_unipolar_search job of one worker against one study in a
real PostgreSQL server and log to one MLflow tracking server, the way cluster jobs would. The test holds the
workers' database lock until all three wait on it, so that they start together; then it reads the study back from
PostgreSQL: the requested trials, no more, none run twice, every worker's share, the enqueued architecture once,
and one MLflow search run with every trial nested under it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import psycopg2
import pytest
import yaml
from conftest import REPO

from cluster._postgres import mlflow_pg, postgres  # noqa: F401
from nvmxbar.search import storage

WORKERS, TRIALS = 3, 6
#: Evaluated first, once, by whichever worker asks first (enqueued by every worker under the study's lock).
ENQUEUED = {"conv": [16, "M", 32, "M"], "kernel_size": 5, "polarity": "positive", "input_split": True}
ENQUEUED_PARAMS = {
    "blocks": 2,
    "width0": 16,
    "kernel0": 5,
    "pools0": 1,
    "width1": 32,
    "kernel1": 5,
    "pools1": 1,
    "hidden": 0,
}


def overlay(url: str) -> dict:
    """The search of the smoke profile, made a 3-worker, 6-trial study in PostgreSQL. All trials are random ones
    (startup_trials >= trials): each worker's draws then depend on its own seed alone, whatever the interleaving."""
    return {
        "nas_unipolar": {
            "trials": TRIALS,
            "workers": WORKERS,
            "startup_trials": TRIALS,
            "epochs": 1,
            "storage": url,
            "space": {"har": {"enqueue": [ENQUEUED]}},
        }
    }


def waiting_on(pg_conn, key: int) -> int:
    with pg_conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND ((classid::bigint << 32) | objid::bigint) = (%s::bigint & x'ffffffffffffffff'::bigint)",
            (key,),
        )
        return cur.fetchone()[0]


def test_three_workers_on_three_machines_share_one_postgresql_study(postgres, mlflow_pg, tmp_path, data_dir):  # noqa: F811
    url = postgres.create_database("search")
    no_password = url.replace(f":{postgres.password}@", "@")  # the password comes from PGPASSWORD, as advised
    cfgfile = tmp_path / "search.yaml"
    cfgfile.write_text(yaml.safe_dump(overlay(no_password)))
    env = {
        **os.environ,
        "PGPASSWORD": postgres.password,
        "MLFLOW_TRACKING_URI": mlflow_pg.url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "CUDA_VISIBLE_DEVICES": "",
    }
    hosts = [tmp_path / f"host{w}" for w in range(WORKERS)]
    target = "results/har/unipolar/b2/nas/worker{}.json"

    # the workers' first step takes this lock (Optuna's tables): hold it until all three wait on it
    gate = psycopg2.connect(url)
    gate.autocommit = True
    key = storage.lock_key(storage.TABLES_LOCK)
    with gate.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (key,))
    procs = []
    for w, host in enumerate(hosts):
        host.mkdir()
        cmd = [sys.executable, "-m", "snakemake", target.format(w), "--cores", "1", "--directory", str(host)]
        cmd += ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml"), str(cfgfile)]
        cmd += ["--config", "profile=smoke", f"data_dir={data_dir}", "datasets=[har]", "variants=[unipolar]"]
        out = open(host / "snakemake.log", "w")
        procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
        out.close()

    def logs() -> str:
        return "\n".join(f"--- host{w}:\n" + (h / "snakemake.log").read_text()[-2500:] for w, h in enumerate(hosts))

    try:
        deadline = time.time() + 240
        while waiting_on(gate, key) < WORKERS:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail(f"the {WORKERS} workers did not all reach the study database's lock:\n{logs()}")
            time.sleep(0.2)
    finally:
        with gate.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
    try:
        for p in procs:
            p.wait(timeout=420)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"the search workers did not finish:\n{logs()}")
    assert [p.returncode for p in procs] == [0] * WORKERS, logs()
    gate.close()

    docs = [json.loads((h / target.format(w)).read_text()) for w, h in enumerate(hosts)]
    name = docs[0]["study"]
    assert {d["study"] for d in docs} == {name}  # one study, whichever machine
    assert {d["storage"] for d in docs} == {no_password}
    for h in hosts:  # no journal fell back in on any machine; each recorded the database for the later stages
        nas = h / "results/har/unipolar/b2/nas"
        assert not (nas / storage.STUDY_FILE).exists()
        assert storage.recorded(nas) == no_password

    # the study, read back from PostgreSQL
    study = optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(url))
    trials = study.get_trials(deepcopy=False)
    TS = optuna.trial.TrialState
    assert [t.state for t in trials] == [TS.COMPLETE] * TRIALS  # exactly the requested trials: none over, none failed
    assert [t.number for t in trials] == list(range(TRIALS))
    ran = [n for d in docs for n in d["trials_run"]]
    assert sorted(ran) == list(range(TRIALS))  # every trial run by exactly one worker
    assert all(d["trials_run"] for d in docs), [d["trials_run"] for d in docs]  # every worker ran at least one
    for d in docs:
        assert {t.user_attrs["worker"] for t in trials if t.number in d["trials_run"]} == {d["worker"]}
        # a worker stops once every slot is taken (finished or running on another machine)
        assert len(d["trials_run"]) <= d["study_finished_trials"] <= TRIALS
    assert max(d["study_finished_trials"] for d in docs) == TRIALS  # the last one out saw the study full
    assert trials[0].params == ENQUEUED_PARAMS  # asked first, by whichever worker
    params = [json.dumps(t.params, sort_keys=True) for t in trials]
    assert len(set(params)) == TRIALS, params  # no architecture trained twice (the enqueued one included)
    assert all(0 < t.values[0] <= 1 and t.values[1] > 0 for t in trials)  # (val accuracy, area um^2)
    # the rows are PostgreSQL's (Optuna's schema), not a file's
    n = postgres.psql(
        "SELECT count(*) FROM trials t JOIN studies s USING (study_id) "
        f"WHERE s.study_name = '{name}' AND t.state = 'COMPLETE'",
        db="search",
    )
    assert int(n) == TRIALS

    # MLflow: one search run for the study (though no folder is shared), every trial nested under it
    client = mlflow.MlflowClient(mlflow_pg.url)
    exp = client.get_experiment_by_name("nvmxbar-har")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`optuna.study` = '{name}'", max_results=100)
    search = client.search_runs(
        [exp.experiment_id], filter_string=f"attributes.run_name = 'nas_unipolar {name}'", max_results=100
    )
    assert len(search) == 1, [r.info.run_id for r in search]
    assert study.user_attrs[storage.SEARCH_RUN_ATTR] == search[0].info.run_id
    assert search[0].data.params["nas_unipolar.storage"] == no_password
    assert sorted(int(r.data.tags["optuna.trial"]) for r in runs) == list(range(TRIALS))
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {search[0].info.run_id}
    assert {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:  # each trial run holds its trial's score
        t = trials[int(r.data.tags["optuna.trial"])]
        assert r.data.metrics["val_acc_noisy"] == pytest.approx(t.values[0])
        assert r.data.metrics["area_um2"] == pytest.approx(t.values[1])
    for w, h in enumerate(hosts):
        sr = json.loads((h / "results/har/unipolar/b2/nas/search_run.json").read_text())
        assert sr == {"study": name, "run_id": search[0].info.run_id}
        assert Path(h / f"results/logs/nas_unipolar_search/har/b2/worker{w}.log").exists()

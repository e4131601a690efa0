"""The embedded MLflow store under the load of a parallel workflow: with no tracking server, up to 8 Snakemake jobs
log into one sqlite file (results/mlflow.db) at once. Here 8 real processes, released together behind a barrier
(a pipe they all block on, closed by the test once every one said it is ready), each do what a workflow job does
through nvmxbar.tracking, several times over, against one fresh store (no file yet: the first calls create it, as
on a cluster whose jobs start on an empty store); every run must then be complete, and no process may have met
sqlite's "database is locked" or a failed schema migration.

Measured on 2 loaded cores: without tracking.client()'s file lock around the store's creation, 8 processes on an
empty store failed 7 and 8 of 8 (alembic "expected to match one row", "table ... already exists"); with it, none.
Once the store exists, sqlite (MLflow sets busy_timeout 20 s) took 8 x 4 runs of ~70 writes each with no lock
error (83 s at load 7; WAL journal mode: 87 s, no gain, so the store keeps sqlite's default); this test's 8 x 3
runs took 44 s after the barrier at load 5, 93 s at load 10, 49 s at load 8.7, where the 8 processes needed 19 s
to import mlflow and reach the barrier (the fixed 4 s wait this test had before released them early)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import mlflow

from nvmxbar import tracking

PROCS = 8  # the workflow's parallel jobs (--cores 8)
ROUNDS = 3  # stage runs per process, one after the other
STEPS = 30  # points of each metric curve, one call each (as Lightning's logger sends them, epoch by epoch)
PARAMS = 12  # params per run (a stage logs its config section flattened: dozens of keys)
EXPERIMENT = "nvmxbar-har"
REPO = Path(__file__).resolve().parents[2]


def worker(uri: str, ready_fd: int, go_fd: int, proc: int, out: Path) -> None:
    """One job: ROUNDS stage runs, each with params and tags, a curve of STEPS points, a batch of final metrics,
    an artifact, ended FINISHED. Writes the run ids it made to ``out``. Imported (mlflow with it), it writes its
    number to ``ready_fd`` and blocks reading ``go_fd`` until the test closes that pipe's other end: the store is
    hit by all 8 at the same moment."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.write(ready_fd, bytes([proc]))
    os.close(ready_fd)
    assert os.read(go_fd, 1) == b""  # end of file: the barrier opens for every worker at once
    tracking.ensure_experiments({"har": EXPERIMENT}, out.parent)  # each job's first call: creates the store
    ids = []
    for r in range(ROUNDS):
        art = out.with_name(f"artifact{proc}_{r}.json")
        art.write_text(json.dumps({"proc": proc, "round": r}))
        tags = tracking.standard_tags(
            dataset="har",
            variant="uniform",
            bits=2,
            seed=proc,
            rule="stress",
            config_hash=f"h{proc}",
            data_sha256="synthetic",
            round=r,
        )
        params = {"stress": {f"p{i}": i * proc for i in range(PARAMS)}, "round": r}
        with tracking.stage_run(EXPERIMENT, run_name=f"stress {proc}/{r}", tags=tags, params=params) as run:
            for step in range(STEPS):
                run.log_metric("val_acc", proc + step / 1000, step=step)
            run.log_metrics({"test_accuracy": proc / 10, "wall_time_s": r + 0.5})
            run.log_artifact(art)
            run.set_tag("done", "yes")
        ids.append(run.id)
    out.write_text(json.dumps(ids))


def wait_ready(fd: int, procs: list[subprocess.Popen], deadline_s: float = 300.0) -> None:
    """Read the workers' numbers from the readiness pipe until all PROCS are in; fail (with the stderr of those
    missing) when every worker closed the pipe or the deadline passed first."""
    ready, end = set(), time.monotonic() + deadline_s
    while len(ready) < PROCS and (left := end - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            got = os.read(fd, PROCS)
            if not got:
                break  # every worker wrote or died
            ready.update(got)
    missing = sorted(set(range(PROCS)) - ready)
    if missing:
        for p in procs:
            p.kill()
        errors = {i: procs[i].communicate()[1][-2000:] for i in missing}
        raise AssertionError(f"workers {missing} never reached the barrier: {errors}")


def test_eight_concurrent_jobs_log_complete_runs_into_one_sqlite_store(tmp_path, monkeypatch):
    uri = tracking.default_uri(tmp_path)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ARTIFACT_ROOT": (tmp_path / "mlartifacts").as_uri(),
        "PYTHONPATH": str(REPO / "src"),
    }
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "from pathlib import Path; from cluster.test_sqlite_concurrency import worker\n"
        "worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri, str(ready_w), str(go_r), str(p), str(tmp_path / f"ids{p}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=(ready_w, go_r),
        )
        for p in range(PROCS)
    ]
    os.close(ready_w)  # the workers hold the only write ends: end of file once all wrote or died
    os.close(go_r)
    t_start = time.time()
    try:
        wait_ready(ready_r, procs)  # every process imported mlflow and waits at the barrier
    finally:
        os.close(ready_r)
    print(f"{PROCS} processes ready (mlflow imported) after {time.time() - t_start:.1f} s")
    assert not (tmp_path / "mlflow.db").exists()  # a fresh store: the jobs create it together
    os.close(go_w)  # the barrier opens: every worker's read returns at once
    t0 = time.time()
    outs = [p.communicate(timeout=300) for p in procs]
    print(f"{PROCS} processes x {ROUNDS} runs: {time.time() - t0:.1f} s after the barrier")
    failed = [(i, p.returncode, e[-2000:]) for i, (p, (_, e)) in enumerate(zip(procs, outs)) if p.returncode]
    assert not failed, failed
    for sign in ("database is locked", "already exists", "alembic"):
        hit = [i for i, (_, e) in enumerate(outs) if sign in e]
        assert not hit, f"processes {hit} met {sign!r}: " + outs[hit[0]][1][-3000:]

    ids = [json.loads((tmp_path / f"ids{p}.json").read_text()) for p in range(PROCS)]
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], max_results=1000)
    assert len(runs) == PROCS * ROUNDS and {r.info.run_id for r in runs} == {i for p in ids for i in p}
    for proc, mine in enumerate(ids):
        for rnd, run_id in enumerate(mine):
            r = client.get_run(run_id)
            assert r.info.status == "FINISHED", (proc, rnd, r.info.status)
            assert r.data.tags["seed"] == str(proc) and r.data.tags["round"] == str(rnd)
            assert r.data.tags["done"] == "yes"
            want = {f"stress.p{i}": str(i * proc) for i in range(PARAMS)} | {"round": str(rnd)}
            assert r.data.params == want
            hist = client.get_metric_history(run_id, "val_acc")
            assert sorted(h.step for h in hist) == list(range(STEPS)), (proc, rnd, len(hist))
            assert all(abs(h.value - (proc + h.step / 1000)) < 1e-12 for h in hist)
            assert r.data.metrics["test_accuracy"] == proc / 10
            assert r.data.metrics["wall_time_s"] == rnd + 0.5
            arts = [a.path for a in client.list_artifacts(run_id)]
            assert arts == [f"artifact{proc}_{rnd}.json"]

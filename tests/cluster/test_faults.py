"""Killed jobs in a real Snakemake run: each long stage in turn (a search worker, a finalist, a training, a noise
evaluation) is SIGKILLed mid-way through its MLflow run, Snakemake sees the job fail, and the workflow is run
again with --rerun-incomplete, on one shared HAR smoke DAG (unipolar: the search and its finalists too).

Checked: the rerun completes; the killed job left no output that counts as finished (none exists after the kill,
each is rewritten after it); the killed attempt's MLflow run does not stay RUNNING (KILLED, tagged why, or resumed
by a training that continues from its checkpoint and then FINISHED); no run of the store is RUNNING at the end.
The table of what happened is printed and written to /tmp/fault_table.md."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch
from conftest import wait_until

from nvmxbar import tracking

REPO = Path(__file__).resolve().parents[2]
TABLE = Path("/tmp/fault_table.md")
NAS = "results/har/unipolar/b2/nas"
SEED = "results/har/unipolar/b2/seed0"


def smk_cmd(work: Path, data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(REPO / "config.yaml"),
        "-d",
        str(work),
        "--cores",
        "2",
        *extra,
        "--config",
        "profile=smoke",
        f"data_dir={data_dir}",
        "datasets=[har]",
        "variants=[unipolar]",
        # wider windows to kill in: 3 epochs (one checkpoint before the last), 8 Monte Carlo chips per setting
        "train={har: {epochs: 3}}",
        "evaluate_noise={instances: 8}",
    ]


def env_for(work: Path) -> dict:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.default_uri(work / "results"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "CUDA_VISIBLE_DEVICES": "",
    }


def job_processes(snakemake_pid: int, rule: str) -> list[psutil.Process]:
    """The job of ``rule`` that Snakemake runs: a python process on its copy of workflow/scripts/<rule>.py
    (.snakemake/scripts/tmpXXXX.<rule>.py)."""
    try:
        kids = psutil.Process(snakemake_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for p in kids:
        try:
            if any("/.snakemake/scripts/" in a and a.endswith(f".{rule}.py") for a in p.cmdline()):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def runs(db: Path, rule: str | None = None, status: str | None = None) -> list[dict]:
    """Runs of the store (read-only, straight from sqlite): id, name, status, rule, and every tag."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("SELECT run_uuid, name, status FROM runs").fetchall()
            tags = con.execute("SELECT run_uuid, key, value FROM tags").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet, or busy
        return []
    by_run: dict[str, dict] = {}
    for rid, k, v in tags:
        by_run.setdefault(rid, {})[k] = v
    out = [{"id": rid, "name": n, "status": s, "tags": by_run.get(rid, {})} for rid, n, s in rows]
    return [
        r for r in out if (rule is None or r["tags"].get("rule") == rule) and (status is None or r["status"] == status)
    ]


def kill_tree(proc: psutil.Process) -> None:
    procs = [proc, *proc.children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def run_and_kill(work: Path, data_dir: Path, rule: str, ready=lambda run: True, first: bool = False) -> dict:
    """Run the workflow, SIGKILL the jobs of ``rule`` once one's MLflow run is RUNNING (and ``ready(run)``), wait
    for Snakemake to stop. Returns the killed runs and when they were killed."""
    log = work / f"kill_{rule}.log"
    cmd = smk_cmd(work, data_dir, *(() if first else ("--rerun-incomplete",)))
    db = work / "results" / "mlflow.db"
    with open(log, "w") as fh:
        smk = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env_for(work))
        killed, deadline = None, time.time() + 600
        while smk.poll() is None and time.time() < deadline:
            jobs = job_processes(smk.pid, rule)
            live = [r for r in runs(db, rule, "RUNNING") if ready(r)] if jobs else []
            if jobs and live:
                for j in jobs:
                    kill_tree(j)
                killed = {"rule": rule, "runs": live, "t": time.time()}  # every job of the rule: all their runs
                break
            time.sleep(0.05)
        rc = smk.wait(timeout=600)
    text = log.read_text()
    assert killed, f"the {rule} job was never seen mid-run (snakemake rc {rc}):\n{text[-4000:]}"
    assert rc != 0 and f"Error in rule {rule}" in text, text[-4000:]  # Snakemake saw the job fail
    return killed


def outputs_of(rule: str, run: dict) -> list[str]:
    if rule == "nas_unipolar_search":
        return [f"{NAS}/worker0.json"]
    if rule == "nas_unipolar_finalist":
        return [f"{NAS}/finalists/rank{run['tags']['finalist_rank']}_rep0.json"]
    if rule == "train":
        return [f"{SEED}/model.pt", f"{SEED}/metrics.json"]
    return [f"{SEED}/noise.csv", f"{SEED}/noise_summary.json"]


def status_words(run_after: dict, resumed: bool) -> str:
    s = run_after["status"]
    if resumed:
        return f"{s} (the same run, continued: resumed={run_after['tags'].get('resumed')})"
    return f"{s} ({run_after['tags'].get(tracking.KILLED_TAG, 'no reason tag')})"


def test_killed_jobs_are_redone_and_their_runs_do_not_stay_running(tmp_path, data_dir):
    work = tmp_path / "dag"
    work.mkdir()
    db = work / "results" / "mlflow.db"
    trained = lambda r: (work / SEED / "checkpoints" / "last.ckpt").exists()  # noqa: E731 (a checkpoint to resume)
    plan = [
        ("nas_unipolar_search", lambda r: True),
        ("nas_unipolar_finalist", lambda r: True),
        ("train", trained),
        ("evaluate_noise", lambda r: True),
    ]
    kills = []
    for i, (rule, ready) in enumerate(plan):
        k = run_and_kill(work, data_dir, rule, ready, first=i == 0)
        for run in k["runs"]:
            outs = outputs_of(rule, run)
            # nothing half-written counts as finished: the killed job's outputs are absent (Snakemake removed what
            # a failed job left; every stage writes its files atomically, by rename)
            assert not [o for o in outs if (work / o).exists()], (rule, outs)
            kills.append({"rule": rule, "run": run, "t": k["t"], "outputs": outs})

    t0 = time.time()
    final = subprocess.run(
        smk_cmd(work, data_dir, "--rerun-incomplete"), capture_output=True, text=True, env=env_for(work), timeout=900
    )
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

    every = {r["id"]: r for r in runs(db)}
    rows = []
    for k in kills:
        rule, killed_id = k["rule"], k["run"]["id"]
        for o in k["outputs"]:  # redone after the kill, and whole
            p = work / o
            assert p.exists() and p.stat().st_mtime > k["t"], (rule, o)
            if p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix == ".pt":
                torch.load(p, weights_only=True)
        after = every[killed_id]
        resumed = False
        if rule in ("train", "nas_unipolar_finalist"):
            folder = work / (SEED if rule == "train" else k["outputs"][0].removesuffix(".json"))
            metrics = json.loads((folder / "metrics.json").read_text())
            resumed = metrics["resumed"]
            if resumed:  # continued from the killed attempt's checkpoint, in the killed attempt's run
                assert metrics["mlflow_run_id"] == killed_id and after["status"] == "FINISHED", (rule, after)
                assert after["tags"].get("resumed") == "true"
            else:
                assert metrics["mlflow_run_id"] != killed_id
            did = (
                f"resumed from its checkpoint ({metrics['epochs']} epochs in all), in the same MLflow run"
                if resumed
                else "started over (no checkpoint yet), in a new MLflow run"
            )
        elif rule == "nas_unipolar_search":
            doc = json.loads((work / k["outputs"][0]).read_text())
            trial = k["run"]["tags"]["optuna.trial"]
            # the same study, continued: the killed trial stays FAIL, the worker asks new ones
            assert doc["study"] == k["run"]["tags"]["optuna.study"] and int(trial) not in doc["trials_run"], doc
            did = f"worker ran again: the killed trial {trial} marked FAIL in the study, trials {doc['trials_run']} run"
        else:
            did = "ran again from scratch, in a new MLflow run"
        if rule == "train":
            assert resumed, "the training was killed after its first checkpoint: the rerun must resume"
        if not resumed:
            assert after["status"] == "KILLED", (rule, after)
            assert after["tags"].get(tracking.KILLED_TAG), after["tags"]
        rows.append((rule, k["run"]["name"], did, status_words(after, resumed)))

    running = [(r["name"], r["tags"].get("rule")) for r in every.values() if r["status"] == "RUNNING"]
    assert not running, f"runs left RUNNING: {running}"
    assert not list((work / ".snakemake" / "incomplete").glob("*")), "Snakemake still marks outputs incomplete"
    assert not list((work / "results").rglob(".*.mlflow_run.json")), "run files left behind"
    temps = sorted(str(p.relative_to(work)) for p in (work / "results").rglob(".*.tmp*"))

    lines = [
        "| stage killed (SIGKILL) | its MLflow run | what the rerun did | killed run's status after the rerun |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ]
    table = "\n".join(lines) + (
        f"\n\nAfter the last rerun ({time.time() - t0:.0f} s): {len(every)} runs in the store, none RUNNING; "
        f"{len(temps)} temporary file(s) of killed atomic writes left ({', '.join(temps) or 'none'}).\n"
    )
    print("\n" + table)
    TABLE.write_text(table)


STAGE = """
import os, sys, time
from pathlib import Path
from nvmxbar import tracking
out, mode = Path(sys.argv[1]), sys.argv[2]
rf = tracking.run_file(out)
with tracking.stage_run("nvmxbar-har", run_name="stage", tags={"rule": "stage"}, run_file=rf) as run:
    if mode == "kill":
        for n in range(3):  # a search's trials, nested under the stage's run and left RUNNING
            tracking.open_run("nvmxbar-har", run_name=f"trial {n}", tags={"optuna.trial": str(n)}, parent=run.id)
        tmp = Path(str(out) + ".id.tmp")
        tmp.write_text(run.id)
        tmp.rename(str(out) + ".id")  # atomic: the test sees the file only with its id in it
        sys.stdin.read()  # blocks until SIGKILLed here (or the test's end of the pipe closes)
    out.write_text("done")
print(run.id)
"""


def test_a_killed_process_run_is_ended_killed_by_the_next_attempt(tmp_path, monkeypatch):
    """The mechanism the workflow test relies on, on one process: SIGKILLed inside its stage run (with nested runs
    open), the run and its children stay RUNNING; the same job's next attempt ends them KILLED, tagged why."""
    uri = tracking.default_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = tmp_path / "job" / "out.json"
    out.parent.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-c", STAGE, str(out), "kill"],
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    idf = Path(str(out) + ".id")  # written once the child's runs are open; it then blocks on its stdin
    wait_until(idf.exists, 120, alive=lambda: p.poll() is None)
    assert idf.exists(), p.stderr.read() if p.poll() is not None else "no run opened in 120 s"
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed = idf.read_text()
    db = tmp_path / "mlflow.db"
    assert {r["name"]: r["status"] for r in runs(db)} == {
        "stage": "RUNNING",
        "trial 0": "RUNNING",
        "trial 1": "RUNNING",
        "trial 2": "RUNNING",
    }
    assert json.loads(tracking.run_file(out).read_text())["run_id"] == killed and not out.exists()

    again = subprocess.run(
        [sys.executable, "-c", STAGE, str(out), "ok"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    new = again.stdout.split()[-1]
    after = {r["id"]: r for r in runs(db)}
    assert after[new]["status"] == "FINISHED" and new != killed
    assert after[killed]["status"] == "KILLED"
    assert "found RUNNING by the job's next attempt" in after[killed]["tags"][tracking.KILLED_TAG]
    children = [r for r in after.values() if r["tags"].get("mlflow.parentRunId") == killed]
    assert len(children) == 3 and all(r["status"] == "KILLED" for r in children)
    assert all(tracking.KILLED_TAG in r["tags"] for r in children)
    assert not tracking.run_file(out).exists() and out.read_text() == "done"
    # a run already ended is left as it is
    assert tracking.end_stale(new, "test") is False and tracking.end_stale(None, "test") is False

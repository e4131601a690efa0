"""A lab's shared MLflow tracking server on PostgreSQL: the HAR smoke DAG logs to it over HTTP (jobs in parallel),
and every run, param, metric and artifact arrives.

The expected runs come from the jobs Snakemake ran (its log) and what each job wrote (the run ids in metrics.json,
the worker and finalist files, the trials table); the arrived ones from the server (MlflowClient over HTTP) and
from PostgreSQL itself (psql), so the test cannot pass against a sqlite fallback. Artifacts must be proxied: stored
under the server's --artifacts-destination and downloaded through the server, byte for byte the job's files."""

import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pytest
from conftest import REPO

from cluster._postgres import mlflow_pg, postgres  # noqa: F401

EXPERIMENT = "nvmxbar-har"
JOB = re.compile(r"^(?:local)?rule (\w+):\n(.*?)(?=\n\n|\n\[|\Z)", re.M | re.S)


def jobs_run(out: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job Snakemake started, checked against the jobs it reports finished."""
    jobs, ids = [], []
    for m in JOB.finditer(out):
        body = m.group(2)
        ids.append(int(re.search(r"jobid: (\d+)", body).group(1)))
        wc = re.search(r"wildcards: (.*)", body)
        jobs.append((m.group(1), dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}))
    finished = [int(j) for j in re.findall(r"Finished jobid: (\d+)", out)]
    assert sorted(ids) == sorted(finished), (ids, finished)
    return jobs


@dataclass
class Expect:
    """One run the jobs should have logged: by id (recorded in a job's output) or by name (unique in the store)."""

    rule: str
    run_id: str | None = None
    name: str | None = None
    tags: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)  # metric -> number of steps logged
    artifacts: dict = field(default_factory=dict)  # artifact path -> the job's local file
    parent: str | None = None  # parent run id, or "name:<run name>"
    status: str = "FINISHED"


def read_json(p: Path) -> dict:
    return json.loads(p.read_text())


def expected_runs(jobs, res: Path) -> list[Expect]:
    out: dict[str, Expect] = {}

    def add(e: Expect) -> None:
        out.setdefault(e.run_id or f"name:{e.name}", e)

    for rule, wc in jobs:
        ds = wc.get("dataset")
        if rule == "prepare_data":
            counts = read_json(res / f"data/{ds}.json")["counts"]
            add(
                Expect(
                    rule,
                    name=f"prepare_data {ds}",
                    tags={"dataset": ds},
                    params={"dataset": ds},
                    metrics={f"n_{k}": v for k, v in counts.items()},
                    artifacts={f"{ds}.json": res / f"data/{ds}.json"},
                )
            )
        elif rule == "train":
            folder = res / ds / wc["model"] / f"seed{wc['seed']}"
            m = read_json(folder / "metrics.json")
            add(
                Expect(
                    rule,
                    run_id=m["mlflow_run_id"],
                    tags={"dataset": ds, "variant": m["variant"], "seed": wc["seed"]},
                    params={"seed": wc["seed"], "train.epochs": str(m["epochs"])},
                    metrics={"test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"]},
                    curves={"val_acc": m["epochs"], "train_loss": m["epochs"]},
                    artifacts={"metrics.json": folder / "metrics.json", "model.pt": folder / "model.pt"},
                    parent=m["mlflow_group_run_id"],
                )
            )
            add(Expect("group", run_id=m["mlflow_group_run_id"], tags={"dataset": ds, "variant": m["variant"]}))
        elif rule in ("map_crossbar", "evaluate_noise", "estimate_cost"):
            v, b, s = wc["variant"], wc["bits"], wc["seed"]
            folder = res / ds / v / f"b{b}" / f"seed{s}"
            model = "baseline" if v == "baseline" else f"{v}/b{b}"
            art = {"map_crossbar": "mapping.json", "evaluate_noise": "noise.csv", "estimate_cost": "cost.json"}[rule]
            metrics, curves = {}, {}
            if rule == "map_crossbar":
                metrics = {k: read_json(folder / art)["total"][k] for k in ("devices", "tiles", "adcs")}
            elif rule == "estimate_cost":
                metrics = {k: read_json(folder / art)["total"][k] for k in ("area_um2", "energy_pj_per_inference")}
            else:
                summary = read_json(folder / "noise_summary.json")
                metrics = {"ideal_crossbar_accuracy": summary["ideal_crossbar_accuracy"]}
                curves = {"accuracy_mean": len(list(csv.DictReader(open(folder / art))))}  # one per noise setting
            add(
                Expect(
                    rule,
                    name=f"{rule} {ds}/{v}/b{b} seed {s}",
                    tags={"dataset": ds, "variant": v, "bits": b, "seed": s},
                    params={"bits": b},
                    metrics=metrics,
                    curves=curves,
                    artifacts={art: folder / art},
                    parent=read_json(res / ds / model / f"seed{s}" / "metrics.json")["mlflow_run_id"],
                )
            )
        elif rule == "nas_unipolar_search":
            nas = res / ds / "unipolar" / f"b{wc['bits']}" / "nas"
            doc = read_json(nas / f"worker{wc['worker']}.json")
            search = read_json(nas / "search_run.json")["run_id"]
            rows = {int(r["trial"]): r for r in csv.DictReader(open(nas / "trials.csv"))}
            arch = read_json(nas / "arch.json")
            add(Expect("nas_unipolar", run_id=search, tags={"dataset": ds, "bits": wc["bits"]}))
            for n in doc["trials_run"]:
                pruned = rows[n]["state"] == "PRUNED"
                add(
                    Expect(
                        rule,
                        name=f"trial {n}",
                        tags={"dataset": ds, "optuna.study": doc["study"], "optuna.trial": str(n)},
                        params={"epochs": str(arch["epochs_per_trial"])},
                        metrics={} if pruned else {"val_acc_noisy": float(rows[n]["val_accuracy"])},
                        curves={} if pruned else {"val_acc": arch["epochs_per_trial"]},
                        parent=search,
                        status="KILLED" if pruned else "FINISHED",
                    )
                )
        elif rule == "nas_unipolar_finalist":
            nas = res / ds / "unipolar" / f"b{wc['bits']}" / "nas"
            path = nas / "finalists" / f"rank{wc['rank']}_rep{wc['rep']}.json"
            doc = read_json(path)
            if doc["trial"] is None:
                continue
            folder = path.with_suffix("")
            add(
                Expect(
                    rule,
                    run_id=doc["mlflow_run_id"],
                    tags={"dataset": ds, "finalist_rank": wc["rank"], "optuna.trial": str(doc["trial"])},
                    metrics={"test_accuracy": doc["test_accuracy"], "val_acc_noisy": doc["val_acc_noisy"]},
                    curves={"val_acc": doc["epochs"]},
                    artifacts={"metrics.json": folder / "metrics.json", "model.pt": folder / "model.pt"},
                    parent=read_json(nas / "search_run.json")["run_id"],
                )
            )
        elif rule == "nas_unipolar":
            nas = res / ds / "unipolar" / f"b{wc['bits']}" / "nas"
            arch = read_json(nas / "arch.json")
            e = out.setdefault(read_json(nas / "search_run.json")["run_id"], Expect("nas_unipolar"))
            e.run_id = read_json(nas / "search_run.json")["run_id"]
            e.metrics.update(
                trials_complete=arch["trials"]["complete"],
                trials_pruned=arch["trials"]["pruned"],
                chosen_val_accuracy=arch["val_accuracy"],
            )
            e.artifacts.update({p: nas / p for p in ("arch.json", "trials.csv", "pareto.csv", "pareto.png")})
            e.tags["chosen_trial"] = str(arch["trial"])
        elif rule == "report":
            add(
                Expect(
                    rule,
                    name="report har",
                    tags={"dataset": "har"},
                    artifacts={"report/REPORT.md": res / "report/REPORT.md"},
                )
            )
        else:  # the report's other rules write tables and figures; rule report logs them
            known = {"all", "report_collect", "report_tables", "report_sensitivity", "report_figure"}
            assert rule in known, f"a rule this test does not know: {rule} (say which runs it logs)"
    return list(out.values())


@pytest.fixture(scope="module")
def dag(mlflow_pg, tmp_path_factory, data_dir):  # noqa: F811
    """The HAR smoke DAG (uniform and unipolar with its search; no finalists: their runs are trainings like the
    others, and two more on the critical path) logging to the PostgreSQL-backed server, 4 jobs at a time."""
    work = tmp_path_factory.mktemp("dag")
    (work / "no_finalists.yaml").write_text("nas_unipolar: {finalists: {count: 0}}\n")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_pg.url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "CUDA_VISIBLE_DEVICES": "",
    }
    cmd = [sys.executable, "-m", "snakemake", "--cores", "4", "--directory", str(work)]
    cmd += [
        "--snakefile",
        str(REPO / "Snakefile"),
        "--configfile",
        str(REPO / "config.yaml"),
        str(work / "no_finalists.yaml"),
    ]
    cmd += ["--config", "profile=smoke", f"data_dir={data_dir}", "datasets=[har]", "variants=[uniform,unipolar]"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        pytest.fail(f"the smoke DAG failed against the MLflow server:\n{out[-4000:]}\nserver log:\n{tail(mlflow_pg)}")
    return work, out


def tail(srv) -> str:
    return srv.log.read_text(errors="replace")[-2000:]


def test_every_run_of_the_dag_arrives_with_its_params_metrics_and_artifacts(dag, mlflow_pg, postgres, tmp_path):  # noqa: F811
    work, out = dag
    res = work / "results"
    assert f"MLflow store: {mlflow_pg.url}" in out  # the workflow took the server from MLFLOW_TRACKING_URI
    assert not (res / "mlflow.db").exists() and not (res / "mlartifacts").exists()  # no local store on the side
    jobs = jobs_run(out)
    rules = sorted(r for r, _ in jobs)
    assert rules.count("train") == 2 and rules.count("nas_unipolar_search") == 1 and "report" in rules
    assert "nas_unipolar_finalist" not in rules
    expected = expected_runs(jobs, res)

    client = mlflow.MlflowClient(mlflow_pg.url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location  # the server's store
    all_exps = [e.experiment_id for e in client.search_experiments()]
    arrived = {r.info.run_id: r for r in client.search_runs(all_exps, max_results=5000)}
    by_name: dict[str, list] = {}
    for r in arrived.values():
        by_name.setdefault(r.info.run_name, []).append(r)
    for e in expected:  # a run known by name: exactly one in the store
        if e.run_id is None:
            assert len(by_name.get(e.name, [])) == 1, f"{e.name!r}: {len(by_name.get(e.name, []))} runs"
            e.run_id = by_name[e.name][0].info.run_id
    ids = {e.run_id for e in expected}
    assert len(ids) == len(expected) and None not in ids
    assert set(arrived) == ids, (
        f"missing: {[e.name or e.run_id for e in expected if e.run_id not in arrived]}, "
        f"unexpected: {[arrived[i].info.run_name for i in set(arrived) - ids]}"
    )
    n_trials = sum(e.rule == "nas_unipolar_search" for e in expected)
    # data, 2 trainings and their group runs, 3 stages x 2 models, the search run and its trials, the report
    assert len(expected) == 1 + 2 * 2 + 3 * 2 + 1 + n_trials + 1 and n_trials == 2

    names = {e.run_id: e.name for e in expected}
    dl = tmp_path / "downloads"
    for e in expected:
        r = arrived[e.run_id]
        what = f"{e.rule} run {r.info.run_name!r}"
        assert r.info.status == e.status, what
        assert r.info.experiment_id == exp.experiment_id, what
        assert r.data.tags.get("rule") == e.rule, what
        for k, v in e.tags.items():
            assert r.data.tags.get(k) == str(v), (what, k, r.data.tags.get(k), v)
        for k, v in e.params.items():
            assert r.data.params.get(k) == str(v), (what, k, r.data.params.get(k), v)
        if e.rule not in ("group", "nas_unipolar"):
            assert r.data.params, what  # every stage logs its settings
        for k, v in e.metrics.items():
            assert r.data.metrics.get(k) == pytest.approx(v, abs=1e-9), (what, k, r.data.metrics.get(k), v)
        for k, n in e.curves.items():  # a whole curve: one value per epoch (or setting), none lost
            steps = [m.step for m in client.get_metric_history(e.run_id, k)]
            assert len(steps) == n and len(set(steps)) == n, (what, k, steps)
        if e.parent is not None:
            assert r.data.tags.get("mlflow.parentRunId") == e.parent, (what, names.get(e.parent, e.parent))
        # artifacts: proxied by the server into its --artifacts-destination, and downloaded back through it
        assert r.info.artifact_uri.startswith("mlflow-artifacts:/"), (what, r.info.artifact_uri)
        stored = mlflow_pg.artifacts / r.info.artifact_uri.removeprefix("mlflow-artifacts:/")
        for path, local in e.artifacts.items():
            assert (stored / path).read_bytes() == local.read_bytes(), (what, path)
            got = Path(client.download_artifacts(e.run_id, path, str(dl / e.run_id)))
            assert got.read_bytes() == local.read_bytes(), (what, path)
            listed = {a.path for a in client.list_artifacts(e.run_id, os.path.dirname(path) or None)}
            assert path in listed, (what, listed)

    # the rows are PostgreSQL's: every run, its status, and a training's whole curve
    rows = postgres.psql("SELECT run_uuid || ' ' || status FROM runs", db=mlflow_pg.db).splitlines()
    assert sorted(rows) == sorted(f"{e.run_id} {e.status}" for e in expected)
    train = next(e for e in expected if e.rule == "train" and e.tags["variant"] == "uniform")
    n = postgres.psql(
        f"SELECT count(*) FROM metrics WHERE run_uuid = '{train.run_id}' AND key = 'val_acc'", db=mlflow_pg.db
    )
    assert int(n) == train.curves["val_acc"]
    acc = postgres.psql(
        f"SELECT value FROM latest_metrics WHERE run_uuid = '{train.run_id}' AND key = 'test_accuracy'",
        db=mlflow_pg.db,
    )
    assert float(acc) == pytest.approx(train.metrics["test_accuracy"], abs=1e-12)

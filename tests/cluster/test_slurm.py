"""The workflow on a real SLURM cluster (tests/cluster/_slurm.py: slurmctld, slurmd and munged on this machine),
through workflow/profiles/slurm and snakemake-executor-plugin-slurm: a small HAR smoke DAG (the uniform 2-bit
model: prepare_data, train, map_crossbar, evaluate_noise, estimate_cost). Every job must have gone through SLURM
(SLURM's own records: `scontrol show job` and the job completion log) with the resources its rule declares, and
the results must equal those of the same targets run locally. workflow/profiles/slurm-gpu must ask SLURM for a GPU
for the jobs that train or simulate, and for none for the others (this cluster has no GPU: SLURM refuses the
request, which is what is checked)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO

from cluster._slurm import PARTITION, slurm_cluster  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

SMK = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
PROFILES = REPO / "workflow" / "profiles"
OUT = "results/har/uniform/b2/seed0"
TARGETS = [f"{OUT}/noise.csv", f"{OUT}/cost.json"]
RULES = {"prepare_data": 1, "train": 1, "map_crossbar": 1, "evaluate_noise": 1, "estimate_cost": 1}
#: A local file system and an idle cluster: the first status poll 1 s after a submission or a finished job, not
#: 40 s (the plugin still waits 10 s longer after each poll in which no job finished), and a short wait for
#: outputs. No accounting database here: job states come from squeue (sacct would fail, and the plugin would lose
#: the jobs: Snakemake would wait forever). SLURM's job logs are kept, to be read below.
FAST = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
    "--latency-wait",
    "5",
    "--slurm-keep-successful-logs",
]
#: The rules whose jobs train or run the crossbar simulator: gpu=1 with device cuda and train.accelerator gpu.
GPU_RULES = {"train", "nas_unipolar_search", "nas_unipolar_finalist", "map_crossbar", "evaluate_noise", "estimate_cost"}
CPU_RULES = {"prepare_data", "nas_unipolar", "report_collect", "report_tables", "report_sensitivity", "report_figure"}
CPU_RULES |= {"report"}


def config(data_dir: Path, *extra: str) -> list[str]:
    return ["--config", "profile=smoke", f"data_dir={data_dir}", "datasets=[har]", *extra]


def workdir(path: Path) -> Path:
    """A run folder as README's runs have it: config.yaml beside results/."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").symlink_to(REPO / "config.yaml")
    return path


def env_for(work: Path, base: dict[str, str]) -> dict[str, str]:
    """No CUDA device (the CPU-only case, whatever the machine has), telemetry off, the run's own MLflow store."""
    return {
        **base,
        "CUDA_VISIBLE_DEVICES": "",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }


def job_stats(out: str) -> dict[str, int]:
    """Snakemake's first 'Job stats' table: rule -> jobs."""
    table = out[out.index("Job stats") :]
    table = table[: table.index("total")]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def rule_resources(out: str) -> dict[str, list[dict[str, str]]]:
    """rule -> the `resources:` of each of its jobs, as a Snakemake log (or dry run) prints them."""
    found, rule = {}, None
    for line in out.splitlines():
        if m := re.fullmatch(r"(?:local)?rule (\w+):", line.strip()):
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:"):
            pairs = line.strip().removeprefix("resources:").split(", ")
            found.setdefault(rule, []).append(dict(p.strip().split("=", 1) for p in pairs))
            rule = None
    return found


def minutes(limit: str) -> int:
    """SLURM's TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def tail(text: str, n: int = 4000) -> str:
    return text[-n:]


class Runs:
    """Snakemake runs started side by side, each with its output in <base>/<name>.log."""

    def __init__(self, base: Path):
        self.base, self.procs = base, {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with open(self.base / f"{name}.log", "w") as log:
            self.procs[name] = subprocess.Popen(SMK + args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait(self, name: str, timeout: float) -> tuple[int, str]:
        try:
            rc = self.procs[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.procs[name].kill()
            rc = self.procs[name].wait()
        return rc, (self.base / f"{name}.log").read_text()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def runs(slurm_cluster, data_dir, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    """The same targets on SLURM (workflow/profiles/slurm) and locally (--cores 2), at the same time; meanwhile a
    dry run of HAR's whole smoke DAG with workflow/profiles/slurm-gpu, and, once the local run is done, a GPU
    submission (workflow/profiles/slurm-gpu) in a copy of its folder with its training forced, so that the first
    job is a GPU job: this cluster has no GPU, so SLURM refuses it, and the refused sbatch call shows what was
    asked for."""
    base = tmp_path_factory.mktemp("slurm_runs")
    on_slurm, local, dry = workdir(base / "slurm"), workdir(base / "local"), workdir(base / "dry")
    cfg = [*config(data_dir, "variants=[uniform]"), "--", *TARGETS]
    r = Runs(base)
    try:
        r.start(
            "slurm",
            ["-d", str(on_slurm), "--profile", str(PROFILES / "slurm"), *FAST, *cfg],
            env_for(on_slurm, slurm_cluster.env),
        )
        r.start("local", ["-d", str(local), "--cores", "2", *cfg], env_for(local, dict(os.environ)))
        r.start(
            "dry",
            ["-d", str(dry), "-n", "--profile", str(PROFILES / "slurm-gpu"), *config(data_dir)],
            env_for(dry, slurm_cluster.env),
        )
        local_rc, local_out = r.wait("local", 900)
        gpu = base / "gpu"
        if local_rc == 0:
            shutil.copytree(local, gpu, symlinks=True)
            gpu_args = ["-d", str(gpu), "--profile", str(PROFILES / "slurm-gpu"), *FAST, "--retries", "0"]
            r.start("gpu", [*gpu_args, "--forcerun", "train", *cfg], env_for(gpu, slurm_cluster.env))
        slurm_rc, slurm_out = r.wait("slurm", 900)
        dry_rc, dry_out = r.wait("dry", 300)
        gpu_rc, gpu_out = r.wait("gpu", 300) if "gpu" in r.procs else (None, "not run: the local run failed")
    finally:
        r.stop()
    return SimpleNamespace(
        slurm=on_slurm,
        local=local,
        slurm_rc=slurm_rc,
        slurm_out=slurm_out,
        local_rc=local_rc,
        local_out=local_out,
        dry_rc=dry_rc,
        dry_out=dry_out,
        gpu_rc=gpu_rc,
        gpu_out=gpu_out,
    )


def test_every_job_ran_on_slurm_and_completed(runs, slurm_cluster):  # noqa: F811
    out = runs.slurm_out
    assert runs.slurm_rc == 0, f"{tail(out)}\n{slurm_cluster.diagnose()}"
    assert job_stats(out) == RULES
    assert f"{len(RULES)} of {len(RULES)} steps (100%) done" in out
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)  # every job's SLURM job name
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out))
    assert len(submitted) == len(RULES), out

    # SLURM's own records: the jobs slurmctld holds (finished ones for MinJobAge) and the job completion log
    jobs = {i: j for i, j in slurm_cluster.jobs().items() if j["JobName"] == run_id}
    assert sorted(jobs) == sorted(submitted.values())
    ran = Counter(re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", j["Comment"]).group(1) for j in jobs.values())
    assert ran == RULES  # one SLURM job for each job Snakemake ran, of the same rule
    completions = slurm_cluster.completions()
    for i, job in jobs.items():
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert completions[i]["JobState"] == "COMPLETED" and completions[i]["ExitCode"] == "0:0", completions[i]
        assert job["Partition"] == PARTITION and job["NodeList"] == "localhost"  # the profile's partition
        assert Path(job["WorkDir"]) == runs.slurm
        # the job's batch output: the plugin's job step ran the rule's job there
        log = Path(job["StdOut"])
        assert log.is_relative_to(runs.slurm / ".snakemake" / "slurm_logs"), log
        assert "Finished jobid: 0" in log.read_text(), tail(log.read_text())

    # what each rule declares (threads, mem_mb, runtime in minutes) is what SLURM allocated
    declared = rule_resources(out)
    for job in jobs.values():
        rule = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", job["Comment"]).group(1)
        (res,) = declared[rule]
        assert res["gpu"] == "0" and res["slurm_partition"] == PARTITION, res
        assert job["MinMemoryNode"] == f"{res['mem_mb']}M", (rule, job["MinMemoryNode"], res)
        assert minutes(job["TimeLimit"]) == int(res["runtime"]), (rule, job["TimeLimit"], res)
        assert job["NumCPUs"] == "1" and "gres/gpu" not in job["TRES"], job  # smoke: one thread per job
    assert {r: int(d[0]["mem_mb"]) for r, d in declared.items()} == {
        "prepare_data": 6000,
        "train": 3000,
        "map_crossbar": 4000,
        "evaluate_noise": 6000,
        "estimate_cost": 3000,
    }


def _compare_results():
    spec = importlib.util.spec_from_file_location("compare_results", REPO / "tools" / "compare_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_slurm_results_equal_local_results(runs):
    assert runs.slurm_rc == 0, tail(runs.slurm_out)
    assert runs.local_rc == 0, tail(runs.local_out)
    a, b = runs.slurm / OUT, runs.local / OUT
    # every number and string of the JSON and CSV outputs but run ids, wall times and paths, with no tolerance
    cmp = _compare_results()
    for name in ("metrics.json", "mapping.json", "cost.json", "noise_summary.json"):
        assert cmp.compare_json(a / name, b / name, 0.0) == [], name
    assert cmp.compare_json(runs.slurm / "results/data/har.json", runs.local / "results/data/har.json", 0.0) == []
    assert cmp.compare_csv(a / "noise.csv", b / "noise.csv", 0.0) == []
    assert (a / "noise.csv").read_text() == (b / "noise.csv").read_text()

    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["test_accuracy"] == mb["test_accuracy"] > 0.4  # two epochs on 600 windows beat chance (1/6) by far
    assert ma["per_class_accuracy"] == mb["per_class_accuracy"] and len(ma["per_class_accuracy"]) == 6
    assert ma["mlflow_run_id"] != mb["mlflow_run_id"]  # two runs, two stores
    ca, cb = (json.loads((d / "cost.json").read_text()) for d in (a, b))
    assert ca["total"]["area_um2"] == cb["total"]["area_um2"] > 0
    assert ca["total"]["energy_pj_per_inference"] == cb["total"]["energy_pj_per_inference"] > 0
    with np.load(a / "crossbar.npz") as xa, np.load(b / "crossbar.npz") as xb:
        assert sorted(xa.files) == sorted(xb.files) and len(xa.files) > 0
        for key in xa.files:
            assert np.array_equal(xa[key], xb[key]), key
    import torch

    wa, wb = (torch.load(d / "model.pt", weights_only=True) for d in (a, b))
    sa, sb = wa["state_dict"], wb["state_dict"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_slurm_jobs_logged_into_the_runs_mlflow_store(runs):
    """The jobs on SLURM (other processes, started by slurmd) logged into the store MLFLOW_TRACKING_URI names."""
    import mlflow

    assert runs.slurm_rc == 0, tail(runs.slurm_out)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{runs.slurm / 'mlflow.db'}")
    exp = client.get_experiment_by_name("nvmxbar-har")
    tags = [r.data.tags for r in client.search_runs([exp.experiment_id])]
    assert Counter(t["rule"] for t in tags) == {**RULES, "group": 1}
    metrics = json.loads((runs.slurm / OUT / "metrics.json").read_text())
    train = client.get_run(metrics["mlflow_run_id"])
    assert train.info.status == "FINISHED" and train.data.tags["rule"] == "train"


def test_gpu_profile_asks_slurm_for_a_gpu_for_the_gpu_jobs(runs, slurm_cluster):  # noqa: F811
    # the dry run of HAR's whole smoke DAG: which rule asks for what
    assert runs.dry_rc == 0, tail(runs.dry_out)
    assert "asks for a CUDA GPU (train.accelerator: gpu, device: cuda" in runs.dry_out  # a warning, no stop
    declared = rule_resources(runs.dry_out)
    assert set(declared) == GPU_RULES | CPU_RULES | {"all"}
    for rule in GPU_RULES:
        assert all(r["gpu"] == "1" and r["slurm_partition"] == "gpu" for r in declared[rule]), declared[rule]
    for rule in CPU_RULES:
        assert all(r["gpu"] == "0" and r["slurm_partition"] == PARTITION for r in declared[rule]), declared[rule]

    # the real submission (see runs): refused by SLURM, which has no GPU here
    out = runs.gpu_out
    assert runs.gpu_rc not in (None, 0), tail(out)
    assert "Error in rule train:" in out and "SLURM sbatch failed" in out, tail(out)
    assert "sbatch: error:" in out  # SLURM's answer
    call = out[out.index("sbatch call:") :].splitlines()[1]
    assert call.split()[0] == "sbatch" and "--comment rule_train_wildcards_" in call
    assert " --gpus=1 " in call and " -p gpu " in call, call
    assert " --mem 3000 " in call and " -t 30 " in call, call
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    assert not [j for j in slurm_cluster.jobs().values() if j["JobName"] == run_id]  # nothing was queued

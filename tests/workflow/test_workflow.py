"""Real Snakemake runs of the workflow (smoke profile, CIFAR-10 cut further) on the real data, and the MLflow
store they fill."""

import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import REPO

from nvmxbar import config

SMK = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]


def snakemake(workdir: Path, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(SMK + ["-d", str(workdir), *args], capture_output=True, text=True, timeout=timeout)


def job_counts(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = out[out.index("Job stats") :]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_dry_run_lists_every_dataset_variant_and_bit_width(tmp_path):
    r = snakemake(tmp_path, "-n", "--cores", "8", "--config", "data_dir=/nonexistent", "download=false")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    counts = job_counts(out)
    # 2 datasets x (baseline + perlayer, uniform, signed and unipolar at b2 and b4)
    assert counts["prepare_data"] == 2 and counts["train"] == 18
    assert counts["map_crossbar"] == 20 and counts["evaluate_noise"] == 20  # baseline mapped at b2 and b4 too
    assert counts["estimate_cost"] == 20 and counts["report"] == 1
    assert counts["nas_unipolar_search"] == 2 * 2 * 2 and counts["nas_unipolar"] == 4  # 2 workers per study (full)
    assert counts["nas_unipolar_finalist"] == 4 * 4 * 2  # 4 finalists x 2 seeds per study (full)
    for ds in ("har", "cifar10"):
        for m in ("baseline", *(f"{v}/b{b}" for v in ("perlayer", "uniform", "signed", "unipolar") for b in (2, 4))):
            assert f"results/{ds}/{m}/model.pt" in out
        assert f"results/{ds}/unipolar/b2/nas/arch.json" in out
    assert not (tmp_path / "results").exists()  # a dry run creates nothing, not even the MLflow store


def test_dry_run_follows_the_config_lists(tmp_path):
    r = snakemake(
        tmp_path, "-n", "--cores", "1", "--config", "datasets=[har]", "variants=[uniform]", "device_bits=[1,3,8]"
    )
    counts = job_counts(r.stdout + r.stderr)
    assert counts["train"] == 3 and counts["prepare_data"] == 1 and counts["map_crossbar"] == 3
    assert "results/har/uniform/b3/model.pt" in r.stdout + r.stderr


#: The smoke profile: every rule runs on both datasets (1-D and 2-D convolutions) on a few hundred samples, one
#: device resolution (2 bits), in minutes. Its numbers are compared by tools/compare_results.py.
LIMITS = {"har": (600, 300, 300), "cifar10": (400, 100, 200)}
SMOKE = ["profile=smoke"]
MODELS = ("baseline", "perlayer/b2", "uniform/b2", "signed/b2", "unipolar/b2")
MAPPED = ("baseline/b2", "perlayer/b2", "uniform/b2", "signed/b2", "unipolar/b2")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data_dir):
    """One smoke-profile run of the whole current DAG for both datasets."""
    work = tmp_path_factory.mktemp("smoke")
    r = snakemake(work, "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, r


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["har", "cifar10"])
def test_smoke_run_outputs(smoke, dataset):
    work, _ = smoke
    res = work / "results"
    prov = json.loads((res / "data" / f"{dataset}.json").read_text())
    limits = LIMITS[dataset]
    assert (prov["counts"]["train"], prov["counts"]["val"], prov["counts"]["test"]) == limits
    for m in MODELS:
        metrics = json.loads((res / dataset / m / "metrics.json").read_text())
        n_classes = len(metrics["per_class_accuracy"])
        assert n_classes == {"har": 6, "cifar10": 10}[dataset]
        assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["n_test"] == limits[2]
        if dataset == "har" and m in ("baseline", "uniform/b2"):  # two epochs on 600 windows beat chance (1/6) by far
            assert metrics["test_accuracy"] > 0.4, (m, metrics["test_accuracy"])
        assert (res / dataset / m / "model.pt").stat().st_size > 1000
        assert not (res / dataset / m / "checkpoints").exists()
        log = (res / "logs" / "train" / dataset / m).with_suffix(".log").read_text()
        assert "epoch 1/2" in log and "epoch 2/2" in log and f"{dataset}/" in log  # the job's own log lines
    import pandas as pd

    for m in MAPPED:
        mapping = json.loads((res / dataset / m / "mapping.json").read_text())
        assert mapping["pair"] == (1 if m.startswith("unipolar") else 2)
        assert {"devices", "tiles", "adcs", "dacs"} <= set(mapping["total"]) and mapping["layers"]
        df = pd.read_csv(res / dataset / m / "noise.csv")
        assert list(df.columns[-6:]) == [
            "accuracy_mean",
            "accuracy_std",
            "accuracy_p5",
            "accuracy_p50",
            "accuracy_p95",
            "instances",
        ]
        assert list(df["prog_sigma"]) == [0.0, 0.02] and (df["instances"] == 3).all()
        assert df["accuracy_mean"].between(0, 1).all()
        cost = json.loads((res / dataset / m / "cost.json").read_text())
        assert cost["total"]["area_um2"] > 0 and cost["total"]["energy_pj_per_inference"] > 0
        # cell reads priced from the inputs that ran on this crossbar: below the all-inputs-on bound
        assert cost["assumptions"]["cell_activity"] == "measured"
        assert 0 < cost["total"]["energy_by_component"]["cells"] < cost["total"]["cell_energy_upper_bound_pj"]
    base = json.loads((res / dataset / "baseline/b2/cost.json").read_text())["total"]
    uni = json.loads((res / dataset / "uniform/b2/cost.json").read_text())["total"]
    assert uni["area_um2"] < base["area_um2"]  # uniform scaling: one slice, no rescale, one periphery design
    for b in (2,):  # the search's choice is what train trained
        nas_dir = res / dataset / f"unipolar/b{b}/nas"
        arch = json.loads((nas_dir / "arch.json").read_text())
        trials = pd.read_csv(nas_dir / "trials.csv")
        assert len(trials) == 2 and arch["trial"] in set(trials["trial"]) and (nas_dir / "pareto.png").exists()
        # smoke: 2 finalists x 1 seed, retrained with train.<dataset> (2 epochs); the choice is among them
        fins = [json.loads((nas_dir / "finalists" / f"rank{r}_rep0.json").read_text()) for r in (0, 1)]
        cand = {f["trial"] for f in fins if f["trial"] is not None}
        assert cand and arch["trial"] in cand and "finalists" in arch["rule"]
        assert {f["trial"] for f in arch["finalists"]} == cand
        assert all(f["epochs"] == 2 and f["seed"] == 1 for f in fins if f["trial"] is not None)
        import torch

        doc = torch.load(res / dataset / f"unipolar/b{b}/model.pt", weights_only=True)
        assert doc["arch"]["conv"] == arch["model"]["conv"] and doc["arch"]["polarity"] == arch["model"]["polarity"]
        if dataset == "har":  # the default HAR space is all-positive: every programmed weight is >= 0
            from nvmxbar.training.model_io import load_model

            net, _ = load_model(res / dataset / f"unipolar/b{b}/model.pt")
            for i, layer in enumerate(net.layers):
                assert (net.quant.weight(layer.weight, getattr(net, f"_pol{i}")) >= 0).all()
            assert all(p == {"sign": 1, "row_groups": 1, "col_groups": 1} for p in doc["arch"]["polarity"])


@pytest.mark.slow
def test_smoke_run_report(smoke):
    work, _ = smoke
    res = work / "results"
    import pandas as pd

    acc = pd.read_csv(res / "tables" / "accuracy.csv")
    assert set(acc["dataset"]) == {"har", "cifar10"} and len(acc) == 10  # 5 deployments at 2 bits, per dataset
    attribution = pd.read_csv(res / "tables" / "attribution.csv")  # the stack, baseline first, per dataset
    assert list(attribution[attribution.dataset == "har"].variant) == [
        "baseline",
        "perlayer",
        "uniform",
        "signed",
        "unipolar",
    ]
    assert (attribution.groupby("dataset").area_pct_of_baseline.first() == 100).all()
    nas = pd.read_csv(res / "tables" / "nas.csv")
    assert len(nas) == 2 and (nas["trials_complete"] + nas["trials_pruned"] == 2).all()
    assert (res / "tables" / "cost.tex").read_text().count("\\") >= 8
    sens = pd.read_csv(res / "tables" / "sensitivity.csv")
    assert set(sens["variant"]) == {"uniform", "unipolar"}
    assert sens.groupby(["dataset", "variant"]).configured.any().all()  # the run's own point is among the rows
    for ds in ("har", "cifar10"):
        for kind in ("accuracy_vs_prog_noise", "cost_breakdown", "weights", "sensitivity", "nas_pareto"):
            assert (res / "figures" / f"{kind}_{ds}.png").stat().st_size > 20_000
            assert (res / "figures" / f"{kind}_{ds}.pdf").exists()
    text = (res / "report" / "REPORT.md").read_text()
    assert "UCI HAR" in text and "CIFAR-10" in text
    assert "Where the time went" in text  # every job before the report left a benchmark file
    times = pd.read_csv(res / "tables" / "workflow_times.csv")
    assert set(times["rule"]) >= {"prepare_data", "train", "map_crossbar", "evaluate_noise", "estimate_cost"}


@pytest.mark.slow
def test_smoke_run_workflow_times(smoke):
    """benchmarks/workflow_times.py reads every job's benchmark file and Snakemake's metadata of the run."""
    work, _ = smoke
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "workflow_times.py"), str(work / "results")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    rules = ["prepare_data", "nas_unipolar_search", "nas_unipolar_finalist", "nas_unipolar", "train"]
    rules += ["map_crossbar", "evaluate_noise", "estimate_cost", "report"]
    table = r.stdout[: r.stdout.index("Total wall time")]
    assert all(re.search(rf"^{rule}\s+\d+\s", table, re.M) for rule in rules), r.stdout
    assert "times from Snakemake metadata" in r.stdout
    path = r.stdout[r.stdout.index("Critical path:") :]
    assert path.count("prepare_data") == 1 and "report" in path  # from the data to the report


@pytest.mark.slow
def test_smoke_run_is_tracked_in_mlflow(smoke, monkeypatch):
    work, _ = smoke
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'results' / 'mlflow.db'}")
    for ds in ("har", "cifar10"):
        exp = mlflow.get_experiment_by_name(f"nvmxbar-{ds}")
        assert exp.artifact_location.startswith("file://")
        # a model-training experiment: the MLflow 3 UI opens it on its runs table, not on the GenAI pages
        assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
        runs = mlflow.search_runs([exp.experiment_id], output_format="list")
        rules = sorted(r.data.tags["rule"] for r in runs)
        finalists = [
            json.loads(f.read_text()) for f in (work / "results" / ds).glob("unipolar/b*/nas/finalists/*.json")
        ]
        trained = sum(f["trial"] is not None for f in finalists)  # a slot beyond the COMPLETE trials trains nothing
        assert len(finalists) == 2 and trained >= 1
        assert {r: rules.count(r) for r in set(rules)} == {
            "prepare_data": 1,
            "train": 5,
            "map_crossbar": 5,
            "evaluate_noise": 5,
            "estimate_cost": 5,
            "report": 1,
            "nas_unipolar": 1,
            "nas_unipolar_search": 2,
            "nas_unipolar_finalist": trained,
        }
        train_ids = {r.info.run_id for r in runs if r.data.tags["rule"] == "train"}
        for r in runs:  # every downstream stage is a child of its trained model's run
            if r.data.tags["rule"] in ("map_crossbar", "evaluate_noise", "estimate_cost"):
                assert r.data.tags["mlflow.parentRunId"] in train_ids
        search_ids = {r.info.run_id for r in runs if r.data.tags["rule"] == "nas_unipolar"}
        assert all(
            r.data.tags["mlflow.parentRunId"] in search_ids
            for r in runs
            if r.data.tags["rule"] in ("nas_unipolar_search", "nas_unipolar_finalist")
        )
        sha = json.loads((work / "results" / "data" / f"{ds}.json").read_text())["source"]["sha256"]
        for r in runs:
            pruned = r.data.tags["rule"] == "nas_unipolar_search" and r.data.tags.get("optuna.state") == "PRUNED"
            assert r.info.status == ("KILLED" if pruned else "FINISHED")
            if r.data.tags["rule"] == "report":
                continue
            assert r.data.tags["dataset"] == ds and r.data.tags["data_sha256"] == sha
            # finalists train on the workflow seed + 1 + rep (smoke: 1 rep), never on the chosen network's seed
            seed = "1" if r.data.tags["rule"] == "nas_unipolar_finalist" else "0"
            assert r.data.tags["seed"] == seed and r.data.tags["git_commit"] and r.data.tags["config_hash"]
        trained = {(r.data.tags["variant"], r.data.tags["bits"]) for r in runs if r.data.tags["rule"] == "train"}
        assert trained == {
            ("baseline", "float"),
            ("perlayer", "2"),
            ("uniform", "2"),
            ("signed", "2"),
            ("unipolar", "2"),
        }


@pytest.mark.slow
def test_rerun_is_a_no_op_and_a_param_change_reruns_only_what_it_touches(smoke, data_dir):
    work, _ = smoke
    r = snakemake(work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}")
    assert "Nothing to be done" in r.stdout + r.stderr
    r = snakemake(work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", "train={har: {epochs: 3}}")
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("train") == 5 and "prepare_data" not in counts and "nas_unipolar_search" not in counts
    assert counts.get("nas_unipolar_finalist") == 2  # the finalists train with the full recipe: 2 in HAR's study
    # one more finalist per study: the new slot trains, the others and the search stay
    r = snakemake(
        work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", "nas_unipolar={finalists: {count: 3}}"
    )
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("nas_unipolar_finalist") == 2 and counts.get("nas_unipolar") == 2  # one per study
    assert "nas_unipolar_search" not in counts and "prepare_data" not in counts
    r = snakemake(
        work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", "evaluate_noise={instances: 4}"
    )
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("evaluate_noise") == 10 and "train" not in counts and "map_crossbar" not in counts
    assert counts.get("report") == 1 and "estimate_cost" not in counts
    # the drift model: the noise sweep only (the search's score never drifts)
    r = snakemake(
        work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", "evaluate_noise={drift: {nu: 0.06}}"
    )
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("evaluate_noise") == 10 and not {"nas_unipolar_search", "nas_unipolar_finalist"} & set(counts)
    # distillation from the float baseline: every quantized training of that dataset and its finalists rerun,
    # the baseline (the teacher) and the search (trials do not distill) do not
    r = snakemake(
        work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", "train={har: {distill: {alpha: 0.5}}}"
    )
    out = r.stdout + r.stderr
    counts = job_counts(out)
    assert counts.get("train") == 4 and counts.get("nas_unipolar_finalist") == 2, counts
    assert "nas_unipolar_search" not in counts and "prepare_data" not in counts
    # what the deployed models fit on: all five HAR trainings rerun; the finalists, which score on held-out
    # subjects and so never fit on them, and the search stay
    other = {"train": "train+val", "train+val": "train"}[config.load(REPO / "config.yaml")["train"]["har"]["fit_on"]]
    r = snakemake(
        work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", f"train={{har: {{fit_on: {other}}}}}"
    )
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("train") == 5 and counts.get("map_crossbar") == 5, counts
    assert not {"nas_unipolar_finalist", "nas_unipolar_search", "nas_unipolar", "prepare_data"} & set(counts)
    # train_noise for one model: that model (both datasets) retrains and nothing else does
    r = snakemake(
        work,
        "-n",
        "--cores",
        "2",
        "--config",
        *SMOKE,
        f"data_dir={data_dir}",
        "quant={train_noise: {uniform/b2: 0.01}}",
    )
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("train") == 2 and counts.get("map_crossbar") == 2 and "nas_unipolar_search" not in counts


def test_missing_data_fails_clearly_and_leaves_nothing(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    r = snakemake(tmp_path, "--cores", "1", "--config", f"data_dir={empty}", "download=false", "datasets=[har]")
    assert r.returncode != 0
    log = (tmp_path / "results" / "logs" / "prepare_data" / "har.log").read_text()
    assert "DataError" in log and str(empty) in log
    assert not (tmp_path / "results" / "data" / "har.npz").exists()
    assert not (tmp_path / "results" / "data" / "har.json").exists()

"""Real Snakemake runs of the workflow (smoke profile, CIFAR-10 cut further) on the real data, and the MLflow
store they fill."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import REPO

from nvmxbar import config, workplan

SMK = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]


def snakemake(workdir: Path, *args: str, timeout: int = 3600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(SMK + ["-d", str(workdir), *args], capture_output=True, text=True, timeout=timeout, env=env)


#: No CUDA device for the Snakemake process, whatever the machine has: the CPU-only case.
NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def job_counts(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = out[out.index("Job stats") :]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_a_bad_config_stops_snakemake_before_any_job_and_names_the_key(tmp_path):
    r = snakemake(tmp_path, "-n", "--cores", "1", "--config", "train={har: {epochs: -5}}", timeout=120)
    assert r.returncode != 0
    assert "train.har.epochs" in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()


def test_dry_run_lists_every_dataset_variant_and_bit_width(tmp_path):
    """The full DAG; without a GPU CIFAR-10 is in it only when asked for (cifar10_on_cpu=run), with the estimate."""
    r = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "8",
        "--config",
        "data_dir=/nonexistent",
        "download=false",
        "cifar10_on_cpu=run",
        env=NO_GPU,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    total, _ = workplan.cifar10_cpu_estimate(config.load(REPO / "config.yaml"), 8)
    assert "CIFAR-10 trains on the CPU (cifar10_on_cpu: run; torch sees no CUDA GPU)" in out
    assert f"about {workplan.hours(total)} of training on 8 CPU cores" in out
    counts = job_counts(out)
    # 2 datasets x (baseline + perlayer, uniform, signed and unipolar at b2 and b4) x 5 seeds
    assert counts["prepare_data"] == 2 and counts["train"] == 18 * 5
    assert counts["map_crossbar"] == 20 * 5 and counts["evaluate_noise"] == 20 * 5  # baseline mapped at b2 and b4
    assert counts["estimate_cost"] == 20 * 5 and counts["report"] == 1
    assert counts["nas_unipolar_search"] == 2 * 2 * 2 and counts["nas_unipolar"] == 4  # 2 workers per study (full)
    assert counts["nas_unipolar_finalist"] == 4 * 4 * 2  # 4 finalists x 2 seeds per study (full)
    for ds in ("har", "cifar10"):
        for m in ("baseline", *(f"{v}/b{b}" for v in ("perlayer", "uniform", "signed", "unipolar") for b in (2, 4))):
            assert all(f"results/{ds}/{m}/seed{s}/model.pt" in out for s in range(5))
        assert f"results/{ds}/unipolar/b2/nas/arch.json" in out
    assert not (tmp_path / "results").exists()  # a dry run creates nothing, not even the MLflow store


def test_dry_run_follows_the_config_lists(tmp_path):
    r = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "--config",
        "datasets=[har]",
        "variants=[uniform]",
        "device_bits=[1,3,8]",
        "seeds=[3,7]",
    )
    counts = job_counts(r.stdout + r.stderr)
    assert counts["train"] == 6 and counts["prepare_data"] == 1 and counts["map_crossbar"] == 6
    assert "results/har/uniform/b3/seed7/model.pt" in r.stdout + r.stderr
    assert "results/har/uniform/b3/seed0/model.pt" not in r.stdout + r.stderr


def test_full_profile_without_a_gpu_leaves_cifar10_out_and_says_so(tmp_path, data_dir):
    """README's `snakemake --cores 8` on a CPU-only machine: HAR alone, and a warning (before any job) with the
    estimate and the two ways to run CIFAR-10."""
    r = snakemake(tmp_path, "-n", "--cores", "2", "--config", f"data_dir={data_dir}", env=NO_GPU)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    total, _ = workplan.cifar10_cpu_estimate(config.load(REPO / "config.yaml"), 2)
    warning = next(line for line in out.splitlines() if "CIFAR-10 is left out" in line)
    assert out.index(warning) < out.index("Building DAG of jobs")  # said at the start, before any job
    assert f"about {workplan.hours(total)} on 2 CPU cores" in warning  # 167 h (7.0 days)
    assert "--profile workflow/profiles/gpu" in warning and "--config cifar10_on_cpu=run" in warning
    assert "results/cifar10/" not in out and "results/data/cifar10" not in out
    counts = job_counts(out)
    assert counts["prepare_data"] == 1 and counts["train"] == 9 * 5 and counts["nas_unipolar"] == 2
    assert not (tmp_path / "results").exists()


def test_smoke_profile_runs_cifar10_without_a_word(tmp_path, data_dir):
    r = snakemake(tmp_path, "-n", "--cores", "2", "--config", "profile=smoke", f"data_dir={data_dir}", env=NO_GPU)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "results/cifar10/baseline/seed0/model.pt" in out and "cifar10_on_cpu" not in out
    assert job_counts(out)["prepare_data"] == 2


def profile_dry_run(workdir: Path, profile: str, *config: str) -> subprocess.CompletedProcess:
    """`snakemake -n --profile workflow/profiles/<profile> --config ...` from a folder holding config.yaml, as a
    user runs it (the profile's settings must survive --config), on a machine where torch sees no GPU."""
    (workdir / "config.yaml").symlink_to(REPO / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n"]
    cmd += ["--profile", str(REPO / "workflow" / "profiles" / profile), "--config", *config]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=NO_GPU)


def test_gpu_profile_parses_and_gives_the_gpu_jobs_the_gpu_resource(tmp_path, data_dir):
    """README's `snakemake --profile workflow/profiles/gpu --config profile=smoke`, from a folder holding
    config.yaml: the profile's GPU settings survive --config; every training job asks for the one GPU. Here, with
    no CUDA device, a dry run warns (a real run stops before any job)."""
    r = profile_dry_run(tmp_path, "gpu", "profile=smoke", f"data_dir={data_dir}")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "asks for a CUDA GPU (train.accelerator: gpu, device: cuda" in out
    resources, rule = {}, None  # rule -> the resources lines of its jobs
    for line in r.stdout.splitlines():
        if m := re.fullmatch(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:"):
            resources.setdefault(rule, set()).add(line.strip())
    assert resources["train"] and all("gpu=1" in r for r in resources["train"]), resources.get("train")
    for rule in ("nas_unipolar_search", "nas_unipolar_finalist", "map_crossbar", "evaluate_noise", "estimate_cost"):
        assert all("gpu=1" in r for r in resources[rule]), rule
    for rule in ("prepare_data", "nas_unipolar", "report"):
        assert all("gpu=0" in r for r in resources[rule]), rule
    assert "results/cifar10/baseline/seed0/model.pt" in out  # a GPU run keeps CIFAR-10
    assert not (tmp_path / "results").exists()


def test_cifar10_cpu_profile_is_the_reduced_cifar10_run_with_its_estimate(tmp_path, data_dir):
    """`snakemake --profile workflow/profiles/cifar10-cpu`: CIFAR-10 alone, reduced (3 seeds x baseline, uniform and
    unipolar at 2 and 4 bits, a 4-trial search without finalists), trained on the CPU with its estimate printed."""
    r = profile_dry_run(tmp_path, "cifar10-cpu", f"data_dir={data_dir}")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "CIFAR-10 trains on the CPU (cifar10_on_cpu: run" in out and "results/har/" not in out
    counts = job_counts(out)
    assert counts["train"] == 3 * 5 and counts["nas_unipolar_search"] == 2 and "nas_unipolar_finalist" not in counts
    assert counts["evaluate_noise"] == 3 * 6 and counts["prepare_data"] == 1
    assert not (tmp_path / "results").exists()


#: The smoke profile: every rule runs on both datasets (1-D and 2-D convolutions) on a few hundred samples, one
#: device resolution (2 bits), in minutes. Its numbers are compared by tools/compare_results.py.
LIMITS = {"har": (600, 300, 300), "cifar10": (1000, 100, 200)}
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
        metrics = json.loads((res / dataset / m / "seed0" / "metrics.json").read_text())
        assert metrics["seed"] == 0 and metrics["threads"] == 1  # train.num_threads, whatever --cores is
        n_classes = len(metrics["per_class_accuracy"])
        assert n_classes == {"har": 6, "cifar10": 10}[dataset]
        assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["n_test"] == limits[2]
        if dataset == "har" and m in ("baseline", "uniform/b2"):  # two epochs on 600 windows beat chance (1/6) by far
            assert metrics["test_accuracy"] > 0.4, (m, metrics["test_accuracy"])
        if dataset == "cifar10" and m in ("baseline", "unipolar/b2"):  # 2 x 32 steps: above chance (0.1; 200 test
            # images: 0.15 is 2.4 binomial sd above it). The searched all-positive net is shallow (docs/FINDINGS.md)
            assert metrics["test_accuracy"] >= 0.15, (m, metrics["test_accuracy"])
        assert (res / dataset / m / "seed0" / "model.pt").stat().st_size > 1000
        assert not (res / dataset / m / "seed0" / "checkpoints").exists()
        log = (res / "logs" / "train" / dataset / m / "seed0.log").read_text()
        assert "epoch 1/2" in log and "epoch 2/2" in log and f"{dataset}/" in log  # the job's own log lines
    import pandas as pd

    for m in MAPPED:
        mapping = json.loads((res / dataset / m / "seed0" / "mapping.json").read_text())
        offset = m == "baseline/b2" and mapping["baseline_candidates"]["deployed"] == "offset"
        assert mapping["pair"] == (1 if m.startswith("unipolar") or offset else 2)
        assert {"devices", "tiles", "adcs", "dacs"} <= set(mapping["total"]) and mapping["layers"]
        # the operating point: every column at full drive on the chip's device (rram_wan2022: 1-40 uS at 0.2 V)
        t = mapping["total"]
        assert 0 < t["mean_column_current_ua"] <= t["max_column_current_ua"] <= 0.2 * 40.0 * 128
        assert t["column_current_within_limit"] == (t["max_column_current_ua"] <= t["column_current_limit_ua"])
        if m == "baseline/b2":  # slices combine by shifts; the fit tries below its start when the start is within
            assert all(isinstance(k, int) for layer in mapping["converters"]["slice_shifts"] for k in layer)
            fit = mapping["baseline_adc_fit"]
            target = fit["float_val_accuracy"] - fit["tolerance_pct"] / 100
            start = fit["start"]
            for t_ in fit["tries"]:
                at_start = t_["adc_bits"] == start["adc_bits"] and t_["weight_bits"] == start["weight_bits"]
                if at_start and t_["val_accuracy"] >= target:
                    same = [u for u in fit["tries"] if u["encoding"] == t_["encoding"] and u["adc_bits"] is not None]
                    assert min(u["adc_bits"] for u in same) < start["adc_bits"], fit["tries"]
        df = pd.read_csv(res / dataset / m / "seed0" / "noise.csv")
        assert list(df.columns[-6:]) == [
            "accuracy_mean",
            "accuracy_std",
            "accuracy_p5",
            "accuracy_p50",
            "accuracy_p95",
            "instances",
        ]
        assert list(df["setting"]) == ["sweep", "sweep", "extra", "realistic"]
        assert list(df["instances"]) == [3, 3, 1, 3]  # wires alone: every chip the same, one simulated
        assert list(df["prog_sigma"]) == [0.0, 1.0, 0.0, 1.0] and list(df["wire_scale"]) == [0.0, 0.0, 1.0, 1.0]
        real = df.iloc[-1]  # the realistic chip on rram_wan2022: read noise and converter error on, no drift model
        assert (real.read_sigma, real.adc_error_scale, real.drift_t_s) == (1.0, 1.0, 0.0)
        assert df["accuracy_mean"].between(0, 1).all()
        cost = json.loads((res / dataset / m / "seed0" / "cost.json").read_text())
        assert cost["total"]["area_um2"] > 0 and cost["total"]["energy_pj_per_inference"] > 0
        # cell reads priced from the inputs that ran on this crossbar: below the all-inputs-on bound
        assert cost["assumptions"]["cell_activity"] == "measured"
        assert 0 < cost["total"]["energy_by_component"]["cells"] < cost["total"]["cell_energy_upper_bound_pj"]
        assert cost["total"]["latency_ns_per_inference"] > 0
        for part in ("area_by_component", "energy_by_component"):  # the digital side priced too
            assert {"activation", "pooling", "accumulators", "buffers"} <= set(cost["total"][part])
    base = json.loads((res / dataset / "baseline/b2/seed0/cost.json").read_text())["total"]
    uni = json.loads((res / dataset / "uniform/b2/seed0/cost.json").read_text())["total"]
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

        doc = torch.load(res / dataset / f"unipolar/b{b}/seed0/model.pt", weights_only=True)
        assert doc["arch"]["conv"] == arch["model"]["conv"] and doc["arch"]["polarity"] == arch["model"]["polarity"]
        if dataset == "har":  # the default HAR space is all-positive: every programmed weight is >= 0
            from nvmxbar.training.model_io import load_model

            net, _ = load_model(res / dataset / f"unipolar/b{b}/seed0/model.pt")
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
    assert (acc["n_seeds"] == 1).all() and acc["test_accuracy_std"].isna().all()  # smoke: one seed, no spread
    assert acc["realistic_chip_mean"].between(0, 1).all() and acc["realistic_chip_std"].isna().all()  # contract
    per_seed = pd.read_csv(res / "tables" / "accuracy_per_seed.csv")
    assert len(per_seed) == 10 and set(per_seed["seed"]) == {0}
    merged = acc.merge(per_seed, on=["dataset", "variant", "bits"])
    assert (merged["test_accuracy_mean"] - merged["test_accuracy"]).abs().max() < 1e-12
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
        kinds = ("accuracy_vs_prog_noise", "accuracy_vs_nonideal", "accuracy_seeds", "cost_breakdown", "weights")
        kinds += ("sensitivity", "nas_pareto")
        for kind in kinds:
            assert (res / "figures" / f"{kind}_{ds}.png").stat().st_size > 20_000
            assert (res / "figures" / f"{kind}_{ds}.pdf").exists()
    text = (res / "report" / "REPORT.md").read_text()
    assert "UCI HAR" in text and "CIFAR-10" in text
    times = text.split("## Where the time went")[1].split("\n## ")[0]  # the declared benchmark files, per rule
    assert all(f"| {rule} |" in times for rule in ("prepare_data", "train", "map_crossbar", "estimate_cost"))
    claims = text.split("## The paper's claims")[1].split("\n## ")[0]
    # a claim without a number is *run* when both widths ran; the smoke profile has 2-bit devices alone
    assert "**not measured**" in claims.split("4-bit and 2-bit devices")[1].splitlines()[0]
    assert "**reproduced**" not in claims  # one seed: no interval, so nothing is called reproduced


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
            "group": 5,  # one parent per trained model, over its seeds
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
        group_ids = {r.info.run_id for r in runs if r.data.tags["rule"] == "group"}
        for r in runs:  # every training is a child of its model's group run, which metrics.json names
            if r.data.tags["rule"] == "train":
                assert r.data.tags["mlflow.parentRunId"] in group_ids
                m = r.data.tags["variant"] + ("" if r.data.tags["bits"] == "float" else f"/b{r.data.tags['bits']}")
                doc = json.loads((work / "results" / ds / m / "seed0" / "metrics.json").read_text())
                assert doc["mlflow_group_run_id"] == r.data.tags["mlflow.parentRunId"]
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
            if r.data.tags["rule"] in ("report", "group"):
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
    # the drift compensation: the noise sweep only (the search's score never drifts)
    r = snakemake(
        work,
        "-n",
        "--cores",
        "2",
        "--config",
        *SMOKE,
        f"data_dir={data_dir}",
        "evaluate_noise={drift: {compensation: column}}",
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
    # train_wires likewise (config.yaml trains HAR's all-positive 2-bit model at 1 x): that model alone retrains
    wires = "quant={train_wires: {har/unipolar/b2: 2.0}}"
    r = snakemake(work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", wires)
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("train") == 1 and counts.get("map_crossbar") == 1 and "nas_unipolar_search" not in counts
    models = [o for o in re.findall(r"output: (\S+)", r.stdout + r.stderr) if "model.pt" in o]
    assert models == ["results/har/unipolar/b2/seed0/model.pt,"], models
    # one more seed: its trainings and their deployments only; the search and the seed-0 jobs stay
    r = snakemake(work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", "seeds=[0,1]")
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("train") == 10 and counts.get("evaluate_noise") == 10 and counts.get("report") == 1, counts
    assert not {"nas_unipolar_finalist", "nas_unipolar_search", "nas_unipolar", "prepare_data"} & set(counts)
    assert "seed0/" not in "".join(re.findall(r"output: (\S+)", r.stdout + r.stderr))


#: The report's rules: collect -> tables, one figure per kind, sensitivity -> render (workflow/rules/report.smk).
REPORT_RULES = {"report_collect", "report_tables", "report_figure", "report_sensitivity", "report"}


def rerun_jobs(smoke, data_dir, *config: str) -> tuple[dict[str, int], set[str], list[str]]:
    """A dry run on the finished smoke run with ``config`` changed: (rule -> job count outside the report, the
    report's rules that rerun, output paths)."""
    work, _ = smoke
    r = snakemake(work, "-n", "--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", *config)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    counts = {k: v for k, v in job_counts(out).items() if k not in ("all", "total")}
    print(f"{' '.join(config)}: {counts}")  # the job list of the closing note (pytest -s)
    report = {k for k in counts if k in REPORT_RULES}
    return {k: v for k, v in counts.items() if k not in REPORT_RULES}, report, re.findall(r"output: (\S+)", out)


@pytest.mark.slow
def test_rerun_scope_follows_the_settings_each_stage_reads(smoke, data_dir):
    """Each rule's params are the settings its stage consumes (nvmxbar.settings.params), so a key reruns exactly
    what reads it; the report reruns what reads the changed files (the sensitivity table: mapping and cost)."""
    everything_but_sensitivity = REPORT_RULES - {"report_sensitivity"}
    # the baseline's ADC-bit fit: the baseline's mappings and what follows them; no search, finalist or training
    counts, report, outs = rerun_jobs(smoke, data_dir, "map_crossbar={baseline_fit_tolerance_pct: 2.0}")
    assert counts == {"map_crossbar": 2, "evaluate_noise": 2, "estimate_cost": 2}, counts
    assert report == REPORT_RULES
    assert all("/baseline/b2/" in o for o in outs if "/seed0/" in o), outs
    # the Monte Carlo: the noise jobs and the report's accuracy side
    counts, report, _ = rerun_jobs(smoke, data_dir, "evaluate_noise={instances: 4}")
    assert counts == {"evaluate_noise": 10} and report == everything_but_sensitivity, (counts, report)
    # the cell-activity measurement: the cost jobs and the report (the search prices area alone)
    counts, report, _ = rerun_jobs(smoke, data_dir, "estimate_cost={activity_samples: 128}")
    assert counts == {"estimate_cost": 10} and report == REPORT_RULES, (counts, report)
    # the ADC sharing: every mapping and price, and the search (its area objective counts ADCs), then what the
    # search's choice feeds (signed, unipolar); not the trainings of baseline, perlayer and uniform, nor the data
    counts, _, outs = rerun_jobs(smoke, data_dir, "chip={adc_mux: 4}")
    assert counts["map_crossbar"] == 10 and counts["estimate_cost"] == 10 and counts["nas_unipolar_search"] == 2
    assert counts["train"] == 4 and "prepare_data" not in counts, counts
    assert not [o for o in outs if o.endswith("model.pt") and re.search(r"/(baseline|perlayer|uniform)/", o)]
    # the ADC resolution: every quantized training (it trains the ADC) and the baseline's mapping; not the
    # baseline's training, nor the data
    counts, _, outs = rerun_jobs(smoke, data_dir, "chip={adc_bits: 5}")
    assert counts["train"] == 8 and counts["map_crossbar"] == 10 and "prepare_data" not in counts, counts
    assert not [o for o in outs if o.endswith("baseline/seed0/model.pt")]


@pytest.mark.slow
def test_one_seed_of_one_deployment_reruns_alone(smoke, data_dir, monkeypatch):
    """A single-rule run for another seed trains, maps and evaluates that seed only, under the same MLflow group."""
    work, _ = smoke
    res = work / "results"
    target = "results/har/uniform/b2/seed1/noise.csv"
    r = snakemake(work, "--cores", "2", target, "--config", *SMOKE, f"data_dir={data_dir}", "seeds=[0,1]")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ran = re.findall(r"^(?:local)?rule (\w+):", r.stdout + r.stderr, re.M)
    assert sorted(ran) == ["evaluate_noise", "map_crossbar", "train"], ran
    import torch

    s0, s1 = (json.loads((res / "har/uniform/b2" / f"seed{s}" / "metrics.json").read_text()) for s in (0, 1))
    assert s1["seed"] == 1 and s1["threads"] == s0["threads"] == 1
    w0, w1 = (torch.load(res / "har/uniform/b2" / f"seed{s}" / "model.pt", weights_only=True) for s in (0, 1))
    assert any(not torch.equal(w0["state_dict"][k], w1["state_dict"][k]) for k in w0["state_dict"])
    assert s1["mlflow_group_run_id"] == s0["mlflow_group_run_id"] is not None  # one parent, two seed runs
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{res / 'mlflow.db'}")
    child = mlflow.get_run(s1["mlflow_run_id"])
    assert child.data.tags["mlflow.parentRunId"] == s0["mlflow_group_run_id"] and child.data.tags["seed"] == "1"


def test_missing_data_fails_clearly_and_leaves_nothing(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    r = snakemake(tmp_path, "--cores", "1", "--config", f"data_dir={empty}", "download=false", "datasets=[har]")
    assert r.returncode != 0
    log = (tmp_path / "results" / "logs" / "prepare_data" / "har.log").read_text()
    assert "DataError" in log and str(empty) in log
    assert not (tmp_path / "results" / "data" / "har.npz").exists()
    assert not (tmp_path / "results" / "data" / "har.json").exists()


@pytest.mark.slow
def test_test_labels_cannot_influence_any_choice(smoke, data_dir, tmp_path):
    """Permute the HAR test labels after prepare_data and rerun everything that chooses or trains: the search,
    its finalists and arch.json, every trained weight, the validation accuracies and the baseline's ADC fit stay
    bitwise the same; only the test accuracies move. The test split is touched only to report."""
    import numpy as np
    import torch

    ref = smoke[0] / "results"
    work = tmp_path / "permuted"
    args = ["--cores", "2", "--config", *SMOKE, f"data_dir={data_dir}", "datasets=[har]"]
    r = snakemake(work, "results/data/har.npz", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    npz = work / "results" / "data" / "har.npz"
    with np.load(npz, allow_pickle=False) as d:
        arrays = dict(d)
    y = arrays["y_test"]
    arrays["y_test"] = np.random.default_rng(1).permutation(y)
    assert (arrays["y_test"] != y).mean() > 0.5
    np.savez_compressed(npz, **arrays)
    targets = [f"results/har/{m}/seed0/model.pt" for m in MODELS] + ["results/har/baseline/b2/seed0/mapping.json"]
    r = snakemake(work, *targets, *args)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = work / "results"

    def doc(root, rel, drop=("mlflow_run_id", "wall_time_s", "created", "run_id")):
        d = json.loads((root / rel).read_text())
        return {k: v for k, v in d.items() if k not in drop and "time" not in k}

    nas = "har/unipolar/b2/nas"
    assert doc(res, f"{nas}/arch.json") == doc(ref, f"{nas}/arch.json")
    for f in sorted((ref / nas / "finalists").glob("*.json")):
        a, b = doc(res, f"{nas}/finalists/{f.name}"), doc(ref, f"{nas}/finalists/{f.name}")
        assert {k: v for k, v in a.items() if "test" not in k} == {k: v for k, v in b.items() if "test" not in k}
    moved = 0
    for m in MODELS:
        a, b = (torch.load(root / "har" / m / "seed0" / "model.pt", weights_only=True) for root in (res, ref))
        assert a["state_dict"].keys() == b["state_dict"].keys()
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]), m
        ma, mb = (json.loads((root / "har" / m / "seed0" / "metrics.json").read_text()) for root in (res, ref))
        assert ma["val_accuracy"] == mb["val_accuracy"] and ma["selected_epoch"] == mb["selected_epoch"]
        moved += ma["test_accuracy"] != mb["test_accuracy"]
    assert moved == len(MODELS)  # the permutation reached the test split, and only the reports saw it
    ma, mb = (json.loads((root / "har/baseline/b2/seed0/mapping.json").read_text()) for root in (res, ref))
    assert ma["chip"] == mb["chip"]  # the ADC bits fitted on validation data

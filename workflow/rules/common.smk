# Shared set-up: the validated config (CFG), MLflow, and the list of targets.
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: jobs share the cores, and a spinning pool of one job starves the
# others (measured: a 2-thread noisy forward 100x slower next to another job; benchmarks/noisy_forward.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # the package works without `pip install -e .` too

import torch
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from nvmxbar import settings, tracking, workplan
from nvmxbar.chip import Chip
from nvmxbar.report.kinds import figure_kinds
from nvmxbar.core.cost_units import DEFAULT_CONSTANTS as COST_CONSTANTS
from nvmxbar.workflow import ConfigError, load_config

try:
    CFG = load_config(
        config
    )  # profile selected, defaults filled; an error names the key
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# ------------------------------------------------------------------ GPU, and CIFAR-10 without one
# A CUDA GPU in this (the Snakemake) process. On a cluster the jobs' nodes may differ: train.accelerator gpu and
# device cuda then say so explicitly.
CUDA = torch.cuda.is_available()
ASKS_GPU = [
    key
    for key, value in (
        ("train.accelerator: gpu", CFG["train"]["accelerator"] == "gpu"),
        ("device: cuda", CFG["device"] == "cuda"),
    )
    if value
]
NO_GPU = (
    f"the config asks for a CUDA GPU ({', '.join(ASKS_GPU)}; e.g. --profile workflow/profiles/gpu) but torch "
    f"{torch.__version__} sees none here (torch.cuda.is_available() is False)"
    if ASKS_GPU and not CUDA
    else None
)
# a local run stops in onstart (below); a dry run or a cluster's goes on
if NO_GPU and workflow.is_main_process:
    logger.warning(f"nvmxbar: warning: {NO_GPU}")


def job_gpus(*uses):
    """The `gpu` resource of a job that trains ('train') and/or simulates crossbars ('simulate'): 1 when one of
    them runs on the GPU as configured, else 0. `--resources gpu=1` (workflow/profiles/gpu) then runs the GPU
    jobs one at a time with CPU jobs beside them; on a CPU-only machine every job has gpu=0. SLURM's executor
    plugin requests a GPU (--gpus) for gpu=1."""
    setting = {"train": CFG["train"]["accelerator"], "simulate": CFG["device"]}
    return int(any(settings.on_gpu(setting[use], CUDA) for use in uses))


try:
    CORES = int(workflow.cores)  # --cores; a cluster executor may leave it unset
except (WorkflowError, TypeError, ValueError):
    CORES = os.cpu_count() or 1
# CIFAR-10 at full scale on CPU cores is days (nvmxbar.workplan): config cifar10_on_cpu. A job that Snakemake
# re-parses this file for (a cluster job; envvars passes the variable on) plans as the main process did.
if workflow.is_main_process:
    os.environ["NVMXBAR_PLAN"] = f"{int(CUDA)} {CORES}"


envvars:
    "NVMXBAR_PLAN",


_cuda, _cores = os.environ["NVMXBAR_PLAN"].split()
CIFAR10 = workplan.cifar10_plan(CFG, int(_cores), _cuda == "1")
# said before the DAG is built, so before any job
if CIFAR10.message and workflow.is_main_process:
    logger.warning(CIFAR10.message)
if not CIFAR10.run:
    CFG["datasets"] = [ds for ds in CFG["datasets"] if ds != "cifar10"]
    if not CFG["datasets"]:
        raise WorkflowError(
            "datasets holds CIFAR-10 alone, which this run leaves out (above); run it with "
            "--config cifar10_on_cpu=run or on a GPU machine"
        )
# REPORT.md says what was left out, and why
REPORT_NOTES = ([CIFAR10.note] if CIFAR10.note else []) + list(
    workplan.reduced_datasets(CFG).values()
)
# the profile as REPORT.md names it: "full (reduced)" when a dataset trains on subsets
REPORT_PROFILE = CFG["profile"] + (
    " (reduced)" if workplan.reduced_datasets(CFG) else ""
)

# ------------------------------------------------------------------ the settings every stage consumes, built once
# A rule's params are the settings its stage reads, as plain data (settings.params): a config key reruns exactly
# the jobs whose settings hold it (tests/workflow/test_rerun_scope.py).
CHIP = Chip.from_config(CFG["chip"])
COST = settings.CostSettings.from_config(CFG["estimate_cost"])
# the baseline prices its candidates as estimate_cost prices them
MAP = settings.MapSettings.from_config(CFG["map_crossbar"], CHIP, COST.pricing)
MONTE_CARLO = settings.MonteCarlo.from_config(CFG["evaluate_noise"])
SCORE = settings.Score.from_config(CFG["nas_unipolar"]["score"])
P = settings.params


def quant_params(variant, bits):
    """The quantizer of one model (None for the float baseline), with the part of the chip training simulates."""
    q = settings.QuantSettings.from_config(variant, bits, CFG["quant"], CHIP)
    return None if q is None else P(q)


def train_wires_params(dataset, variant, bits):
    """quant.train_wires of one model, on the chip and bias placement it is mapped with (None: trained without)."""
    w = settings.TrainWires.from_config(
        dataset, variant, bits, CFG["quant"], CHIP, CFG["map_crossbar"]
    )
    return None if w is None else P(w)


def chip_record(variant):
    """What model.pt records of the chip (None for the float baseline, which trains without one)."""
    return None if variant == "baseline" else CHIP.trained()


RESULTS = "results"
MLFLOW_URI = tracking.configure(
    CFG["mlflow"]["tracking_uri"], RESULTS
)  # exported: every job logs to the same store


wildcard_constraints:
    dataset="|".join(["har", "cifar10"]),
    model=r"baseline|(perlayer|uniform|signed|unipolar)/b\d+",
    variant="baseline|perlayer|uniform|signed|unipolar",
    bits=r"\d+",
    worker=r"\d+",
    rank=r"\d+",
    rep=r"\d+",
    seed=r"\d+",


onstart:
    # before any job and any file: a local run that asks for a GPU it does not have (a cluster's nodes may)
    if NO_GPU and workflow.local_exec:
        raise WorkflowError(
            f"{NO_GPU}. Run on a machine with one, or leave train.accelerator and device at auto."
        )
    tracking.ensure_experiments(
        {ds: experiment(ds) for ds in CFG["datasets"]}, RESULTS
    )
    print(
        f"nvmxbar: profile={CFG['profile']}  MLflow store: {MLFLOW_URI}",
        file=sys.stderr,
    )


SEEDS = CFG[
    "seeds"
]  # every deployed model is trained, mapped, evaluated and costed once per seed


# Rough wall time of one job in minutes (the `runtime` resource, e.g. SLURM --time), on CPU: HAR from the full
# run's benchmark files (docs/FINDINGS.md, Run time), with room; CIFAR-10 from nvmxbar.workplan's measured
# throughput, twice over. A GPU run finishes well inside them.
HAR_MINUTES = {"train": 30, "search": 60, "finalist": 30}


def runtime_train(wc):
    if wc.dataset == "har":
        return HAR_MINUTES["train"]
    variant = parse_model(wc.model)[0]
    return workplan.cifar10_job_minutes(CFG, variant, CFG["train"]["num_threads"])


def runtime_nas(job):
    """Of a search worker ('search') or a finalist ('finalists')."""
    threads = CFG["nas_unipolar"]["threads_per_worker"]
    return lambda wc: (
        HAR_MINUTES["search" if job == "search" else "finalist"]
        if wc.dataset == "har"
        else workplan.cifar10_job_minutes(CFG, job, threads)
    )


def job_threads(n):
    """Threads of a compute job: n, but 1 in the smoke profile, whose jobs are mostly single-threaded imports
    (two such jobs on two cores finish sooner than one job holding both)."""
    return 1 if CFG["profile"] == "smoke" else n


def experiment(dataset):
    """The MLflow experiment of a dataset: <mlflow.experiment_prefix>-<dataset>."""
    return tracking.experiment_name(CFG["mlflow"]["experiment_prefix"], dataset)


def model_tags(dataset=None):
    """The trained-model folders of one dataset: 'baseline' and '<variant>/b<bits>'."""
    tags = []
    for variant in CFG["variants"]:
        if variant == "baseline":
            tags.append("baseline")
        else:
            tags += [f"{variant}/b{b}" for b in CFG["device_bits"]]
    return tags


def parse_model(model):
    """'baseline' -> ('baseline', None); 'uniform/b4' -> ('uniform', 4)."""
    if model == "baseline":
        return "baseline", None
    variant, bits = re.fullmatch(r"(\w+)/b(\d+)", model).groups()
    return variant, int(bits)


def distills(dataset):
    """Quantized trainings of this dataset learn from its float baseline (train.<dataset>.distill.alpha > 0)."""
    return float(CFG["train"][dataset]["distill"]["alpha"]) > 0


def teacher(wc):
    """Input of a quantized training that distills: the dataset's float baseline of the same seed (a NAS
    finalist, which has no seed wildcard: of the first of `seeds`)."""
    seed = wc.get("seed", SEEDS[0])
    return (
        [f"{RESULTS}/{wc.dataset}/baseline/seed{seed}/model.pt"]
        if distills(wc.dataset)
        else []
    )


def recipe(dataset, variant, **changes):
    """train.<dataset> as a training of this variant reads it (settings.Recipe: the baseline never distills)."""
    return replace(
        settings.Recipe.from_config(CFG["train"][dataset], variant), **changes
    )


def finalist_recipe(dataset):
    """A NAS finalist's training: the unipolar recipe on the training split alone (it is scored on validation
    data), over nas_unipolar.finalists.epochs when set."""
    epochs = CFG["nas_unipolar"]["finalists"]["epochs"]
    return P(
        recipe(
            dataset,
            "unipolar",
            fit_on="train",
            epochs=epochs or CFG["train"][dataset]["epochs"],
        )
    )


def search_recipe(dataset):
    """The search trials' recipe: nas_unipolar.epochs, no distillation, the training split."""
    return P(
        recipe(
            dataset,
            "unipolar",
            fit_on="train",
            distill=None,
            epochs=CFG["nas_unipolar"]["epochs"],
        )
    )


def model_dir(wc):
    """Folder of the trained model (of seed {seed}) a mapping uses: the float baseline serves every device
    resolution."""
    model = "baseline" if wc.variant == "baseline" else f"{wc.variant}/b{wc.bits}"
    return f"{model}/seed{wc.seed}"


#: The cost constants estimate_cost prices with: the configured file, else the packaged one (an input of its jobs).
COST_CONSTANTS_FILE = CFG["estimate_cost"]["constants"] or str(COST_CONSTANTS)


def pricing_inputs(wc):
    """The cost constants a mapping reads: the baseline prices its fitted candidates with estimate_cost's, so an
    edit of them reruns its mapping; the other variants' mappings price nothing."""
    return [COST_CONSTANTS_FILE] if wc.variant == "baseline" else []


def mapped(dataset):
    """'<variant>/b<bits>' for every deployment evaluated on crossbars."""
    return [f"{v}/b{b}" for v in CFG["variants"] for b in CFG["device_bits"]]


def all_outputs():
    out = []
    for ds in CFG["datasets"]:
        out.append(f"{RESULTS}/data/{ds}.json")
        out += [
            f"{RESULTS}/{ds}/{m}/seed{s}/metrics.json"
            for m in model_tags(ds)
            for s in SEEDS
        ]
        out += [
            f"{RESULTS}/{ds}/{m}/seed{s}/{f}"
            for m in mapped(ds)
            for s in SEEDS
            for f in ("noise.csv", "cost.json")
        ]
    out.append(f"{RESULTS}/report/REPORT.md")
    return out


# ------------------------------------------------------------------ inputs of the nas_unipolar rules
NAS = f"{RESULTS}/{{dataset}}/unipolar/b{{bits}}/nas"
# what the search itself reads (its score and recipe are params of their own); choosing among its trials
# (finalists, margin) and how many workers share it must not rerun it
SEARCH_KEYS = ("trials", "epochs", "objective", "pruning", "startup_trials", "storage")
# what the selection (rule nas_unipolar) reads
SELECTION_KEYS = (
    "search",
    "polarity",
    "objective",
    "selection_margin",
    "score",
    "epochs",
)


def nas_workers(wc):
    return (
        [
            f"{RESULTS}/{wc.dataset}/unipolar/b{wc.bits}/nas/worker{w}.json"
            for w in range(CFG["nas_unipolar"]["workers"])
        ]
        if CFG["nas_unipolar"]["search"]
        else []
    )


def nas_finalists(wc):
    if not CFG["nas_unipolar"]["search"]:
        return []
    fin = CFG["nas_unipolar"]["finalists"]
    return [
        f"{RESULTS}/{wc.dataset}/unipolar/b{wc.bits}/nas/finalists/rank{r}_rep{i}.json"
        for r in range(fin["count"])
        for i in range(fin["seeds"])
    ]


# ------------------------------------------------------------------ inputs of rule prepare_data
# ------------------------------------------------------------------ the identity of a dataset's source
# The source is no input of prepare_data (an input reruns by mtime: a touched or re-copied data folder would rerun
# the whole DAG). Its identity is its content: the digest below is a params entry, so Snakemake's params trigger
# reruns prepare_data, and all that follows, exactly when a file's content changes (docs/DATA.md).
from nvmxbar.data import DataError, find_source
from nvmxbar.data.sources import DOWNLOAD_SHA256, content_sha256

# each file's digest under its size, mtime, ctime and inode; a dry run writes nothing
DIGEST_CACHE = f"{RESULTS}/data/source-digests.json"
SOURCE_SHA256 = {}  # per dataset, once per Snakemake process


def source_sha256(dataset):
    """The content digest of the source the job will read. With no source found, that of the official archive
    the job downloads (so the run after a download reruns nothing); with a source the job cannot read, a value
    that says so (the job then stops with the reader's error)."""
    if dataset not in SOURCE_SHA256:
        try:
            source = find_source(dataset, CFG["data_dir"], download=False)
        except DataError:  # absent: the job downloads it, or says where it looked
            SOURCE_SHA256[dataset] = DOWNLOAD_SHA256[dataset]
        else:
            try:
                SOURCE_SHA256[dataset] = content_sha256(
                    source, cache=None if workflow.dryrun else DIGEST_CACHE
                )
            except DataError as err:
                SOURCE_SHA256[dataset] = f"unreadable: {err}"
    return SOURCE_SHA256[dataset]


# ------------------------------------------------------------------ inputs and outputs of the report rules
# The unipolar architecture search is reported (tables/nas.*, figures/nas_pareto_*) only when that variant runs.
REPORT_NAS = "unipolar" in CFG["variants"]
REPORT_FIGURES = figure_kinds(
    CFG["variants"]
)  # nvmxbar.report.kinds.KINDS (+ nas_pareto with unipolar)
# the paper's techniques against the baseline in the sensitivity table (the attribution table holds the ablations)
REPORT_SENSITIVITY_VARIANTS = [
    v for v in CFG["variants"] if v not in ("perlayer", "signed")
]
REPORT_TABLES = [
    "accuracy",
    "accuracy_per_seed",
    "comparisons",
    "cost",
    "attribution",
    "nonideal",
    "nonideal_comparisons",
] + (["nas"] if REPORT_NAS else [])
REPORT_COLLECTED = f"{RESULTS}/report/collected.pkl"
REPORT_TABLE_FRAMES = f"{RESULTS}/report/tables.pkl"


def report_deployments(variants=None):
    """(dataset, variant, bits, seed) of every deployment and seed, in the order of report_inputs."""
    return [
        (ds, v, int(b), int(s))
        for ds in CFG["datasets"]
        for v in CFG["variants"]
        for b in CFG["device_bits"]
        for s in SEEDS
        if variants is None or v in variants
    ]


def report_inputs(name, variants=None):
    """<name> of every deployment and seed (report_deployments' order)."""
    return [
        f"{RESULTS}/{ds}/{v}/b{b}/seed{s}/{name}"
        for ds, v, b, s in report_deployments(variants)
    ]


def report_models():
    """(dataset, model, seed) of every trained model (the float baseline serves every bits)."""
    return [
        (ds, m, int(s)) for ds in CFG["datasets"] for m in model_tags(ds) for s in SEEDS
    ]


def report_nas():
    """(dataset, bits) of every unipolar search; empty without the unipolar variant."""
    if not REPORT_NAS:
        return []
    return [(ds, int(b)) for ds in CFG["datasets"] for b in CFG["device_bits"]]


def nas_inputs(name):
    """<name> (trials.csv, pareto.csv, arch.json) of every search (report_nas' order)."""
    return [f"{RESULTS}/{ds}/unipolar/b{b}/nas/{name}" for ds, b in report_nas()]


def report_benchmarks():
    """The benchmark files of the jobs whose outputs the report reads, by rule (REPORT.md's time table)."""
    out = {
        "prepare_data": [
            f"{RESULTS}/benchmarks/prepare_data/{ds}.tsv" for ds in CFG["datasets"]
        ],
        "train": [
            f"{RESULTS}/benchmarks/train/{ds}/{m}/seed{s}.tsv"
            for ds, m, s in report_models()
        ],
    }
    for stage in ("map_crossbar", "evaluate_noise", "estimate_cost"):
        out[stage] = [
            f"{RESULTS}/benchmarks/{stage}/{ds}/{v}/b{b}/seed{s}.tsv"
            for ds, v, b, s in report_deployments()
        ]
    out["nas_unipolar"] = [
        f"{RESULTS}/benchmarks/nas_unipolar/{ds}/b{b}.tsv" for ds, b in report_nas()
    ]
    return out


def figure_code(wildcards):
    """The module that draws one figure kind: a change to it reruns that kind's job (and the render) alone."""
    return str(
        Path(workflow.basedir)
        / "src"
        / "nvmxbar"
        / "report"
        / f"figure_{wildcards.kind}.py"
    )


def figure_inputs(wildcards):
    """What a figure kind reads besides the collected frames."""
    return {
        "accuracy_seeds": {"tables": REPORT_TABLE_FRAMES},
        "sensitivity": {"sensitivity": f"{RESULTS}/tables/sensitivity.csv"},
    }.get(wildcards.kind, {})


FIGURE_TITLES = {
    "accuracy_vs_prog_noise": "Accuracy vs programming noise",
    "accuracy_vs_nonideal": "Accuracy under IR drop and converter error",
    "accuracy_seeds": "Accuracy over seeds",
    "cost_breakdown": "Area and energy by component",
    "weights": "Weight codes and conductances",
    "sensitivity": "Sensitivity of the savings",
    "nas_pareto": "Unipolar architecture search",
}


wildcard_constraints:
    kind="|".join(REPORT_FIGURES),

# Shared set-up: the validated config (CFG), MLflow, and the list of targets.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # the package works without `pip install -e .` too

from snakemake.exceptions import WorkflowError
from nvmxbar import config as nvconfig, tracking

try:
    CFG = nvconfig.validate(config)  # profile selected, defaults filled; an error names the key
except nvconfig.ConfigError as err:
    raise WorkflowError(str(err)) from None

RESULTS = "results"
MLFLOW_URI = tracking.configure(CFG, RESULTS)  # exported: every job logs to the same store


wildcard_constraints:
    dataset="|".join(["har", "cifar10"]),
    model=r"baseline|(uniform|unipolar)/b\d+",
    variant="baseline|uniform|unipolar",
    bits=r"\d+",
    worker=r"\d+",
    rank=r"\d+",
    rep=r"\d+",


onstart:
    tracking.ensure_experiments(CFG, RESULTS, CFG["datasets"])
    print(f"nvmxbar: profile={CFG['profile']}  MLflow store: {MLFLOW_URI}", file=sys.stderr)


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
    variant, bits = model.split("/b")
    return variant, int(bits)


def distills(dataset):
    """Quantized trainings of this dataset learn from its float baseline (train.<dataset>.distill.alpha > 0)."""
    return float(CFG["train"][dataset]["distill"]["alpha"]) > 0


def teacher(wc):
    """Input of a quantized training that distills: the dataset's float baseline."""
    return [f"{RESULTS}/{wc.dataset}/baseline/model.pt"] if distills(wc.dataset) else []


def train_recipe(dataset, variant, held_out=False):
    """train.<dataset> as a training of this variant sees it: the baseline never distills, so a change of
    distill must not rerun it. held_out (the NAS finalists): they score on validation data, so they never fit
    on it, whatever fit_on says; fit_on: train is left out (it is the default) so that adding the key reran nothing."""
    cfg = CFG["train"][dataset]
    drop = set() if variant != "baseline" and distills(dataset) else {"distill"}
    if held_out or cfg.get("fit_on", "train") == "train":
        drop.add("fit_on")
    return {k: v for k, v in cfg.items() if k not in drop}


def model_dir(wc):
    """Folder of the trained model a mapping uses: the float baseline serves every device resolution."""
    return "baseline" if wc.variant == "baseline" else f"{wc.variant}/b{wc.bits}"


def mapped(dataset):
    """'<variant>/b<bits>' for every deployment evaluated on crossbars."""
    return [f"{v}/b{b}" for v in CFG["variants"] for b in CFG["device_bits"]]


def all_outputs():
    out = []
    for ds in CFG["datasets"]:
        out.append(f"{RESULTS}/data/{ds}.json")
        out += [f"{RESULTS}/{ds}/{m}/metrics.json" for m in model_tags(ds)]
        out += [f"{RESULTS}/{ds}/{m}/{f}" for m in mapped(ds) for f in ("noise.csv", "cost.json")]
    out.append(f"{RESULTS}/report/REPORT.md")
    return out

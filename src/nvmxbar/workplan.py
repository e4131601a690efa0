"""What a configured run costs before it starts: the CIFAR-10 trainings of the DAG and their time on CPU cores,
from measured throughput. The workflow uses it to keep a CPU-only machine from starting days of CIFAR-10
training unasked (config ``cifar10_on_cpu``) and to give the CIFAR-10 training and search rules a ``runtime``.

Pure: it reads the resolved config (profile selected, defaults filled) and imports neither torch nor the stages,
so it sits low in the layers; whether a GPU is present is the caller's argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .settings import on_gpu

#: CIFAR-10 training throughput on CPU in images/s per core (forward, backward and AdamW step, batch 128), by the
#: kind of network trained. Measured on 2 threads, idle, by
#: ``python benchmarks/train_throughput.py --nets cifar --threads 2`` (docs/FINDINGS.md, "Run time"): float 661,
#: uniform at the per-tile ADC 192, unipolar 130 img/s; halved here, as every training runs on one core
#: (train.num_threads 1) beside the others. Single runs vary by 20-30 %.
CPU_IMAGES_PER_S_PER_CORE = {"float": 661 / 2, "quantized": 192 / 2, "unipolar": 130 / 2}

#: The official CIFAR-10 training set; prepare_data holds prepare_data.cifar10.val_fraction of it out.
CIFAR10_TRAIN_IMAGES = 50_000

#: Rule runtimes are this many times the estimate (run-to-run spread, validation passes, a loaded machine).
RUNTIME_MARGIN = 2.0

#: The part of the work each variant's trainings fall in: the float baseline, quantized at device precision
#: (perlayer, uniform and signed, the searched network with signed weights), or one-sign weight groups (unipolar).
VARIANT_PART = {
    "baseline": "baseline",
    "perlayer": "quantized",
    "uniform": "quantized",
    "signed": "quantized",
    "unipolar": "unipolar",
}
#: The network kind (its measured throughput) of each part; the search trials and finalists are unipolar.
PART_KIND = {
    "baseline": "float",
    "quantized": "quantized",
    "unipolar": "unipolar",
    "search": "unipolar",
    "finalists": "unipolar",
}


@dataclass(frozen=True)
class Trainings:
    """``count`` trainings of one kind (a key of CPU_IMAGES_PER_S_PER_CORE), each ``epochs`` x ``images``."""

    part: str
    kind: str
    count: int
    epochs: int
    images: int

    @property
    def image_passes(self) -> int:
        return self.count * self.epochs * self.images

    def cpu_seconds(self, cores: int = 1) -> float:
        """All of them on ``cores`` cores, one training per core."""
        return self.image_passes / CPU_IMAGES_PER_S_PER_CORE[self.kind] / max(1, cores)


def cifar10_images(cfg: dict, fit_on: str = "train") -> int:
    """Training images per epoch: the training split (50,000 less the validation share, or
    prepare_data.cifar10.limit.train), plus the validation split when ``fit_on`` is train+val."""
    prep = cfg["prepare_data"]["cifar10"]
    n_val = int(round(CIFAR10_TRAIN_IMAGES * prep["val_fraction"]))  # as nvmxbar.data.splits cuts it
    limit = prep.get("limit") or {}
    train = min(CIFAR10_TRAIN_IMAGES - n_val, limit.get("train") or CIFAR10_TRAIN_IMAGES)
    val = min(n_val, limit.get("val") or n_val)
    return train + val if fit_on == "train+val" else train


def cifar10_trainings(cfg: dict) -> list[Trainings]:
    """Every CIFAR-10 training the workflow runs, grouped: the deployed models (each variant at every bits
    entry, the baseline once, at every seed), the unipolar search (every trial at nas_unipolar.epochs; pruning
    stops some sooner, so this bounds it) and its finalists (count x seeds full-recipe trainings per study)."""
    train, nas = cfg["train"]["cifar10"], cfg["nas_unipolar"]
    seeds, bits, variants = len(cfg["seeds"]), len(cfg["device_bits"]), cfg["variants"]
    epochs, deployed = int(train["epochs"]), cifar10_images(cfg, train.get("fit_on", "train"))
    out = []
    for part in ("baseline", "quantized", "unipolar"):
        n = sum(seeds * (1 if v == "baseline" else bits) for v in variants if VARIANT_PART[v] == part)
        if n:
            out.append(Trainings(part, PART_KIND[part], n, epochs, deployed))
    if nas["search"] and {"unipolar", "signed"} & set(variants):
        held_out = cifar10_images(cfg)  # trials and finalists train on the training split alone
        out.append(Trainings("search", PART_KIND["search"], bits * int(nas["trials"]), int(nas["epochs"]), held_out))
        fin = nas["finalists"]
        n_fin = bits * int(fin["count"]) * int(fin["seeds"])
        if n_fin:
            out.append(
                Trainings("finalists", PART_KIND["finalists"], n_fin, int(fin.get("epochs") or epochs), held_out)
            )
    return out


def cifar10_cpu_estimate(cfg: dict, cores: int) -> tuple[float, dict[str, float]]:
    """Seconds of CIFAR-10 training the workflow would run on ``cores`` CPU cores (trainings in parallel, one
    core each), and the same by part (baseline, quantized, unipolar, search, finalists). Training only: the
    crossbar simulation of the CIFAR-10 models comes on top."""
    parts = {t.part: t.cpu_seconds(cores) for t in cifar10_trainings(cfg)}
    return sum(parts.values()), parts


def cifar10_job_minutes(cfg: dict, job: str, threads: int = 1) -> int:
    """A rough ``runtime`` (minutes) of one CIFAR-10 job on CPU at ``threads``: one training of ``job`` (a variant,
    or ``finalists``), or for ``search`` one worker's share of a study's trials; times RUNTIME_MARGIN."""
    part = VARIANT_PART.get(job, job)
    group = next((t for t in cifar10_trainings(cfg) if t.part == part), None)
    if group is None:
        return 60
    per_job = group.cpu_seconds(threads) / group.count
    if part == "search":  # per_job is one trial
        per_job *= math.ceil(cfg["nas_unipolar"]["trials"] / cfg["nas_unipolar"]["workers"])
    return max(10, math.ceil(RUNTIME_MARGIN * per_job / 60))


def hours(seconds: float, days: bool = True) -> str:
    """'7.3 h', '167 h (7.0 days)' (with ``days``, from 48 h on)."""
    h = seconds / 3600
    text = f"{h:.1f} h" if h < 10 else f"{h:.0f} h"
    return f"{text} ({h / 24:.1f} days)" if days and h >= 48 else text


@dataclass(frozen=True)
class Cifar10Plan:
    """Whether CIFAR-10 runs, and what to say: ``message`` at the start of the workflow (None: nothing), ``note``
    for REPORT.md when it was left out (None: it runs)."""

    run: bool
    message: str | None = None
    note: str | None = None


GPU_HOW = "`snakemake --profile workflow/profiles/gpu` on a machine with a CUDA GPU"


def cifar10_plan(cfg: dict, cores: int, cuda_available: bool) -> Cifar10Plan:
    """CIFAR-10 in the full profile needs a GPU to finish in hours: without one (``cuda_available`` false and
    train.accelerator not gpu, or accelerator cpu), ``cifar10_on_cpu: skip`` leaves it out of the run, ``run``
    keeps it; either way the message gives the CPU estimate. The smoke profile (minutes) always runs it."""
    if "cifar10" not in cfg["datasets"] or cfg["profile"] != "full":
        return Cifar10Plan(True)
    accelerator = cfg["train"]["accelerator"]
    if on_gpu(accelerator, cuda_available):
        return Cifar10Plan(True)
    total, parts = cifar10_cpu_estimate(cfg, cores)
    on = f"on {cores} CPU core{'s' if cores != 1 else ''}"
    detail = ", ".join(f"{p} {hours(s, days=False)}" for p, s in parts.items())
    why = "torch sees no CUDA GPU" if accelerator == "auto" else "train.accelerator is cpu"
    if cfg["cifar10_on_cpu"] == "run":
        return Cifar10Plan(
            True,
            f"nvmxbar: CIFAR-10 trains on the CPU (cifar10_on_cpu: run; {why}): about {hours(total)} of training "
            f"{on} [{detail}].",
        )
    return Cifar10Plan(
        False,
        f"nvmxbar: CIFAR-10 is left out of this run (cifar10_on_cpu: skip): {why}, and its full-profile training "
        f"would take about {hours(total)} {on} [{detail}]. To run it: {GPU_HOW}, or here on the CPU with "
        f"`--config cifar10_on_cpu=run` (about {hours(total, days=False)}).",
        f"CIFAR-10 was not run: no GPU (estimated {hours(total, days=False)} of training on this CPU with {cores} "
        f"core{'s' if cores != 1 else ''}); run it with {GPU_HOW}, or on the CPU with "
        "`--config cifar10_on_cpu=run`.",
    )


def reduced_datasets(cfg: dict) -> dict[str, str]:
    """The datasets a full-profile run trains on subsets of (``prepare_data.<dataset>.limit`` set, as in
    workflow/profiles/cifar10-cpu), each with a line for REPORT.md saying how far from paper scale it is. Empty for
    the smoke profile (REPORT.md says what smoke is) and for a paper-scale run."""
    if cfg["profile"] != "full":
        return {}
    out = {}
    for ds in cfg["datasets"]:
        limit = cfg["prepare_data"][ds]["limit"]
        if any(limit.get(s) is not None for s in ("train", "val", "test")):
            sizes = "/".join("all" if limit.get(s) is None else f"{limit[s]:,}" for s in ("train", "val", "test"))
            out[ds] = (
                f"{ds} is reduced (train/val/test limited to {sizes} samples, {cfg['train'][ds]['epochs']} epochs): "
                "its accuracies are not paper-scale figures."
            )
    return out

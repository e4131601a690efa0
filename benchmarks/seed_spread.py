"""Is a difference real, or the seed and the validation subjects? Compare recipes or architectures on validation folds.

For the deployment <dataset>/<variant>/b<bits> of a results folder it takes the recipe the workflow uses
(config.yaml at --profile, with --set; for unipolar and signed the architecture the search chose,
RESULTS/<dataset>/unipolar/b<bits>/nas/arch.json) and retrains it, once per arm, fold and seed, in a scratch
folder (no MLflow). Each network is scored on its fold's VALIDATION split: as trained, on the ideal crossbar
(quantized variants) and, with --noise, the mean over --chips noisy chips. It needs RESULTS/data/<dataset>.npz
and .json (the prepare_data rule's output) and, for unipolar and signed, that arch.json: never a trained model.
A measurement, not a test: a few minutes per training on 2 cores at the full profile.

Folds (--folds K ...; default 0). Fold 0 is the workflow's own validation split; for HAR, fold k >= 1 validates on
the k-th group of whole training subjects (as many as the prepared split holds, 4; the workflow's validation
subjects join training), the groups the NAS finalists validate on (nvmxbar.data.subject_fold at config `seed`).
HAR's 17 training subjects outside fold 0 make 4 groups: folds 1-4 (fold 5 would be fold 1 again: refused).
CIFAR-10 has no subjects: fold 0 only.

Arms (--arm NAME [KEY=VALUE ...], repeatable; the first is the reference; default one arm "config", config.yaml
as is). KEY is a config path under model.<dataset>, train.<dataset>, quant, chip or map_crossbar, VALUE is YAML, as for
--set (which applies to every arm first); arch=FILE|JSON (unipolar, signed) replaces the architecture: an arch.json
file, or model keys merged over the searched one (a different number of layers needs "polarity": "positive").
Every arm trains on the same folds and seeds, so arm B is compared with the reference A pair by pair: the mean
of B - A over the (fold, seed) pairs with its 95 % t interval, "beyond the fold/seed spread" when that interval
excludes 0, else "within the spread". Refused before any training: an arm with train.<dataset>.fit_on=train+val
(it would train on the subjects it is scored on). An arm with select=best_val picks its epoch on the subjects it
is scored on: a note says that this favours it. An arm that distills (train.<dataset>.distill.alpha > 0) learns
from a float baseline this tool trains on the same fold and seed with the arm's recipe (cached in the scratch
folder under teachers/), never the workflow's deployed baseline, which validated on the workflow's split.

The test split: not read at all (the fold copies carry the validation split in its place) unless --show-test;
then its accuracies come in separate test_* columns and means, after a warning on stderr: the test split must not
inform any choice, it is shown only to report one made on the validation folds.

Run: .venv/bin/python benchmarks/seed_spread.py RESULTS DATASET VARIANT BITS [--seeds 0 1 2] [--folds 1 2 3 4]
     [--arm NAME KEY=VALUE ...] ...   the arms compared, the first the reference
     [--profile full] [--threads 1] [--jobs 2]   trainings in parallel processes, each at --threads torch threads
     [--set quant.adc_tile_rows=128 ...]   config overrides for every arm (YAML values)
     [--arch FILE|JSON]   unipolar/signed: the architecture of every arm (an arm's arch= goes over it)
     [--noise 1.0] [--chips 10]   also the mean accuracy over --chips chips at this programming-noise scale
     [--realistic]   also on the chip's wires alone (val_wires) and on evaluate_noise.realistic's chip (--chips chips)
     [--cost]   also the area (area_mm2), energy per inference (energy_nj) and largest column current at full drive
                (i_max_ua) that estimate_cost gives the mapped network
     [--no-adc]   also the ideal crossbar without its ADC (what the converters cost)
     [--csv rows.csv]   the per-run rows     [--scratch DIR]   keep models and teachers there (default: a
     temporary folder, removed at the end)   [--show-test]   also the test split, to report only
e.g. .venv/bin/python benchmarks/seed_spread.py results har unipolar 2 --folds 1 2 3 4 --seeds 0 1 --noise 1.0 \\
        --arm last --arm best_val train.har.select=best_val
     .venv/bin/python benchmarks/seed_spread.py results har uniform 2 --seeds 0 1 2 3 4   (fold 0, one arm)
Tiny: .venv/bin/python benchmarks/seed_spread.py results har uniform 2 --profile smoke --seeds 0 --jobs 1 \
        --set train.har.epochs=1 [--noise 1.0 --chips 2]
Output: the folds' validation subjects, a row per (arm, fold, seed): selected epoch, training time, val_trained,
val_xbar (ideal crossbar), val_no_adc, val_noisy, val_wires, val_realistic; per arm mean +- std (ddof 1) and n; per arm after the first the
paired difference to the reference with its interval and verdict.
"""

import argparse
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: Top-level config sections an arm may change: the ones a training and its crossbar scoring read.
ARM_SECTIONS = ("model", "train", "quant", "chip", "map_crossbar")
TEST_WARNING = (
    "WARNING (--show-test): the test split must not inform any choice (recipe, architecture, default); its "
    "accuracies are shown only to report a choice already made on the validation folds."
)


@dataclass
class Arm:
    name: str
    spec: list[str]  # KEY=VALUE as given (the global --set not repeated)
    cfg: dict  # the validated config at --profile
    arch: Path | None  # arch.json of unipolar/signed
    teacher: bool  # distills: needs the fold's float baseline


def overrides(items: list[str], what: str) -> tuple[dict, str]:
    """Nested config overrides from KEY=VALUE items (YAML values), and the raw value of an ``arch`` item."""
    import yaml

    over: dict = {}
    arch = ""
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{what}: '{item}' is not KEY=VALUE")
        if key == "arch":
            arch = value
            continue
        *parents, leaf = key.split(".")
        node = over
        for k in parents:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"{what}: '{item}' sets a key under a value")
        node[leaf] = yaml.safe_load(value)
    return over, arch


def merged_arch(base: Path, value: str, out: Path) -> Path:
    """An arch.json: ``value`` itself when it names a file, else its JSON model keys merged over ``base``'s."""
    if Path(value).is_file():
        return Path(value)
    doc = json.loads(base.read_text())
    doc["model"].update(json.loads(value))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc))
    return out


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def make_arms(a: argparse.Namespace, scratch: Path) -> list[Arm]:
    """The arms, each checked (config, architecture, fit_on): ValueError naming the arm and the problem."""
    from nvmxbar import config
    from nvmxbar.chip import Chip
    from nvmxbar.core import networks
    from nvmxbar.settings import QuantSettings, Recipe

    ds, variant = a.dataset, a.variant
    base, global_arch = overrides(a.set, "--set")
    if global_arch:
        raise ValueError("--set arch=...: use --arch")
    searched = a.results / ds / "unipolar" / f"b{a.bits}" / "nas" / "arch.json"
    with_arch = variant in ("unipolar", "signed")
    if with_arch and not searched.is_file():
        raise ValueError(f"{variant} trains the searched architecture: {searched} is missing (nas_unipolar's output)")
    import numpy as np

    with np.load(a.results / "data" / f"{ds}.npz", allow_pickle=False) as d:
        in_shape, n_classes = list(d["x_train"].shape[1:]), len(d["class_names"])
    arms = []
    for name, *spec in a.arm or [["config"]]:
        what = f"arm '{name}'"
        if "=" in name:
            raise ValueError(f"--arm {name}: an arm starts with its name (--arm NAME KEY=VALUE ...)")
        over, arch_value = overrides(spec, what)
        for top, sub in over.items():
            if top not in ARM_SECTIONS:
                raise ValueError(
                    f"{what}: '{top}' is not read by this tool's trainings (arms change {', '.join(ARM_SECTIONS)}; "
                    "--set changes the rest for every arm)"
                )
            if top in ("model", "train") and set(sub) - {ds}:
                raise ValueError(f"{what}: {top}.{'/'.join(sorted(set(sub) - {ds}))} does nothing here: use {top}.{ds}")
        if (arch_value or a.arch) and not with_arch:
            raise ValueError(
                f"{what}: arch= replaces the searched architecture of unipolar/signed; for {variant} change "
                f"model.{ds}.<key>"
            )
        try:
            cfg = config.load(
                ROOT / "config.yaml", config.deep_merge(config.deep_merge(base, over), {"profile": a.profile})
            )
        except config.ConfigError as e:
            raise ValueError(f"{what}: {e}") from None
        recipe = Recipe.from_config(cfg["train"][ds])
        if recipe.fit_on != "train":
            raise ValueError(
                f"{what}: train.{ds}.fit_on={recipe.fit_on} trains on the validation split, the fold's held-out "
                "subjects it is scored on: a fold cannot score it (fit_on is a deployment choice, made after the "
                "recipe; compare recipes with fit_on=train)"
            )
        arch = None
        if with_arch:
            arch = searched
            for value in (a.arch, arch_value):
                if value:
                    try:
                        arch = merged_arch(arch, value, scratch / "arms" / slug(name) / "arch.json")
                    except (json.JSONDecodeError, KeyError) as e:
                        raise ValueError(
                            f"{what}: arch '{value}' is neither a file nor JSON model keys ({e})"
                        ) from None
        model_cfg = dict(cfg["model"][ds])
        if arch is not None:
            model_cfg.update(json.loads(arch.read_text())["model"])
            if variant == "signed":
                model_cfg.pop("polarity", None)
        quant = QuantSettings.from_config(variant, a.bits, cfg["quant"], Chip.from_config(cfg["chip"]))
        try:  # the network builds (layers, kernel sizes and sign groups agree) before anything trains
            networks.build(networks.make_arch(in_shape, n_classes, model_cfg), quant and quant.quantizer_kwargs())
        except (ValueError, KeyError, TypeError) as e:
            hint = ' (arch= with another number of layers: add "polarity": "positive")' if "polarity" in str(e) else ""
            raise ValueError(f"{what}: the network does not build: {e}{hint}") from None
        teacher = variant != "baseline" and recipe.distill is not None
        arms.append(Arm(name, spec, cfg, arch, teacher))
    names = [arm.name for arm in arms]
    if len(set(names)) < len(names):
        raise ValueError(f"arm names repeat: {names}")
    return arms


def teacher_key(arm: Arm, a: argparse.Namespace, fold: int, seed: int, data: str) -> str:
    """The float baseline an arm distills from, at (fold, seed): what its training depends on."""
    from nvmxbar.config import config_hash
    from nvmxbar.settings import Recipe

    train = Recipe.from_config(arm.cfg["train"][a.dataset]).params()  # without distill: the baseline's recipe
    return config_hash(
        {"model": arm.cfg["model"][a.dataset], "train": train, "fold": fold, "seed": seed, "data": data, "t": a.threads}
    )


def _quiet() -> None:
    """A worker's output: Lightning's banners and tips say nothing here (set after its import, which sets them)."""
    import lightning.pytorch  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")


def _die_with_parent() -> None:
    """A worker's initializer: on Linux, the kernel stops the worker when the tool itself is killed, so that no
    orphaned training goes on writing into the scratch folder that a rerun uses."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the call
            os._exit(1)


def train_teacher(job: dict) -> str:
    """Train (or find, from an earlier run in the same scratch folder) one float baseline: the teacher."""
    out = Path(job["out"])
    if (out / "model.pt").exists():
        return str(out / "model.pt")
    _quiet()
    from nvmxbar.settings import Recipe
    from nvmxbar.stages import train

    cfg, ds = job["cfg"], job["dataset"]
    train.run(
        data_npz=job["npz"],
        data_json=job["json"],
        out_model=out / "model.pt",
        out_metrics=out / "metrics.json",
        dataset=ds,
        variant="baseline",
        bits=None,
        seed=job["seed"],
        model_cfg=cfg["model"][ds],
        recipe=Recipe.from_config(cfg["train"][ds]),
        quant=None,
        experiment=None,
        threads=job["threads"],
        accelerator="cpu",
    )
    return str(out / "model.pt")


def run_one(job: dict) -> dict:
    """Train one (arm, fold, seed) on its fold copy and score it: the row of the table."""
    _quiet()
    import torch

    from nvmxbar.chip import Chip
    from nvmxbar.core import noise
    from nvmxbar.core.schemes import map_network
    from nvmxbar.core.simulator import Simulator
    from nvmxbar.data.arrays import network_inputs
    from nvmxbar.noise_settings import one_setting
    from nvmxbar.settings import MapSettings, MonteCarlo, NoiseModel, Pricing, QuantSettings, Recipe, TrainWires
    from nvmxbar.stages import train
    from nvmxbar.training.model_io import load_model

    cfg, ds, variant, bits, npz = job["cfg"], job["dataset"], job["variant"], job["bits"], job["npz"]
    out = Path(job["out"])
    chip = Chip.from_config(cfg["chip"])
    quant = QuantSettings.from_config(variant, bits, cfg["quant"], chip)
    m = train.run(
        data_npz=npz,
        data_json=job["json"],
        out_model=out / "model.pt",
        out_metrics=out / "metrics.json",
        dataset=ds,
        variant=variant,
        bits=bits,
        seed=job["seed"],
        model_cfg=cfg["model"][ds],
        recipe=Recipe.from_config(cfg["train"][ds]),
        quant=quant,
        chip=None if quant is None else chip.trained(),
        experiment=None,
        threads=job["threads"],
        accelerator="cpu",
        arch_json=job["arch"],
        teacher=job["teacher"],
        train_wires=TrainWires.from_config(ds, variant, bits, cfg["quant"], chip, cfg["map_crossbar"]),
    )
    row = {
        "arm": job["arm"],
        "fold": job["fold"],
        "seed": job["seed"],
        "epoch": m["selected_epoch"],
        "train_s": m["wall_time_s"],
        "val_trained": m["val_accuracy"],
    }
    splits = ["val"] + (["test"] if job["show_test"] else [])
    if job["show_test"]:
        row["test_trained"] = m["test_accuracy"]
    if bits is not None:
        torch.set_num_threads(job["threads"])
        net, _ = load_model(out / "model.pt")
        mapped = map_network(
            net,
            bits,
            MapSettings.from_config(cfg["map_crossbar"], chip, Pricing.from_config(cfg["estimate_cost"])).for_variant(
                variant
            ),
        )
        sim = Simulator(*mapped)
        full = MonteCarlo.from_config(cfg["evaluate_noise"])
        mc = MonteCarlo(
            job["chips"], None, full.batch_size, full.instance_chunk, (NoiseModel.programming(job["noise"]),)
        )
        for split in splits:
            x, y = network_inputs(npz, split)
            row[f"{split}_xbar"] = noise.ideal_accuracy(sim, x, y)
            if job["no_adc"]:
                row[f"{split}_no_adc"] = noise.ideal_accuracy(sim, x, y, adc=False)
            if job["noise"]:  # the same chips' draws for every arm at one (fold, seed)
                chips = noise.evaluate(sim, x, y, mc, seed=1000 * job["fold"] + job["seed"])
                row[f"{split}_noisy"] = chips[0]["accuracy_mean"]
            if job["realistic"]:  # wires alone (one chip: nothing drawn), then the realistic chip, on --chips chips
                real = next(m for m in full.models if m.kind == "realistic")
                wires = one_setting({"wire_scale": 1.0}, real.drift, "extra")
                rmc = MonteCarlo(job["chips"], None, full.batch_size, full.instance_chunk, (wires, real),
                                 converter_parts=full.converter_parts)  # fmt: skip
                got = noise.evaluate(sim, x, y, rmc, seed=1000 * job["fold"] + job["seed"])
                row[f"{split}_wires"], row[f"{split}_realistic"] = (r["accuracy_mean"] for r in got)
        if job["cost"]:  # as estimate_cost prices it: measured cell activity on training inputs, counted operations
            row.update(price(mapped, cfg["estimate_cost"], job, out))
    return row


def price(mapped: tuple, cost_cfg: dict, job: dict, out: Path) -> dict:
    """The mapped network's area (mm^2), energy per inference (nJ) and largest column current at full drive (uA), as
    the estimate_cost stage prices it (the stage itself, on the files it reads; no MLflow)."""
    import numpy as np

    from nvmxbar.files import write_json
    from nvmxbar.settings import CostSettings
    from nvmxbar.stages import estimate_cost

    arrays, mapping = mapped
    np.savez(out / "crossbar.npz", **arrays)
    write_json(out / "mapping.json", mapping)
    t = estimate_cost.run(mapping_json=out / "mapping.json", model_metrics=out / "metrics.json",
                          out_json=out / "cost.json", dataset=job["dataset"], variant=job["variant"], bits=job["bits"],
                          cs=CostSettings.from_config(cost_cfg), seed=job["seed"], crossbar_npz=out / "crossbar.npz",
                          data_npz=job["npz"], device="cpu")["total"]  # fmt: skip
    return {
        "area_mm2": t["area_um2"] / 1e6,
        "energy_nj": t["energy_pj_per_inference"] / 1e3,
        "i_max_ua": t["full_drive"]["max_column_current_ua"],  # the largest column current at full drive
    }


def columns(a: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The accuracy columns: validation, and test (empty without --show-test)."""
    per = ["trained"]
    if a.variant != "baseline":
        per += ["xbar"] + (["no_adc"] if a.no_adc else []) + (["noisy"] if a.noise else [])
        per += ["wires", "realistic"] if a.realistic else []
    cost = ["area_mm2", "energy_nj", "i_max_ua"] if a.cost else []
    return [f"val_{k}" for k in per] + cost, [f"test_{k}" for k in per] if a.show_test else []


def report(rows: list[dict], arms: list[Arm], a: argparse.Namespace) -> None:
    """The table, the means per arm and the paired differences to the reference, on stdout."""
    from nvmxbar.stats import LEVEL, paired, summary

    val_cols, test_cols = columns(a)
    w = max(5, *(len(arm.name) for arm in arms))
    head = f"{'arm':<{w}} {'fold':>4} {'seed':>4} {'epoch':>5} {'train_s':>8}" + "".join(
        f"{c:>{max(12, len(c) + 1)}}" for c in val_cols
    )
    print(head + (" |" + "".join(f"{c:>13}" for c in test_cols) if test_cols else ""))
    for r in rows:
        line = f"{r['arm']:<{w}} {r['fold']:>4} {r['seed']:>4} {r['epoch']:>5} {r['train_s']:>8.1f}"
        line += "".join(f"{r[c]:>{max(12, len(c) + 1)}.4f}" for c in val_cols)
        print(line + (" |" + "".join(f"{r[c]:>13.4f}" for c in test_cols) if test_cols else ""))
    by_arm = {arm.name: [r for r in rows if r["arm"] == arm.name] for arm in arms}

    def per_arm(cols: list[str]) -> None:
        for arm in arms:
            stats = [summary([r[c] for r in by_arm[arm.name]]) for c in cols]
            cells = [f"{c} {m:.4f} +- {sd:.4f}" for c, (m, sd, _) in zip(cols, stats, strict=True)]
            print(f"  {arm.name:<{w}} " + "   ".join(cells) + f"   n={len(by_arm[arm.name])}")

    print("\nper arm, over (fold, seed): mean +- std (ddof 1), n")
    per_arm(val_cols)
    if len(arms) > 1:
        ref = arms[0].name
        print(f"\npaired difference to '{ref}' (same fold and seed): mean, {LEVEL:.0%} t interval")
        for arm in arms[1:]:
            for c in val_cols:
                p = paired([r[c] for r in by_arm[ref]], [r[c] for r in by_arm[arm.name]])
                if p["beyond"] is None:
                    interval, verdict = f"{'(no interval)':<20}", "one pair: no verdict"
                else:
                    interval = f"[{p['low']:+.4f}, {p['high']:+.4f}]"
                    verdict = "beyond the fold/seed spread" if p["beyond"] else "within the spread"
                print(f"  {arm.name:<{w}} {c:<12} {p['diff']:+.4f}  {interval}  n={p['n']}  {verdict}")
    if test_cols:
        print("\ntest split, to REPORT only (no choice may rest on it): mean +- std (ddof 1), n")
        per_arm(test_cols)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="The module docstring (benchmarks/seed_spread.py) is the user guide.",
    )
    p.add_argument("results", type=Path), p.add_argument("dataset"), p.add_argument("variant")
    p.add_argument("bits", type=int)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", type=int, nargs="+", default=None, metavar="K", help="HAR subject folds (default 0)")
    p.add_argument(
        "--arm",
        nargs="+",
        action="append",
        metavar=("NAME", "KEY=VALUE"),
        help="an arm compared: a name, then config overrides and/or arch=FILE|JSON; the first arm is the reference",
    )
    p.add_argument("--profile", default="full")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training (the workflow's default: 1)")
    p.add_argument("--jobs", type=int, default=2, help="trainings in parallel (processes)")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides of every arm (YAML values)"
    )
    p.add_argument("--no-adc", action="store_true", help="also the ideal crossbar without its ADC")
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="also the mean accuracy at this prog_sigma (x the device's sigma(G))",
    )
    p.add_argument(
        "--realistic",
        action="store_true",
        help="also the accuracy on the chip's wires alone (wire_scale 1) and on evaluate_noise.realistic's chip",
    )
    p.add_argument("--chips", type=int, default=10, help="chips per run for --noise and --realistic")
    p.add_argument("--cost", action="store_true", help="also area (mm^2), energy (nJ) and column current (uA)")
    p.add_argument(
        "--arch", default="", help="unipolar/signed: an arch.json file, or JSON model keys merged over nas/arch.json"
    )
    p.add_argument("--csv", type=Path, help="write the per-run rows here")
    p.add_argument("--scratch", type=Path, help="models, fold copies and teachers (kept); default a temporary folder")
    p.add_argument("--show-test", action="store_true", help="also the test split's accuracy, to report only")
    a = p.parse_args()

    from nvmxbar.data import DataError, file_digest
    from nvmxbar.training.folds import write_fold

    ds = a.dataset
    if ds not in ("har", "cifar10"):
        p.error(f"dataset '{ds}': har or cifar10")
    folds = a.folds if a.folds is not None else [0]
    if ds != "har" and any(folds):
        p.error(
            f"--folds {' '.join(map(str, folds))}: {ds} has no subject ids, its validation split is a random sample "
            "of images, not a group of people, so it has fold 0 alone (its own split): drop --folds"
        )
    if len(set(folds)) < len(folds) or len(set(a.seeds)) < len(a.seeds) or min(folds) < 0:
        p.error("--folds and --seeds: distinct values, folds >= 0")
    if a.variant == "baseline" and (a.noise or a.no_adc or a.realistic or a.cost):
        p.error("--noise, --no-adc, --realistic and --cost need a crossbar: the float baseline is not mapped here")
    if a.chips < 1 or a.jobs < 1 or a.threads < 1:
        p.error("--chips, --jobs and --threads: at least 1")
    data_npz, data_json = a.results / "data" / f"{ds}.npz", a.results / "data" / f"{ds}.json"
    for f in (data_npz, data_json):
        if not f.is_file():
            p.error(f"{f} is missing: the prepare_data rule writes it (snakemake ... {f})")
    if a.show_test:
        print(TEST_WARNING, file=sys.stderr, flush=True)
    scratch = a.scratch or Path(tempfile.mkdtemp(prefix="seed-spread-"))
    t0 = time.time()
    try:
        try:
            arms = make_arms(a, scratch)
        except ValueError as e:
            p.error(str(e))
        fold_seed = arms[0].cfg["seed"]  # the workflow seed: the finalists' folds
        fold_npz, subjects = {}, {}
        for k in folds:
            fold_npz[k] = scratch / "data" / f"{ds}-fold{k}{'-with-test' if a.show_test else ''}.npz"
            try:
                subjects[k] = write_fold(data_npz, fold_npz[k], k, fold_seed, keep_test=a.show_test)
            except DataError as e:
                p.error(str(e))
        same = [(j, k) for j in folds for k in folds if j < k and subjects[j] and subjects[j] == subjects[k]]
        if same:
            p.error(
                f"folds {same[0][0]} and {same[0][1]} hold the same subjects {subjects[same[0][0]]}: the groups ran out"
            )

        print(
            f"{ds}/{a.variant}" + ("" if a.variant == "baseline" else f"/b{a.bits}") + f", profile {a.profile}"
            f"{', set ' + ' '.join(a.set) if a.set else ''}{', arch ' + a.arch if a.arch else ''}: "
            f"{len(arms)} arm(s) x {len(folds)} fold(s) x {len(a.seeds)} seed(s), "
            "accuracy on each fold's validation split"
        )
        for k in folds:
            who = f"subjects {' '.join(map(str, subjects[k]))}" if subjects[k] else "the prepared validation split"
            print(f"fold {k}: validates on {who}" + (" (the workflow's own split)" if k == 0 else ""))
        for i, arm in enumerate(arms):
            print(f"arm {arm.name}: {' '.join(arm.spec) or 'config as is'}" + (" (reference)" if i == 0 else ""))
            if arm.cfg["train"][ds]["select"] == "best_val":
                print(
                    f"note: arm {arm.name} selects its epoch (select=best_val) on the same validation data "
                    "it is scored on: this favours it"
                )
        sys.stdout.flush()

        digest = file_digest(data_npz)
        common = {"dataset": ds, "json": str(data_json), "threads": a.threads}
        teachers: dict[tuple, str] = {}  # (arm, fold, seed) -> teacher folder
        for arm in arms:
            for k in folds:
                for s in a.seeds:
                    if arm.teacher:
                        key = teacher_key(arm, a, k, s, digest)
                        teachers[arm.name, k, s] = str(scratch / "teachers" / f"fold{k}-seed{s}-{key}")
        ctx = multiprocessing.get_context("spawn")  # torch is loaded here: no fork of its thread pools
        with ProcessPoolExecutor(a.jobs, mp_context=ctx, initializer=_die_with_parent) as pool:
            tjobs = {}
            for (name, k, s), out in teachers.items():
                arm = next(x for x in arms if x.name == name)
                tjobs.setdefault(out, {**common, "out": out, "cfg": arm.cfg, "npz": str(fold_npz[k]), "seed": s})
            if tjobs:
                print(f"training {len(tjobs)} teacher(s) (float baselines of the folds)", file=sys.stderr, flush=True)
            for f in as_completed([pool.submit(train_teacher, j) for j in tjobs.values()]):
                f.result()
            jobs = [
                {
                    **common,
                    "arm": arm.name,
                    "cfg": arm.cfg,
                    "fold": k,
                    "seed": s,
                    "npz": str(fold_npz[k]),
                    "out": str(scratch / "runs" / slug(arm.name) / f"fold{k}" / f"seed{s}"),
                    "arch": str(arm.arch) if arm.arch else None,
                    "teacher": str(Path(teachers[arm.name, k, s]) / "model.pt") if arm.teacher else None,
                    "variant": a.variant,
                    "bits": None if a.variant == "baseline" else a.bits,
                    "show_test": a.show_test,
                    "no_adc": a.no_adc,
                    "noise": a.noise,
                    "realistic": a.realistic,
                    "cost": a.cost,
                    "chips": a.chips,
                }
                for arm in arms
                for k in folds
                for s in a.seeds
            ]
            futures = [pool.submit(run_one, j) for j in jobs]
            for i, f in enumerate(as_completed(futures), 1):
                r = f.result()
                print(
                    f"[{i}/{len(jobs)}] {r['arm']} fold {r['fold']} seed {r['seed']}: trained in {r['train_s']:.0f} s "
                    f"({time.time() - t0:.0f} s so far)",
                    file=sys.stderr,
                    flush=True,
                )
            rows = [f.result() for f in futures]  # in (arm, fold, seed) order
    finally:
        if a.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    for r in rows:
        r["val_subjects"] = " ".join(map(str, subjects[r["fold"]] or []))
    print()
    report(rows, arms, a)
    if a.csv:
        from nvmxbar.files import write_csv

        val_cols, test_cols = columns(a)
        write_csv(a.csv, rows, ["arm", "fold", "seed", "val_subjects", "epoch", "train_s", *val_cols, *test_cols])
        print(f"rows written to {a.csv}", file=sys.stderr)


if __name__ == "__main__":
    main()

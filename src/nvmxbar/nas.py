"""Stage `nas_unipolar`: multi-objective architecture search for the unipolar variant (Optuna).

Each trial samples an architecture from the search space of config ``nas_unipolar.space.<dataset>`` (depth,
widths, kernel sizes, dense layers, and per-layer polarity: all-positive, or +/- row groups, or +/- column
groups), trains it sign-constrained and quantized to the device bits for a few epochs, and returns two
objectives: validation accuracy (maximised) and crossbar area from the cost model (minimised; or the device
count). The area depends on the architecture only, so it is known before training. The accuracy is the one the
network will have where it is deployed: with ``score.prog_sigma`` > 0 the trained trial is mapped onto the
crossbar (map_crossbar's mapping, ADC included) and scored on ``score.chips`` chips with that programming noise
(evaluate_noise's device model), so an architecture that is accurate only on ideal devices loses; with 0 it is
the trained network's validation accuracy after its last epoch.

Several workers (rule ``nas_unipolar_search``) share one study in a journal file; each runs trials until the
study holds ``trials`` finished ones. Multi-objective studies cannot use Optuna's pruners (``trial.report``
is single-objective), so pruning is ours, Optuna's MedianPruner rule: after ``warmup_epochs``, a trial whose
BEST validation accuracy so far is below the median of the COMPLETE trials' accuracy at the same epoch is
stopped and marked PRUNED.

Finalists (rule ``nas_unipolar_finalist``, with ``finalists.count`` > 0): a trial's score comes from a few
epochs on a small validation split, and it ranks the networks the full recipe makes badly (HAR, 2 bits: the
search's best trial came last of 7 once each was retrained with the full recipe). So the ``count`` best
COMPLETE trials by search score are each retrained with the full recipe (``train.<dataset>``, the train rule's
code) on ``finalists.seeds`` seeds (the workflow seed + 1, + 2, ...: not the seed the chosen network is then
trained with) and rescored the same way, on the mapped crossbar under noise, on the validation split.

Selection (rule ``nas_unipolar``): among the finalists (or, without finalists, the COMPLETE trials), the
smallest area whose validation accuracy (the finalists' mean over seeds, or the search score) is within
``selection_margin`` of the best; ties by accuracy. It writes trials.csv, pareto.csv, arch.json and a Pareto
figure. Every trial and every finalist is an MLflow run nested under one search run per study.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import tracking
from .config import config_hash

POLARITY_MODES = ("positive", "row_groups", "col_groups")
STUDY_FILE = "study.journal"


# ------------------------------------------------------------------------------------------ search space
def polarity_spec(mode: str) -> dict[str, int]:
    """A layer's sign groups for a polarity mode (see quant.polarity_groups): ``positive`` = every weight >= 0;
    ``row_groups`` = the first half of the input channels positive, the second negative (each half on its own
    tiles); ``col_groups`` = the first half of the outputs positive, the second negative (sign flips after the
    ADC; a negative hidden output is cut by the next ReLU, so it mainly suits the classifier)."""
    if mode == "positive":
        return {"sign": 1, "row_groups": 1, "col_groups": 1}
    if mode == "row_groups":
        return {"sign": 1, "row_groups": 2, "col_groups": 1}
    if mode == "col_groups":
        return {"sign": 1, "row_groups": 1, "col_groups": 2}
    raise ValueError(f"unknown polarity mode '{mode}' (known: {', '.join(POLARITY_MODES)})")


def sample_model(trial, space: dict, base: dict) -> dict[str, Any]:
    """The model config of one trial (same keys as config ``model.<dataset>`` plus ``polarity``)."""
    blocks = trial.suggest_categorical("blocks", space["blocks"])
    conv, kernels = [], []
    for i in range(blocks):
        w = trial.suggest_categorical(f"width{i}", space["widths"])
        k = trial.suggest_categorical(f"kernel{i}", space["kernel_sizes"])
        pools = space.get("pools_per_block", [1])
        p = trial.suggest_categorical(f"pools{i}", pools) if len(pools) > 1 else pools[0]
        conv += [w] * space["convs_per_block"] + ["M"] * p
        kernels += [k] * space["convs_per_block"]
    splits = space.get("input_split", [False])
    split = trial.suggest_categorical("input_split", splits) if len(splits) > 1 else splits[0]
    hidden = trial.suggest_categorical("hidden", space["hidden"])
    modes = space["polarity"]
    n_layers = len(kernels) + (1 if hidden else 0) + 1
    pol = []
    for i in range(n_layers):
        mode = trial.suggest_categorical(f"polarity{i}", modes) if len(modes) > 1 else modes[0]
        pol.append(polarity_spec(mode))
    return {"conv": conv, "kernel_size": kernels, "hidden": [hidden] if hidden else [], "dropout": base["dropout"],
            "bias": base["bias"], "input_split": bool(split), "polarity": pol}


def enqueue_params(model: dict, space: dict) -> dict[str, Any]:
    """The Optuna parameters of a known architecture (config ``space.<dataset>.enqueue`` entry: ``conv``,
    ``kernel_size``, optionally ``hidden``, ``input_split`` and ``polarity``, a mode or one per layer), so that the
    search evaluates it first (Optuna's ``enqueue_trial``). Raises ValueError when it is not in ``space``."""
    def pick(name, value, choices):
        if value not in choices:
            raise ValueError(f"{name} {value!r} is not among the search space's choices {choices}")
        return value

    conv, cpb = list(model["conv"]), int(space["convs_per_block"])
    ks = model["kernel_size"]
    n_conv = sum(1 for c in conv if c != "M")
    ks = list(ks) if isinstance(ks, list) else [ks] * n_conv
    if len(ks) != n_conv:
        raise ValueError(f"kernel_size has {len(ks)} entries for {n_conv} convolutions")
    params: dict[str, Any] = {}
    i = b = 0
    while i < len(conv):
        widths = conv[i:i + cpb]
        if len(widths) < cpb or "M" in widths or len(set(widths)) != 1:
            raise ValueError(f"conv {conv}: block {b} is not {cpb} convolution(s) of one width then 2x pools")
        kernels = ks[b * cpb:(b + 1) * cpb]
        if len(set(kernels)) != 1:
            raise ValueError(f"kernel_size {ks}: block {b} mixes kernel sizes {kernels}")
        i += cpb
        pools = 0
        while i < len(conv) and conv[i] == "M":
            pools, i = pools + 1, i + 1
        params[f"width{b}"] = pick("width", widths[0], space["widths"])
        params[f"kernel{b}"] = pick("kernel size", kernels[0], space["kernel_sizes"])
        pool_choices = space.get("pools_per_block", [1])
        pick("pools per block", pools, pool_choices)
        if len(pool_choices) > 1:
            params[f"pools{b}"] = pools
        b += 1
    params["blocks"] = pick("blocks", b, space["blocks"])
    split_choices = space.get("input_split", [False])
    split = pick("input_split", bool(model.get("input_split", False)), split_choices)
    if len(split_choices) > 1:
        params["input_split"] = split
    hidden = list(model.get("hidden", []))
    if len(hidden) > 1:
        raise ValueError(f"hidden {hidden}: the search space has at most one dense layer")
    params["hidden"] = pick("hidden", hidden[0] if hidden else 0, space["hidden"])
    n_layers = b * cpb + len(hidden) + 1
    pol = model.get("polarity", space["polarity"][0])
    pol = [pol] * n_layers if isinstance(pol, str) else list(pol)
    if len(pol) != n_layers:
        raise ValueError(f"polarity: {len(pol)} modes for {n_layers} weight layers")
    if len(space["polarity"]) > 1:
        params.update({f"polarity{j}": pick("polarity", m, space["polarity"]) for j, m in enumerate(pol)})
    else:
        for m in pol:
            pick("polarity", m, space["polarity"])
    return params


def hardware_of(model_cfg: dict, in_shape: list[int], num_classes: int, bits: int, quant_cfg: dict, map_cfg: dict,
                cost_cfg: dict, calib_x=None) -> dict[str, float]:
    """Devices, tiles and area of an architecture mapped as unipolar at ``bits`` (weights do not matter)."""
    import torch

    from . import cost, crossbar, models
    from .train import quant_settings

    q = quant_settings("unipolar", bits, quant_cfg)
    q = {**q, "weight_fullscale": 1.0, "act_fullscale": 1.0, "adc_fullscale": 1.0}  # counts need no calibration
    arch = models.make_arch(in_shape, num_classes, model_cfg)
    net = models.build(arch, q).eval()
    doc = {"arch": arch, "quant": q, "dataset": "nas", "variant": "unipolar", "bits": bits}
    with torch.no_grad():
        _, mapping = crossbar.map_network(net, doc, map_cfg, quant_cfg, device_bits=bits)
    c = cost.estimate(mapping, cost.load_constants(cost.constants_of(cost_cfg)), family=cost_cfg["family"], tech_nm=cost_cfg["tech_nm"],
                      cell=cost_cfg["cell"], adc_time_share=cost_cfg["adc_time_share"])
    t = mapping["total"]
    return {"area_um2": float(c["total"]["area_um2"]), "energy_pj": float(c["total"]["energy_pj_per_inference"]),
            "devices": int(t["devices"]), "tiles": int(t["tiles"]), "sign_flips": int(t["sign_flips"])}


# ------------------------------------------------------------------------------------------------ storage
#: Part of every study's name: a study pruned by an older rule is not continued under this one.
PRUNING_RULE = "median of complete trials vs best so far"


def study_name(dataset: str, bits: int, cfg: dict, model_base: dict, seed: int, train_cfg: dict | None = None,
               quant_cfg: dict | None = None) -> str:
    """The study of one search: a changed search space or trial recipe starts a new study in the same journal."""
    h = config_hash({"nas": {k: cfg[k] for k in ("trials", "epochs", "objective", "pruning", "space", "startup_trials", "score") if k in cfg},
                     "pruning_rule": PRUNING_RULE,
                     "model": model_base, "seed": seed, "train": train_cfg, "quant": quant_cfg})
    return f"{dataset}-unipolar-b{bits}-{h[:10]}"


def storage(nas_dir: str | Path):
    import optuna

    Path(nas_dir).mkdir(parents=True, exist_ok=True)
    path = str(Path(nas_dir) / STUDY_FILE)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def search_run(nas_dir: Path, experiment: str | None, name: str, params: dict, tags: dict) -> str | None:
    """The MLflow run every trial nests under: created once per study (under a file lock, workers race)."""
    if not experiment:
        return None
    import mlflow

    state = nas_dir / "search_run.json"
    with _locked(nas_dir / ".lock"):
        if state.exists():
            doc = json.loads(state.read_text())
            if doc.get("study") == name:
                return doc["run_id"]
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        run_id = client.create_run(exp_id, run_name=f"nas_unipolar {name}", tags=tags).info.run_id
        for k, v in tracking.flatten(params).items():
            client.log_param(run_id, k, v)
        tracking.write_json(state, {"study": name, "run_id": run_id})
        return run_id


# ---------------------------------------------------------------------------------------------- a trial
def _median_pruner(study, trial_number: int, curve: list[float], pruning: dict) -> bool:
    """True when a trial with validation accuracies ``curve`` (one per epoch so far) is to stop: Optuna's
    MedianPruner rule on user attrs (multi-objective safe). Its best accuracy so far is below the median of
    the COMPLETE trials' accuracy at the same epoch, once ``warmup_epochs`` have run and at least
    ``min_trials`` complete trials reached that epoch. The best, not the latest: HAR validates on 4 subjects
    and a good trial's curve dips by several points from one epoch to the next (a rule on the latest value
    pruned trials whose best epochs had reached 0.92-0.95). Pruned trials stopped early and do not set the
    bar."""
    import optuna

    epoch = len(curve) - 1
    if not pruning.get("enabled", True) or not curve or epoch + 1 < int(pruning["warmup_epochs"]):
        return False
    done = [t.user_attrs.get("val_acc_curve", []) for t in study.get_trials(deepcopy=False)
            if t.number != trial_number and t.state == optuna.trial.TrialState.COMPLETE]
    at = [c[epoch] for c in done if len(c) > epoch]
    if len(at) < int(pruning["min_trials"]):
        return False
    return max(curve) < float(np.median(at))


def crossbar_score(net, arch: dict, q: dict, data_npz, dataset: str, bits: int, map_cfg: dict, quant_cfg: dict,
                   noise_cfg: dict, score: dict, seed: int) -> dict[str, float]:
    """Validation accuracy of a trained trial on the ideal crossbar and mean over ``score['chips']`` chips with
    programming noise ``score['prog_sigma']`` (the mapping and device model of map_crossbar / evaluate_noise;
    ``noise_cfg`` needs only evaluate_noise's ``drift``)."""
    from . import crossbar, noise

    doc = {"arch": arch, "quant": q, "variant": "unipolar", "bits": bits, "dataset": dataset}
    calib, _ = crossbar.network_inputs(data_npz, "train", int(map_cfg["calibration_samples"]))
    arrays, mapping = crossbar.map_network(net.eval().cpu(), doc, map_cfg, quant_cfg, calib_x=calib, device_bits=bits)
    sim = crossbar.Simulator(arrays, mapping)
    xv, yv = crossbar.network_inputs(data_npz, "val", score.get("samples"))
    # small batches: the crossbar simulation of a CNN holds batch x chips x positions x tiles partial sums, and
    # several search workers share one machine
    ncfg = {**noise_cfg, "instances": int(score["chips"]), "sweep": {"prog_sigma": [float(score["prog_sigma"])]},
            "batch_size": 16, "instance_chunk": 1}
    row = noise.evaluate(sim, xv, yv, ncfg, seed=seed, progress=False)[0]
    return {"val_acc_crossbar": noise.ideal_accuracy(sim, xv, yv, bs=16), "val_acc_noisy": row["accuracy_mean"],
            "val_acc_noisy_std": row["accuracy_std"]}


def make_objective(*, dm, dataset: str, bits: int, cfg: dict, model_base: dict, train_cfg: dict, quant_cfg: dict,
                   map_cfg: dict, cost_cfg: dict, seed: int, parent_run: str | None, experiment: str | None,
                   accelerator: str, data_sha256: str = "", noise_cfg: dict | None = None):
    import lightning as L
    import optuna

    from . import models
    from .train import Classifier, quant_settings

    space = cfg["space"][dataset]
    epochs = int(cfg["epochs"])
    score = cfg.get("score") or {"prog_sigma": 0.0, "chips": 0}
    if float(score["prog_sigma"]) > 0 and noise_cfg is None:
        raise ValueError("nas_unipolar.score.prog_sigma > 0 needs the evaluate_noise settings (noise_cfg)")

    def objective(trial: optuna.Trial):
        t0 = time.time()
        model_cfg = sample_model(trial, space, model_base)
        hw = hardware_of(model_cfg, dm.in_shape, len(dm.class_names), bits, quant_cfg, map_cfg, cost_cfg)
        trial.set_user_attr("model", model_cfg)
        for k, v in hw.items():
            trial.set_user_attr(k, v)
        run_id, client = None, None
        if parent_run:
            import mlflow

            client = mlflow.MlflowClient()
            exp_id = client.get_run(parent_run).info.experiment_id
            tags = tracking.standard_tags(dataset=dataset, variant="unipolar", bits=bits, seed=seed, rule="nas_unipolar_search",
                                          config_hash=config_hash(model_cfg), data_sha256=data_sha256)
            tags.update({"mlflow.parentRunId": parent_run, "optuna.study": trial.study.study_name,
                         "optuna.trial": str(trial.number)})
            run_id = client.create_run(exp_id, run_name=f"trial {trial.number}", tags=tags).info.run_id
            for k, v in tracking.flatten({"model": model_cfg, "epochs": epochs, **trial.params}).items():
                client.log_param(run_id, k, v)
            for k, v in hw.items():
                client.log_metric(run_id, k, float(v))

        curve: list[float] = []

        class Report(L.Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                acc = float(trainer.callback_metrics["val_acc"])
                curve.append(acc)
                trial.set_user_attr("val_acc_curve", list(curve))
                if client:
                    client.log_metric(run_id, "val_acc", acc, step=len(curve) - 1)
                print(f"[nas] trial {trial.number} epoch {len(curve)}/{epochs} val_acc {acc:.4f} "
                      f"area {hw['area_um2']:.4g} um^2 ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
                if _median_pruner(trial.study, trial.number, curve, cfg["pruning"]):
                    trainer.should_stop = True
                    self.pruned = True

        report = Report()
        report.pruned = False
        state = "FAILED"
        try:
            L.seed_everything(seed + trial.number, workers=True, verbose=False)
            arch = models.make_arch(dm.in_shape, len(dm.class_names), model_cfg)
            q = quant_settings("unipolar", bits, quant_cfg)
            net = models.build(arch, q)
            module = Classifier(net, train_cfg["lr"], train_cfg["weight_decay"], train_cfg.get("label_smoothing", 0.0))
            trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                num_sanity_val_steps=0, callbacks=[report], deterministic=True)
            trainer.fit(module, datamodule=dm)
            best = max(curve)
            trial.set_user_attr("wall_time_s", round(time.time() - t0, 2))
            if report.pruned:
                state = "KILLED"
                raise optuna.TrialPruned(f"val_acc {curve[-1]:.4f} below the median after {len(curve)} epochs")
            # the last epoch's accuracy, as train exports the last epoch (select: last); the best of a few noisy
            # epochs would favour lucky trials
            value = curve[-1]
            if float(score["prog_sigma"]) > 0:
                scores = crossbar_score(net, arch, q, dm.path, dataset, bits, map_cfg, quant_cfg, noise_cfg, score,
                                        seed + trial.number)
                for k, v in scores.items():
                    trial.set_user_attr(k, v)
                value = scores["val_acc_noisy"]
                print(f"[nas] trial {trial.number}: val_acc {curve[-1]:.4f} trained, {scores['val_acc_crossbar']:.4f} "
                      f"ideal crossbar, {value:.4f} +- {scores['val_acc_noisy_std']:.4f} at prog sigma "
                      f"{score['prog_sigma']} ({score['chips']} chips)", file=sys.stderr, flush=True)
            trial.set_user_attr("wall_time_s", round(time.time() - t0, 2))
            state = "FINISHED"
            if client:
                client.log_metric(run_id, "best_val_acc", best)
                for k in ("val_acc_crossbar", "val_acc_noisy"):
                    if k in trial.user_attrs:
                        client.log_metric(run_id, k, float(trial.user_attrs[k]))
            return value, hw["area_um2"] if cfg["objective"] == "area" else float(hw["devices"])
        finally:
            if client:
                client.set_tag(run_id, "optuna.state", {"FINISHED": "COMPLETE", "KILLED": "PRUNED"}.get(state, "FAIL"))
                client.set_terminated(run_id, state)

    return objective


def search_worker(*, data_npz, nas_dir, out_json, dataset: str, bits: int, worker: int, cfg: dict, model_base: dict,
                  train_cfg: dict, quant_cfg: dict, map_cfg: dict, cost_cfg: dict, seed: int,
                  experiment: str | None = None, threads: int = 1, accelerator: str = "auto",
                  noise_cfg: dict | None = None) -> dict:
    """One search worker: trials until the shared study holds ``cfg['trials']`` finished trials."""
    import optuna
    import torch

    from .train import NpzDataModule

    t0 = time.time()
    torch.set_num_threads(max(1, threads))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    nas_dir = Path(nas_dir)
    name = study_name(dataset, bits, cfg, model_base, seed, train_cfg, quant_cfg)
    study = optuna.create_study(study_name=name, storage=storage(nas_dir), load_if_exists=True,
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=seed * 100 + worker,
                                                                   n_startup_trials=int(cfg["startup_trials"])))
    prov = Path(data_npz).with_suffix(".json")
    sha = json.loads(prov.read_text())["source"]["sha256"] if prov.exists() else ""
    parent = search_run(nas_dir, experiment, name, {"nas_unipolar": cfg, "bits": bits},
                        tracking.standard_tags(dataset=dataset, variant="unipolar", bits=bits, seed=seed,
                                               rule="nas_unipolar", config_hash=name.rsplit("-", 1)[-1], data_sha256=sha))
    dm = NpzDataModule(data_npz, train_cfg["batch_size"], train_cfg.get("augment", False), seed)
    objective = make_objective(dm=dm, dataset=dataset, bits=bits, cfg=cfg, model_base=model_base, train_cfg=train_cfg,
                               quant_cfg=quant_cfg, map_cfg=map_cfg, cost_cfg=cost_cfg, seed=seed, parent_run=parent,
                               experiment=experiment, accelerator=accelerator, data_sha256=sha, noise_cfg=noise_cfg)
    TS = optuna.trial.TrialState
    finished = (TS.COMPLETE, TS.PRUNED)
    total = int(cfg["trials"])
    with _locked(nas_dir / "ask.lock"):  # known architectures first, once per study (workers race)
        for model in cfg["space"][dataset].get("enqueue", []):
            study.enqueue_trial(enqueue_params(model, cfg["space"][dataset]), skip_if_exists=True)
    mine = run_trials(study, objective, total, worker, nas_dir / "ask.lock")
    doc = {"study": name, "worker": worker, "trials_run": mine, "wall_time_s": round(time.time() - t0, 2),
           "study_finished_trials": len(study.get_trials(states=finished))}
    tracking.write_json(out_json, doc)
    print(f"[nas] worker {worker}: {len(mine)} trials in {doc['wall_time_s']:.0f} s; study {name} has "
          f"{doc['study_finished_trials']}/{total} finished", file=sys.stderr, flush=True)
    return doc


def run_trials(study, objective, total: int, worker: int, lock: Path) -> list[int]:
    """Ask/tell loop of one worker: a new trial starts only while finished + running trials are fewer than
    ``total`` (checked and asked under a file lock shared by the workers), so the study never overshoots.
    A trial this worker left RUNNING when it was killed is marked FAIL first, so that it does not hold a slot."""
    import optuna

    TS = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        if t.user_attrs.get("worker") == worker:
            study.tell(t.number, state=TS.FAIL)
    mine: list[int] = []
    while True:
        with _locked(lock):
            if len(study.get_trials(deepcopy=False, states=(TS.COMPLETE, TS.PRUNED, TS.RUNNING))) >= total:
                return mine
            trial = study.ask()
            trial.set_user_attr("worker", worker)
        try:
            values = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TS.PRUNED)
        except BaseException:
            study.tell(trial, state=TS.FAIL)
            raise
        else:
            study.tell(trial, values)
        mine.append(trial.number)


# ----------------------------------------------------------------------------------------------- select
def trial_rows(study) -> list[dict[str, Any]]:
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        curve = t.user_attrs.get("val_acc_curve", [])
        rows.append({"trial": t.number, "state": t.state.name,
                     "val_accuracy": t.values[0] if t.values else (max(curve) if curve else float("nan")),
                     "val_acc_trained": curve[-1] if curve else float("nan"),
                     "val_acc_crossbar": t.user_attrs.get("val_acc_crossbar"),
                     "area_um2": t.user_attrs.get("area_um2"), "devices": t.user_attrs.get("devices"),
                     "tiles": t.user_attrs.get("tiles"), "sign_flips": t.user_attrs.get("sign_flips"),
                     "energy_pj": t.user_attrs.get("energy_pj"), "epochs_run": len(curve),
                     "wall_time_s": t.user_attrs.get("wall_time_s"),
                     "model": json.dumps(t.user_attrs.get("model"), separators=(",", ":")),
                     **{f"param_{k}": v for k, v in t.params.items()}})
    return rows


def pareto_front(rows: list[dict], objective: str = "area_um2") -> list[dict]:
    """Non-dominated COMPLETE trials: no other trial is at least as accurate and at most as large, and better in one."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    front = [r for r in done if not any(
        o["val_accuracy"] >= r["val_accuracy"] and o[objective] <= r[objective]
        and (o["val_accuracy"] > r["val_accuracy"] or o[objective] < r[objective]) for o in done)]
    return sorted(front, key=lambda r: r[objective])


def choose(rows: list[dict], margin: float, objective: str = "area_um2") -> tuple[dict, str]:
    """The documented selection rule. Returns (row, rule text)."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    if not done:
        raise ValueError("nas_unipolar: no COMPLETE trial to choose from (all pruned or failed); raise trials or "
                         "pruning.warmup_epochs")
    best = max(r["val_accuracy"] for r in done)
    near = [r for r in done if r["val_accuracy"] >= best - margin]
    pick = min(near, key=lambda r: (r[objective], -r["val_accuracy"]))
    rule = (f"smallest {objective} among COMPLETE trials whose validation accuracy is within {margin:.4f} of the best "
            f"({best:.4f}); ties broken by accuracy")
    return pick, rule


def finalist_rows(rows: list[dict], count: int) -> list[dict]:
    """The finalists: the ``count`` COMPLETE trials with the best search score (ties: smaller area, then the
    earlier trial), one per architecture: a trial that repeats a better-ranked one's network (TPE samples a
    small categorical space again; an enqueued network is sampled anew) would retrain the same network on
    the same seeds. Index = the finalist's rank, as rule nas_unipolar_finalist names it."""
    done = sorted((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: (-r["val_accuracy"], r["area_um2"], r["trial"]))
    out, seen = [], set()
    for r in done:
        arch = json.dumps(json.loads(r["model"]), sort_keys=True)
        if arch not in seen and len(out) < count:
            seen.add(arch)
            out.append(r)
    return out


def finalist_seed(seed: int, rep: int) -> int:
    """The training seed of a finalist's ``rep``-th retraining: seed + 1 + rep, never the workflow seed the
    chosen network is trained with afterwards (its test accuracy stays a fresh draw)."""
    return int(seed) + 1 + int(rep)


def rescore(rows: list[dict], docs: list[dict]) -> list[dict]:
    """The finalists' rows with ``val_accuracy`` replaced by the mean full-recipe score over their seeds
    (``final_val_std``, ``final_seeds`` and ``search_val_accuracy`` beside it). ``docs`` are the
    nas_unipolar_finalist outputs; slots without a candidate (fewer COMPLETE trials than finalists) are skipped."""
    by_trial: dict[int, list[dict]] = {}
    for d in docs:
        if d.get("trial") is not None:
            by_trial.setdefault(int(d["trial"]), []).append(d)
    out = []
    for r in rows:
        ds = by_trial.get(int(r["trial"]))
        if not ds:
            continue
        v = np.array([float(d["val_acc_noisy"]) for d in ds])
        out.append({**r, "search_val_accuracy": r["val_accuracy"], "val_accuracy": float(v.mean()),
                    "final_val_std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                    "final_seeds": len(v), "finalist_rank": int(ds[0]["rank"])})
    return out


def _study_of(workers: list) -> str:
    """The one study the search workers ran: ``workers`` are their output files or the documents read from them."""
    names = {(w if isinstance(w, dict) else json.loads(Path(w).read_text()))["study"] for w in workers}
    if len(names) != 1:
        raise ValueError(f"nas_unipolar: expected the search workers' files to name one study, found {sorted(names)}")
    return names.pop()


def finalist_stage(*, workers: list, out_json, data_npz, data_json, dataset: str, bits: int, rank: int, rep: int,
                   cfg: dict, model_base: dict, train_cfg: dict, quant_cfg: dict, map_cfg: dict, noise_cfg: dict,
                   seed: int, experiment: str | None = None, threads: int = 1, accelerator: str = "auto",
                   teacher: str | Path | None = None) -> dict:
    """Rule nas_unipolar_finalist: retrain the ``rank``-th best COMPLETE trial of the study with the full recipe
    (train.train, seed :func:`finalist_seed`, distilled from ``teacher`` as the train rule does) and score it as
    the search scores trials (mapped crossbar, ``score.prog_sigma``, ``score.chips`` chips, validation split:
    with ``finalists.val_folds`` rep k's own group of subjects, :func:`data.subject_fold`). Writes ``out_json``; the model and its
    metrics go to the folder of the same name. A slot with no candidate writes ``trial: null``."""
    import optuna

    from .data import subject_fold
    from .train import load_model, train

    t0 = time.time()
    out_json = Path(out_json)
    nas_dir = out_json.parent.parent
    name = _study_of(workers)
    study = optuna.load_study(study_name=name, storage=storage(nas_dir))
    rows = trial_rows(study)
    fin = finalist_rows(rows, rank + 1)  # the slot's candidate does not depend on how many slots there are
    fseed = finalist_seed(seed, rep)
    doc: dict[str, Any] = {"study": name, "rank": rank, "rep": rep, "seed": fseed, "dataset": dataset, "bits": bits}
    if rank >= len(fin):
        doc.update(trial=None, reason=f"the study has {len(fin)} COMPLETE trial(s), fewer than rank {rank} + 1")
        tracking.write_json(out_json, doc)
        print(f"[nas_finalist] {dataset}/b{bits} rank {rank}: no candidate ({doc['reason']})", file=sys.stderr, flush=True)
        return doc
    row = fin[rank]
    model_cfg = {**model_base, **json.loads(row["model"])}
    print(f"[nas_finalist] {dataset}/b{bits} rank {rank}: trial {row['trial']} (search score {row['val_accuracy']:.4f}, "
          f"{row['area_um2'] / 1e6:.4f} mm^2), full recipe ({train_cfg['epochs']} epochs), seed {fseed}",
          file=sys.stderr, flush=True)
    folder = out_json.with_suffix("")
    state = nas_dir / "search_run.json"
    run = json.loads(state.read_text()) if experiment and state.exists() else {}
    parent = run.get("run_id") if run.get("study") == name else None
    tags = {"optuna.study": name, "optuna.trial": str(row["trial"]), "finalist_rank": str(rank)}
    if parent:
        tags["mlflow.parentRunId"] = parent
    # rep k validates on its own group of subjects (finalists.val_folds): the mean over reps then rests on
    # seeds x val_subjects people instead of the same few (HAR: 4) for every rep
    fold, fold_npz = rep if cfg.get("finalists", {}).get("val_folds") else 0, folder / "fold.npz"
    val_subjects = subject_fold(data_npz, fold_npz, fold, seed)  # the workflow seed: every finalist, same folds
    if fold > 0 and val_subjects is not None:
        data_npz = fold_npz
    score = cfg["score"]
    try:  # the fold copy goes whether the training finishes or not
        metrics = train(data_npz=data_npz, data_json=data_json, out_model=folder / "model.pt",
                        out_metrics=folder / "metrics.json", dataset=dataset, variant="unipolar", bits=bits, seed=fseed,
                        # scored on validation data, so never fitted on it (train.<dataset>.fit_on is for deployments)
                        model_cfg=model_cfg, train_cfg={**train_cfg, "fit_on": "train"}, quant_cfg=quant_cfg,
                        experiment=experiment, threads=threads, accelerator=accelerator, rule="nas_unipolar_finalist", extra_tags=tags,
                        run_name=f"finalist {rank} (trial {row['trial']}) seed {fseed}", teacher=teacher)
        net, mdoc = load_model(folder / "model.pt")
        if float(score["prog_sigma"]) > 0:
            scores = crossbar_score(net, mdoc["arch"], mdoc["quant"], data_npz, dataset, bits, map_cfg, quant_cfg,
                                    noise_cfg, score, fseed)
        else:
            scores = {"val_acc_crossbar": None, "val_acc_noisy": metrics["val_accuracy"], "val_acc_noisy_std": 0.0}
    finally:
        fold_npz.unlink(missing_ok=True)
    doc.update(trial=int(row["trial"]), model=json.loads(row["model"]), area_um2=row["area_um2"],
               devices=row["devices"], search_val_accuracy=row["val_accuracy"], epochs=int(train_cfg["epochs"]),
               val_acc_trained=metrics["val_accuracy"], **scores, test_accuracy=metrics["test_accuracy"],
               score={k: score[k] for k in ("prog_sigma", "chips", "samples") if k in score},
               mlflow_run_id=metrics["mlflow_run_id"], wall_time_s=round(time.time() - t0, 2),
               val_subjects=val_subjects)
    if metrics["mlflow_run_id"]:
        import mlflow

        client = mlflow.MlflowClient()
        for k in ("val_acc_crossbar", "val_acc_noisy"):
            if doc.get(k) is not None:
                client.log_metric(metrics["mlflow_run_id"], k, float(doc[k]))
    tracking.write_json(out_json, doc)
    print(f"[nas_finalist] {dataset}/b{bits} rank {rank} (trial {row['trial']}), seed {fseed}: val {doc['val_acc_trained']:.4f} "
          f"trained, {doc['val_acc_noisy']:.4f} on noisy crossbars (search score {row['val_accuracy']:.4f}) in "
          f"{doc['wall_time_s']:.0f} s", file=sys.stderr, flush=True)
    return doc


def _write_csv(path: Path, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r)) or ["trial"]
    with tracking.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow(r)


def pareto_figure(rows: list[dict], front: list[dict], pick: dict, title: str, out_png: Path, dpi: int = 150,
                  ylabel: str = "validation accuracy (quantized, unipolar)", final: list[dict] | None = None,
                  final_pick: dict | None = None) -> None:
    """Trials (search score) vs area, the Pareto front, and, with finalists, each finalist's full-recipe mean
    score (diamond, +- sd over seeds) joined to its search score; the star marks the chosen architecture at the
    score it was chosen on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    df = pd.DataFrame(rows)
    df["area_mm2"] = df["area_um2"] / 1e6
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    sns.scatterplot(data=df, x="area_mm2", y="val_accuracy", hue="state", style="state",
                    hue_order=["COMPLETE", "PRUNED"], style_order=["COMPLETE", "PRUNED"], s=55, ax=ax, alpha=0.8)
    if front:
        fx = [r["area_um2"] / 1e6 for r in front]
        fy = [r["val_accuracy"] for r in front]
        ax.step(fx, fy, where="post", color="0.3", lw=1.2, label="Pareto front")
    for i, r in enumerate(final or []):
        x = r["area_um2"] / 1e6
        ax.plot([x, x], [r["search_val_accuracy"], r["val_accuracy"]], color="0.55", lw=0.9, ls=":", zorder=2)
        ax.errorbar([x], [r["val_accuracy"]], yerr=[r["final_val_std"]], fmt="D", ms=7, color="darkorange",
                    mec="black", mew=0.6, capsize=3, zorder=4,
                    label=f"finalists: full recipe, mean of {r['final_seeds']} seed(s)" if i == 0 else None)
    star = final_pick or pick
    ax.scatter([star["area_um2"] / 1e6], [star["val_accuracy"]], marker="*", s=320, color="crimson",
               edgecolor="black", zorder=5, label=f"chosen (trial {pick['trial']})")
    ax.set_xlabel("crossbar area (mm$^2$, cost model)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    fig.tight_layout()
    with tracking.atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    with tracking.atomic_path(out_png.with_suffix(".pdf")) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)


def select_stage(*, nas_dir, out_trials, out_pareto, out_arch, dataset: str, bits: int, cfg: dict, model_base: dict,
                 seed: int, experiment: str | None = None, finalists: list | None = None) -> dict:
    """The nas_unipolar rule: trials.csv, pareto.csv, arch.json, pareto.png/.pdf; closes the search run.
    ``finalists``: the nas_unipolar_finalist outputs; when given, the choice is among them, on their mean score."""
    import optuna

    nas_dir = Path(nas_dir)
    t0 = time.time()
    if not cfg["search"]:  # no search: the configured architecture, all-positive unless set otherwise
        model = {**model_base, "polarity": cfg["polarity"]}
        _write_csv(Path(out_trials), [])
        _write_csv(Path(out_pareto), [])
        doc = {"model": model, "rule": "nas_unipolar.search is false: config model.<dataset> with nas_unipolar.polarity",
               "dataset": dataset, "bits": bits}
        tracking.write_json(out_arch, doc)
        return doc
    workers = [json.loads(p.read_text()) for p in sorted(nas_dir.glob("worker*.json"))]
    name = _study_of(workers)
    study = optuna.load_study(study_name=name, storage=storage(nas_dir))
    rows = trial_rows(study)
    objective = "area_um2" if cfg["objective"] == "area" else "devices"
    front = pareto_front(rows, objective)
    margin = float(cfg["selection_margin"])
    score = cfg.get("score") or {}
    noisy = float(score.get("prog_sigma") or 0) > 0
    measured = ("mean over {chips} mapped crossbars with programming noise sigma {prog_sigma}".format(**score)
                if noisy else "the trained network's, last epoch")
    search_pick, _ = choose(rows, margin, objective)
    docs = [json.loads(Path(f).read_text()) for f in finalists or []]
    stale = sorted({d["study"] for d in docs} - {name})
    if stale:
        raise ValueError(f"nas_unipolar: finalist files of another study ({stale}); the study is {name}. Rerun "
                         f"rule nas_unipolar_finalist")
    final = rescore(rows, docs) if finalists else []
    if finalists:
        if not final:
            raise ValueError("nas_unipolar: no finalist has a candidate (no COMPLETE trial); raise trials or "
                             "pruning.warmup_epochs")
        pick, _ = choose(final, margin, objective)
        reps = max(r["final_seeds"] for r in final)
        rule = (f"smallest {objective} among the {len(final)} finalists (the best COMPLETE trials by search score, each "
                f"retrained with train.{dataset}: {docs[0].get('epochs', '?')} epochs, {reps} seed(s)) whose mean "
                f"validation accuracy is within {margin:.4f} of the best finalist's "
                f"({max(r['val_accuracy'] for r in final):.4f}); ties broken by accuracy; validation accuracy = "
                f"{measured}")
        by_trial = {r["trial"]: r for r in final}
        rows = [{**r, **{k: by_trial[r["trial"]][k] for k in ("finalist_rank", "final_seeds")},
                 "final_val_accuracy": by_trial[r["trial"]]["val_accuracy"],
                 "final_val_std": by_trial[r["trial"]]["final_val_std"]} if r["trial"] in by_trial else r for r in rows]
    else:
        pick, rule = choose(rows, margin, objective)
        rule += f"; validation accuracy = {measured}"
    _write_csv(Path(out_trials), rows)
    _write_csv(Path(out_pareto), front)
    search_row = next(r for r in rows if r["trial"] == pick["trial"])
    pareto_figure(rows, front, search_row, f"{dataset} unipolar, {bits}-bit devices: {len(rows)} trials",
                  nas_dir / "pareto.png",
                  ylabel=f"validation accuracy, crossbar at prog. σ {score['prog_sigma']}\n(pruned: trained net at stop)"
                  if noisy else "validation accuracy (quantized, unipolar)", final=final, final_pick=pick if final else None)
    doc = {"model": json.loads(pick["model"]), "rule": rule, "trial": pick["trial"],
           "val_accuracy": pick["val_accuracy"], "area_um2": pick["area_um2"], "devices": pick["devices"],
           "best_val_accuracy": max(r["val_accuracy"] for r in (final or rows) if r["state"] == "COMPLETE"),
           "search_val_accuracy": search_row["val_accuracy"], "search_pick": search_pick["trial"],
           "finalists": [{"trial": r["trial"], "rank": r["finalist_rank"], "area_um2": r["area_um2"],
                          "search_val_accuracy": r["search_val_accuracy"], "val_accuracy": r["val_accuracy"],
                          "val_std": r["final_val_std"], "seeds": r["final_seeds"]}
                         for r in sorted(final, key=lambda r: r["finalist_rank"])],
           "study": name, "storage": str(nas_dir / STUDY_FILE), "dataset": dataset, "bits": bits,
           "trials": {"complete": sum(r["state"] == "COMPLETE" for r in rows),
                      "pruned": sum(r["state"] == "PRUNED" for r in rows)},
           "search_wall_time_s": max((w["wall_time_s"] for w in workers), default=None),
           "finalist_time_s": round(sum(d.get("wall_time_s", 0) for d in docs), 1),
           "trial_time_s": round(sum(r["wall_time_s"] or 0 for r in rows), 1), "workers": len(workers),
           "epochs_per_trial": int(cfg["epochs"])}
    tracking.write_json(out_arch, doc)
    state = nas_dir / "search_run.json"
    if experiment and state.exists():
        import mlflow

        client = mlflow.MlflowClient()
        run_id = json.loads(state.read_text())["run_id"]
        client.log_metric(run_id, "chosen_val_accuracy", float(pick["val_accuracy"]))
        client.log_metric(run_id, "chosen_area_um2", float(pick["area_um2"]))
        client.log_metric(run_id, "trials_complete", doc["trials"]["complete"])
        client.log_metric(run_id, "trials_pruned", doc["trials"]["pruned"])
        client.set_tag(run_id, "chosen_trial", str(pick["trial"]))
        for p in (out_trials, out_pareto, out_arch, nas_dir / "pareto.png"):
            client.log_artifact(run_id, str(p))
        client.set_terminated(run_id, "FINISHED")
    print(f"[nas_unipolar] {dataset}/b{bits}: chose trial {pick['trial']} (val {pick['val_accuracy']:.4f}, "
          f"{pick['area_um2'] / 1e6:.3f} mm^2) of {len(rows)} trials; {rule} ({time.time() - t0:.1f} s)",
          file=sys.stderr, flush=True)
    return doc

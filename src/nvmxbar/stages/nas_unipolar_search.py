"""Rule ``nas_unipolar_search``: one search worker. Sign-constrained, quantized trials on the study it shares
with the other workers (``nas_unipolar.storage``: a journal file, or a PostgreSQL database for workers on several
machines), until the study holds ``nas_unipolar.trials`` finished trials."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna
import torch

from .. import files, tracking
from ..data.datamodule import NpzDataModule
from ..search import storage
from ..search.objective import make_objective
from ..search.space import enqueue_params
from ..settings import MapSettings, Pricing, QuantSettings, Recipe, Score
from ..settings import params as params_of

log = logging.getLogger(__name__)


def run(
    *,
    data_npz: str | Path,
    nas_dir: str | Path,
    out_json: str | Path,
    dataset: str,
    bits: int,
    worker: int,
    cfg: dict,
    model_base: dict,
    recipe: Recipe,
    quant: QuantSettings,
    ms: MapSettings,
    pricing: Pricing,
    score: Score,
    seed: int,
    experiment: str | None = None,
    threads: int = 1,
    accelerator: str = "auto",
    device: str = "auto",
) -> dict:
    """``cfg``: what the search itself reads of ``nas_unipolar`` (trials, epochs, space, pruning, objective,
    startup_trials, storage); ``recipe`` the trials' (``train.<dataset>`` at nas_unipolar.epochs, no distillation,
    on the training split); ``quant`` and ``ms`` the unipolar model's; ``pricing`` the area objective's;
    ``score`` how a trial is scored."""
    t0 = time.time()
    torch.set_num_threads(max(1, threads))
    nas_dir = Path(nas_dir)
    url = cfg["storage"]
    shared = storage.open_storage(url, nas_dir)  # a bad or unreachable database stops here, before any training
    storage.record(nas_dir, url)
    name = storage.study_name(
        dataset, bits, {**cfg, "score": params_of(score)}, model_base, seed, recipe.params(), params_of(quant)
    )
    lock = storage.study_lock(url, nas_dir, name)  # spans the machines of the workers when the study is in a database
    with lock():  # workers start together: one creates the study, the others load it
        study = optuna.create_study(
            study_name=name,
            storage=shared,
            load_if_exists=True,
            directions=["maximize", "minimize"],
            sampler=optuna.samplers.TPESampler(seed=seed * 100 + worker, n_startup_trials=int(cfg["startup_trials"])),
        )
    log.info("worker %d: study %s in %s", worker, name, storage.describe(nas_dir))
    prov = Path(data_npz).with_suffix(".json")
    sha = files.read_json(prov)["source"]["sha256"] if prov.exists() else ""
    parent = storage.search_run(
        nas_dir,
        experiment,
        name,
        {"nas_unipolar": {**cfg, "storage": storage.masked(url)}, "bits": bits},  # no password in MLflow
        tracking.standard_tags(
            dataset=dataset,
            variant="unipolar",
            bits=bits,
            seed=seed,
            rule="nas_unipolar",
            config_hash=name.rsplit("-", 1)[-1],
            data_sha256=sha,
        ),
        *(() if storage.is_journal(url) else (study, lock)),  # a database: the study records its search run
    )
    dm = NpzDataModule(data_npz, recipe.batch_size, recipe.augment, seed)
    objective = make_objective(
        dm=dm,
        dataset=dataset,
        bits=bits,
        cfg=cfg,
        model_base=model_base,
        recipe=recipe,
        quant=quant,
        ms=ms,
        pricing=pricing,
        score=score,
        seed=seed,
        parent_run=parent,
        experiment=experiment,
        accelerator=accelerator,
        device=device,
        data_sha256=sha,
    )
    TS = optuna.trial.TrialState
    total = int(cfg["trials"])
    with lock():  # known architectures first, once per study (workers race)
        for model in cfg["space"][dataset]["enqueue"]:
            study.enqueue_trial(enqueue_params(model, cfg["space"][dataset]), skip_if_exists=True)
    mine = storage.run_trials(study, objective, total, worker, lock)
    doc = {
        "study": name,
        "storage": storage.describe(nas_dir),
        "worker": worker,
        "trials_run": mine,
        "wall_time_s": round(time.time() - t0, 2),
        "study_finished_trials": len(study.get_trials(states=(TS.COMPLETE, TS.PRUNED))),
    }
    files.write_json(out_json, doc)
    log.info(
        "worker %d: %d trials in %.0f s; study %s has %d/%d finished",
        worker,
        len(mine),
        doc["wall_time_s"],
        name,
        doc["study_finished_trials"],
        total,
    )
    return doc

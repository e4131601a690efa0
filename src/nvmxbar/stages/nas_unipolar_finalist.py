"""Rule ``nas_unipolar_finalist``: retrain the ``rank``-th best COMPLETE trial of the study with the full recipe
(the train rule's code, seed :func:`nvmxbar.search.selection.finalist_seed`, distilled from the teacher when the
recipe says so) and score it as the search scores trials: mapped crossbar under ``score`` noise, on the
validation split (with ``finalists.val_folds``: rep k's own group of subjects, :func:`nvmxbar.data.subject_fold`).
Writes ``out_json``; the model and its metrics go to the folder of the same name. A slot with no candidate
writes ``trial: null``."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import optuna

from .. import files, tracking
from ..data import subject_fold
from ..search import storage
from ..search.objective import crossbar_score
from ..search.selection import finalist_rows, finalist_seed, study_of, trial_rows
from ..settings import MapSettings, QuantSettings, Recipe, Score
from ..training.model_io import load_model
from . import train

log = logging.getLogger(__name__)


def run(
    *,
    workers: list,
    out_json: str | Path,
    data_npz: str | Path,
    data_json: str | Path,
    dataset: str,
    bits: int,
    rank: int,
    rep: int,
    score: Score,
    val_folds: bool,
    model_base: dict,
    recipe: Recipe,
    quant: QuantSettings,
    ms: MapSettings,
    chip: dict,
    seed: int,
    experiment: str | None = None,
    threads: int = 1,
    accelerator: str = "auto",
    teacher: str | Path | None = None,
    device: str = "auto",
) -> dict:
    """``score``: nas_unipolar.score; ``val_folds``: nas_unipolar.finalists.val_folds; ``recipe`` the unipolar
    model's ``train.<dataset>`` recipe as a finalist trains it (on the training split alone: it is scored on
    validation data); ``quant``, ``ms`` and ``chip`` (its trained part) the unipolar model's."""
    t0 = time.time()
    out_json = Path(out_json)
    nas_dir = out_json.parent.parent
    name = study_of(workers)
    study = optuna.load_study(study_name=name, storage=storage.storage(nas_dir))
    fin = finalist_rows(trial_rows(study), rank + 1)  # the slot's candidate does not depend on how many slots
    fseed = finalist_seed(seed, rep)
    doc: dict[str, Any] = {"study": name, "rank": rank, "rep": rep, "seed": fseed, "dataset": dataset, "bits": bits}
    if rank >= len(fin):
        doc.update(trial=None, reason=f"the study has {len(fin)} COMPLETE trial(s), fewer than rank {rank} + 1")
        files.write_json(out_json, doc)
        log.info("%s/b%d rank %d: no candidate (%s)", dataset, bits, rank, doc["reason"])
        return doc
    row = fin[rank]
    model_cfg = {**model_base, **json.loads(row["model"])}
    # scored on validation data, so never fitted on it (train.<dataset>.fit_on is for deployments)
    recipe = dataclasses.replace(recipe, fit_on="train")
    log.info(
        "%s/b%d rank %d: trial %d (search score %.4f, %.4f mm^2), full recipe (%d epochs), seed %d",
        dataset,
        bits,
        rank,
        row["trial"],
        row["val_accuracy"],
        row["area_um2"] / 1e6,
        recipe.epochs,
        fseed,
    )
    folder = out_json.with_suffix("")
    state = nas_dir / "search_run.json"
    search = files.read_json(state) if experiment and state.exists() else {}
    tags = {"optuna.study": name, "optuna.trial": str(row["trial"]), "finalist_rank": str(rank)}
    if search.get("study") == name:
        tags["mlflow.parentRunId"] = search["run_id"]
    # rep k validates on its own group of subjects (finalists.val_folds): the mean over reps then rests on
    # seeds x val_subjects people instead of the same few (HAR: 4) for every rep
    fold, fold_npz = rep if val_folds else 0, folder / "fold.npz"
    val_subjects = subject_fold(data_npz, fold_npz, fold, seed)  # the workflow seed: every finalist, same folds
    if fold > 0 and val_subjects is not None:
        data_npz = fold_npz
    try:  # the fold copy goes whether the training finishes or not
        metrics = train.run(
            data_npz=data_npz,
            data_json=data_json,
            out_model=folder / "model.pt",
            out_metrics=folder / "metrics.json",
            dataset=dataset,
            variant="unipolar",
            bits=bits,
            seed=fseed,
            model_cfg=model_cfg,
            recipe=recipe,
            quant=quant,
            chip=chip,
            experiment=experiment,
            threads=threads,
            accelerator=accelerator,
            rule="nas_unipolar_finalist",
            extra_tags=tags,
            run_name=f"finalist {rank} (trial {row['trial']}) seed {fseed}",
            teacher=teacher,
            group=False,  # nested under the search run
        )
        if score.noisy:
            net, _ = load_model(folder / "model.pt")
            scores = crossbar_score(net, data_npz, bits, ms, score, fseed, device)
        else:
            scores = {"val_acc_crossbar": None, "val_acc_noisy": metrics["val_accuracy"], "val_acc_noisy_std": 0.0}
    finally:
        fold_npz.unlink(missing_ok=True)
    doc.update(
        trial=int(row["trial"]),
        model=json.loads(row["model"]),
        area_um2=row["area_um2"],
        devices=row["devices"],
        search_val_accuracy=row["val_accuracy"],
        epochs=recipe.epochs,
        val_acc_trained=metrics["val_accuracy"],
        **scores,
        test_accuracy=metrics["test_accuracy"],
        score={"prog_sigma": score.noise.prog_sigma, "chips": score.chips, "samples": score.samples},
        mlflow_run_id=metrics["mlflow_run_id"],
        wall_time_s=round(time.time() - t0, 2),
        val_subjects=val_subjects,
    )
    if metrics["mlflow_run_id"]:
        tracking.Run(metrics["mlflow_run_id"]).log_metrics(
            {k: doc[k] for k in ("val_acc_crossbar", "val_acc_noisy") if doc.get(k) is not None}
        )
    files.write_json(out_json, doc)
    log.info(
        "%s/b%d rank %d (trial %d), seed %d: val %.4f trained, %.4f on noisy crossbars (search score %.4f) in %.0f s",
        dataset,
        bits,
        rank,
        row["trial"],
        fseed,
        doc["val_acc_trained"],
        doc["val_acc_noisy"],
        row["val_accuracy"],
        doc["wall_time_s"],
    )
    return doc

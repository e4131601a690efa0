"""Rule ``nas_unipolar``: choose the unipolar architecture. trials.csv, the Pareto front (pareto.csv,
pareto.png/.pdf) and arch.json with the rule that chose it: among the finalists' full-recipe scores when there
are finalists, else among the COMPLETE trials. The train rule then trains it with the full recipe."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import optuna

from .. import files, tracking
from ..search import storage
from ..search.figure import pareto_figure
from ..search.selection import choose, pareto_front, rescore, study_of, trial_rows

log = logging.getLogger(__name__)


def run(
    *,
    nas_dir,
    out_trials,
    out_pareto,
    out_arch,
    dataset: str,
    bits: int,
    cfg: dict,
    model_base: dict,
    seed: int,
    experiment: str | None = None,
    finalists: list | None = None,
) -> dict:
    """trials.csv, pareto.csv, arch.json, pareto.png/.pdf; closes the search run. ``cfg``: what the selection reads
    of ``nas_unipolar`` (search, polarity, objective, selection_margin, score, epochs); ``finalists``: the
    nas_unipolar_finalist outputs; when given, the choice is among them, on their mean score."""
    nas_dir = Path(nas_dir)
    t0 = time.time()
    if not cfg["search"]:  # no search: the configured architecture, all-positive unless set otherwise
        model = {**model_base, "polarity": cfg["polarity"]}
        files.write_csv(out_trials, [])
        files.write_csv(out_pareto, [])
        doc = {
            "model": model,
            "rule": "nas_unipolar.search is false: config model.<dataset> with nas_unipolar.polarity",
            "dataset": dataset,
            "bits": bits,
        }
        files.write_json(out_arch, doc)
        return doc
    workers = [files.read_json(p) for p in sorted(nas_dir.glob("worker*.json"))]
    name = study_of(workers)
    study = optuna.load_study(study_name=name, storage=storage.storage(nas_dir))
    rows = trial_rows(study)
    objective = "area_um2" if cfg["objective"] == "area" else "devices"
    front = pareto_front(rows, objective)
    margin = float(cfg["selection_margin"])
    score = cfg["score"]
    noisy = float(score["prog_sigma"]) > 0
    measured = (
        "mean over {chips} mapped crossbars with programming noise sigma {prog_sigma} x the device's sigma(G)".format(
            **score
        )
        if noisy
        else "the trained network's, last epoch"
    )
    search_pick, _ = choose(rows, margin, objective)
    docs = [files.read_json(f) for f in finalists or []]
    stale = sorted({d["study"] for d in docs} - {name})
    if stale:
        raise ValueError(
            f"nas_unipolar: finalist files of another study ({stale}); the study is {name}. Rerun "
            f"rule nas_unipolar_finalist"
        )
    final = rescore(rows, docs) if finalists else []
    if finalists:
        if not final:
            raise ValueError(
                "nas_unipolar: no finalist has a candidate (no COMPLETE trial); raise trials or pruning.warmup_epochs"
            )
        pick, _ = choose(final, margin, objective)
        reps = max(r["final_seeds"] for r in final)
        rule = (
            f"smallest {objective} among the {len(final)} finalists (the best COMPLETE trials by search score, each "
            f"retrained with train.{dataset}: {docs[0].get('epochs', '?')} epochs, {reps} seed(s)) whose mean "
            f"validation accuracy is within {margin:.4f} of the best finalist's "
            f"({max(r['val_accuracy'] for r in final):.4f}); ties broken by accuracy; validation accuracy = "
            f"{measured}"
        )
        by_trial = {r["trial"]: r for r in final}
        rows = [
            {
                **r,
                **{k: by_trial[r["trial"]][k] for k in ("finalist_rank", "final_seeds")},
                "final_val_accuracy": by_trial[r["trial"]]["val_accuracy"],
                "final_val_std": by_trial[r["trial"]]["final_val_std"],
            }
            if r["trial"] in by_trial
            else r
            for r in rows
        ]
    else:
        pick, rule = choose(rows, margin, objective)
        rule += f"; validation accuracy = {measured}"
    files.write_csv(out_trials, rows)
    files.write_csv(out_pareto, front)
    search_row = next(r for r in rows if r["trial"] == pick["trial"])
    pareto_figure(
        rows,
        front,
        search_row,
        f"{dataset} unipolar, {bits}-bit devices: {len(rows)} trials",
        nas_dir / "pareto.png",
        ylabel=f"validation accuracy, crossbar at prog. noise {score['prog_sigma']} x σ(G)\n"
        "(pruned: trained net at stop)"
        if noisy
        else "validation accuracy (quantized, unipolar)",
        final=final,
        final_pick=pick if final else None,
    )
    doc = {
        "model": json.loads(pick["model"]),
        "rule": rule,
        "trial": pick["trial"],
        "val_accuracy": pick["val_accuracy"],
        "area_um2": pick["area_um2"],
        "devices": pick["devices"],
        "best_val_accuracy": max(r["val_accuracy"] for r in (final or rows) if r["state"] == "COMPLETE"),
        "search_val_accuracy": search_row["val_accuracy"],
        "search_pick": search_pick["trial"],
        "finalists": [
            {
                "trial": r["trial"],
                "rank": r["finalist_rank"],
                "area_um2": r["area_um2"],
                "search_val_accuracy": r["search_val_accuracy"],
                "val_accuracy": r["val_accuracy"],
                "val_std": r["final_val_std"],
                "seeds": r["final_seeds"],
            }
            for r in sorted(final, key=lambda r: r["finalist_rank"])
        ],
        "study": name,
        "storage": storage.describe(nas_dir),
        "dataset": dataset,
        "bits": bits,
        "trials": {
            "complete": sum(r["state"] == "COMPLETE" for r in rows),
            "pruned": sum(r["state"] == "PRUNED" for r in rows),
        },
        "search_wall_time_s": max((w["wall_time_s"] for w in workers), default=None),
        "finalist_time_s": round(sum(d.get("wall_time_s", 0) for d in docs), 1),
        "trial_time_s": round(sum(r["wall_time_s"] or 0 for r in rows), 1),
        "workers": len(workers),
        "epochs_per_trial": int(cfg["epochs"]),
    }
    files.write_json(out_arch, doc)
    state = nas_dir / "search_run.json"
    if experiment and state.exists():
        search = tracking.Run(files.read_json(state)["run_id"])
        search.log_metrics(
            {
                "chosen_val_accuracy": pick["val_accuracy"],
                "chosen_area_um2": pick["area_um2"],
                "trials_complete": doc["trials"]["complete"],
                "trials_pruned": doc["trials"]["pruned"],
            }
        )
        search.set_tag("chosen_trial", pick["trial"])
        for p in (out_trials, out_pareto, out_arch, nas_dir / "pareto.png"):
            search.log_artifact(p)
        search.end("FINISHED")
    log.info(
        "%s/b%d: chose trial %d (val %.4f, %.3f mm^2) of %d trials; %s (%.1f s)",
        dataset,
        bits,
        pick["trial"],
        pick["val_accuracy"],
        pick["area_um2"] / 1e6,
        len(rows),
        rule,
        time.time() - t0,
    )
    return doc

"""Choosing the unipolar architecture: the study's finished trials as rows, the Pareto front (accuracy vs area),
the finalists (the best COMPLETE trials, one per architecture, retrained with the full recipe and rescored), and
the documented selection rule (the smallest area within ``selection_margin`` of the best)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna


def trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        curve = t.user_attrs.get("val_acc_curve", [])
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "val_accuracy": t.values[0] if t.values else (max(curve) if curve else float("nan")),
                "val_acc_trained": curve[-1] if curve else float("nan"),
                "val_acc_crossbar": t.user_attrs.get("val_acc_crossbar"),
                "area_um2": t.user_attrs.get("area_um2"),
                "devices": t.user_attrs.get("devices"),
                "tiles": t.user_attrs.get("tiles"),
                "sign_flips": t.user_attrs.get("sign_flips"),
                "energy_pj": t.user_attrs.get("energy_pj"),
                "epochs_run": len(curve),
                "wall_time_s": t.user_attrs.get("wall_time_s"),
                "model": json.dumps(t.user_attrs.get("model"), separators=(",", ":")),
                **{f"param_{k}": v for k, v in t.params.items()},
            }
        )
    return rows


def pareto_front(rows: list[dict], objective: str = "area_um2") -> list[dict]:
    """Non-dominated COMPLETE trials: no other trial is at least as accurate and at most as large, and better in one."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    front = [
        r
        for r in done
        if not any(
            o["val_accuracy"] >= r["val_accuracy"]
            and o[objective] <= r[objective]
            and (o["val_accuracy"] > r["val_accuracy"] or o[objective] < r[objective])
            for o in done
        )
    ]
    return sorted(front, key=lambda r: r[objective])


def choose(rows: list[dict], margin: float, objective: str = "area_um2") -> tuple[dict, str]:
    """The documented selection rule. Returns (row, rule text)."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    if not done:
        raise ValueError(
            "nas_unipolar: no COMPLETE trial to choose from (all pruned or failed); raise trials or "
            "pruning.warmup_epochs"
        )
    best = max(r["val_accuracy"] for r in done)
    near = [r for r in done if r["val_accuracy"] >= best - margin]
    pick = min(near, key=lambda r: (r[objective], -r["val_accuracy"]))
    rule = (
        f"smallest {objective} among COMPLETE trials whose validation accuracy is within {margin:.4f} of the best "
        f"({best:.4f}); ties broken by accuracy"
    )
    return pick, rule


def finalist_rows(rows: list[dict], count: int) -> list[dict]:
    """The finalists: the ``count`` COMPLETE trials with the best search score (ties: smaller area, then the
    earlier trial), one per architecture: a trial that repeats a better-ranked one's network (TPE samples a
    small categorical space again; an enqueued network is sampled anew) would retrain the same network on
    the same seeds. Index = the finalist's rank, as rule nas_unipolar_finalist names it."""
    done = sorted(
        (r for r in rows if r["state"] == "COMPLETE"), key=lambda r: (-r["val_accuracy"], r["area_um2"], r["trial"])
    )
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
        out.append(
            {
                **r,
                "search_val_accuracy": r["val_accuracy"],
                "val_accuracy": float(v.mean()),
                "final_val_std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                "final_seeds": len(v),
                "finalist_rank": int(ds[0]["rank"]),
            }
        )
    return out


def study_of(workers: list) -> str:
    """The one study the search workers ran: ``workers`` are their output files or the documents read from them."""
    names = {(w if isinstance(w, dict) else json.loads(Path(w).read_text()))["study"] for w in workers}
    if len(names) != 1:
        raise ValueError(f"nas_unipolar: expected the search workers' files to name one study, found {sorted(names)}")
    return names.pop()

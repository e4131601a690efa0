"""The unipolar architecture search as the report reads it (rule nas_unipolar's trials.csv, pareto.csv and
arch.json of every dataset x device bits, from the paths rule report_collect declares): :func:`collect_nas`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from .collect import NAS_ARCH_KEYS, NAS_TRIAL_COLUMNS, Inputs, ReportInputError, need, read_json


def _nas_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(need(path))
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(NAS_TRIAL_COLUMNS))
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ReportInputError(f"report input unreadable: {path}: {err}") from None
    if df.empty:  # no search (nas_unipolar.search false): header only
        return df
    missing = [c for c in NAS_TRIAL_COLUMNS if c not in df.columns]
    if missing:
        raise ReportInputError(f"report input {path}: missing column(s) {missing}")
    return df


def _polarity_text(model: Any) -> str:
    """Short description of a model's sign constraint (arch.json ``model.polarity``)."""
    pol = (model or {}).get("polarity") if isinstance(model, dict) else None
    if pol is None:
        return ""
    if isinstance(pol, str):
        return {"positive": "all positive", "negative": "all negative"}.get(pol, pol)
    specs = pol if isinstance(pol, list) else [pol]
    kinds = []
    for sp in specs:
        if not isinstance(sp, dict):
            kinds.append(str(sp))
        else:
            r, c = int(sp.get("row_groups", 1) or 1), int(sp.get("col_groups", 1) or 1)
            kinds.append(
                "row x column groups"
                if r > 1 and c > 1
                else "row groups"
                if r > 1
                else "column groups"
                if c > 1
                else {1: "positive", -1: "negative"}.get(int(sp.get("sign", 1)), "?")
            )
    if len(set(kinds)) == 1:
        return {"positive": "all positive", "negative": "all negative"}.get(kinds[0], f"{kinds[0]} in every layer")
    return "per layer: " + ", ".join(kinds)


def _number(doc: dict, k: str) -> float:
    return float(doc[k]) if doc.get(k) is not None else math.nan


def collect_nas(inputs: Inputs) -> dict[str, pd.DataFrame]:
    """The unipolar architecture search of every dataset x device bits (rule nas_unipolar): ``nas_trials`` (every
    row of trials.csv), ``nas_pareto`` (pareto.csv) and ``nas_arch`` (one row per arch.json: the chosen trial,
    the search's size and time, the selection rule). A missing or unreadable file stops with an error naming it."""
    trials, pareto, arch = [], [], []
    for ds in inputs.datasets:
        for b in sorted(int(x) for x in inputs.bits):
            key = {"dataset": ds, "bits": b}
            t = _nas_csv(inputs.nas_file(ds, b, "trials.csv"))
            f = _nas_csv(inputs.nas_file(ds, b, "pareto.csv"))
            doc = read_json(inputs.nas_file(ds, b, "arch.json"), NAS_ARCH_KEYS)
            if len(t):
                trials.append(t.assign(**key))
            if len(f):
                pareto.append(f.assign(**key))
            counts = doc.get("trials") if isinstance(doc.get("trials"), dict) else {}
            state = t["state"].astype(str) if len(t) else pd.Series(dtype=str)
            arch.append(
                {
                    **key,
                    "search": "trial" in doc and len(t) > 0,
                    "trial": doc.get("trial"),
                    "val_accuracy": _number(doc, "val_accuracy"),
                    "area_um2": _number(doc, "area_um2"),
                    "devices": doc.get("devices"),
                    "best_val_accuracy": _number(doc, "best_val_accuracy"),
                    "trials_complete": int(counts.get("complete", (state == "COMPLETE").sum())),
                    "trials_pruned": int(counts.get("pruned", (state == "PRUNED").sum())),
                    "pareto_size": len(f),
                    "search_wall_time_s": _number(doc, "search_wall_time_s"),
                    "trial_time_s": _number(doc, "trial_time_s"),
                    "workers": doc.get("workers"),
                    "epochs_per_trial": doc.get("epochs_per_trial"),
                    "study": doc.get("study", ""),
                    "rule": str(doc["rule"]),
                    "polarity": _polarity_text(doc.get("model")),
                    "finalists": len(doc.get("finalists") or []),
                    "search_pick": doc.get("search_pick"),
                }
            )
    empty = pd.DataFrame(columns=[*NAS_TRIAL_COLUMNS, "dataset", "bits"])
    cat = lambda xs: pd.concat(xs, ignore_index=True) if xs else empty.copy()  # noqa: E731
    return {"nas_trials": cat(trials), "nas_pareto": cat(pareto), "nas_arch": pd.DataFrame(arch)}

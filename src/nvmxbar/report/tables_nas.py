"""The table of the unipolar architecture search (tables/nas.*): :func:`nas_table` and its view :func:`display_nas`."""

from __future__ import annotations

import math

import pandas as pd

from .collect import NAS_VARIANT
from .formatting import fmt_duration, num
from .seeds import DEPLOYMENT, mean_over_seeds


def nas_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset x device bits of the unipolar search: trials (complete / pruned), search wall time, the chosen
    trial with its validation accuracy and area, the best validation accuracy, the selection rule, and what the
    chosen architecture gave once trained with the full recipe and mapped (test accuracy, ideal crossbar, area of
    cost.json: means over the seeds) where those runs are in the report. Accuracies in %."""
    arch = data.get("nas_arch")
    if arch is None or arch.empty:
        return pd.DataFrame(columns=["dataset", "bits"])
    tr = mean_over_seeds(data["training"], ["dataset", "model"]).set_index(["dataset", "model"])
    summ = mean_over_seeds(data["noise_summary"], DEPLOYMENT).set_index(DEPLOYMENT)
    has_cost = "cost" in data and len(data["cost"])
    cost = mean_over_seeds(data["cost"], DEPLOYMENT).set_index(DEPLOYMENT) if has_cost else None
    rows = []
    for r in arch.itertuples():
        model, key = f"{NAS_VARIANT}/b{r.bits}", (r.dataset, NAS_VARIANT, r.bits)
        rows.append(
            {
                "dataset": r.dataset,
                "bits": r.bits,
                "search": r.search,
                "trials_complete": r.trials_complete,
                "trials_pruned": r.trials_pruned,
                "workers": r.workers,
                "epochs_per_trial": r.epochs_per_trial,
                "search_wall_time_s": r.search_wall_time_s,
                "trial_time_s": r.trial_time_s,
                "chosen_trial": r.trial,
                "chosen_val_accuracy_pct": 100 * r.val_accuracy,
                "chosen_area_um2": r.area_um2,
                "chosen_area_mm2": r.area_um2 / 1e6,
                "chosen_devices": r.devices,
                "best_val_accuracy_pct": 100 * r.best_val_accuracy,
                "val_accuracy_given_up_pct": 100 * (r.best_val_accuracy - r.val_accuracy),
                "pareto_size": r.pareto_size,
                "polarity": r.polarity,
                "finalists": r.finalists,
                "search_score_pick": r.search_pick,
                "trained_test_accuracy_pct": 100 * float(tr.loc[(r.dataset, model), "test_accuracy"])
                if (r.dataset, model) in tr.index
                else math.nan,
                "ideal_crossbar_accuracy_pct": 100 * float(summ.loc[key, "ideal_crossbar_accuracy"])
                if key in summ.index
                else math.nan,
                "deployed_area_um2": float(cost.loc[key, "area_um2"])
                if cost is not None and key in cost.index
                else math.nan,
                "selection_rule": r.rule,
                "study": r.study,
            }
        )
    return pd.DataFrame(rows)


def display_nas(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "bits",
        "trials (complete / pruned)",
        "search wall time",
        "finalists",
        "chosen trial",
        "chosen val. acc. (%)",
        "chosen area (mm²)",
        "best val. acc. (%)",
        "polarity",
        "trained test acc. (%)",
        "selection rule",
    ]
    pct, sig = num(".2f"), num(".4g")
    rows = []
    for r in t.itertuples():
        if not r.search:
            rows.append(
                [
                    r.dataset,
                    str(r.bits),
                    "no search",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    r.polarity,
                    pct(r.trained_test_accuracy_pct),
                    r.selection_rule,
                ]
            )
            continue
        rows.append(
            [
                r.dataset,
                str(r.bits),
                f"{r.trials_complete} / {r.trials_pruned}",
                fmt_duration(r.search_wall_time_s),
                f"{int(r.finalists)} (search score alone: trial {int(r.search_score_pick)})"
                if r.finalists and r.search_score_pick is not None and not pd.isna(r.search_score_pick)
                else "none",
                str(int(r.chosen_trial)),
                pct(r.chosen_val_accuracy_pct),
                sig(r.chosen_area_mm2),
                pct(r.best_val_accuracy_pct),
                r.polarity,
                pct(r.trained_test_accuracy_pct),
                r.selection_rule,
            ]
        )
    return heads, rows

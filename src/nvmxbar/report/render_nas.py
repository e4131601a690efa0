"""REPORT.md's "Unipolar architecture search" (:func:`nas_section`): the search table, the Pareto figures and, in
plain words, what the chosen network reaches (means over the seeds) against the paper's HAR 2-bit only-positive
figure and against our float baseline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .accuracy import seed_value
from .collect import NAS_VARIANT
from .formatting import fmt_duration, markdown
from .paper import DATASET_NAMES, PAPER_FIGURES
from .seeds import first_seed
from .tables_nas import display_nas, nas_table


def _pct(v: float) -> str:
    return f"{v:.1f} %"


def _float_network(acc: pd.DataFrame, dataset: str) -> tuple[float, float, int] | None:
    """The float network's test accuracy over the seeds (mean, std, n), from a baseline row of the accuracy table."""
    row = acc[(acc.dataset == dataset) & (acc.variant == "baseline")]
    if not len(row):
        return None
    r = row.iloc[0]
    return float(r.test_accuracy_mean), float(r.test_accuracy_std), int(r.n_seeds)


def nas_section(
    data, acc: pd.DataFrame, cfg: dict, tables_dir: Path, figures: dict[str, Path], rel: Callable[[Any], str]
) -> list[str]:
    """REPORT.md: the unipolar architecture search (table, Pareto figures) and, in plain words, the HAR 2-bit
    only-positive accuracy against the paper's and against our float baseline."""
    nas = nas_table(data)
    gap_target = float(cfg["unipolar_float_gap_pct"])
    L = [
        "## Unipolar architecture search",
        "",
        "The `unipolar` variant (one device per weight, each weight matrix or sign group of one polarity) takes its "
        "architecture from an Optuna search per dataset and device resolution (rule `nas_unipolar`): every trial "
        "trains a sign-constrained, quantized candidate for a few epochs and is scored on validation accuracy "
        "(higher is better) and crossbar area from the cost model (smaller is better); weak trials are pruned "
        "early. The chosen trial is then trained with the full recipe and deployed like the other variants.",
        "",
    ]
    if nas.empty:
        return L + ["No search result in this report.", ""]
    L.append(markdown(*display_nas(nas)))
    L.append(
        f"Table: `{rel(tables_dir / 'nas.csv')}` (also `.md`, `.tex`); trials: "
        f"`{{dataset}}/{NAS_VARIANT}/b{{bits}}/nas/trials.csv`."
    )
    L.append("")
    lay = first_seed(data["layers"])  # the sign groups are the searched architecture's: the same for every seed
    for r in nas.itertuples():
        ds_name = DATASET_NAMES.get(r.dataset, r.dataset)
        row = acc[(acc.dataset == r.dataset) & (acc.variant == NAS_VARIANT) & (acc.bits == r.bits)]
        base = _float_network(acc, r.dataset)
        flips = lay[(lay.dataset == r.dataset) & (lay.variant == NAS_VARIANT) & (lay.bits == r.bits)].sign_flips
        n_neg = int(pd.to_numeric(flips, errors="coerce").fillna(0).sum()) if len(flips) else None
        sign = (
            "with only-positive weights (no negative sign group in mapping.json)"
            if n_neg == 0
            else f"with {n_neg} negative sign group(s) beside positive ones (unipolar per group, not only-positive)"
            if n_neg
            else f"with polarity {r.polarity or 'not stated'}"
        )
        head = f"**{ds_name}, {r.bits}-bit devices.** "
        if r.search:
            fin = int(r.finalists or 0)
            head += (
                f"The search ran {r.trials_complete} complete and {r.trials_pruned} pruned trials "
                f"({fmt_duration(r.search_wall_time_s) or 'wall time not recorded'})"
                + (
                    f"; its {fin} best were retrained with the full recipe and rescored (finalists), and it chose "
                    f"trial {int(r.chosen_trial)}: {r.chosen_val_accuracy_pct:.2f} % mean validation accuracy "
                    f"({r.val_accuracy_given_up_pct:.2f} points below the best finalist) at "
                    f"{r.chosen_area_mm2:.4g} mm²"
                    + (
                        f" (the search score alone would have chosen trial {int(r.search_score_pick)}). "
                        if r.search_score_pick is not None
                        and not pd.isna(r.search_score_pick)
                        and int(r.search_score_pick) != int(r.chosen_trial)
                        else ". "
                    )
                    if fin
                    else f" and chose trial {int(r.chosen_trial)}: {r.chosen_val_accuracy_pct:.2f} % validation "
                    "accuracy "
                    f"({r.val_accuracy_given_up_pct:.2f} points below the best trial) at "
                    f"{r.chosen_area_mm2:.4g} mm². "
                )
            )
        else:
            head += "No search was run: the configured architecture was used. "
        if len(row):
            a = row.iloc[0]
            ideal = 100 * float(a.ideal_crossbar_accuracy_mean)
            head += (
                f"Trained with the full recipe and mapped {sign}, it reaches "
                f"{seed_value(a.ideal_crossbar_accuracy_mean, a.ideal_crossbar_accuracy_std, a.n_seeds)} test "
                f"accuracy on the ideal crossbar ({_pct(100 * a.test_accuracy_mean)} as trained, "
                f"{_pct(100 * a.noisy_accuracy_mean)} with programming noise {a.ref_prog_sigma:g} x the device's "
                "σ(G); means over the seeds)."
            )
            if base is not None:
                fl = 100 * base[0]
                gap = fl - ideal
                ok = gap <= gap_target
                head += (
                    f" Our float baseline reaches {_pct(fl)} (seed mean): the unipolar network is "
                    + (f"{gap:.1f} points below it" if gap >= 0 else f"{-gap:.1f} points above it")
                    + f", {'within' if ok else 'outside'} the {gap_target:g}-point target "
                    f"(config `report.unipolar_float_gap_pct`)."
                )
            if r.dataset == "har" and r.bits == 2:
                p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
                d = ideal - p["value"]
                head += (
                    f" The paper reports up to {p['value']:g} % for HAR on 2-bit devices with only-positive "
                    f"weights ({p['source']}); ours is {abs(d):.2f} points {'above' if d >= 0 else 'below'} "
                    f"that figure."
                )
        else:
            head += "Its trained and mapped network is not in this report."
        L += [head, ""]
    if not ((nas.dataset == "har") & (nas.bits == 2)).any():
        p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
        L += [
            f"The paper's headline HAR 2-bit only-positive figure (up to {p['value']:g} %) needs a HAR 2-bit "
            f"`unipolar` run, which is not in this report.",
            "",
        ]
    for name, path in figures.items():
        if name.startswith("nas_pareto_"):
            L += [f"![{name}]({rel(path)})", ""]
    return L

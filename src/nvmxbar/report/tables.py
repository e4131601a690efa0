"""The report's tables: :func:`accuracy_table`, :func:`cost_table` and :func:`nas_table` build DataFrames from
:func:`nvmxbar.report.collect.collect`'s; :func:`write_table` writes each as CSV (every column), Markdown and
LaTeX (formatted for reading: :data:`DISPLAY`), atomically."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import write_text
from .collect import NAS_VARIANT, SETTING_KEYS
from .paper import COMBINED_VARIANTS, PAPER_FIGURES, TECHNIQUES, paper_accuracy

TABLE_NAMES = ("accuracy", "cost")  # always written; tables/nas.* too when the unipolar variant is configured


def table_names(variants: Iterable[str]) -> tuple[str, ...]:
    """The tables the report writes for these variants (nas only with the searched unipolar variant)."""
    return TABLE_NAMES + (("nas",) if NAS_VARIANT in list(variants) else ())


def _first_values(nz: pd.DataFrame) -> pd.Series:
    """Rows whose non-programming non-idealities are all at their first swept value (the sweep's order)."""
    nz = nz.sort_values("order")
    keep = pd.Series(True, index=nz.index)
    for k in SETTING_KEYS[1:]:
        first = nz[k].iloc[0]
        keep &= nz[k].isna() if pd.isna(first) else np.isclose(nz[k].astype(float), float(first))
    return keep


def prog_noise_curve(noise: pd.DataFrame, dataset: str, variant: str, bits: int) -> pd.DataFrame:
    """The programming-noise sweep of one deployment, other non-idealities at their first value, by sigma."""
    nz = noise[(noise.dataset == dataset) & (noise.variant == variant) & (noise.bits == bits)]
    return nz[_first_values(nz)].sort_values("prog_sigma")


def reference_row(noise: pd.DataFrame, dataset: str, variant: str, bits: int, sigma: float) -> pd.Series:
    """The noise.csv row nearest to programming noise ``sigma`` (ties: the smaller sigma)."""
    curve = prog_noise_curve(noise, dataset, variant, bits)
    dist = (curve.prog_sigma.astype(float) - float(sigma)).abs().round(12)
    return curve.assign(_d=dist).sort_values(["_d", "prog_sigma"]).iloc[0].drop("_d")


def accuracy_table(data: dict[str, pd.DataFrame], reference_prog_sigma: float) -> pd.DataFrame:
    """Per dataset x variant x bits: the trained model's test accuracy (float for the baseline, the QAT model's
    own for quantized variants), the ideal crossbar's, the noisy crossbar's at the reference programming noise,
    and the paper's figure where one exists. Accuracies in %."""
    tr = data["training"].set_index(["dataset", "model"])
    summ = data["noise_summary"].set_index(["dataset", "variant", "bits"])
    rows = []
    for r in data["mapping"].itertuples():
        ref = reference_row(data["noise"], r.dataset, r.variant, r.bits, reference_prog_sigma)
        paper, note = paper_accuracy(r.dataset, r.variant, r.bits)
        rows.append(
            {
                "dataset": r.dataset,
                "variant": r.variant,
                "bits": r.bits,
                "model_test_accuracy_pct": 100 * tr.loc[(r.dataset, r.model), "test_accuracy"],
                # the loss breakdown: mapped weights alone, + DAC, + ADC (= the ideal crossbar)
                "weights_only_accuracy_pct": 100 * summ.loc[(r.dataset, r.variant, r.bits), "weights_only_accuracy"],
                "with_dac_accuracy_pct": 100 * summ.loc[(r.dataset, r.variant, r.bits), "with_dac_accuracy"],
                "ideal_crossbar_accuracy_pct": 100
                * summ.loc[(r.dataset, r.variant, r.bits), "ideal_crossbar_accuracy"],
                "ref_prog_sigma": float(ref.prog_sigma),
                "noisy_accuracy_mean_pct": 100 * float(ref.accuracy_mean),
                "noisy_accuracy_std_pct": 100 * float(ref.accuracy_std),
                "noisy_instances": int(ref.instances),
                "noise_test_samples": summ.loc[(r.dataset, r.variant, r.bits), "samples"],
                "paper_accuracy_pct": paper,
                "paper_note": note,
            }
        )
    return pd.DataFrame(rows)


def improvement(value: float, reference: float) -> float:
    return 100.0 * (1.0 - value / reference) if reference and not math.isnan(reference) else math.nan


def cost_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset x variant x bits: area, energy, component counts and the % improvement over the baseline
    mapped at the same device bits (positive = smaller/lower); the paper's combined figures beside the variants
    that combine both techniques."""
    cost = data["cost"].merge(
        data["mapping"][["dataset", "variant", "bits", "devices", "adcs", "tiles", "periphery_designs"]],
        on=["dataset", "variant", "bits"],
    )
    base = cost[cost.variant == "baseline"].set_index(["dataset", "bits"])
    paper_area, paper_energy = PAPER_FIGURES["area_combined"]["value"], PAPER_FIGURES["energy_combined"]["value"]
    rows = []
    for r in cost.itertuples():
        has_base = (r.dataset, r.bits) in base.index and r.variant != "baseline"
        ba = base.loc[(r.dataset, r.bits), "area_um2"] if has_base else math.nan
        be = base.loc[(r.dataset, r.bits), "energy_pj"] if has_base else math.nan
        combined = r.variant in COMBINED_VARIANTS
        rows.append(
            {
                "dataset": r.dataset,
                "variant": r.variant,
                "bits": r.bits,
                "technique": TECHNIQUES.get(r.variant, r.variant),
                "family": r.family,
                "area_um2": r.area_um2,
                "energy_pj_per_inference": r.energy_pj,
                "devices": r.devices,
                "adcs": r.adcs,
                "tiles": r.tiles,
                "periphery_designs": r.periphery_designs,
                "area_improvement_pct": improvement(r.area_um2, ba),
                "energy_improvement_pct": improvement(r.energy_pj, be),
                "time_shared_area_um2": r.time_shared_area_um2,
                "time_shared_adcs": r.time_shared_adcs,
                "time_share_applied": r.time_share_applied,
                "time_shared_area_improvement_pct": improvement(r.time_shared_area_um2, ba),
                "paper_area_improvement_pct": paper_area if combined else math.nan,
                "paper_energy_improvement_pct": paper_energy if combined else math.nan,
                "paper_note": (
                    f"up to, both techniques ({PAPER_FIGURES['area_combined']['source']}); "
                    f"v1: {PAPER_FIGURES['area_unipolar_v1']['value']:g} % area unipolar alone, "
                    f"{PAPER_FIGURES['power_v1']['value']:g} % power"
                )
                if combined
                else "",
            }
        )
    return pd.DataFrame(rows)


#: The attribution stack: each deployment changes one thing from the one before (nvmxbar.settings.VARIANTS).
ATTRIBUTION_STEPS = {
    "baseline": "baseline: float training, per-layer scales, 8-bit weights bit-sliced",
    "perlayer": "+ training at device precision (per-layer scales, one slice)",
    "uniform": "+ one shared scale (uniform scaling)",
    "signed": "+ the searched, smaller network (signed weights)",
    "unipolar": "+ one device per weight (unipolar)",
}


def attribution_table(cost: pd.DataFrame, acc: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and device bits, the deployments in the order of the attribution stack (those that ran): area and
    energy, each as % of the baseline's and as the step's own saving (against the step before), and the ideal and
    noisy crossbar accuracy, so that every saving is traced to the change that produced it."""
    keys = ["dataset", "variant", "bits"]
    t = cost.merge(acc[keys + ["ideal_crossbar_accuracy_pct", "noisy_accuracy_mean_pct"]], on=keys, how="left")
    rows = []
    for (ds, bits), grp in t.groupby(["dataset", "bits"], sort=False):
        steps = [v for v in ATTRIBUTION_STEPS if v in set(grp.variant)]
        if "baseline" not in steps:
            continue
        g = grp.set_index("variant")
        base, prev = g.loc["baseline"], None
        for v in steps:
            r = g.loc[v]
            rows.append(
                {
                    "dataset": ds,
                    "bits": int(bits),
                    "step": ATTRIBUTION_STEPS[v],
                    "variant": v,
                    "area_um2": float(r.area_um2),
                    "energy_pj_per_inference": float(r.energy_pj_per_inference),
                    "area_pct_of_baseline": 100.0 * float(r.area_um2) / float(base.area_um2),
                    "energy_pct_of_baseline": 100.0
                    * float(r.energy_pj_per_inference)
                    / float(base.energy_pj_per_inference),
                    "step_area_saving_pct": math.nan if prev is None else improvement(r.area_um2, prev.area_um2),
                    "step_energy_saving_pct": math.nan
                    if prev is None
                    else improvement(r.energy_pj_per_inference, prev.energy_pj_per_inference),
                    "ideal_crossbar_accuracy_pct": float(r.ideal_crossbar_accuracy_pct),
                    "noisy_accuracy_mean_pct": float(r.noisy_accuracy_mean_pct),
                }
            )
            prev = r
    return pd.DataFrame(rows)


def display_attribution(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "bits",
        "step",
        "area (% of baseline)",
        "energy (% of baseline)",
        "step's area saving (%)",
        "step's energy saving (%)",
        "ideal crossbar (%)",
        "noisy crossbar (%)",
    ]
    f1, f2 = _num(".1f", "—"), _num(".2f", "—")
    rows = [
        [
            r.dataset,
            str(r.bits),
            r.step,
            f1(r.area_pct_of_baseline),
            f1(r.energy_pct_of_baseline),
            f1(r.step_area_saving_pct),
            f1(r.step_energy_saving_pct),
            f2(r.ideal_crossbar_accuracy_pct),
            f2(r.noisy_accuracy_mean_pct),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


# display: (column, header, formatter); a formatter returns a str ('' for a missing value)
def _num(fmt: str, missing: str = "") -> Callable[[Any], str]:
    return lambda v: missing if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def display_accuracy(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "variant",
        "bits",
        "trained model (%)",
        "mapped weights (%)",
        "+ DAC (%)",
        "ideal crossbar: + ADC (%)",
        "prog. σ (% of G range)",
        "noisy crossbar (%)",
        "paper (%)",
    ]
    pct = _num(".2f")
    rows = [
        [
            r.dataset,
            r.variant,
            str(r.bits),
            pct(r.model_test_accuracy_pct),
            pct(r.weights_only_accuracy_pct),
            pct(r.with_dac_accuracy_pct),
            pct(r.ideal_crossbar_accuracy_pct),
            format(100 * r.ref_prog_sigma, "g"),
            f"{r.noisy_accuracy_mean_pct:.2f} ± {r.noisy_accuracy_std_pct:.2f} (n={r.noisy_instances})",
            _num("g")(r.paper_accuracy_pct),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def display_cost(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "variant",
        "bits",
        "technique",
        "area (µm²)",
        "energy (pJ/inference)",
        "devices",
        "ADCs",
        "tiles",
        "periphery designs",
        "area impr. (%)",
        "energy impr. (%)",
        "area, ADCs time-shared (µm²)",
        "paper area impr. (%)",
        "paper energy impr. (%)",
    ]
    ref = lambda r, v: "ref." if r.variant == "baseline" else _num(".1f", "n/a")(v)  # noqa: E731
    upto = lambda v: "" if math.isnan(v) else f"up to {v:g}"  # noqa: E731
    rows = [
        [
            r.dataset,
            r.variant,
            str(r.bits),
            r.technique,
            f"{r.area_um2:,.0f}",
            fmt_energy(r.energy_pj_per_inference),
            f"{r.devices:,}",
            f"{r.adcs:,}",
            f"{r.tiles:,}",
            str(r.periphery_designs),
            ref(r, r.area_improvement_pct),
            ref(r, r.energy_improvement_pct),
            _num(",.0f")(r.time_shared_area_um2),
            upto(r.paper_area_improvement_pct),
            upto(r.paper_energy_improvement_pct),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def nas_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset x device bits of the unipolar search: trials (complete / pruned), search wall time, the chosen
    trial with its validation accuracy and area, the best validation accuracy, the selection rule, and what the
    chosen architecture gave once trained with the full recipe and mapped (test accuracy, ideal crossbar, area of
    cost.json) where those runs are in the report. Accuracies in %."""
    arch = data.get("nas_arch")
    if arch is None or arch.empty:
        return pd.DataFrame(columns=["dataset", "bits"])
    tr = data["training"].set_index(["dataset", "model"])
    summ = data["noise_summary"].set_index(["dataset", "variant", "bits"])
    cost = data["cost"].set_index(["dataset", "variant", "bits"]) if "cost" in data and len(data["cost"]) else None
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


def fmt_energy(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.1f}"


def fmt_duration(s: float) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return ""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


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
    pct, num = _num(".2f"), _num(".4g")
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
                num(r.chosen_area_mm2),
                pct(r.best_val_accuracy_pct),
                r.polarity,
                pct(r.trained_test_accuracy_pct),
                r.selection_rule,
            ]
        )
    return heads, rows


DISPLAY = {
    "accuracy": display_accuracy,
    "cost": display_cost,
    "nas": display_nas,
    "attribution": display_attribution,
}


def markdown(heads: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    align = ["---" if i < 2 else "---:" for i in range(len(heads))]
    lines = ["| " + " | ".join(map(esc, heads)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "σ": r"$\sigma$",
    "µ": r"$\mu$",
    "²": r"$^2$",
}


def latex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def latex(heads: list[str], rows: list[list[str]], source: str = "") -> str:
    cols = "l" * 2 + "r" * (len(heads) - 2)
    out = [
        f"% generated by nvmxbar.report{' from ' + source if source else ''}; needs \\usepackage{{booktabs}}",
        f"\\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(map(latex_escape, heads)) + r" \\",
        r"\midrule",
    ]
    out += [" & ".join(map(latex_escape, r)) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def write_table(table: pd.DataFrame, name: str, out_dir: str | Path) -> list[Path]:
    """<out_dir>/<name>.csv (all columns, machine-readable), .md and .tex (formatted), each written atomically."""
    out_dir = Path(out_dir)
    heads, rows = DISPLAY[name](table)
    paths = []
    for ext, text in (
        ("csv", table.to_csv(index=False, float_format="%.6g")),
        ("md", markdown(heads, rows)),
        ("tex", latex(heads, rows, f"{name}.csv")),
    ):
        p = out_dir / f"{name}.{ext}"
        write_text(p, text)
        paths.append(p)
    return paths

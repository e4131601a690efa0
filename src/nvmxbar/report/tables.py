"""The report's tables: :func:`cost_table`, :func:`attribution_table` and :func:`nas_table` build DataFrames from
:func:`nvmxbar.report.collect.collect`'s (the accuracy tables over seeds: :mod:`.accuracy`); :func:`write_table`
writes each as CSV (every column), Markdown and LaTeX (formatted for reading: :data:`DISPLAY`), atomically.
Cost, mapping and the search's deployed results barely depend on the seed: their tables show the mean over the
seeds of each deployment."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import write_text
from ..stats import welch
from .collect import NAS_VARIANT, SETTING_KEYS
from .paper import COMBINED_VARIANTS, PAPER_FIGURES, TECHNIQUES
from .seeds import DEPLOYMENT, mean_over_seeds

#: Always written (CSV, Markdown, LaTeX); tables/nas.* too when the unipolar variant is configured.
TABLE_NAMES = ("accuracy", "accuracy_per_seed", "comparisons", "cost")


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


def prog_noise_curve(
    noise: pd.DataFrame, dataset: str, variant: str, bits: int, seed: int | None = None
) -> pd.DataFrame:
    """The programming-noise sweep of one deployment (of one ``seed``; None: every seed's rows), other
    non-idealities at their first value, by sigma."""
    nz = noise[(noise.dataset == dataset) & (noise.variant == variant) & (noise.bits == bits)]
    if seed is not None and "seed" in nz.columns:
        nz = nz[nz.seed == seed]
    return nz[_first_values(nz).reindex(nz.index)].sort_values("prog_sigma", kind="stable")


def reference_row(
    noise: pd.DataFrame, dataset: str, variant: str, bits: int, sigma: float, seed: int | None = None
) -> pd.Series:
    """The noise.csv row nearest to programming noise ``sigma`` (ties: the smaller sigma), of one ``seed`` (None:
    the lowest seed's)."""
    if seed is None and "seed" in noise.columns and len(noise):
        seed = int(noise.seed.min())
    curve = prog_noise_curve(noise, dataset, variant, bits, seed)
    dist = (curve.prog_sigma.astype(float) - float(sigma)).abs().round(12)
    return curve.assign(_d=dist).sort_values(["_d", "prog_sigma"]).iloc[0].drop("_d")


def improvement(value: float, reference: float) -> float:
    return 100.0 * (1.0 - value / reference) if reference and not math.isnan(reference) else math.nan


def cost_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset x variant x bits: area, energy, component counts (each the mean over the seeds: the read
    energy is measured per seed) and the % improvement over the baseline mapped at the same device bits (positive
    = smaller/lower); the paper's combined figures beside the variants that combine both techniques."""
    keys = ["dataset", "variant", "bits"]
    mapping = mean_over_seeds(data["mapping"], keys)
    cost = mean_over_seeds(data["cost"], keys).merge(
        mapping[[*keys, "devices", "adcs", "tiles", "periphery_designs"]], on=keys
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
                "n_seeds": r.n_seeds,
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


def attribution_table(cost: pd.DataFrame, acc: pd.DataFrame, per_seed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per dataset and device bits, the deployments in the order of the attribution stack (those that ran): area and
    energy (means over the seeds), each as % of the baseline's and as the step's own saving (against the step
    before), and the ideal and noisy crossbar accuracy (fractions, mean and std over the seeds) with the step's
    accuracy change against the step before: the difference of the means, and with ``per_seed`` (the table of
    :func:`.accuracy.per_seed_table`) its 95 % Welch confidence interval over the seeds."""
    keys = ["dataset", "variant", "bits"]
    accs = [f"{q}_{s}" for q in ATTRIBUTION_ACCURACY for s in ("mean", "std")]
    t = cost.merge(acc[keys + accs + ["n_seeds"]], on=keys, how="left", suffixes=("_cost", ""))
    rows = []
    for (ds, bits), grp in t.groupby(["dataset", "bits"], sort=False):
        steps = [v for v in ATTRIBUTION_STEPS if v in set(grp.variant)]
        if "baseline" not in steps:
            continue
        g = grp.set_index("variant")
        base, prev = g.loc["baseline"], None
        for v in steps:
            r = g.loc[v]
            row = {
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
                **{c: float(r[c]) for c in accs},
                "n_seeds": r.n_seeds,
            }
            for q, short in ATTRIBUTION_ACCURACY.items():
                row.update(_step_change(per_seed, ds, bits, v, None if prev is None else prev.name, q, short, r, prev))
            rows.append(row)
            prev = r
    return pd.DataFrame(rows)


#: The accuracies of the attribution table and the short names of their step columns.
ATTRIBUTION_ACCURACY = {"ideal_crossbar_accuracy": "ideal", "noisy_accuracy": "noisy"}


def _step_change(
    per_seed: pd.DataFrame | None,
    ds: str,
    bits: int,
    variant: str,
    before: str | None,
    quantity: str,
    short: str,
    row: pd.Series,
    prev: pd.Series | None,
) -> dict[str, float]:
    """step_<short>_change (mean of this step − mean of the step before) and its Welch interval."""
    keys = [f"step_{short}_change", f"step_{short}_ci_low", f"step_{short}_ci_high"]
    if prev is None:
        return dict.fromkeys(keys, math.nan)
    if per_seed is None or per_seed.empty:
        return dict(zip(keys, (float(row[f"{quantity}_mean"]) - float(prev[f"{quantity}_mean"]), math.nan, math.nan)))
    here = per_seed[(per_seed.dataset == ds) & (per_seed.bits == bits)]
    w = welch(here[here.variant == variant][quantity], here[here.variant == before][quantity])
    return dict(zip(keys, (w["diff"], w["ci_low"], w["ci_high"])))


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
        "step's ideal change (points, 95 % CI)",
        "noisy crossbar (%)",
        "step's noisy change (points, 95 % CI)",
        "seeds",
    ]
    f1 = _num(".1f", "—")
    rows = [
        [
            r.dataset,
            str(r.bits),
            r.step,
            f1(r.area_pct_of_baseline),
            f1(r.energy_pct_of_baseline),
            f1(r.step_area_saving_pct),
            f1(r.step_energy_saving_pct),
            pct_pm(r.ideal_crossbar_accuracy_mean, r.ideal_crossbar_accuracy_std),
            points_ci(r.step_ideal_change, r.step_ideal_ci_low, r.step_ideal_ci_high),
            pct_pm(r.noisy_accuracy_mean, r.noisy_accuracy_std),
            points_ci(r.step_noisy_change, r.step_noisy_ci_low, r.step_noisy_ci_high),
            _num("g", "")(r.n_seeds),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or bool(pd.isna(v))


def pct_pm(mean: float, std: float, digits: int = 2) -> str:
    """A fraction's mean ± std in percent ('92.80 ± 0.40'; the mean alone when the std is missing)."""
    if _missing(mean):
        return ""
    return f"{100 * mean:.{digits}f}" + ("" if _missing(std) else f" ± {100 * std:.{digits}f}")


def points_ci(diff: float, low: float, high: float, digits: int = 2) -> str:
    """A difference of fractions in percentage points with its interval ('−1.20 [−2.00, −0.40]')."""
    if _missing(diff):
        return "—"
    out = f"{100 * diff:+.{digits}f}"
    return out if _missing(low) else out + f" [{100 * low:+.{digits}f}, {100 * high:+.{digits}f}]"


# display: (column, header, formatter); a formatter returns a str ('' for a missing value)
def _num(fmt: str, missing: str = "") -> Callable[[Any], str]:
    return lambda v: missing if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


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


#: How each table is shown in Markdown and LaTeX (the accuracy tables register theirs: :mod:`.accuracy`).
DISPLAY: dict[str, Callable[[pd.DataFrame], tuple[list[str], list[list[str]]]]] = {
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
    """<out_dir>/<name>.csv (all columns, machine-readable), .md and .tex (formatted by ``DISPLAY[name]``), each
    written atomically."""
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

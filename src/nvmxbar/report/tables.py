"""The cost and attribution tables (:func:`cost_table`, :func:`attribution_table`, and their views) from the
collected frames (:mod:`.collect`), and the programming-noise sweep helpers the accuracy tables and figures share
(the accuracy tables over seeds: :mod:`.accuracy`; the search's: :mod:`.tables_nas`; how a table is written:
:mod:`.formatting`). Cost and mapping barely depend on the seed: their tables show the mean over the seeds of each
deployment."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..stats import welch
from .baseline import baseline_designs
from .collect import SETTING_KEYS
from .formatting import fmt_energy, num, pct_pm, points_ci
from .paper import COMBINED_VARIANTS, PAPER_FIGURES, TECHNIQUES
from .seeds import mean_over_seeds


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
    if "setting" in nz.columns:  # the sweep's product only (not the extra settings, not the realistic chip)
        nz = nz[nz.setting == "sweep"]
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


#: The marks of the cost table's column current: over the limit (mapping.json column_current_within_limit false).
OVER_LIMIT = "⚠"


def _currents(mapping: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per deployment, the largest column current over the seeds and the limit (the smallest over the seeds), NaN
    where mapping.json predates them."""
    m = mapping.assign(
        **{c: mapping[c] if c in mapping else np.nan for c in ("max_column_current_ua", "column_current_limit_ua")}
    )
    g = m.groupby(keys, sort=False)
    return pd.concat([g.max_column_current_ua.max(), g.column_current_limit_ua.min()], axis=1).reset_index()


def cost_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset x variant x bits: area, energy, latency, the array's power at the measured activity, component
    counts (each the mean over the seeds: the read energy is measured per seed), the largest column current over
    the seeds against its limit (``column_current_over_limit``), the % improvement over the baseline mapped at the
    same device bits (positive = smaller/lower) and, on the baseline rows, its deployed encoding and bits and
    whether its fit reached the tolerance; the paper's combined figures beside the variants that combine both
    techniques."""
    keys = ["dataset", "variant", "bits"]
    mapping = mean_over_seeds(data["mapping"], keys)
    cost = (
        mean_over_seeds(data["cost"], keys)
        .merge(mapping[[*keys, "devices", "adcs", "tiles", "periphery_designs"]], on=keys)
        .merge(_currents(data["mapping"], keys), on=keys, how="left")
        .merge(baseline_designs(data["mapping"]), on=["dataset", "bits"], how="left")
    )
    for c in ("latency_ns", "array_power_uw"):
        if c not in cost:
            cost[c] = math.nan
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
                "latency_ns_per_inference": r.latency_ns,
                "array_power_uw": r.array_power_uw,
                "max_column_current_ua": r.max_column_current_ua,
                "column_current_limit_ua": r.column_current_limit_ua,
                "column_current_over_limit": bool(r.max_column_current_ua > r.column_current_limit_ua),
                "baseline_design": r.baseline_design if r.variant == "baseline" else "",
                "baseline_reached": r.baseline_reached if r.variant == "baseline" else "",
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
    "baseline": "baseline: float training, per-layer scales, weights bit-sliced (the fitted encoding and bits)",
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
    f1 = num(".1f", "—")
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
            num("g", "")(r.n_seeds),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def current_cell(r) -> str:
    """The largest column current of a cost-table row, marked when it passes the limit."""
    over = f" {OVER_LIMIT} (limit {r.column_current_limit_ua:,.1f})" if r.column_current_over_limit else ""
    return num(",.1f", "n/a")(r.max_column_current_ua) + over


def display_cost(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "variant",
        "bits",
        "technique",
        "area (µm²)",
        "energy (pJ/inference)",
        "latency (ns/inference)",
        "array power (µW)",
        f"max column current (µA; {OVER_LIMIT} over the limit)",
        "devices",
        "ADCs",
        "tiles",
        "periphery designs",
        "area impr. (%)",
        "energy impr. (%)",
        "baseline deployed (encoding, bits)",
        "baseline within tolerance",
        "area, ADCs time-shared (µm²)",
        "paper area impr. (%)",
        "paper energy impr. (%)",
    ]
    ref = lambda r, v: "ref." if r.variant == "baseline" else num(".1f", "n/a")(v)  # noqa: E731
    upto = lambda v: "" if math.isnan(v) else f"up to {v:g}"  # noqa: E731
    rows = [
        [
            r.dataset,
            r.variant,
            str(r.bits),
            r.technique,
            f"{r.area_um2:,.0f}",
            fmt_energy(r.energy_pj_per_inference),
            num(",.0f", "n/a")(r.latency_ns_per_inference),
            num(",.4g", "n/a")(r.array_power_uw),
            current_cell(r),
            f"{r.devices:,}",
            f"{r.adcs:,}",
            f"{r.tiles:,}",
            str(r.periphery_designs),
            ref(r, r.area_improvement_pct),
            ref(r, r.energy_improvement_pct),
            r.baseline_design,
            r.baseline_reached,
            num(",.0f")(r.time_shared_area_um2),
            upto(r.paper_area_improvement_pct),
            upto(r.paper_energy_improvement_pct),
        ]
        for r in t.itertuples()
    ]
    return heads, rows

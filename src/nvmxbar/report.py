"""Stage `report`: the paper's tables and figures, and REPORT.md, from everything the earlier rules wrote.

Plain functions over pandas DataFrames:

* :func:`collect` reads metrics.json, mapping.json, crossbar.npz, noise.csv, noise_summary.json and cost.json of
  every dataset x variant x device bits into tidy DataFrames (a missing or unreadable file stops with an error
  naming it and the rule that writes it);
* :func:`accuracy_table` and :func:`cost_table` build the two result tables, :func:`write_table` writes each as
  CSV, Markdown and LaTeX (atomically);
* :func:`collect_nas` reads the unipolar architecture search (nas/trials.csv, pareto.csv, arch.json of every
  dataset x device bits; only when the ``unipolar`` variant is configured) and :func:`nas_table` summarises it;
* :func:`plot_accuracy_vs_noise`, :func:`plot_cost_breakdown`, :func:`plot_weights` and :func:`plot_nas_pareto`
  draw the figures (matplotlib ``Figure`` objects rendered by the Agg canvas, seaborn styles; PNG and PDF);
* :func:`render_report` writes REPORT.md: what was run, the tables, the improvements over the baseline, the
  architecture search and one sentence per claim of the paper;
* :func:`report_stage` is the whole rule.

Every number in the outputs is read from the inputs, except the paper's published figures, which are held in
:data:`PAPER_FIGURES` with their source.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from . import tracking

# ------------------------------------------------------------------------------------ the paper's numbers
PAPER_REF = ("F. Garcia-Redondo, S. Das, G. Rosendale, \"Training DNN IoT Applications for Deployment On Analog "
             "NVM Crossbars\", arXiv 1910.13850 (IJCNN 2020)")
#: The only numbers in the outputs that are not read from results/: the paper's published figures (abstract).
PAPER_FIGURES: dict[str, dict[str, Any]] = {
    "har_float_accuracy": {"value": 95.0, "unit": "%", "text": "HAR, floating-point test accuracy",
                           "source": "arXiv 1910.13850 v3 abstract"},
    "har_unipolar_b2_accuracy": {"value": 92.91, "unit": "%",
                                 "text": "HAR, 2-bit devices, only-positive weights: test accuracy (up to)",
                                 "source": "arXiv 1910.13850 v3 abstract"},
    "area_combined": {"value": 80.0, "unit": "%", "text": "area improvement, uniform scaling + unipolar (up to)",
                      "source": "arXiv 1910.13850 v3 abstract"},
    "energy_combined": {"value": 45.0, "unit": "%", "text": "energy reduction, uniform scaling + unipolar (up to)",
                        "source": "arXiv 1910.13850 v3 abstract"},
    "area_unipolar_v1": {"value": 67.0, "unit": "%", "text": "area improvement, unipolar weights alone",
                         "source": "arXiv 1910.13850 v1 abstract"},
    "power_v1": {"value": 40.0, "unit": "%", "text": "power reduction", "source": "arXiv 1910.13850 v1 abstract"},
}
#: Variants whose cost rows carry the paper's combined (uniform scaling + unipolar) cost figures. The project's
#: unipolar variant is trained with the uniform-scale quantizer plus the sign constraint, i.e. both techniques.
COMBINED_VARIANTS = ("unipolar",)

DATASET_NAMES = {"har": "UCI HAR", "cifar10": "CIFAR-10"}
VARIANT_DESCRIPTIONS = {
    "baseline": "float training; deployed with per-layer weight scales, bit-sliced onto the devices, differential "
                "pairs and a per-layer digital rescale",
    "uniform": "quantization-aware training with one weight, DAC and ADC full-scale shared by every layer",
    "unipolar": "uniform scaling plus sign-constrained (only-positive / only-negative) weight matrices",
}
# consistent colours per variant (seaborn 'colorblind' palette) and line styles / markers per device bits
VARIANT_COLORS = {"baseline": "#555555", "uniform": "#0173B2", "unipolar": "#DE8F05"}
_EXTRA_COLORS = ["#029E73", "#CC78BC", "#CA9161", "#D55E00", "#56B4E9", "#ECE133"]
BITS_STYLES = ["-", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
BITS_MARKERS = ["o", "s", "^", "D"]

SETTING_KEYS = ("prog_sigma", "read_sigma", "stuck_min", "stuck_max", "on_off_ratio", "drift_t_s")
NOISE_COLUMNS = SETTING_KEYS + ("accuracy_mean", "accuracy_std", "accuracy_p5", "accuracy_p50", "accuracy_p95",
                                "instances")
TABLE_NAMES = ("accuracy", "cost")  # always written; tables/nas.* too when the unipolar variant is configured
NAS_VARIANT = "unipolar"  # the variant whose architecture is searched (results/{dataset}/unipolar/b{bits}/nas/)
NAS_TRIAL_COLUMNS = ("trial", "state", "val_accuracy", "area_um2")
NAS_ARCH_KEYS = ("model", "rule")
#: what each variant's cost rows stand for; the paper's cost figures are for the combined technique
TECHNIQUES = {"baseline": "reference (per-layer scales, differential pairs)", "uniform": "uniform scaling",
              "unipolar": "combined: uniform scaling + unipolar"}
DEFAULTS = {"reference_prog_sigma": 0.02, "accuracy_tolerance_pct": 1.0, "cost_tolerance_pct": 5.0, "dpi": 200,
            # target of the unipolar search: at most this many points below our float baseline (ideal crossbar)
            "unipolar_float_gap_pct": 1.5}


def table_names(variants: Iterable[str]) -> tuple[str, ...]:
    """The tables the report writes for these variants (nas only with the searched unipolar variant)."""
    return TABLE_NAMES + (("nas",) if NAS_VARIANT in list(variants) else ())


class ReportInputError(FileNotFoundError):
    """An input of the report is missing or unreadable; the message names the file and the rule that writes it."""


# ------------------------------------------------------------------------------------------------ inputs
def _producer(path: Path) -> str:
    name = path.name
    if path.parent.name == "nas":
        return "nas_unipolar"
    return {"metrics.json": "train", "mapping.json": "map_crossbar", "crossbar.npz": "map_crossbar",
            "noise.csv": "evaluate_noise", "noise_summary.json": "evaluate_noise",
            "cost.json": "estimate_cost"}.get(name, "an earlier rule")


def _need(path: Path) -> Path:
    if not path.is_file():
        raise ReportInputError(f"report input missing: {path} (written by rule {_producer(path)}; "
                               f"run that rule first or remove the variant/bits from the report)")
    return path


def _json(path: Path, required: Iterable[str] = ()) -> dict:
    try:
        doc = json.loads(_need(path).read_text())
    except json.JSONDecodeError as err:
        raise ReportInputError(f"report input unreadable: {path}: not valid JSON ({err})") from None
    missing = [k for k in required if k not in doc]
    if missing:
        raise ReportInputError(f"report input {path}: missing key(s) {missing}")
    return doc


def model_dir(variant: str, bits: int) -> str:
    """Folder of the trained model a deployment uses: the float baseline serves every device resolution."""
    return "baseline" if variant == "baseline" else f"{variant}/b{bits}"


def collect(results_dir: str | Path, datasets: Iterable[str], variants: Iterable[str], bits: Iterable[int],
            with_cost: bool = True) -> dict[str, pd.DataFrame]:
    """Read every input of the report. Returns DataFrames:

    training (one row per trained model: ``model`` is 'baseline' or '<variant>/b<bits>'), mapping (totals and
    device/converter settings per dataset x variant x bits), layers (per mapped layer), noise (noise.csv rows),
    noise_summary, cost (totals), cost_components (long: quantity, component, value), cost_layers, weight_codes
    (histogram of the signed integer codes per layer) and conductances (histogram of G of used cells per layer).
    """
    root = Path(results_dir)
    datasets, variants, bits = list(datasets), list(variants), sorted(int(b) for b in bits)
    training, mapping, layers, noise, summary = [], [], [], [], []
    cost, comps, cost_layers, codes, conds = [], [], [], [], []
    for ds in datasets:
        for v in variants:
            for b in bits:
                mdir = model_dir(v, b)
                if not any(r["dataset"] == ds and r["model"] == mdir for r in training):
                    met = _json(root / ds / mdir / "metrics.json", ["test_accuracy", "epochs"])
                    q = met.get("quant") or {}
                    training.append({"dataset": ds, "model": mdir, "variant": v, "bits": None if v == "baseline" else b,
                                     "test_accuracy": float(met["test_accuracy"]),
                                     # fit_on train+val: the validation windows trained it, so no held-out figure
                                     "val_accuracy": math.nan if met.get("fit_on") == "train+val"
                                     else float(met.get("val_accuracy", math.nan)),
                                     "fit_on": met.get("fit_on", "train"),
                                     "epochs": int(met["epochs"]), "best_epoch": met.get("best_epoch"),
                                     "selected_epoch": met.get("selected_epoch", met.get("best_epoch")),
                                     "n_test": met.get("n_test"), "wall_time_s": met.get("wall_time_s"),
                                     "weight_fullscale": q.get("weight_fullscale"),
                                     "act_fullscale": q.get("act_fullscale"),
                                     "adc_fullscale": q.get("adc_fullscale")})
                d = root / ds / v / f"b{b}"
                key = {"dataset": ds, "variant": v, "bits": b, "model": mdir}
                mp = _json(d / "mapping.json", ["scheme", "tile", "device", "converters", "layers", "total"])
                try:
                    mapping.append({**key, "scheme": mp["scheme"], "slices": mp.get("slices"), "pair": mp.get("pair"),
                                    "tile_rows": mp["tile"]["rows"], "tile_cols": mp["tile"]["cols"],
                                    "levels": mp["device"]["levels"], "g_min_us": mp["device"]["g_min_us"],
                                    "g_max_us": mp["device"]["g_max_us"], "on_off_ratio": mp["device"]["on_off_ratio"],
                                    "dac_bits": mp["converters"]["dac_bits"], "adc_bits": mp["converters"]["adc_bits"],
                                    "adc_mux": mp["converters"].get("adc_mux"),
                                    **{k: mp["total"][k] for k in ("devices", "tiles", "used_cells", "utilisation",
                                                                   "adcs", "dacs", "periphery_designs")},
                                    **{k: mp["total"].get(k) for k in ("subtractors", "shift_add_units",
                                                                       "rescale_units", "weights")},
                                    "sign_flips": mp["total"].get(
                                        "sign_flips", sum(int(s.get("sign_flips") or 0) for s in mp["layers"]))})
                    for i, spec in enumerate(mp["layers"]):
                        layers.append({**key, "index": i, "name": spec["name"], "kind": spec["kind"],
                                       "rows": spec["rows"], "outputs": spec["outputs"], "mvms": spec.get("mvms"),
                                       "tiles": spec["tiles"], "devices": spec["devices"],
                                       "used_cells": spec["used_cells"], "utilisation": spec["utilisation"],
                                       "adcs": spec["adcs"], "dacs": spec["dacs"],
                                       "weight_step": spec["weight_step"], "weight_fullscale": spec["weight_fullscale"],
                                       "weight_levels": spec.get("weight_levels"), "slices": spec.get("slices"),
                                       "dac_fullscale": spec["dac_fullscale"],
                                       "periphery_design": spec.get("periphery_design"),
                                       "pair": spec.get("pair", mp.get("pair")),
                                       "sign_flips": spec.get("sign_flips")})
                except (KeyError, TypeError) as err:
                    raise ReportInputError(f"report input {d / 'mapping.json'}: missing or malformed entry {err}") from None
                npz = _need(d / "crossbar.npz")
                try:
                    with np.load(npz, allow_pickle=False) as z:
                        for i in range(len(mp["layers"])):
                            c, n = np.unique(z[f"L{i}.codes"], return_counts=True)
                            codes += [{**key, "index": i, "code": int(a), "count": int(m)} for a, m in zip(c, n)]
                            g, n = np.unique(z[f"L{i}.G_us"][z[f"L{i}.used"]], return_counts=True)
                            conds += [{**key, "index": i, "g_us": float(a), "count": int(m)} for a, m in zip(g, n)]
                except (KeyError, ValueError, OSError) as err:
                    raise ReportInputError(f"report input unreadable: {npz}: {err}") from None
                csv = _need(d / "noise.csv")
                try:
                    nz = pd.read_csv(csv)
                except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
                    raise ReportInputError(f"report input unreadable: {csv}: {err}") from None
                missing = [c for c in NOISE_COLUMNS if c not in nz.columns]
                if missing or nz.empty:
                    raise ReportInputError(f"report input {csv}: " + (f"missing column(s) {missing}" if missing else "no rows"))
                noise.append(nz.assign(**key, order=np.arange(len(nz))))
                sm = _json(d / "noise_summary.json", ["ideal_crossbar_accuracy"])
                summary.append({**key, "ideal_crossbar_accuracy": float(sm["ideal_crossbar_accuracy"]),
                                "samples": sm.get("samples"), "noise_wall_time_s": sm.get("wall_time_s")})
                if with_cost:
                    _read_cost(d / "cost.json", key, cost, comps, cost_layers)
    out = {"training": pd.DataFrame(training), "mapping": pd.DataFrame(mapping), "layers": pd.DataFrame(layers),
           "noise": pd.concat(noise, ignore_index=True) if noise else pd.DataFrame(columns=list(NOISE_COLUMNS)),
           "noise_summary": pd.DataFrame(summary), "weight_codes": pd.DataFrame(codes),
           "conductances": pd.DataFrame(conds)}
    if with_cost:
        out.update(cost=pd.DataFrame(cost), cost_components=pd.DataFrame(comps), cost_layers=pd.DataFrame(cost_layers))
    out["meta"] = pd.DataFrame([{"datasets": datasets, "variants": variants, "bits": bits}])
    return out


#: cost.json names a block differently in its area and energy breakdowns ('adcs' / 'adc'); one label, one colour
COMPONENT_LABELS = {"adc": "ADCs", "dac": "DACs", "cell": "cells", "subtractor": "subtractors",
                    "subtraction": "subtractors", "shift_add": "shift-and-add", "sample_hold": "sample-and-hold",
                    "rescale": "rescale", "reference": "references"}


def component_label(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    for k in (key, key[:-1] if key.endswith("s") else key):
        if k in COMPONENT_LABELS:
            return COMPONENT_LABELS[k]
    return str(name).replace("_", " ")


def _read_cost(path: Path, key: dict, cost: list, comps: list, cost_layers: list) -> None:
    doc = _json(path, ["total", "layers"])
    try:
        tot = doc["total"]
        ts = doc.get("time_shared") or {}
        cost.append({**key, "family": doc.get("family", ""), "area_um2": float(tot["area_um2"]),
                     "energy_pj": float(tot["energy_pj_per_inference"]),
                     "time_shared_area_um2": float(ts["area_um2"]) if "area_um2" in ts else math.nan,
                     "time_shared_adcs": float(ts["adcs"]) if "adcs" in ts else math.nan,
                     "time_share_applied": bool(((doc.get("assumptions") or {}).get("adc_time_share") or {})
                                                .get("applied", False))})
        for quantity, field in (("area_um2", "area_by_component"), ("energy_pj", "energy_by_component")):
            for comp, val in tot[field].items():
                comps.append({**key, "quantity": quantity, "component": component_label(comp),
                              "component_key": str(comp), "value": float(val)})
        for i, lay in enumerate(doc["layers"]):
            cost_layers.append({**key, "index": i, "name": lay.get("name", f"layers.{i}"),
                                "area_um2": float(lay["area_um2"]), "energy_pj": float(lay["energy_pj_per_inference"])})
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ReportInputError(f"report input {path}: missing or malformed entry {err!r}") from None


def _nas_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(_need(path))
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
            kinds.append("row x column groups" if r > 1 and c > 1 else "row groups" if r > 1 else
                         "column groups" if c > 1 else {1: "positive", -1: "negative"}.get(int(sp.get("sign", 1)), "?"))
    if len(set(kinds)) == 1:
        return {"positive": "all positive", "negative": "all negative"}.get(kinds[0], f"{kinds[0]} in every layer")
    return "per layer: " + ", ".join(kinds)


def collect_nas(results_dir: str | Path, datasets: Iterable[str], bits: Iterable[int]) -> dict[str, pd.DataFrame]:
    """The unipolar architecture search of every dataset x device bits (rule nas_unipolar): ``nas_trials`` (every
    row of trials.csv), ``nas_pareto`` (pareto.csv) and ``nas_arch`` (one row per arch.json: the chosen trial,
    the search's size and time, the selection rule). A missing or unreadable file stops with an error naming it."""
    root = Path(results_dir)
    trials, pareto, arch = [], [], []
    for ds in datasets:
        for b in sorted(int(x) for x in bits):
            d = root / ds / NAS_VARIANT / f"b{b}" / "nas"
            key = {"dataset": ds, "bits": b}
            t = _nas_csv(d / "trials.csv")
            f = _nas_csv(d / "pareto.csv")
            doc = _json(d / "arch.json", NAS_ARCH_KEYS)
            if len(t):
                trials.append(t.assign(**key))
            if len(f):
                pareto.append(f.assign(**key))
            counts = doc.get("trials") if isinstance(doc.get("trials"), dict) else {}
            state = t["state"].astype(str) if len(t) else pd.Series(dtype=str)
            num = lambda k: float(doc[k]) if doc.get(k) is not None else math.nan  # noqa: E731
            arch.append({**key, "search": "trial" in doc and len(t) > 0, "trial": doc.get("trial"),
                         "val_accuracy": num("val_accuracy"), "area_um2": num("area_um2"),
                         "devices": doc.get("devices"), "best_val_accuracy": num("best_val_accuracy"),
                         "trials_complete": int(counts.get("complete", (state == "COMPLETE").sum())),
                         "trials_pruned": int(counts.get("pruned", (state == "PRUNED").sum())),
                         "pareto_size": len(f), "search_wall_time_s": num("search_wall_time_s"),
                         "trial_time_s": num("trial_time_s"), "workers": doc.get("workers"),
                         "epochs_per_trial": doc.get("epochs_per_trial"), "study": doc.get("study", ""),
                         "rule": str(doc["rule"]), "polarity": _polarity_text(doc.get("model")),
                         "finalists": len(doc.get("finalists") or []), "search_pick": doc.get("search_pick")})
    empty = pd.DataFrame(columns=[*NAS_TRIAL_COLUMNS, "dataset", "bits"])
    cat = lambda xs: pd.concat(xs, ignore_index=True) if xs else empty.copy()  # noqa: E731
    return {"nas_trials": cat(trials), "nas_pareto": cat(pareto), "nas_arch": pd.DataFrame(arch)}


# ------------------------------------------------------------------------------------------------ tables
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


def _paper_accuracy(dataset: str, variant: str, bits: int) -> tuple[float, str]:
    if dataset == "har" and variant == "baseline":
        p = PAPER_FIGURES["har_float_accuracy"]
        return p["value"], f"float ({p['source']})"
    if dataset == "har" and variant == "unipolar" and bits == 2:
        p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
        return p["value"], f"2-bit, only-positive weights, up to ({p['source']})"
    return math.nan, ""


def accuracy_table(data: dict[str, pd.DataFrame], reference_prog_sigma: float = DEFAULTS["reference_prog_sigma"]) -> pd.DataFrame:
    """Per dataset x variant x bits: the trained model's test accuracy (float for the baseline, the QAT model's
    own for quantized variants), the ideal crossbar's, the noisy crossbar's at the reference programming noise,
    and the paper's figure where one exists. Accuracies in %."""
    tr = data["training"].set_index(["dataset", "model"])
    summ = data["noise_summary"].set_index(["dataset", "variant", "bits"])
    rows = []
    for r in data["mapping"].itertuples():
        ref = reference_row(data["noise"], r.dataset, r.variant, r.bits, reference_prog_sigma)
        paper, note = _paper_accuracy(r.dataset, r.variant, r.bits)
        rows.append({"dataset": r.dataset, "variant": r.variant, "bits": r.bits,
                     "model_test_accuracy_pct": 100 * tr.loc[(r.dataset, r.model), "test_accuracy"],
                     "ideal_crossbar_accuracy_pct": 100 * summ.loc[(r.dataset, r.variant, r.bits), "ideal_crossbar_accuracy"],
                     "ref_prog_sigma": float(ref.prog_sigma),
                     "noisy_accuracy_mean_pct": 100 * float(ref.accuracy_mean),
                     "noisy_accuracy_std_pct": 100 * float(ref.accuracy_std),
                     "noisy_instances": int(ref.instances),
                     "noise_test_samples": summ.loc[(r.dataset, r.variant, r.bits), "samples"],
                     "paper_accuracy_pct": paper, "paper_note": note})
    return pd.DataFrame(rows)


def _improvement(value: float, reference: float) -> float:
    return 100.0 * (1.0 - value / reference) if reference and not math.isnan(reference) else math.nan


def cost_table(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset x variant x bits: area, energy, component counts and the % improvement over the baseline
    mapped at the same device bits (positive = smaller/lower); the paper's combined figures beside the variants
    that combine both techniques."""
    cost = data["cost"].merge(data["mapping"][["dataset", "variant", "bits", "devices", "adcs", "tiles",
                                               "periphery_designs"]], on=["dataset", "variant", "bits"])
    base = cost[cost.variant == "baseline"].set_index(["dataset", "bits"])
    rows = []
    for r in cost.itertuples():
        has_base = (r.dataset, r.bits) in base.index and r.variant != "baseline"
        ba = base.loc[(r.dataset, r.bits), "area_um2"] if has_base else math.nan
        be = base.loc[(r.dataset, r.bits), "energy_pj"] if has_base else math.nan
        combined = r.variant in COMBINED_VARIANTS
        rows.append({"dataset": r.dataset, "variant": r.variant, "bits": r.bits,
                     "technique": TECHNIQUES.get(r.variant, r.variant), "family": r.family, "area_um2": r.area_um2,
                     "energy_pj_per_inference": r.energy_pj, "devices": r.devices,
                     "adcs": r.adcs, "tiles": r.tiles, "periphery_designs": r.periphery_designs,
                     "area_improvement_pct": _improvement(r.area_um2, ba),
                     "energy_improvement_pct": _improvement(r.energy_pj, be),
                     "time_shared_area_um2": r.time_shared_area_um2, "time_shared_adcs": r.time_shared_adcs,
                     "time_share_applied": r.time_share_applied,
                     "time_shared_area_improvement_pct": _improvement(r.time_shared_area_um2, ba),
                     "paper_area_improvement_pct": PAPER_FIGURES["area_combined"]["value"] if combined else math.nan,
                     "paper_energy_improvement_pct": PAPER_FIGURES["energy_combined"]["value"] if combined else math.nan,
                     "paper_note": (f"up to, both techniques ({PAPER_FIGURES['area_combined']['source']}); "
                                    f"v1: {PAPER_FIGURES['area_unipolar_v1']['value']:g} % area unipolar alone, "
                                    f"{PAPER_FIGURES['power_v1']['value']:g} % power") if combined else ""})
    return pd.DataFrame(rows)


# display: (column, header, formatter); a formatter returns a str ('' for a missing value)
def _num(fmt: str, missing: str = "") -> Callable[[Any], str]:
    return lambda v: missing if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _display_accuracy(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = ["dataset", "variant", "bits", "trained model (%)", "ideal crossbar (%)", "prog. σ (% of G range)",
             "noisy crossbar (%)", "paper (%)"]
    pct = _num(".2f")
    rows = [[r.dataset, r.variant, str(r.bits), pct(r.model_test_accuracy_pct), pct(r.ideal_crossbar_accuracy_pct),
             format(100 * r.ref_prog_sigma, "g"),
             f"{r.noisy_accuracy_mean_pct:.2f} ± {r.noisy_accuracy_std_pct:.2f} (n={r.noisy_instances})",
             _num("g")(r.paper_accuracy_pct)] for r in t.itertuples()]
    return heads, rows


def _display_cost(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = ["dataset", "variant", "bits", "technique", "area (µm²)", "energy (pJ/inference)", "devices", "ADCs",
             "tiles", "periphery designs", "area impr. (%)", "energy impr. (%)", "area, ADCs time-shared (µm²)",
             "paper area impr. (%)", "paper energy impr. (%)"]
    ref = lambda r, v: "ref." if r.variant == "baseline" else _num(".1f", "n/a")(v)  # noqa: E731
    upto = lambda v: "" if math.isnan(v) else f"up to {v:g}"  # noqa: E731
    rows = [[r.dataset, r.variant, str(r.bits), r.technique, f"{r.area_um2:,.0f}", _energy(r.energy_pj_per_inference),
             f"{r.devices:,}", f"{r.adcs:,}", f"{r.tiles:,}", str(r.periphery_designs),
             ref(r, r.area_improvement_pct), ref(r, r.energy_improvement_pct),
             _num(",.0f")(r.time_shared_area_um2), upto(r.paper_area_improvement_pct),
             upto(r.paper_energy_improvement_pct)] for r in t.itertuples()]
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
        rows.append({"dataset": r.dataset, "bits": r.bits, "search": r.search, "trials_complete": r.trials_complete,
                     "trials_pruned": r.trials_pruned, "workers": r.workers, "epochs_per_trial": r.epochs_per_trial,
                     "search_wall_time_s": r.search_wall_time_s, "trial_time_s": r.trial_time_s,
                     "chosen_trial": r.trial, "chosen_val_accuracy_pct": 100 * r.val_accuracy,
                     "chosen_area_um2": r.area_um2, "chosen_area_mm2": r.area_um2 / 1e6, "chosen_devices": r.devices,
                     "best_val_accuracy_pct": 100 * r.best_val_accuracy,
                     "val_accuracy_given_up_pct": 100 * (r.best_val_accuracy - r.val_accuracy),
                     "pareto_size": r.pareto_size, "polarity": r.polarity, "finalists": r.finalists,
                     "search_score_pick": r.search_pick,
                     "trained_test_accuracy_pct": 100 * float(tr.loc[(r.dataset, model), "test_accuracy"])
                     if (r.dataset, model) in tr.index else math.nan,
                     "ideal_crossbar_accuracy_pct": 100 * float(summ.loc[key, "ideal_crossbar_accuracy"])
                     if key in summ.index else math.nan,
                     "deployed_area_um2": float(cost.loc[key, "area_um2"]) if cost is not None and key in cost.index
                     else math.nan,
                     "selection_rule": r.rule, "study": r.study})
    return pd.DataFrame(rows)


def _duration(s: float) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return ""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _display_nas(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = ["dataset", "bits", "trials (complete / pruned)", "search wall time", "finalists", "chosen trial",
             "chosen val. acc. (%)", "chosen area (mm²)", "best val. acc. (%)", "polarity", "trained test acc. (%)",
             "selection rule"]
    pct, num = _num(".2f"), _num(".4g")
    rows = []
    for r in t.itertuples():
        if not r.search:
            rows.append([r.dataset, str(r.bits), "no search", "", "", "", "", "", "", r.polarity,
                         pct(r.trained_test_accuracy_pct), r.selection_rule])
            continue
        rows.append([r.dataset, str(r.bits), f"{r.trials_complete} / {r.trials_pruned}",
                     _duration(r.search_wall_time_s),
                     f"{int(r.finalists)} (search score alone: trial {int(r.search_score_pick)})"
                     if r.finalists and r.search_score_pick is not None and not pd.isna(r.search_score_pick) else "none",
                     str(int(r.chosen_trial)), pct(r.chosen_val_accuracy_pct), num(r.chosen_area_mm2),
                     pct(r.best_val_accuracy_pct), r.polarity, pct(r.trained_test_accuracy_pct), r.selection_rule])
    return heads, rows


DISPLAY = {"accuracy": _display_accuracy, "cost": _display_cost, "nas": _display_nas}


def markdown(heads: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    align = ["---" if i < 2 else "---:" for i in range(len(heads))]
    lines = ["| " + " | ".join(map(esc, heads)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "σ": r"$\sigma$",
        "µ": r"$\mu$", "²": r"$^2$"}


def latex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def latex(heads: list[str], rows: list[list[str]], source: str = "") -> str:
    cols = "l" * 2 + "r" * (len(heads) - 2)
    out = [f"% generated by nvmxbar.report{' from ' + source if source else ''}; needs \\usepackage{{booktabs}}",
           f"\\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(map(latex_escape, heads)) + r" \\", r"\midrule"]
    out += [" & ".join(map(latex_escape, r)) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def _atomic(path: str | Path) -> Iterator[Path]:
    """tracking.atomic_path, with the permissions of an ordinary new file (the temporary file is 0600)."""
    with tracking.atomic_path(path) as tmp:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())


def _umask() -> int:
    """The process umask without changing it (os.umask would, briefly, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def write_table(table: pd.DataFrame, name: str, out_dir: str | Path) -> list[Path]:
    """<out_dir>/<name>.csv (all columns, machine-readable), .md and .tex (formatted), each written atomically."""
    out_dir = Path(out_dir)
    heads, rows = DISPLAY[name](table)
    paths = []
    for ext, text in (("csv", table.to_csv(index=False, float_format="%.6g")), ("md", markdown(heads, rows)),
                      ("tex", latex(heads, rows, f"{name}.csv"))):
        p = out_dir / f"{name}.{ext}"
        with _atomic(p) as tmp:
            tmp.write_text(text)
        paths.append(p)
    return paths


# ----------------------------------------------------------------------------------------------- figures
def variant_color(variant: str, variants: list[str]) -> str:
    if variant in VARIANT_COLORS:
        return VARIANT_COLORS[variant]
    others = [v for v in variants if v not in VARIANT_COLORS]
    return _EXTRA_COLORS[others.index(variant) % len(_EXTRA_COLORS)] if variant in others else "#000000"


def bits_style(b: int, bits: list[int]) -> tuple[Any, str]:
    i = sorted(bits).index(b) if b in bits else 0
    return BITS_STYLES[i % len(BITS_STYLES)], BITS_MARKERS[i % len(BITS_MARKERS)]


def _rc() -> dict:
    import seaborn as sns

    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.9)}
    rc.update({"axes.titleweight": "bold", "figure.titlesize": 14, "figure.titleweight": "bold",
               "legend.frameon": True, "savefig.bbox": "tight"})
    return rc


def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(**kw)


def save_figure(fig, name: str, out_dir: str | Path, dpi: int = DEFAULTS["dpi"]) -> list[Path]:
    """<out_dir>/<name>.png (``dpi``) and .pdf, each written atomically."""
    paths = []
    for ext in ("png", "pdf"):
        p = Path(out_dir) / f"{name}.{ext}"
        with _atomic(p) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        paths.append(p)
    return paths


def _nice(x: float) -> str:
    return f"{x:.3g}"


def plot_accuracy_vs_noise(data: dict[str, pd.DataFrame], dataset: str, reference_prog_sigma: float | None = None):
    """Accuracy mean and p5-p95 band vs programming-noise sigma, one line per variant x bits, float reference."""
    import matplotlib as mpl

    meta = data["meta"].iloc[0]
    variants, bits = list(meta.variants), list(meta.bits)
    with mpl.rc_context(_rc()):
        fig = _figure(figsize=(9.5, 5.2), layout="constrained")
        ax = fig.add_subplot()
        insts, others = set(), None
        for v in variants:
            for b in bits:
                c = prog_noise_curve(data["noise"], dataset, v, b)
                if c.empty:
                    continue
                ls, mk = bits_style(b, bits)
                col = variant_color(v, variants)
                x = 100 * c.prog_sigma.to_numpy(float)
                ax.fill_between(x, 100 * c.accuracy_p5, 100 * c.accuracy_p95, color=col, alpha=0.13, lw=0)
                ax.plot(x, 100 * c.accuracy_mean, ls=ls, marker=mk, color=col, lw=2, ms=6, label=f"{v}, {b}-bit devices")
                insts |= set(c.instances.astype(int))
                others = c.iloc[0]
        tr = data["training"]
        base = tr[(tr.dataset == dataset) & (tr.model == "baseline")]
        if len(base):
            acc = 100 * float(base.test_accuracy.iloc[0])
            ax.axhline(acc, color="black", ls="--", lw=1.3, label=f"float baseline model ({acc:.1f} %)")
        if reference_prog_sigma is not None:
            ax.axvline(100 * reference_prog_sigma, color="#777777", lw=1.2, ls=(0, (4, 3)), zorder=1.5,
                       label=f"reference σ of the accuracy table ({100 * reference_prog_sigma:g} %)")
        if dataset == "har":
            p = PAPER_FIGURES["har_float_accuracy"]["value"]
            ax.axhline(p, color="#999999", ls=(0, (1, 2)), lw=1.5, label=f"paper, float ({p:g} %)")
        ax.set_xlabel("Programming-noise σ (% of the conductance range G$_{max}$ − G$_{min}$)")
        ax.set_ylabel("Test accuracy (%)")
        ax.set_title(f"{DATASET_NAMES.get(dataset, dataset)}: crossbar accuracy under programming noise", loc="left")
        sub = "line: mean over " + "/".join(str(i) for i in sorted(insts)) + " simulated chips; band: 5th–95th percentile"
        if others is not None:
            fixed = ", ".join(f"{k}={'device' if pd.isna(others[k]) else _nice(float(others[k]))}" for k in SETTING_KEYS[1:])
            sub += f"\nother non-idealities: {fixed}"
        ax.text(0.0, -0.16, sub, transform=ax.transAxes, fontsize=8.5, color="#444444", va="top")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="deployment", fontsize=9)
        ax.set_xlim(left=min(ax.get_xlim()[0], -0.3))
    return fig


def _scale(values: np.ndarray, unit: str) -> tuple[float, str]:
    m = float(np.nanmax(values)) if len(values) else 0.0
    if unit == "um2":
        return (1e-6, "mm²") if m >= 1e5 else (1.0, "µm²")
    return (1e-6, "µJ") if m >= 1e7 else (1e-3, "nJ") if m >= 1e4 else (1.0, "pJ")


def plot_cost_breakdown(data: dict[str, pd.DataFrame], dataset: str):
    """Two panels (area, energy per inference): stacked bars by component, one bar per variant x bits."""
    import matplotlib as mpl
    import seaborn as sns

    meta = data["meta"].iloc[0]
    variants, bits = list(meta.variants), list(meta.bits)
    comps = data["cost_components"]
    comps = comps[comps.dataset == dataset]
    totals = data["cost"][data["cost"].dataset == dataset].set_index(["variant", "bits"])
    order = (comps.assign(share=comps.value / comps.groupby(["quantity", "variant", "bits"]).value.transform("sum"))
             .groupby("component").share.sum().sort_values(ascending=False).index.tolist())
    pal = sns.color_palette("Set2" if len(order) <= 8 else "tab20", len(order))  # apart from the variant colours
    colors = dict(zip(order, pal))
    bars = [(v, b) for b in bits for v in variants if (v, b) in totals.index]
    xs = np.array([i + 0.6 * bits.index(b) for i, (v, b) in enumerate(bars)])
    family = ", ".join(sorted(set(data["cost"][data["cost"].dataset == dataset].family) - {""})) or "unnamed"
    with mpl.rc_context(_rc()):
        fig = _figure(figsize=(max(10.0, 1.25 * len(bars) * 2 + 3), 5.6), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (quantity, what) in zip(axes, (("area_um2", "Area"), ("energy_pj", "Energy per inference"))):
            q = comps[comps.quantity == quantity]
            f, unit = _scale(totals[quantity].to_numpy(float), "um2" if quantity == "area_um2" else "pj")
            bottom = np.zeros(len(bars))
            for comp in order:
                vals = np.array([q[(q.variant == v) & (q.bits == b) & (q.component == comp)].value.sum() for v, b in bars]) * f
                if not vals.any():
                    continue
                ax.bar(xs, vals, bottom=bottom, width=0.8, color=colors[comp], label=comp, edgecolor="white", lw=0.5)
                bottom += vals
            tot = np.array([totals.loc[(v, b), quantity] for v, b in bars]) * f
            for x, (v, b), t in zip(xs, bars, tot):
                label = f"{t:,.0f}" if t >= 100 else f"{t:.3g}"
                if v != "baseline" and ("baseline", b) in totals.index:
                    label += f"\n−{_improvement(totals.loc[(v, b), quantity], totals.loc[('baseline', b), quantity]):.1f} %"
                    label = label.replace("−-", "+")
                ax.text(x, t, label, ha="center", va="bottom", fontsize=8.5)
            ax.set_xticks(xs, [f"{v}\n{b}-bit" for v, b in bars])
            for tick, (v, _) in zip(ax.get_xticklabels(), bars):
                tick.set_color(variant_color(v, variants))
                tick.set_fontweight("bold")
            ax.set_ylabel(f"{what} ({unit})")
            ax.set_title(what, loc="left")
            ax.set_ylim(0, max(tot.max() if len(tot) else 1, 1e-12) * 1.22)
            ax.grid(axis="x", visible=False)
        handles, labels = axes[0].get_legend_handles_labels()
        h2, l2 = axes[1].get_legend_handles_labels()
        for h, lab in zip(h2, l2):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
        fig.legend(handles, labels, loc="outside right upper", title="component")
        fig.suptitle(f"{DATASET_NAMES.get(dataset, dataset)}: area and energy by component "
                     f"(converter family: {family}; % = change vs baseline at the same device bits)",
                     fontsize=12, x=0.0, ha="left")
    return fig


def weight_grids(data: dict[str, pd.DataFrame], dataset: str, bits: int) -> dict[str, dict[str, Any]]:
    """Per variant at ``bits``: whether every layer uses the same weight step and full-scale (one grid)."""
    lay = data["layers"]
    out = {}
    for v, g in lay[(lay.dataset == dataset) & (lay.bits == bits)].groupby("variant", sort=False):
        steps, fss = g.weight_step.to_numpy(float), g.weight_fullscale.to_numpy(float)
        out[v] = {"shared": bool(np.allclose(steps, steps[0], rtol=1e-9) and np.allclose(fss, fss[0], rtol=1e-9)),
                  "step_min": float(steps.min()), "step_max": float(steps.max()),
                  "fullscale_min": float(fss.min()), "fullscale_max": float(fss.max()), "layers": len(g)}
    return out


def plot_weights(data: dict[str, pd.DataFrame], dataset: str):
    """Per-layer histograms of the signed integer weight codes of each variant at the lowest device bits
    (annotated with each layer's weight step and full-scale), and the conductances of the used cells."""
    import matplotlib as mpl

    meta = data["meta"].iloc[0]
    variants, b = list(meta.variants), min(meta.bits)
    lay = data["layers"][(data["layers"].dataset == dataset) & (data["layers"].bits == b)]
    codes = data["weight_codes"][(data["weight_codes"].dataset == dataset) & (data["weight_codes"].bits == b)]
    conds = data["conductances"][(data["conductances"].dataset == dataset) & (data["conductances"].bits == b)]
    rows = [v for v in variants if (lay.variant == v).any()]
    ncols = max(int(lay.groupby("variant").size().max()), 1)
    grids = weight_grids(data, dataset, b)
    with mpl.rc_context(_rc()):
        fig = _figure(figsize=(max(2.4 * ncols + 1.2, 9.0), 2.35 * len(rows) + 3.4), layout="constrained")
        gs = fig.add_gridspec(len(rows) + 1, ncols, height_ratios=[1.0] * len(rows) + [1.15])
        for r, v in enumerate(rows):
            col = variant_color(v, variants)
            for spec in lay[lay.variant == v].sort_values("index").itertuples():
                ax = fig.add_subplot(gs[r, spec.index])
                h = codes[(codes.variant == v) & (codes["index"] == spec.index)]
                share = 100 * h["count"] / h["count"].sum()
                span = int(max(abs(h.code.min()), abs(h.code.max()), 1))
                if spec.weight_levels is not None and not pd.isna(spec.weight_levels):
                    span = max(span, int(spec.weight_levels))  # the whole grid of the layer
                ax.bar(h.code, share, width=1.0 if span > 20 else 0.8, color=col, lw=0)
                ax.set_xlim(-span - 0.7, span + 0.7)
                ax.set_title(f"{spec.name} ({spec.kind}, {spec.rows}×{spec.outputs})", fontsize=9, fontweight="normal")
                ax.text(0.03, 0.96, f"step {_nice(spec.weight_step)}\nFS {_nice(spec.weight_fullscale)}",
                        transform=ax.transAxes, va="top", fontsize=8,
                        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": col, "alpha": 0.9})
                ax.tick_params(labelsize=8)
                if spec.index == 0:
                    ax.set_ylabel(f"{v}\nweights (%)", color=col, fontweight="bold")
                if r == len(rows) - 1 or spec.index >= lay[lay.variant == rows[r + 1]]["index"].max() + 1:
                    ax.set_xlabel("signed weight code", fontsize=9)
        ax = fig.add_subplot(gs[-1, :])
        levels = np.sort(conds.g_us.unique())
        w = 0.8 / max(len(rows), 1)
        for k, v in enumerate(rows):
            g = conds[conds.variant == v].groupby("g_us")["count"].sum()
            share = 100 * g.reindex(levels, fill_value=0) / max(g.sum(), 1)
            ax.bar(np.arange(len(levels)) + (k - (len(rows) - 1) / 2) * w, share, width=w,
                   color=variant_color(v, variants), label=v)
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(levels)), [f"{g:.4g}" for g in levels])
        ax.set_xlabel("programmed conductance G (µS) — one bar per device level")
        ax.set_ylabel("used cells (%, log)")
        ax.set_title(f"Conductances of the used cells, all layers ({b}-bit devices, {len(levels)} levels)",
                     loc="left", fontsize=10)
        ax.legend(title="variant", loc="upper right")
        lines = []
        for v in rows:
            gi = grids[v]
            if gi["shared"]:
                line = (f"{v}: ONE grid for all {gi['layers']} layers (step {_nice(gi['step_min'])}, "
                        f"full-scale {_nice(gi['fullscale_min'])})")
            else:
                line = (f"{v}: per-layer scales (step {_nice(gi['step_min'])}–{_nice(gi['step_max'])}, "
                        f"full-scale {_nice(gi['fullscale_min'])}–{_nice(gi['fullscale_max'])})")
            lv = lay[lay.variant == v]
            if "pair" in lv and (pd.to_numeric(lv.pair, errors="coerce") == 1).all():
                flips = int(pd.to_numeric(lv.sign_flips, errors="coerce").fillna(0).sum())
                line += ", one device per weight, " + ("only positive weights" if flips == 0 else
                                                       f"{flips} negative sign group(s)")
            lines.append(line)
        fig.suptitle(f"{DATASET_NAMES.get(dataset, dataset)}: mapped weight codes per layer, {b}-bit devices\n"
                     + "\n".join(lines), fontsize=11, x=0.0, ha="left")
    return fig


#: one colour per device resolution in the NAS figure (seaborn 'dark' palette, apart from the variant colours)
NAS_BITS_COLORS = ["#001C7F", "#B1400D", "#12711C", "#8C0800", "#591E71"]
NAS_STATES = ["COMPLETE", "PRUNED"]
NAS_Y_RANGE_POINTS = 25.0  # the NAS figure shows this many points of validation accuracy below its best trial
NAS_STATE_MARKERS = {"COMPLETE": "o", "PRUNED": "X"}


def plot_nas_pareto(data: dict[str, pd.DataFrame], dataset: str):
    """The unipolar search of one dataset: every trial of every device resolution (x = crossbar area in mm² from
    the cost model, y = validation accuracy; colour = bits, marker = COMPLETE / PRUNED), the Pareto front of each
    resolution as a step line and the chosen trial as a large star."""
    import matplotlib as mpl
    import seaborn as sns
    from matplotlib.lines import Line2D

    meta = data["meta"].iloc[0]
    bits = list(meta.bits)
    trials = data.get("nas_trials", pd.DataFrame(columns=["dataset"]))
    trials = trials[trials.dataset == dataset].copy()
    front = data.get("nas_pareto", pd.DataFrame(columns=["dataset"]))
    front = front[front.dataset == dataset]
    arch = data.get("nas_arch", pd.DataFrame(columns=["dataset"]))
    arch = arch[arch.dataset == dataset]
    color = {b: NAS_BITS_COLORS[i % len(NAS_BITS_COLORS)] for i, b in enumerate(sorted(bits))}
    label = lambda b: f"{int(b)}-bit devices"  # noqa: E731
    with mpl.rc_context(_rc()):
        fig = _figure(figsize=(9.5, 5.6), layout="constrained")
        ax = fig.add_subplot()
        handles: list[Any] = []
        if len(trials):
            trials["area_mm2"] = trials.area_um2.astype(float) / 1e6
            trials["val_pct"] = 100 * trials.val_accuracy.astype(float)
            trials["device bits"] = trials.bits.map(label)
            states = [st for st in NAS_STATES if (trials.state == st).any()] + \
                     sorted(set(trials.state.astype(str)) - set(NAS_STATES))
            sns.scatterplot(data=trials, x="area_mm2", y="val_pct", hue="device bits", style="state",
                            hue_order=[label(b) for b in sorted(bits)], style_order=states,
                            palette={label(b): color[b] for b in bits},
                            markers={st: NAS_STATE_MARKERS.get(st, "P") for st in states},
                            s=60, alpha=0.75, edgecolor="white", linewidth=0.5, legend=False, ax=ax)
            for b in sorted(bits):
                handles.append(Line2D([], [], ls="", marker="o", ms=8, color=color[b], label=label(b)))
            for st in states:
                handles.append(Line2D([], [], ls="", marker=NAS_STATE_MARKERS.get(st, "P"), ms=8, color="#666666",
                                      label=f"{st.lower()} trials ({int((trials.state == st).sum())})"))
        fin = trials[trials.final_val_accuracy.notna()] if "final_val_accuracy" in trials else trials.iloc[:0]
        for b in sorted(bits):
            for r in fin[fin.bits == b].itertuples():  # finalists: search score -> full-recipe mean (+- sd over seeds)
                x, y = r.area_um2 / 1e6, 100 * float(r.final_val_accuracy)
                ax.plot([x, x], [r.val_pct, y], color=color[b], lw=0.9, ls=":", zorder=2)
                ax.errorbar([x], [y], yerr=[100 * float(r.final_val_std)], fmt="D", ms=7, color=color[b], mec="black",
                            mew=0.6, ecolor=color[b], capsize=3, zorder=4)
            f = front[front.bits == b]
            if len(f):
                f = f.sort_values("area_um2")
                ax.step(f.area_um2.astype(float) / 1e6, 100 * f.val_accuracy.astype(float), where="post",
                        color=color[b], lw=1.8, alpha=0.9, zorder=3)
            a = arch[(arch.bits == b) & arch.search]
            if len(a) and not math.isnan(a.iloc[0].area_um2):
                r = a.iloc[0]
                ax.scatter([r.area_um2 / 1e6], [100 * r.val_accuracy], marker="*", s=520, color=color[b],
                           edgecolor="black", linewidth=1.0, zorder=6)
                ax.annotate(f"trial {int(r.trial)}", (r.area_um2 / 1e6, 100 * r.val_accuracy), xytext=(9, 7),
                            textcoords="offset points", fontsize=8.5, color=color[b], fontweight="bold")
        if len(fin):
            handles.append(Line2D([], [], ls=":", marker="D", ms=7, color="#666666", markeredgecolor="black",
                                  label="finalists: full recipe, mean\nof seeds (dotted: from search score)"))
        if len(front):
            handles.append(Line2D([], [], color="#444444", lw=1.8, label="Pareto front (per bits)"))
        if len(arch) and arch.search.any():
            handles.append(Line2D([], [], ls="", marker="*", ms=17, color="#BBBBBB", markeredgecolor="black",
                                  label="chosen architecture (per bits)"))
        tr = data["training"]
        base = tr[(tr.dataset == dataset) & (tr.model == "baseline")]
        if len(base) and not math.isnan(float(base.val_accuracy.iloc[0])) and len(trials):
            v = 100 * float(base.val_accuracy.iloc[0])
            ax.axhline(v, color="black", ls="--", lw=1.2)
            handles.append(Line2D([], [], color="black", ls="--", lw=1.2,
                                  label=f"float baseline, validation ({v:.1f} %)"))
        if not len(trials):
            ax.text(0.5, 0.5, "no architecture search in this report\n(nas_unipolar.search is false: the configured "
                    "architecture was used)", transform=ax.transAxes, ha="center", va="center", fontsize=11,
                    color="#444444")
        if len(trials):  # the choice happens near the top: trials far below it would squeeze that range flat
            top = float(trials.val_pct.max())
            floor = top - NAS_Y_RANGE_POINTS
            below = int((trials.val_pct < floor).sum())
            if below:
                ax.set_ylim(bottom=floor, top=max(ax.get_ylim()[1], top + 1))
                ax.text(0.01, 0.02, f"{below} trial(s) below {floor:.0f} % not shown (trials.csv has them)",
                        transform=ax.transAxes, fontsize=8.5, color="#444444", va="bottom")
        ax.set_xlabel("Crossbar area (mm², cost model)")
        ax.set_ylabel("Validation accuracy (%, quantized, sign-constrained)")
        n = ", ".join(f"{label(r.bits)}: {r.trials_complete} complete / {r.trials_pruned} pruned"
                      for r in arch.sort_values("bits").itertuples() if r.search)
        ax.set_title(f"{DATASET_NAMES.get(dataset, dataset)}: unipolar architecture search"
                     + (f"\n{n}" if n else ""), loc="left")
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="trials")
        if len(arch) and arch.search.any():
            rules = "\n".join(textwrap.fill(f"selection, {label(r.bits)}: {r.rule}", 150, subsequent_indent="    ")
                              for r in arch[arch.search].sort_values("bits").itertuples())
            ax.text(0.0, -0.13, rules, transform=ax.transAxes, fontsize=8, color="#444444", va="top")
    return fig


def figure_names(datasets: Iterable[str], variants: Iterable[str] | None = None) -> list[str]:
    """The figures the report draws; nas_pareto_<dataset> only when the unipolar variant is among ``variants``."""
    kinds = ["accuracy_vs_prog_noise", "cost_breakdown", "weights"]
    if variants is not None and NAS_VARIANT in list(variants):
        kinds.append("nas_pareto")
    return [f"{kind}_{ds}" for ds in datasets for kind in kinds]


# ------------------------------------------------------------------------------------------------ report
def verdict(ours: float | None, paper: float, tol: float, overshoot_ok: bool = True) -> str:
    """'reproduced' when ours reaches the paper's (an 'up to' figure) within ``tol`` points, 'differs' when
    lower, 'not yet' when we have no number. With ``overshoot_ok=False`` (area and energy savings) a number
    more than ``tol`` ABOVE the paper's also 'differs': a saving far beyond the paper's means a different
    cost model or baseline, not agreement."""
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "not yet"
    if ours < paper - tol or (not overshoot_ok and ours > paper + tol):
        return "differs"
    return "reproduced"


def _pct(v: float) -> str:
    return f"{v:.1f} %"


def _energy(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.1f}"


def _fmt_area(v: float) -> str:
    return f"{v:,.0f} µm²"


def improvements(cost: pd.DataFrame) -> pd.DataFrame:
    return cost[(cost.variant != "baseline") & cost.area_improvement_pct.notna()]


def render_report(data: dict[str, pd.DataFrame], acc: pd.DataFrame, cost: pd.DataFrame, cfg: dict,
                  profile: str | None, figures: dict[str, Path], report_path: Path, tables_dir: Path) -> str:
    cfg = {**DEFAULTS, **(cfg or {})}
    meta = data["meta"].iloc[0]
    datasets, variants, bits = list(meta.datasets), list(meta.variants), list(meta.bits)
    tr, summ = data["training"], data["noise_summary"]
    rel = lambda p: os.path.relpath(Path(p).resolve(), report_path.parent.resolve())  # noqa: E731
    L: list[str] = []
    L += ["# Reproduction report", "",
          f"Paper: {PAPER_REF}. This file is generated by `nvmxbar.report` from the files under `results/`: every "
          "number is read from them, except the paper's published figures (`PAPER_FIGURES` in "
          "`src/nvmxbar/report.py`, taken from the abstract, see `../shared/PAPER.md`).", ""]
    # ---- what was run
    L += ["## What was run", ""]
    if profile:
        note = {"smoke": " (small subsets and a few epochs: it checks the pipeline end to end; its accuracies are "
                         "not expected to reach the paper's)",
                "full": " (the paper-scale settings of config.yaml)"}.get(profile, "")
        L.append(f"- Profile: **{profile}**{note}.")
    L.append("- Datasets: " + ", ".join(f"{DATASET_NAMES.get(d, d)} (`{d}`)" for d in datasets) + ".")
    L.append("- Variants: " + "; ".join(f"`{v}` ({VARIANT_DESCRIPTIONS.get(v, 'see README')})" for v in variants) + ".")
    L.append("- Device resolutions: " + ", ".join(f"{b}-bit ({2 ** b} levels)" for b in bits) + ".")
    lay = data["layers"]
    bl = lay[lay.variant == "baseline"]
    if len(bl) and bl.weight_levels.notna().all():
        wl = sorted(set(int(x) for x in bl.weight_levels))
        sl = data["mapping"][data["mapping"].variant == "baseline"][["bits", "slices"]].drop_duplicates().sort_values("bits")
        L.append("- Baseline deployment (mapping.json): weights quantized per layer to "
                 + "/".join(f"±{w} ({int(math.log2(w + 1)) + 1}-bit)" for w in wl) + ", "
                 + ", ".join(f"{int(r.slices)} slice(s) per sign on {int(r.bits)}-bit devices" for r in sl.itertuples())
                 + ".")
    for d in datasets:
        t = tr[tr.dataset == d]
        ep = ", ".join(f"`{r.model}` {r.epochs} epochs (model.pt = epoch {int(r.selected_epoch)}, best validation "
                       f"epoch {int(r.best_epoch)}; test accuracy on {r.n_test} samples)"
                       if r.best_epoch is not None and not pd.isna(r.best_epoch) else f"`{r.model}` {r.epochs} epochs"
                       for r in t.itertuples())
        s = summ[summ.dataset == d]
        inst = sorted(set(data["noise"][data["noise"].dataset == d].instances.astype(int)))
        L.append(f"- {DATASET_NAMES.get(d, d)} training (metrics.json): {ep}. Crossbar accuracy on "
                 f"{'/'.join(str(int(x)) for x in sorted(set(s.samples.dropna())))} test samples, noise Monte Carlo "
                 f"with {'/'.join(map(str, inst))} simulated chips per setting.")
    if "cost" in data and len(data["cost"]):
        fams = sorted(set(data["cost"].family) - {""})
        L.append(f"- Cost model converter family: {', '.join(fams) if fams else 'not stated in cost.json'}.")
    sig = float(cfg["reference_prog_sigma"])
    used = sorted(set(acc.ref_prog_sigma))
    L.append(f"- Noisy accuracy at programming noise σ = {100 * sig:g} % of the conductance range (config "
             f"`report.reference_prog_sigma` = {sig:g}); nearest swept value used: "
             + ", ".join(f"{100 * u:g} %" for u in used) + ", other non-idealities at their first swept value"
             + ("" if all(abs(u - sig) < 1e-12 for u in used) else
                " (**the sweep does not contain the reference value**: add it to `evaluate_noise.sweep.prog_sigma`)")
             + ".")
    L.append("")
    # ---- tables
    L += ["## Accuracy", "", "Accuracies in % on the test split. *trained model*: the float network for `baseline`, "
          "the quantization-aware network itself for quantized variants; *ideal crossbar*: the mapped network "
          "simulated on ideal devices and converters; *noisy crossbar*: mean ± std over simulated chips at the "
          "reference programming noise. `paper` only where the paper publishes a number for that row.", ""]
    L.append(markdown(*_display_accuracy(acc)))
    L.append(f"Tables: `{rel(tables_dir / 'accuracy.csv')}` (also `.md`, `.tex`).")
    L.append("")
    if cost is not None and len(cost):
        L += ["## Area and energy", "", "Per inference, from the parametric cost model (cost.json). Improvement = "
              "1 − value / baseline value at the same device bits (positive = smaller / lower). The paper's cost "
              "figures are for both techniques combined and appear beside the combined (`unipolar`) rows only.", ""]
        L.append(markdown(*_display_cost(cost)))
        L.append(f"Tables: `{rel(tables_dir / 'cost.csv')}` (also `.md`, `.tex`).")
        L.append("")
        L += ["## Improvements over the baseline (same device bits)", ""]
        imp = improvements(cost)
        if imp.empty:
            L.append("No variant besides the baseline (or no baseline) was run: nothing to compare.")
        base = cost[cost.variant == "baseline"].set_index(["dataset", "bits"])
        for r in imp.itertuples():
            bl = base.loc[(r.dataset, r.bits)]
            word_a = "smaller" if r.area_improvement_pct >= 0 else "larger"
            word_e = "lower" if r.energy_improvement_pct >= 0 else "higher"
            line = (f"- {DATASET_NAMES.get(r.dataset, r.dataset)}, {r.bits}-bit devices, `{r.variant}` "
                    f"({TECHNIQUES.get(r.variant, r.variant)}) vs `baseline`: "
                    f"area {_fmt_area(bl.area_um2)} → {_fmt_area(r.area_um2)} (**{_pct(r.area_improvement_pct)}** "
                    f"{word_a}), energy {_energy(bl.energy_pj_per_inference)} → {_energy(r.energy_pj_per_inference)} pJ per "
                    f"inference (**{_pct(r.energy_improvement_pct)}** {word_e}); ADCs {bl.adcs:,} → {r.adcs:,}, "
                    f"devices {bl.devices:,} → {r.devices:,}, periphery designs {bl.periphery_designs} → "
                    f"{r.periphery_designs}")
            if r.time_share_applied:
                line += " (ADCs time-shared across layers in this total)"
            elif not math.isnan(r.time_shared_area_um2):
                line += (f"; with ADCs time-shared across layers {_fmt_area(r.time_shared_area_um2)} "
                         f"(**{_pct(r.time_shared_area_improvement_pct)}** vs the baseline)")
            if not math.isnan(r.paper_area_improvement_pct):
                line += (f"; the paper, both techniques combined: up to {r.paper_area_improvement_pct:g} % area, "
                         f"up to {r.paper_energy_improvement_pct:g} % energy")
            L.append(line + ".")
        L.append("")
    # ---- architecture search
    if "nas_arch" in data:
        L += _nas_section(data, acc, cfg, tables_dir, figures, rel)
    # ---- claims
    L += ["## The paper's claims", ""]
    L += _claims(data, acc, cost, cfg, profile)
    L.append("")
    # ---- figures
    L += ["## Figures", ""]
    for name, path in figures.items():
        L.append(f"![{name}]({rel(path)})")
        L.append("")
    return "\n".join(L).rstrip() + "\n"


def _nas_section(data, acc: pd.DataFrame, cfg: dict, tables_dir: Path, figures: dict[str, Path],
                 rel: Callable[[Any], str]) -> list[str]:
    """REPORT.md: the unipolar architecture search (table, Pareto figures) and, in plain words, the HAR 2-bit
    only-positive accuracy against the paper's and against our float baseline."""
    nas = nas_table(data)
    gap_target = float(cfg["unipolar_float_gap_pct"])
    L = ["## Unipolar architecture search", "",
         "The `unipolar` variant (one device per weight, each weight matrix or sign group of one polarity) takes its "
         "architecture from an Optuna search per dataset and device resolution (rule `nas_unipolar`): every trial "
         "trains a sign-constrained, quantized candidate for a few epochs and is scored on validation accuracy "
         "(higher is better) and crossbar area from the cost model (smaller is better); weak trials are pruned "
         "early. The chosen trial is then trained with the full recipe and deployed like the other variants.", ""]
    if nas.empty:
        return L + ["No search result in this report.", ""]
    L.append(markdown(*_display_nas(nas)))
    L.append(f"Table: `{rel(tables_dir / 'nas.csv')}` (also `.md`, `.tex`); trials: "
             f"`{{dataset}}/{NAS_VARIANT}/b{{bits}}/nas/trials.csv`.")
    L.append("")
    tr = data["training"]
    lay = data["layers"]
    for r in nas.itertuples():
        ds_name = DATASET_NAMES.get(r.dataset, r.dataset)
        row = acc[(acc.dataset == r.dataset) & (acc.variant == NAS_VARIANT) & (acc.bits == r.bits)]
        base = tr[(tr.dataset == r.dataset) & (tr.model == "baseline")]
        flips = lay[(lay.dataset == r.dataset) & (lay.variant == NAS_VARIANT) & (lay.bits == r.bits)].sign_flips
        n_neg = int(pd.to_numeric(flips, errors="coerce").fillna(0).sum()) if len(flips) else None
        sign = ("with only-positive weights (no negative sign group in mapping.json)" if n_neg == 0 else
                f"with {n_neg} negative sign group(s) beside positive ones (unipolar per group, not only-positive)"
                if n_neg else f"with polarity {r.polarity or 'not stated'}")
        head = f"**{ds_name}, {r.bits}-bit devices.** "
        if r.search:
            fin = int(r.finalists or 0)
            head += (f"The search ran {r.trials_complete} complete and {r.trials_pruned} pruned trials "
                     f"({_duration(r.search_wall_time_s) or 'wall time not recorded'})"
                     + (f"; its {fin} best were retrained with the full recipe and rescored (finalists), and it chose "
                        f"trial {int(r.chosen_trial)}: {r.chosen_val_accuracy_pct:.2f} % mean validation accuracy "
                        f"({r.val_accuracy_given_up_pct:.2f} points below the best finalist) at "
                        f"{r.chosen_area_mm2:.4g} mm²"
                        + (f" (the search score alone would have chosen trial {int(r.search_score_pick)}). "
                           if r.search_score_pick is not None and not pd.isna(r.search_score_pick)
                           and int(r.search_score_pick) != int(r.chosen_trial) else ". ")
                        if fin else
                        f" and chose trial {int(r.chosen_trial)}: {r.chosen_val_accuracy_pct:.2f} % validation accuracy "
                        f"({r.val_accuracy_given_up_pct:.2f} points below the best trial) at "
                        f"{r.chosen_area_mm2:.4g} mm². "))
        else:
            head += "No search was run: the configured architecture was used. "
        if len(row):
            a = row.iloc[0]
            head += (f"Trained with the full recipe and mapped {sign}, it reaches "
                     f"{_pct(a.ideal_crossbar_accuracy_pct)} test accuracy on the ideal crossbar "
                     f"({_pct(a.model_test_accuracy_pct)} as trained, {_pct(a.noisy_accuracy_mean_pct)} with "
                     f"{100 * a.ref_prog_sigma:g} % programming noise).")
            if len(base):
                fl = 100 * float(base.test_accuracy.iloc[0])
                gap = fl - float(a.ideal_crossbar_accuracy_pct)
                ok = gap <= gap_target
                head += (f" Our float baseline reaches {_pct(fl)}: the unipolar network is "
                         + (f"{gap:.1f} points below it" if gap >= 0 else f"{-gap:.1f} points above it")
                         + f", {'within' if ok else 'outside'} the {gap_target:g}-point target "
                         f"(config `report.unipolar_float_gap_pct`).")
            if r.dataset == "har" and r.bits == 2:
                p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
                d = float(a.ideal_crossbar_accuracy_pct) - p["value"]
                head += (f" The paper reports up to {p['value']:g} % for HAR on 2-bit devices with only-positive "
                         f"weights ({p['source']}); ours is {abs(d):.2f} points {'above' if d >= 0 else 'below'} "
                         f"that figure.")
        else:
            head += "Its trained and mapped network is not in this report."
        L += [head, ""]
    if not ((nas.dataset == "har") & (nas.bits == 2)).any():
        p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
        L += [f"The paper's headline HAR 2-bit only-positive figure (up to {p['value']:g} %) needs a HAR 2-bit "
              f"`unipolar` run, which is not in this report.", ""]
    for name, path in figures.items():
        if name.startswith("nas_pareto_"):
            L += [f"![{name}]({rel(path)})", ""]
    return L


def _claims(data, acc: pd.DataFrame, cost: pd.DataFrame | None, cfg: dict, profile: str | None) -> list[str]:
    meta = data["meta"].iloc[0]
    datasets, variants, bits = list(meta.datasets), list(meta.variants), list(meta.bits)
    tol_a, tol_c = float(cfg["accuracy_tolerance_pct"]), float(cfg["cost_tolerance_pct"])
    scale = "" if profile in (None, "full") else f"; profile {profile}, not a paper-scale run"
    out = [f"Verdicts: *reproduced* = our number reaches the paper's \"up to\" figure within "
           f"{tol_a:g} percentage points of accuracy or {tol_c:g} of improvement (config `report.accuracy_tolerance_pct`, "
           f"`report.cost_tolerance_pct`); *differs* = it does not (a saving more than that ABOVE the paper's also differs); *not yet* = the run needed for it is not in "
           f"this report.", ""]
    want = {"har": "HAR", "cifar10": "CIFAR-10"}
    have = [d for d in want if d in datasets]
    miss = [want[d] for d in want if d not in datasets]
    out.append(f"- **Datasets CIFAR-10 and HAR**: ran {', '.join(want[d] for d in have) or 'neither'}"
               + (f"; {', '.join(miss)} not yet" if miss else "") + " — "
               + ("**reproduced** (both datasets run)." if not miss else ("**not yet**." if not have else "**partly**.")))
    bmiss = [b for b in (4, 2) if b not in bits]
    out.append(f"- **4-bit and 2-bit devices**: ran {', '.join(f'{b}-bit' for b in bits)} — "
               + ("**reproduced** (both resolutions run)." if not bmiss else
                  f"**not yet** for {', '.join(f'{b}-bit' for b in bmiss)}."))
    # HAR float accuracy
    p = PAPER_FIGURES["har_float_accuracy"]
    t = data["training"]
    base = t[(t.dataset == "har") & (t.model == "baseline")]
    ours = 100 * float(base.test_accuracy.iloc[0]) if len(base) else None
    v = verdict(ours, p["value"], tol_a)
    out.append(f"- **HAR, floating point: {p['value']:g} %** ({p['source']}): "
               + (f"our float baseline reaches {_pct(ours)} test accuracy — **{v}**"
                  + (f" ({p['value'] - ours:.1f} points lower{scale})" if v == "differs" else "") + "."
                  if ours is not None else "**not yet** (no HAR baseline in this report)."))
    # HAR 2-bit only-positive
    p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
    row = acc[(acc.dataset == "har") & (acc.variant == "unipolar") & (acc.bits == 2)]
    if len(row):
        r = row.iloc[0]
        v = verdict(r.ideal_crossbar_accuracy_pct, p["value"], tol_a)
        out.append(f"- **HAR, 2-bit devices, only-positive weights: up to {p['value']:g} %** ({p['source']}): our "
                   f"`unipolar` 2-bit network reaches {_pct(r.ideal_crossbar_accuracy_pct)} on the ideal crossbar "
                   f"({_pct(r.model_test_accuracy_pct)} as trained, {_pct(r.noisy_accuracy_mean_pct)} with "
                   f"{100 * r.ref_prog_sigma:g} % programming noise) — **{v}**"
                   + (f" ({p['value'] - r.ideal_crossbar_accuracy_pct:.1f} points lower{scale})" if v == "differs" else "")
                   + ".")
    else:
        alt = acc[(acc.dataset == "har") & (acc.variant == "uniform") & (acc.bits == 2)]
        ctx = (f" For context, the signed-weight `uniform` 2-bit network reaches "
               f"{_pct(alt.iloc[0].ideal_crossbar_accuracy_pct)} on the ideal crossbar.") if len(alt) else ""
        out.append(f"- **HAR, 2-bit devices, only-positive weights: up to {p['value']:g} %** ({p['source']}): "
                   f"**not yet** — no HAR `unipolar` 2-bit run in this report.{ctx}")
    # cost claims
    for key, v1key, col, what in (("area_combined", "area_unipolar_v1", "area_improvement_pct", "area"),
                                  ("energy_combined", "power_v1", "energy_improvement_pct", "energy")):
        p, p1 = PAPER_FIGURES[key], PAPER_FIGURES[v1key]
        head = (f"- **{what.capitalize()}, both techniques combined: up to {p['value']:g} %** ({p['source']}; "
                f"{p1['text']}: {p1['value']:g} %, {p1['source']}): ")
        if cost is None or not len(cost):
            out.append(head + "**not yet** — no cost.json in this report.")
            continue
        comb = cost[cost.variant.isin(COMBINED_VARIANTS) & cost[col].notna()]
        uni = cost[(cost.variant == "uniform") & cost[col].notna()]
        ctx = ""
        if len(uni):
            best = uni.loc[uni[col].idxmax()]
            ctx = (f" Uniform scaling alone gives up to {_pct(best[col])} ({DATASET_NAMES.get(best.dataset, best.dataset)}, "
                   f"{best.bits}-bit devices; range {_pct(uni[col].min())} to {_pct(uni[col].max())}).")
        if len(comb):
            best = comb.loc[comb[col].idxmax()]
            v = verdict(float(best[col]), p["value"], tol_c, overshoot_ok=False)
            gap = p["value"] - float(best[col])
            why = (f" ({gap:.1f} points short{scale})" if gap > 0 else
                   f" ({-gap:.1f} points beyond the paper's: the saving rests on our cost model, our baseline and the size "
                   f"of the network found, which are not the paper's{scale})")
            out.append(head + f"our best combined ({best.variant}) {what} improvement is {_pct(best[col])} "
                       f"({DATASET_NAMES.get(best.dataset, best.dataset)}, {best.bits}-bit devices) — **{v}**"
                       + (why if v == "differs" else "") + "." + ctx)
        else:
            out.append(head + "**not yet** — the combined (`unipolar`) variant was not run." + ctx)
    return out


# --------------------------------------------------------------------------------------------------- stage
def report_stage(results_dir: str | Path, datasets: Iterable[str], variants: Iterable[str], bits: Iterable[int],
                 cfg: dict | None = None, *, tables_dir: str | Path | None = None,
                 figures_dir: str | Path | None = None, report_md: str | Path | None = None,
                 profile: str | None = None, experiments: dict[str, str] | None = None) -> dict[str, list[Path]]:
    """The whole report rule: collect, tables (CSV/MD/TeX), figures (PNG/PDF), REPORT.md; all written atomically.
    ``cfg`` is the config's ``report`` slice (defaults in :data:`DEFAULTS`). ``experiments`` maps a dataset to
    its MLflow experiment: one run per dataset then logs the improvements and the outputs as artifacts.
    Returns the written paths by kind."""
    import time

    t0 = time.time()
    cfg = {**DEFAULTS, **(cfg or {})}
    results_dir = Path(results_dir)
    tables_dir = Path(tables_dir) if tables_dir else results_dir / "tables"
    figures_dir = Path(figures_dir) if figures_dir else results_dir / "figures"
    report_md = Path(report_md) if report_md else results_dir / "report" / "REPORT.md"
    datasets, variants = list(datasets), list(variants)
    data = collect(results_dir, datasets, variants, bits)
    with_nas = NAS_VARIANT in variants
    if with_nas:
        data.update(collect_nas(results_dir, datasets, bits))
    acc = accuracy_table(data, float(cfg["reference_prog_sigma"]))
    cost = cost_table(data)
    written: dict[str, list[Path]] = {"tables": [], "figures": [], "report": []}
    written["tables"] += write_table(acc, "accuracy", tables_dir)
    written["tables"] += write_table(cost, "cost", tables_dir)
    nas = nas_table(data) if with_nas else None
    if nas is not None:
        written["tables"] += write_table(nas, "nas", tables_dir)
    kinds = [("accuracy_vs_prog_noise", lambda d, s: plot_accuracy_vs_noise(d, s, float(cfg["reference_prog_sigma"]))),
             ("cost_breakdown", plot_cost_breakdown), ("weights", plot_weights)]
    if with_nas:
        kinds.append(("nas_pareto", plot_nas_pareto))
    figures: dict[str, Path] = {}
    for ds in datasets:
        for kind, fn in kinds:
            name = f"{kind}_{ds}"
            paths = save_figure(fn(data, ds), name, figures_dir, int(cfg["dpi"]))
            figures[name] = paths[0]
            written["figures"] += paths
    text = render_report(data, acc, cost, cfg, profile, figures, report_md, tables_dir)
    with _atomic(report_md) as tmp:
        tmp.write_text(text)
    written["report"].append(report_md)
    if experiments:
        _log_mlflow(experiments, datasets, acc, cost, written, cfg, nas)
    print(f"[report] {len(written['tables'])} table files, {len(written['figures'])} figure files and {report_md} "
          f"in {time.time() - t0:.1f} s", flush=True)
    return written


def _log_mlflow(experiments: dict[str, str], datasets: list[str], acc: pd.DataFrame, cost: pd.DataFrame,
                written: dict[str, list[Path]], cfg: dict, nas: pd.DataFrame | None = None) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    for ds in datasets:
        name = experiments.get(ds)
        if not name:
            continue
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else client.create_experiment(name)
        tags = {"dataset": ds, "rule": "report", "git_commit": tracking.git_commit()}
        run_id = client.create_run(exp_id, run_name=f"report {ds}", tags=tags).info.run_id
        for k, v in tracking.flatten({"report": cfg}).items():
            client.log_param(run_id, k, v)
        for r in cost[(cost.dataset == ds) & cost.area_improvement_pct.notna()].itertuples():
            client.log_metric(run_id, f"area_improvement_pct.{r.variant}.b{r.bits}", float(r.area_improvement_pct))
            client.log_metric(run_id, f"energy_improvement_pct.{r.variant}.b{r.bits}", float(r.energy_improvement_pct))
        for r in acc[acc.dataset == ds].itertuples():
            client.log_metric(run_id, f"ideal_crossbar_accuracy_pct.{r.variant}.b{r.bits}", float(r.ideal_crossbar_accuracy_pct))
            client.log_metric(run_id, f"noisy_accuracy_mean_pct.{r.variant}.b{r.bits}", float(r.noisy_accuracy_mean_pct))
        if nas is not None and len(nas):
            for r in nas[(nas.dataset == ds) & nas.search.astype(bool)].itertuples():
                for k in ("chosen_val_accuracy_pct", "chosen_area_um2", "best_val_accuracy_pct", "trials_complete",
                          "trials_pruned", "search_wall_time_s"):
                    val = float(getattr(r, k))
                    if not math.isnan(val):
                        client.log_metric(run_id, f"nas.{k}.b{r.bits}", val)
        for p in written["tables"] + written["report"]:
            client.log_artifact(run_id, str(p), artifact_path="report")
        for p in written["figures"]:
            if p.stem.endswith(f"_{ds}"):
                client.log_artifact(run_id, str(p), artifact_path="figures")
        client.set_terminated(run_id, "FINISHED")

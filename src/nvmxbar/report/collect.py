"""The report's inputs: :func:`collect` reads metrics.json, mapping.json, crossbar.npz, noise.csv,
noise_summary.json and cost.json of every dataset x variant x device bits x seed into tidy DataFrames (each with a
``seed`` column), and :func:`collect_nas` the unipolar architecture search (nas/trials.csv, pareto.csv, arch.json;
one per dataset and bits, not per seed). A missing or unreadable file stops with a :class:`ReportInputError` naming
it and the rule that writes it.

Layout: a trained model in ``<dataset>/baseline/seed<s>/`` or ``<dataset>/<variant>/b<bits>/seed<s>/``
(model.pt, metrics.json); its deployment in ``<dataset>/<variant>/b<bits>/seed<s>/`` (the float baseline deployed
as ``<dataset>/baseline/b<bits>/seed<s>/``)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The non-idealities of a noise.csv row, in the sweep's column order, and every column the report reads.
SETTING_KEYS = ("prog_sigma", "read_sigma", "stuck_min", "stuck_max", "on_off_ratio", "drift_t_s")
NOISE_COLUMNS = SETTING_KEYS + (
    "accuracy_mean",
    "accuracy_std",
    "accuracy_p5",
    "accuracy_p50",
    "accuracy_p95",
    "instances",
)
NAS_VARIANT = "unipolar"  # the variant whose architecture is searched (results/{dataset}/unipolar/b{bits}/nas/)
NAS_TRIAL_COLUMNS = ("trial", "state", "val_accuracy", "area_um2")
NAS_ARCH_KEYS = ("model", "rule")


class ReportInputError(FileNotFoundError):
    """An input of the report is missing or unreadable; the message names the file and the rule that writes it."""


def _producer(path: Path) -> str:
    name = path.name
    if path.parent.name == "nas":
        return "nas_unipolar"
    return {
        "metrics.json": "train",
        "mapping.json": "map_crossbar",
        "crossbar.npz": "map_crossbar",
        "noise.csv": "evaluate_noise",
        "noise_summary.json": "evaluate_noise",
        "cost.json": "estimate_cost",
    }.get(name, "an earlier rule")


def _need(path: Path) -> Path:
    if not path.is_file():
        raise ReportInputError(
            f"report input missing: {path} (written by rule {_producer(path)}; "
            f"run that rule first or remove the variant/bits from the report)"
        )
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
    """The trained model a deployment uses, seed aside ('baseline' or '<variant>/b<bits>'): the float baseline
    serves every device resolution. The ``model`` key of the report's DataFrames."""
    return "baseline" if variant == "baseline" else f"{variant}/b{bits}"


def model_path(results_dir: str | Path, dataset: str, variant: str, bits: int, seed: int) -> Path:
    """Folder of one seed's trained model (model.pt, metrics.json)."""
    return Path(results_dir) / dataset / model_dir(variant, bits) / f"seed{int(seed)}"


def deployment_path(results_dir: str | Path, dataset: str, variant: str, bits: int, seed: int) -> Path:
    """Folder of one seed's deployment (crossbar.npz, mapping.json, noise.csv, noise_summary.json, cost.json)."""
    return Path(results_dir) / dataset / variant / f"b{int(bits)}" / f"seed{int(seed)}"


def seed_list(seeds: Iterable[int]) -> list[int]:
    """The configured seeds, sorted, each once; at least one."""
    out = sorted({int(s) for s in seeds})
    if not out:
        raise ValueError("the report needs at least one seed (config key seeds)")
    return out


def collect(
    results_dir: str | Path,
    datasets: Iterable[str],
    variants: Iterable[str],
    bits: Iterable[int],
    seeds: Iterable[int],
    with_cost: bool = True,
) -> dict[str, pd.DataFrame]:
    """Read every input of the report, every seed's. Returns DataFrames, each with a ``seed`` column:

    training (one row per trained model and seed: ``model`` is 'baseline' or '<variant>/b<bits>'), mapping (totals
    and device/converter settings per dataset x variant x bits x seed), layers (per mapped layer), noise (noise.csv
    rows), noise_summary, cost (totals), cost_components (long: quantity, component, value), cost_layers,
    weight_codes (histogram of the signed integer codes per layer) and conductances (histogram of G of used cells
    per layer); and meta (one row: datasets, variants, bits, seeds).
    """
    root = Path(results_dir)
    datasets, variants, bits = list(datasets), list(variants), sorted(int(b) for b in bits)
    seeds = seed_list(seeds)
    training, mapping, layers, noise, summary = [], [], [], [], []
    cost, comps, cost_layers, codes, conds = [], [], [], [], []
    trained: set[tuple[str, str, int]] = set()  # the float baseline serves every bits: read its metrics once
    for ds in datasets:
        for v in variants:
            for b in bits:
                mdir = model_dir(v, b)
                for s in seeds:
                    if (ds, mdir, s) not in trained:
                        trained.add((ds, mdir, s))
                        met = model_path(root, ds, v, b, s) / "metrics.json"
                        training.append(_read_training(met, ds, v, b, mdir, s))
                    d = deployment_path(root, ds, v, b, s)
                    key = {"dataset": ds, "variant": v, "bits": b, "model": mdir, "seed": s}
                    n_layers = _read_mapping(d / "mapping.json", key, mapping, layers)
                    _read_crossbar(d / "crossbar.npz", n_layers, key, codes, conds)
                    noise.append(_read_noise(d / "noise.csv", key))
                    summary.append(_read_summary(d / "noise_summary.json", key))
                    if with_cost:
                        _read_cost(d / "cost.json", key, cost, comps, cost_layers)
    out = {
        "training": pd.DataFrame(training),
        "mapping": pd.DataFrame(mapping),
        "layers": pd.DataFrame(layers),
        "noise": pd.concat(noise, ignore_index=True) if noise else pd.DataFrame(columns=list(NOISE_COLUMNS)),
        "noise_summary": pd.DataFrame(summary),
        "weight_codes": pd.DataFrame(codes),
        "conductances": pd.DataFrame(conds),
    }
    if with_cost:
        out.update(cost=pd.DataFrame(cost), cost_components=pd.DataFrame(comps), cost_layers=pd.DataFrame(cost_layers))
    out["meta"] = pd.DataFrame([{"datasets": datasets, "variants": variants, "bits": bits, "seeds": seeds}])
    return out


def _read_summary(path: Path, key: dict) -> dict:
    """One row of ``noise_summary``: the ideal crossbar and its loss breakdown."""
    sm = _json(path, ["ideal_crossbar_accuracy"])
    return {
        **key,
        "ideal_crossbar_accuracy": float(sm["ideal_crossbar_accuracy"]),
        # the loss breakdown: the mapped weights alone, then + the DAC (absent in old summaries)
        "weights_only_accuracy": float(sm.get("loss_breakdown", {}).get("weights", float("nan"))),
        "with_dac_accuracy": float(sm.get("loss_breakdown", {}).get("dac", float("nan"))),
        "samples": sm.get("samples"),
        "noise_wall_time_s": sm.get("wall_time_s"),
    }


def _read_training(path: Path, ds: str, v: str, b: int, mdir: str, seed: int) -> dict:
    """One row of ``training`` from a trained model's metrics.json."""
    met = _json(path, ["test_accuracy", "epochs"])
    q = met.get("quant") or {}
    return {
        "dataset": ds,
        "model": mdir,
        "variant": v,
        "bits": None if v == "baseline" else b,
        "seed": seed,
        "threads": met.get("threads"),
        "mlflow_group_run_id": met.get("mlflow_group_run_id") or None,
        "test_accuracy": float(met["test_accuracy"]),
        # fit_on train+val: the validation windows trained it, so no held-out figure
        "val_accuracy": math.nan if met.get("fit_on") == "train+val" else float(met.get("val_accuracy", math.nan)),
        "fit_on": met.get("fit_on", "train"),
        "epochs": int(met["epochs"]),
        "best_epoch": met.get("best_epoch"),
        "selected_epoch": met.get("selected_epoch", met.get("best_epoch")),
        "n_test": met.get("n_test"),
        "wall_time_s": met.get("wall_time_s"),
        "weight_fullscale": q.get("weight_fullscale"),
        "act_fullscale": q.get("act_fullscale"),
        "adc_fullscale": q.get("adc_fullscale"),
    }


def _read_mapping(path: Path, key: dict, mapping: list, layers: list) -> int:
    """mapping.json: one row of ``mapping``, one row of ``layers`` per layer. Returns the number of layers."""
    mp = _json(path, ["scheme", "tile", "device", "converters", "layers", "total"])
    try:
        mapping.append(
            {
                **key,
                "scheme": mp["scheme"],
                "slices": mp.get("slices"),
                "pair": mp.get("pair"),
                "tile_rows": mp["tile"]["rows"],
                "tile_cols": mp["tile"]["cols"],
                "levels": mp["device"]["levels"],
                "g_min_us": mp["device"]["g_min_us"],
                "g_max_us": mp["device"]["g_max_us"],
                "on_off_ratio": mp["device"]["on_off_ratio"],
                "dac_bits": mp["converters"]["dac_bits"],
                "adc_bits": mp["converters"]["adc_bits"],
                "adc_mux": mp["converters"].get("adc_mux"),
                **{
                    k: mp["total"][k]
                    for k in ("devices", "tiles", "used_cells", "utilisation", "adcs", "dacs", "periphery_designs")
                },
                **{k: mp["total"].get(k) for k in ("subtractors", "shift_add_units", "rescale_units", "weights")},
                "sign_flips": mp["total"].get("sign_flips", sum(int(s.get("sign_flips") or 0) for s in mp["layers"])),
            }
        )
        for i, spec in enumerate(mp["layers"]):
            layers.append(
                {
                    **key,
                    "index": i,
                    "name": spec["name"],
                    "kind": spec["kind"],
                    "rows": spec["rows"],
                    "outputs": spec["outputs"],
                    "mvms": spec.get("mvms"),
                    "tiles": spec["tiles"],
                    "devices": spec["devices"],
                    "used_cells": spec["used_cells"],
                    "utilisation": spec["utilisation"],
                    "adcs": spec["adcs"],
                    "dacs": spec["dacs"],
                    "weight_step": spec["weight_step"],
                    "weight_fullscale": spec["weight_fullscale"],
                    "weight_levels": spec.get("weight_levels"),
                    "slices": spec.get("slices"),
                    "dac_fullscale": spec["dac_fullscale"],
                    "periphery_design": spec.get("periphery_design"),
                    "pair": spec.get("pair", mp.get("pair")),
                    "sign_flips": spec.get("sign_flips"),
                }
            )
    except (KeyError, TypeError) as err:
        raise ReportInputError(f"report input {path}: missing or malformed entry {err}") from None
    return len(mp["layers"])


def _read_crossbar(path: Path, n_layers: int, key: dict, codes: list, conds: list) -> None:
    """crossbar.npz: histograms of each layer's signed weight codes and of the conductances of its used cells."""
    npz = _need(path)
    try:
        with np.load(npz, allow_pickle=False) as z:
            for i in range(n_layers):
                c, n = np.unique(z[f"L{i}.codes"], return_counts=True)
                codes += [{**key, "index": i, "code": int(a), "count": int(m)} for a, m in zip(c, n, strict=True)]
                g, n = np.unique(z[f"L{i}.G_us"][z[f"L{i}.used"]], return_counts=True)
                conds += [{**key, "index": i, "g_us": float(a), "count": int(m)} for a, m in zip(g, n, strict=True)]
    except (KeyError, ValueError, OSError) as err:
        raise ReportInputError(f"report input unreadable: {npz}: {err}") from None


def _read_noise(path: Path, key: dict) -> pd.DataFrame:
    """noise.csv with the deployment's key and each row's position in the sweep (``order``)."""
    csv = _need(path)
    try:
        nz = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReportInputError(f"report input unreadable: {csv}: {err}") from None
    missing = [c for c in NOISE_COLUMNS if c not in nz.columns]
    if missing or nz.empty:
        raise ReportInputError(f"report input {csv}: " + (f"missing column(s) {missing}" if missing else "no rows"))
    return nz.assign(**key, order=np.arange(len(nz)))


#: cost.json names a block differently in its area and energy breakdowns ('adcs' / 'adc'); one label, one colour
COMPONENT_LABELS = {
    "adc": "ADCs",
    "dac": "DACs",
    "cell": "cells",
    "subtractor": "subtractors",
    "subtraction": "subtractors",
    "shift_add": "shift-and-add",
    "sample_hold": "sample-and-hold",
    "rescale": "rescale",
    "reference": "references",
}


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
        cost.append(
            {
                **key,
                "family": doc.get("family", ""),
                "area_um2": float(tot["area_um2"]),
                "energy_pj": float(tot["energy_pj_per_inference"]),
                "time_shared_area_um2": float(ts["area_um2"]) if "area_um2" in ts else math.nan,
                "time_shared_adcs": float(ts["adcs"]) if "adcs" in ts else math.nan,
                "time_share_applied": bool(
                    ((doc.get("assumptions") or {}).get("adc_time_share") or {}).get("applied", False)
                ),
            }
        )
        for quantity, field in (("area_um2", "area_by_component"), ("energy_pj", "energy_by_component")):
            for comp, val in tot[field].items():
                comps.append(
                    {
                        **key,
                        "quantity": quantity,
                        "component": component_label(comp),
                        "component_key": str(comp),
                        "value": float(val),
                    }
                )
        for i, lay in enumerate(doc["layers"]):
            cost_layers.append(
                {
                    **key,
                    "index": i,
                    "name": lay.get("name", f"layers.{i}"),
                    "area_um2": float(lay["area_um2"]),
                    "energy_pj": float(lay["energy_pj_per_inference"]),
                }
            )
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

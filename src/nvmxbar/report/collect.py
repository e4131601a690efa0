"""The report's inputs: :func:`collect` reads metrics.json, mapping.json, crossbar.npz, noise.csv,
noise_summary.json and cost.json of every dataset x variant x device bits x seed into tidy DataFrames (each with a
``seed`` column), and :func:`.collect_nas.collect_nas` the unipolar architecture search. Every file is read from the
path rule report_collect declares as its input (:class:`Inputs`: path by key); the results layout is not rebuilt
here. A missing or unreadable file stops with a :class:`ReportInputError` naming it and the rule that writes it.
:func:`save_frames` and :func:`load_frames` carry the frames between the report's rules (a pandas pickle:
exact dtypes and numbers)."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_path
from ..settings import NOISE_CSV_COLUMNS, NOISE_KEYS
from .collect_cost import read_baseline_fit, read_cost
from .kinds import NAS_VARIANT as NAS_VARIANT  # the variant whose architecture is searched
from .readers import ReportInputError, need, read_json

#: The non-idealities of a noise.csv row, in the sweep's column order, and every column the report reads.
SETTING_KEYS = NOISE_KEYS  # evaluate_noise's sweep keys, noise.csv's first columns
NOISE_COLUMNS = NOISE_CSV_COLUMNS  # every column the report reads of noise.csv
NAS_TRIAL_COLUMNS = ("trial", "state", "val_accuracy", "area_um2")
NAS_ARCH_KEYS = ("model", "rule")


def model_dir(variant: str, bits: int) -> str:
    """The trained model a deployment uses, seed aside ('baseline' or '<variant>/b<bits>'): the float baseline
    serves every device resolution. The ``model`` key of the report's DataFrames."""
    return "baseline" if variant == "baseline" else f"{variant}/b{bits}"


def seed_list(seeds: Iterable[int]) -> list[int]:
    """The configured seeds, sorted, each once; at least one."""
    out = sorted({int(s) for s in seeds})
    if not out:
        raise ValueError("the report needs at least one seed (config key seeds)")
    return out


Key = tuple[str, str, int, int]  # a deployment: (dataset, variant, bits, seed)
ModelKey = tuple[str, str, int]  # a trained model: (dataset, model, seed)


@dataclass
class Inputs:
    """What rule report_collect declares, by key: ``metrics`` the metrics.json of every trained model (dataset,
    model, seed), ``deployments`` per (dataset, variant, bits, seed) the deployment's files by name (mapping.json,
    crossbar.npz, noise.csv, noise_summary.json, cost.json), ``nas`` per (dataset, bits) the search's files by name
    (trials.csv, pareto.csv, arch.json); ``datasets``, ``variants``, ``bits``, ``seeds``: the configured lists."""

    datasets: list[str]
    variants: list[str]
    bits: list[int]
    seeds: list[int]
    metrics: dict[ModelKey, Path] = field(default_factory=dict)
    deployments: dict[Key, dict[str, Path]] = field(default_factory=dict)
    nas: dict[tuple[str, int], dict[str, Path]] = field(default_factory=dict)

    def metrics_file(self, ds: str, model: str, seed: int) -> Path:
        return self._declared(self.metrics, (ds, model, int(seed)), "metrics.json")

    def deployment_file(self, key: Key, name: str) -> Path:
        return self._declared(self.deployments.get(key, {}), name, name, key)

    def nas_file(self, ds: str, bits: int, name: str) -> Path:
        return self._declared(self.nas.get((ds, int(bits)), {}), name, name, (ds, bits))

    @staticmethod
    def _declared(paths: dict, key, name: str, owner=None) -> Path:
        if key not in paths:
            raise ReportInputError(f"{name} of {owner or key} is not among the report's declared inputs")
        return Path(paths[key])


def keyed(keys: Iterable[Iterable], paths: Iterable[str]) -> dict[tuple, Path]:
    """Declared input paths by their keys (the rule's params list the keys in the order of its inputs)."""
    keys, paths = [tuple(k) for k in keys], list(paths)
    if len(keys) != len(paths):
        raise ValueError(f"{len(keys)} keys for {len(paths)} declared input files: the rule's params and inputs differ")
    return {tuple(int(x) if isinstance(x, int | np.integer) else x for x in k): Path(p) for k, p in zip(keys, paths)}


def save_frames(frames: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """The frames (name -> DataFrame) as one pandas pickle, written atomically."""
    with atomic_path(Path(path)) as tmp:
        pd.to_pickle(frames, tmp)
    return Path(path)


def load_frames(path: str | Path) -> dict[str, pd.DataFrame]:
    """The frames :func:`save_frames` wrote; an error names the file and its rule when it is missing or not one."""
    try:
        frames = pd.read_pickle(need(Path(path)))
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ReportInputError(f"report input unreadable: {path}: {err}") from None
    if not isinstance(frames, dict):
        raise ReportInputError(f"report input {path}: not a dict of DataFrames")
    return frames


#: The block of mapping.json that holds the chip (nvmxbar.chip.Chip: tile, device, dac_bits, adc_bits, adc_mux,
#: input_mode, subtraction); every read and edit of it in the report goes through :func:`converters`.
CONVERTERS = "chip"


def converters(mapping: dict) -> dict:
    """mapping.json's converter settings (the block itself: an edit changes the document)."""
    return mapping[CONVERTERS]


def collect(inputs: Inputs, with_cost: bool = True) -> dict[str, pd.DataFrame]:
    """Read every declared input of the report, every seed's. Returns DataFrames, each with a ``seed`` column:

    training (one row per trained model and seed: ``model`` is 'baseline' or '<variant>/b<bits>'), mapping (totals
    and device/converter settings per dataset x variant x bits x seed), layers (per mapped layer), noise (noise.csv
    rows), noise_summary, cost (totals, latency, array power), cost_components (long: quantity, component, value),
    cost_layers, weight_codes (histogram of the signed integer codes per layer), conductances (histogram of G of used
    cells per layer) and baseline_fit (the candidates of each baseline's fit, :func:`.collect_cost.read_baseline_fit`);
    and meta (one row: datasets, variants, bits, seeds).
    """
    datasets, variants, bits = list(inputs.datasets), list(inputs.variants), sorted(int(b) for b in inputs.bits)
    seeds = seed_list(inputs.seeds)
    training, mapping, layers, noise, summary, fits = [], [], [], [], [], []
    cost, comps, cost_layers, codes, conds = [], [], [], [], []
    trained: set[tuple[str, str, int]] = set()  # the float baseline serves every bits: read its metrics once
    for ds in datasets:
        for v in variants:
            for b in bits:
                mdir = model_dir(v, b)
                for s in seeds:
                    if (ds, mdir, s) not in trained:
                        trained.add((ds, mdir, s))
                        met = inputs.metrics_file(ds, mdir, s)
                        training.append(_read_training(met, ds, v, b, mdir, s))
                    dep = (ds, v, b, s)
                    key = {"dataset": ds, "variant": v, "bits": b, "model": mdir, "seed": s}
                    n_layers = _read_mapping(inputs.deployment_file(dep, "mapping.json"), key, mapping, layers, fits)
                    _read_crossbar(inputs.deployment_file(dep, "crossbar.npz"), n_layers, key, codes, conds)
                    noise.append(_read_noise(inputs.deployment_file(dep, "noise.csv"), key))
                    summary.append(_read_summary(inputs.deployment_file(dep, "noise_summary.json"), key))
                    if with_cost:
                        read_cost(inputs.deployment_file(dep, "cost.json"), key, cost, comps, cost_layers)
    out = {
        "training": pd.DataFrame(training),
        "mapping": pd.DataFrame(mapping),
        "layers": pd.DataFrame(layers),
        "noise": pd.concat(noise, ignore_index=True) if noise else pd.DataFrame(columns=list(NOISE_COLUMNS)),
        "noise_summary": pd.DataFrame(summary),
        "weight_codes": pd.DataFrame(codes),
        "conductances": pd.DataFrame(conds),
        "baseline_fit": pd.DataFrame(fits, columns=None if fits else ["dataset", "bits", "seed", "encoding"]),
    }
    if with_cost:
        out.update(cost=pd.DataFrame(cost), cost_components=pd.DataFrame(comps), cost_layers=pd.DataFrame(cost_layers))
    out["meta"] = pd.DataFrame([{"datasets": datasets, "variants": variants, "bits": bits, "seeds": seeds}])
    return out


def _read_summary(path: Path, key: dict) -> dict:
    """One row of ``noise_summary``: the ideal crossbar and its loss breakdown."""
    sm = read_json(path, ["ideal_crossbar_accuracy"])
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
    met = read_json(path, ["test_accuracy", "epochs"])
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
        "train_wires": met.get("train_wires"),  # hardware-aware training against IR drop (x the chip's wires), or None
    }


#: mapping.json's operating point (nvmxbar.core.layout.column_currents) and its column in ``mapping`` (NaN in a
#: mapping.json older than it); the array's power at full drive, beside cost.json's at the measured activity.
OPERATING_POINT = {
    "max_column_current_ua": "max_column_current_ua",
    "mean_column_current_ua": "mean_column_current_ua",
    "array_power_uw": "full_drive_array_power_uw",
    "column_current_limit_ua": "column_current_limit_ua",
}


def _read_mapping(path: Path, key: dict, mapping: list, layers: list, fits: list) -> int:
    """mapping.json: one row of ``mapping`` (with the device, the operating point and, for the baseline, its
    encoding and whether its fit reached the tolerance), one row of ``layers`` per layer, one row of ``fits`` per
    candidate of the baseline's fit. Returns the number of layers."""
    mp = read_json(path, ["scheme", "device", CONVERTERS, "layers", "total"])
    chip = converters(mp)
    tot, fit = mp["total"], mp.get("baseline_adc_fit") or {}
    try:
        mapping.append(
            {
                **key,
                "scheme": mp["scheme"],
                "slices": mp.get("slices"),
                "pair": mp.get("pair"),
                "tile_rows": chip["tile"]["rows"],
                "tile_cols": chip["tile"]["cols"],
                "levels": mp["device"]["levels"],
                "g_min_us": chip["device"]["g_max_us"] / chip["device"]["on_off_ratio"],
                "g_max_us": chip["device"]["g_max_us"],
                "on_off_ratio": chip["device"]["on_off_ratio"],
                "preset": chip["device"].get("preset", ""),
                "v_read_v": chip["device"].get("v_read_v", math.nan),
                "dac_bits": chip["dac_bits"],
                "adc_bits": chip["adc_bits"],
                "adc_mux": chip["adc_mux"],
                **{
                    k: mp["total"][k]
                    for k in ("devices", "tiles", "used_cells", "utilisation", "adcs", "dacs", "periphery_designs")
                },
                **{k: mp["total"].get(k) for k in ("subtractors", "shift_add_units", "rescale_units", "weights")},
                "sign_flips": mp["total"].get("sign_flips", sum(int(s.get("sign_flips") or 0) for s in mp["layers"])),
                **{name: float(tot.get(k, math.nan)) for k, name in OPERATING_POINT.items()},
                "column_current_within_limit": tot.get("column_current_within_limit"),
                "encoding": mp.get("encoding") or "",
                "weight_bits": mp.get("weight_bits"),
                "fit_reached": fit.get("reached"),
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
                    "encoding": spec.get("encoding") or "",
                    "sign_flips": spec.get("sign_flips"),
                }
            )
    except (KeyError, TypeError) as err:
        raise ReportInputError(f"report input {path}: missing or malformed entry {err}") from None
    read_baseline_fit(mp, path, key, fits)
    return len(mp["layers"])


def _read_crossbar(path: Path, n_layers: int, key: dict, codes: list, conds: list) -> None:
    """crossbar.npz: histograms of each layer's signed weight codes and of the conductances of its used cells."""
    npz = need(path)
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
    csv = need(path)
    try:
        nz = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReportInputError(f"report input unreadable: {csv}: {err}") from None
    missing = [c for c in NOISE_COLUMNS if c not in nz.columns]
    if missing or nz.empty:
        raise ReportInputError(f"report input {csv}: " + (f"missing column(s) {missing}" if missing else "no rows"))
    return nz.assign(**key, order=np.arange(len(nz)))

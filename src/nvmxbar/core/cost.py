"""Price the component and operation counts of a mapped circuit into area and energy.

`map_crossbar` COUNTS the components (tiles, devices, ADCs, DACs, ...) of the circuit in mapping.json's
``converters`` (nvmxbar.settings.Circuit, the circuit the simulator simulates); the OPERATIONS priced are the ones the
simulator counts while it runs (Simulator.count_operations, added by `estimate_cost` to each layer as
``operations``), or else mapping.json's analytic counts (nvmxbar.core.layout.count; the two agree, which a test
checks). This module PRICES them with the published constants of cost_constants.yaml (every value there carries its
source; docs/COSTMODEL.md gathers them).

Area (um^2) of a layer::

    cells        devices x cell_area_f2 x F^2                  (F = tech_nm; reference columns included)
    adcs         adcs x A_ADC(adc_bits)
    dacs         dacs x A_DAC(driver bits)                     (1-bit driver when bit-serial)
    sample_hold  one per converted signal of a tile x A_S&H    (C / pair; C with digital pair subtraction)
    shift_add    shift-and-add units x A_S&A                   (one per ADC when an output sums several codes)
    subtractors  (digital subtractors + sign_flips) x A_sub    (8-bit adder; analog subtraction needs none)
    rescale      rescale_units x A_mult                        (8- or 32-bit multiplier)
    references   one block (= one ADC's area) per ADC range of a DISTINCT periphery design, split over its layers

Energy (pJ) per inference of a layer, from its operations per inference (every bit-serial pass counted)::

    dac_activations x E_DAC + cell_reads x E_cell + conversions x (E_ADC + E_S&H) + shift_adds x E_S&A
    + (subtractions + sign_flips) x E_sub + rescales x E_mult

with E_cell = V_read^2 G t_read (or the measured activity: each driven row's input times its cells' G).
Converters come from ONE family per run (``neurosim`` or ``isaac``); improvement() refuses to compare two families.
"""

from __future__ import annotations

from typing import Any

from ..chip import Chip
from .cost_units import _family, cell_read_energy_pj, const, unit_costs
from .layout import OPERATION_KEYS

AREA_KEYS = ("cells", "adcs", "dacs", "sample_hold", "shift_add", "subtractors", "rescale", "references")
ENERGY_KEYS = ("dac", "cells", "adc", "sample_hold", "shift_add", "subtraction", "rescale")
LAYER_KEYS = (
    "name",
    "rows",
    "outputs",
    "mvms",
    "slices",
    "pair",
    "tiles",
    "devices",
    "adcs",
    "adc_conversions_per_mvm",
    "dacs",
    "dac_activations_per_mvm",
    "cell_reads_per_mvm",
    "subtractors",
    "subtractions_per_mvm",
    "shift_adds_per_mvm",
    "shift_add_units",
    "rescale_units",
    "rescales_per_mvm",
)


def _need(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"mapping.json: missing '{key}' in {where}")
    return d[key]


def _total(parts: dict) -> float:
    return float(sum(parts.values()))


def estimate(
    mapping: dict,
    constants: dict,
    family: str = "neurosim",
    tech_nm: float = 22,
    cell: str = "1t1r",
    adc_time_share: bool = False,
    scale_digital: bool | None = None,
    rescale_bits: int | None = None,
) -> dict:
    """Price a mapping.json document: the cost.json document (area in um^2, energy in pJ per inference).

    ``scale_digital`` / ``rescale_bits``: None = the constants file's ``options``. ``adc_time_share`` applies
    only with ONE periphery design (uniform scaling); the ``time_shared`` block is reported whenever it applies.
    """
    _family(constants, family)
    if scale_digital is None:
        scale_digital = bool(const(constants, "options.scale_digital_to_node"))
    if rescale_bits is None:
        rescale_bits = int(const(constants, "options.rescale_bits"))
    chip = Chip.from_dict(_need(mapping, "chip", "the document"), "mapping.json chip")
    dac_bits, adc_bits, mode = chip.dac_bits, chip.adc_bits, chip.input_mode
    bit_serial = mode == "bit_serial"
    passes, driver_bits = chip.passes, chip.driver_bits
    cols = chip.tile.cols
    layers = _need(mapping, "layers", "the document")
    if not layers:
        raise ValueError("mapping.json: no layers")
    for i, layer in enumerate(layers):
        for k in LAYER_KEYS:
            _need(layer, k, f"layers[{i}]")

    ua, ue, nodes = unit_costs(constants, family, adc_bits, driver_bits, tech_nm, cell, scale_digital, rescale_bits)
    device = {"g_max_us": chip.device.g_max_us, "g_min_us": chip.device.g_min_us}
    designs: dict[str, int] = {}
    for layer in layers:
        d = layer.get("periphery_design", layer["name"])
        designs[d] = designs.get(d, 0) + 1

    # cell energy from the measured input activity (cost_stage adds read_g_us_per_mvm), else the upper bound
    measured = all("read_g_us_per_mvm" in layer for layer in layers)
    counted = all("operations" in layer for layer in layers)  # the simulator's counts (estimate_cost adds them)
    pc = 2 if chip.subtraction == "digital" else 1
    out_layers = []
    for layer in layers:
        e_cell = cell_read_energy_pj(constants, device, layer.get("mean_conductance_us"))
        ops = layer["operations"] if counted else analytic_operations(layer)
        flips = layer.get("sign_flips", 0)
        design = layer.get("periphery_design", layer["name"])
        area = {
            "cells": layer["devices"] * ua["cell"],
            "adcs": layer["adcs"] * ua["adc"],
            "dacs": layer["dacs"] * ua["dac"],
            "sample_hold": layer["tiles"]
            * (cols // layer["pair"])
            * (pc if layer["pair"] == 2 else 1)
            * ua["sample_hold"],  # one S&H per converted signal of a tile
            "shift_add": layer["shift_add_units"] * ua["shift_add"],
            "subtractors": (layer["subtractors"] + flips) * ua["subtractor"],
            "rescale": layer["rescale_units"] * ua["rescale"],
            # one block per ADC range of a periphery design (baseline: per layer and slice), split over its layers
            "references": layer.get("adc_ranges", 1) * ua["reference"] / designs[design],
        }
        energy = {
            "dac": ops["dac_activations"] * ue["dac"],
            "cells": (
                layer["mvms"] * cell_read_energy_pj(constants, mean_conductance_us=layer["read_g_us_per_mvm"][mode])
                if measured
                else ops["cell_reads"] * e_cell
            ),
            "adc": ops["adc_conversions"] * ue["adc"],
            "sample_hold": ops["adc_conversions"] * ue["sample_hold"],
            "shift_add": ops["shift_adds"] * ue["shift_add"],
            "subtraction": (ops["subtractions"] + ops["sign_flips"]) * ue["subtraction"],
            "rescale": ops["rescales"] * ue["rescale"],
        }
        upper = ops["cell_reads"] * e_cell
        out_layers.append(
            {
                "name": layer["name"],
                "periphery_design": design,
                "adcs": layer["adcs"],
                "area_um2": _total(area),
                "energy_pj_per_inference": _total(energy),
                "cell_energy_upper_bound_pj": upper,
                "area_by_component": area,
                "energy_by_component": energy,
                "cell_read_energy_pj": e_cell,
                "operations": dict(ops),
                **({"read_g_us_per_mvm": layer["read_g_us_per_mvm"]} if measured else {}),  # what priced the cells
            }
        )

    area_total = {k: sum(l["area_by_component"][k] for l in out_layers) for k in AREA_KEYS}
    energy_total = {k: sum(l["energy_by_component"][k] for l in out_layers) for k in ENERGY_KEYS}
    adcs_sum = sum(l["adcs"] for l in out_layers)
    adcs_max = max(l["adcs"] for l in out_layers)
    shareable = len(designs) == 1
    time_shared = None
    if shareable:  # layers run in sequence and share one periphery design: the ADCs can serve every layer
        ts_area = dict(area_total, adcs=adcs_max * ua["adc"])
        time_shared = {"adcs": adcs_max, "area_um2": _total(ts_area), "area_by_component": ts_area}
    applied = bool(adc_time_share and shareable)
    total_area = time_shared["area_by_component"] if applied else area_total

    notes = [
        "energy is dynamic energy per inference; static power (references, leakage) is not included",
        (
            "cell energy measured: each row's input code as the inputs drive it (bit-serial: its 1-bits; multi-bit: "
            "(code / full code)^2) times the programmed G of its used cells, averaged over "
            f"{layers[0]['read_g_us_per_mvm'].get('samples', '?')} training inputs on the mapped crossbar"
            if measured
            else "cell energy counts every used cell of every driven row on every pass at the mean G "
            "(all inputs active: an upper bound)"
        ),
        f"converters at the {family} family's node ({nodes['converters_nm']} nm), cells at tech_nm ({tech_nm} nm)",
        (
            "digital units (Horowitz 45 nm"
            + (", ISAAC shift-add 32 nm" if family == "isaac" else "")
            + f") scaled to {tech_nm} nm with Stillmaker & Baas 2017"
            if scale_digital
            else "digital units at their published nodes (not scaled)"
        ),
        "reference/gain block modelled as one ADC's area per ADC range of each distinct periphery design (no "
        "published value found)",
        (
            "pair and offset subtraction digital (after the ADC): one 8-bit adder (Horowitz) per ADC and one "
            "subtraction per converted signal"
            if pc == 2
            else "pair and offset subtraction analog (before the ADC): no digital subtractor; the analog subtraction "
            "and the one-device reference column's periphery are not priced beyond its cells"
        ),
        "unipolar sign flips priced as 8-bit adders (Horowitz)",
        f"operations per inference {'counted by the simulator' if counted else 'from mapping.json (analytic)'}",
    ]
    if bit_serial and passes > 1:
        notes.append(f"bit-serial: {passes} passes of 1-bit drivers, each converted and shift-added")
    if adc_time_share and not shareable:
        notes.append(f"adc_time_share requested but not applied: {len(designs)} periphery designs (per-layer tuning)")

    return {
        "dataset": mapping.get("dataset"),
        "variant": mapping.get("variant"),
        "bits": mapping.get("bits"),
        "scheme": mapping.get("scheme"),
        "family": family,
        "assumptions": {
            "family": family,
            "tech_nm": tech_nm,
            "cell": cell,
            "input_mode": mode,
            "subtraction": chip.subtraction,
            "adc_ratio": mapping.get("adc_dac_ratio"),
            "passes_per_mvm": passes,
            "driver_bits": driver_bits,
            "dac_bits": dac_bits,
            "adc_bits": adc_bits,
            "rescale_bits": rescale_bits,
            "scale_digital_to_node": scale_digital,
            "nodes": nodes,
            "cell_conductance": const(constants, "cell_read.conductance"),
            "cell_activity": "measured" if measured else "upper_bound",
            "adc_time_share": {"requested": bool(adc_time_share), "applicable": shareable, "applied": applied},
            "unit_area_um2": ua,
            "unit_energy_pj": dict(ue, cell=cell_read_energy_pj(constants, device)),
            "notes": notes,
        },
        "total": {
            "area_um2": _total(total_area),
            "energy_pj_per_inference": _total(energy_total),
            "area_by_component": total_area,
            "energy_by_component": energy_total,
            "adcs": adcs_max if applied else adcs_sum,
            "adcs_dedicated": adcs_sum,
            "periphery_designs": len(designs),
            "reference_blocks": sum(
                next(x.get("adc_ranges", 1) for x in layers if x.get("periphery_design", x["name"]) == d)
                for d in designs
            ),
            "operations": {k: sum(l["operations"][k] for l in out_layers) for k in OPERATION_KEYS},
            "operations_source": "simulator" if counted else "mapping",
            "cell_energy_upper_bound_pj": sum(l["cell_energy_upper_bound_pj"] for l in out_layers),
        },
        "layers": out_layers,
        **({"time_shared": time_shared} if time_shared else {}),
    }


def analytic_operations(layer: dict) -> dict[str, float]:
    """One mapped layer's operations per inference from mapping.json's per-MVM counts (nvmxbar.core.layout.count)."""
    out = {k: layer["mvms"] * layer.get(f"{k}_per_mvm", 0) for k in OPERATION_KEYS if k != "mvms"}
    out["mvms"] = layer["mvms"]
    return out


def _pct(variant: float, baseline: float) -> float | None:
    return None if baseline == 0 else 100.0 * (1.0 - variant / baseline)


def improvement(cost_variant: dict, cost_baseline: dict) -> dict:
    """% improvement of a variant over the baseline (positive = smaller), overall and per component."""
    fv, fb = cost_variant.get("family"), cost_baseline.get("family")
    if fv != fb:
        raise ValueError(f"cannot compare converter families '{fv}' and '{fb}': price both with one family")
    tv, tb = cost_variant["total"], cost_baseline["total"]
    out = {
        "family": fv,
        "variant": cost_variant.get("variant"),
        "baseline": cost_baseline.get("variant"),
        "area_pct": _pct(tv["area_um2"], tb["area_um2"]),
        "energy_pct": _pct(tv["energy_pj_per_inference"], tb["energy_pj_per_inference"]),
        "area_by_component": {k: _pct(tv["area_by_component"][k], tb["area_by_component"][k]) for k in AREA_KEYS},
        "energy_by_component": {
            k: _pct(tv["energy_by_component"][k], tb["energy_by_component"][k]) for k in ENERGY_KEYS
        },
    }
    if "time_shared" in cost_variant:  # the variant with its ADCs time-shared, against the baseline as priced
        out["area_pct_time_shared"] = _pct(cost_variant["time_shared"]["area_um2"], tb["area_um2"])
    return out

"""Stage `estimate_cost`: price the component and operation counts of mapping.json into area and energy.

`map_crossbar` COUNTS (tiles, devices, ADCs, DACs, conversions, ...); this module PRICES them with the published
constants of workflow/cost_constants.yaml (every value there carries its source; COSTMODEL.md gathers them).

Area (um^2) of a layer::

    cells        devices x cell_area_f2 x F^2                  (F = tech_nm)
    adcs         adcs x A_ADC(adc_bits)
    dacs         dacs x A_DAC(driver bits)                     (1-bit driver when bit-serial)
    sample_hold  tiles x (C / pair) x A_S&H                    (one per sensed column signal)
    shift_add    shift-and-add units x A_S&A                   (bit-serial: at least one per ADC)
    subtractors  (subtractors + sign_flips) x A_sub            (8-bit adder)
    rescale      rescale_units x A_mult                        (8- or 32-bit multiplier)
    references   one block (= one ADC's area) per DISTINCT periphery design, split over its layers

Energy (pJ) per inference of a layer, with `passes` = dac_bits (bit-serial) or 1 (multi-bit DAC)::

    mvms x [ passes x ( dac_activations x E_DAC + cell_reads x E_cell
                        + conversions x (E_ADC + E_S&H) + shift_adds x E_S&A + subtractions x E_sub )
             + rescales x E_mult ]

where every count is mapping.json's per-MVM (per pass) count, E_cell = V_read^2 G t_read and the rescale is
done once per output per MVM (after all passes). Converters come from ONE family per run (``neurosim`` or
``isaac``); improvement() refuses to compare two families.
"""
from __future__ import annotations

import bisect
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONSTANTS = REPO / "workflow" / "cost_constants.yaml"
FAMILIES = ("neurosim", "isaac")
AREA_KEYS = ("cells", "adcs", "dacs", "sample_hold", "shift_add", "subtractors", "rescale", "references")
ENERGY_KEYS = ("dac", "cells", "adc", "sample_hold", "shift_add", "subtraction", "rescale")
LAYER_KEYS = ("name", "rows", "outputs", "mvms", "slices", "pair", "tiles", "devices", "adcs",
              "adc_conversions_per_mvm", "dacs", "dac_activations_per_mvm", "cell_reads_per_mvm", "subtractors",
              "subtractions_per_mvm", "shift_adds_per_mvm", "shift_add_units", "rescale_units", "rescales_per_mvm")


# ------------------------------------------------------------------------------------------ constants
def load_constants(path: str | os.PathLike | None = None) -> dict:
    """Read the cost constants (default workflow/cost_constants.yaml) and check every number has a source."""
    p = Path(path) if path else DEFAULT_CONSTANTS
    with open(p) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a mapping of cost constants")
    check_sources(doc)
    return doc


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_sources(node: Any, key: str = "") -> None:
    """Every number must sit in a ``{value: ..., source: "..."}`` constant; raise ValueError naming the key."""
    if isinstance(node, dict):
        if "value" in node:
            src = node.get("source")
            if not isinstance(src, str) or not src.strip():
                raise ValueError(f"cost constant '{key}' has no source: write it as {{value: ..., source: \"...\"}}")
            return
        for k, v in node.items():
            check_sources(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_sources(v, f"{key}[{i}]")
    elif _is_number(node):
        raise ValueError(f"cost constant '{key}' = {node} has no source: write it as {{value: ..., source: \"...\"}}")


def const(constants: dict, dotted: str) -> Any:
    """The value at a dotted key (``families.isaac.adc.bits``); a ``{value, source}`` entry gives its value."""
    node: Any = constants
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"missing cost constant '{dotted}'")
        node = node[part]
    return node["value"] if isinstance(node, dict) and "value" in node else node


def _family(constants: dict, family: str) -> str:
    fams = constants.get("families", {})
    if family not in FAMILIES or family not in fams:
        raise ValueError(f"unknown converter family '{family}'; known: {sorted(set(FAMILIES) & set(fams))}")
    return f"families.{family}"


# ------------------------------------------------------------------------------------------ node scaling
def _node_position(constants: dict, nm: float) -> float:
    """Fractional index of a node in node_scaling.nodes_nm (descending), linear in nm between table nodes."""
    nodes = [float(n) for n in const(constants, "node_scaling.nodes_nm")]
    if not nodes[-1] <= nm <= nodes[0]:
        raise ValueError(f"technology node {nm} nm outside the scaling table ({nodes[-1]:g}..{nodes[0]:g} nm)")
    for i in range(len(nodes) - 1):
        if nodes[i] >= nm >= nodes[i + 1]:
            return i + (nodes[i] - nm) / (nodes[i] - nodes[i + 1])
    return float(len(nodes) - 1)


def _interp_index(table: list, pos: float) -> tuple[int, int, float]:
    lo = min(int(math.floor(pos)), len(table) - 1)
    hi = min(lo + 1, len(table) - 1)
    return lo, hi, pos - lo


def area_scale(constants: dict, from_nm: float, to_nm: float) -> float:
    """Area factor from one node to another (Stillmaker & Baas 2017 table, bilinear in node position)."""
    table = const(constants, "node_scaling.area")
    fi, fj, ff = _interp_index(table, _node_position(constants, from_nm))
    ti, tj, tf = _interp_index(table, _node_position(constants, to_nm))
    return ((1 - ff) * (1 - tf) * table[fi][ti] + (1 - ff) * tf * table[fi][tj]
            + ff * (1 - tf) * table[fj][ti] + ff * tf * table[fj][tj])


def energy_scale(constants: dict, from_nm: float, to_nm: float) -> float:
    """Energy factor E(to)/E(from), E(node) = a Vdd^2 + b Vdd + c (Stillmaker & Baas 2017), linear in node."""
    poly = const(constants, "node_scaling.energy_vdd_poly")
    vdd = float(const(constants, "node_scaling.vdd_v"))

    def e(nm: float) -> float:
        i, j, f = _interp_index(poly, _node_position(constants, nm))
        ei = sum(c * vdd ** (2 - k) for k, c in enumerate(poly[i]))
        ej = sum(c * vdd ** (2 - k) for k, c in enumerate(poly[j]))
        return (1 - f) * ei + f * ej

    return e(to_nm) / e(from_nm)


# ------------------------------------------------------------------------------------------ unit costs
def adc_energy_pj(constants: dict, family: str, bits: int) -> float:
    """Energy of one ADC conversion."""
    fam = _family(constants, family)
    model = const(constants, f"{fam}.adc.model")
    if model == "sar_formula":  # NeuroSim SarADC: P = (a N + b) uW during (N + 1) cycles of 1 ns
        a, b = const(constants, f"{fam}.adc.power_uw")
        cycle_ns = const(constants, f"{fam}.adc.cycle_ns")
        return (a * bits + b) * 1e-6 * (bits + 1) * cycle_ns * 1e-9 * 1e12
    if model == "table":
        return _table_log_interp(const(constants, f"{fam}.adc.bits"), const(constants, f"{fam}.adc.energy_pj"), bits)
    raise ValueError(f"unknown ADC model '{model}' for family '{family}'")


def adc_area_um2(constants: dict, family: str, bits: int) -> float:
    """Area of one ADC (at the family's own node: the converter tables are node-specific)."""
    fam = _family(constants, family)
    model = const(constants, f"{fam}.adc.model")
    if model == "sar_formula":  # A_nmin (269 + 109 (N-1)) + A_pmin (209 + 73 (N-1)), A_min in F^2 at node_nm
        n0, n1 = const(constants, f"{fam}.adc.area_nmos_units")
        p0, p1 = const(constants, f"{fam}.adc.area_pmos_units")
        f_um = const(constants, f"{fam}.node_nm") * 1e-3
        a_min = const(constants, f"{fam}.adc.min_transistor_area_f2") * f_um ** 2
        return a_min * (n0 + n1 * (bits - 1)) + a_min * (p0 + p1 * (bits - 1))
    if model == "table":
        return _table_log_interp(const(constants, f"{fam}.adc.bits"), const(constants, f"{fam}.adc.area_um2"), bits)
    raise ValueError(f"unknown ADC model '{model}' for family '{family}'")


def _table_log_interp(xs: list, ys: list, x: float) -> float:
    """Log-linear (geometric) interpolation of a table in bits; outside it, the end segment's ratio continues."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("an ADC table needs at least two (bits, value) points of equal length")
    i = min(max(bisect.bisect_right(xs, x) - 1, 0), len(xs) - 2)
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return y0 * (y1 / y0) ** ((x - x0) / (x1 - x0))


def dac_energy_pj(constants: dict, family: str, bits: int) -> float:
    """Energy of one row-driver activation with a `bits`-bit DAC: E(1 b) x doubling^(bits-1)."""
    fam = _family(constants, family)
    k = const(constants, f"{fam}.dac.bits_doubling") ** (bits - 1)
    if "energy_1b_pj" in (constants["families"][family].get("dac") or {}):
        return const(constants, f"{fam}.dac.energy_1b_pj") * k
    power_uw = const(constants, f"{fam}.dac.power_1b_uw")
    window_ns = const(constants, f"{fam}.dac.energy_window_ns")
    return power_uw * 1e-6 * window_ns * 1e-9 * 1e12 * k


def dac_area_um2(constants: dict, family: str, bits: int) -> float:
    fam = _family(constants, family)
    return const(constants, f"{fam}.dac.area_1b_um2") * const(constants, f"{fam}.dac.bits_doubling") ** (bits - 1)


def _horowitz(constants: dict, name: str) -> tuple[float, float]:
    return const(constants, f"digital.{name}.area_um2"), const(constants, f"digital.{name}.energy_pj")


def _adder(constants: dict, bits: float) -> tuple[float, float]:
    """(area, energy) of a `bits`-wide adder, linear in width through Horowitz's 8- and 32-bit adds."""
    a8, e8 = _horowitz(constants, "add8")
    a32, e32 = _horowitz(constants, "add32")
    t = (bits - 8) / (32 - 8)
    return a8 + t * (a32 - a8), e8 + t * (e32 - e8)


def cell_read_energy_pj(constants: dict, device: dict | None = None, mean_conductance_us: float | None = None) -> float:
    """E = V_read^2 x G x t_read for one cell and one pass; G as documented in cost_constants.yaml."""
    v = const(constants, "cell_read.v_read_v")
    t_ns = const(constants, "cell_read.t_read_ns")
    if mean_conductance_us is not None:
        g_us = mean_conductance_us
    else:
        device = device or {}
        g_max = device.get("g_max_us", 1e6 / const(constants, "cell_read.r_on_ohm"))
        g_min = device.get("g_min_us", 1e6 / const(constants, "cell_read.r_off_ohm"))
        choice = const(constants, "cell_read.conductance")
        if choice == "midpoint":
            g_us = (g_min + g_max) / 2
        elif choice == "gmax_half":
            g_us = g_max / 2
        else:
            raise ValueError(f"unknown cell_read.conductance '{choice}' (midpoint or gmax_half)")
    return v ** 2 * g_us * 1e-6 * t_ns * 1e-9 * 1e12


def unit_costs(constants: dict, family: str, adc_bits: int, driver_bits: int, tech_nm: float, cell: str,
               scale_digital: bool, rescale_bits: int) -> tuple[dict, dict, dict]:
    """Per-unit area (um^2) and energy (pJ, per operation) of every component; plus node notes."""
    fam = _family(constants, family)
    if cell not in constants.get("cells", {}):
        raise ValueError(f"unknown cell '{cell}'; known: {sorted(constants.get('cells', {}))}")
    if rescale_bits not in (8, 32):
        raise ValueError(f"rescale_bits must be 8 or 32, not {rescale_bits}")
    digital_nm = const(constants, "digital.node_nm")
    family_nm = const(constants, f"{fam}.node_nm")

    def digital(area: float, energy: float, from_nm: float) -> tuple[float, float]:
        if not scale_digital:
            return area, energy
        return area * area_scale(constants, from_nm, tech_nm), energy * energy_scale(constants, from_nm, tech_nm)

    sa = constants["families"][family].get("shift_add") or {}
    if sa.get("model") == "fixed":
        sa_area, sa_energy = digital(const(constants, f"{fam}.shift_add.area_um2"),
                                     const(constants, f"{fam}.shift_add.energy_pj"), family_nm)
    elif sa.get("model") == "horowitz_adder":
        sa_area, sa_energy = digital(*_adder(constants, const(constants, f"{fam}.shift_add.bits")), digital_nm)
    else:
        raise ValueError(f"unknown shift_add model '{sa.get('model')}' for family '{family}'")
    sub_name = const(constants, "digital.subtractor")
    sub_area, sub_energy = digital(*_horowitz(constants, sub_name), digital_nm)
    mult_area, mult_energy = digital(*_horowitz(constants, f"mult{rescale_bits}"), digital_nm)
    if const(constants, "reference.model") != "one_adc_area":
        raise ValueError(f"unknown reference.model '{const(constants, 'reference.model')}'")
    adc_area = adc_area_um2(constants, family, adc_bits)
    area = {
        "cell": const(constants, f"cells.{cell}.area_f2") * (tech_nm * 1e-3) ** 2,
        "adc": adc_area,
        "dac": dac_area_um2(constants, family, driver_bits),
        "sample_hold": const(constants, f"{fam}.sample_hold.area_um2"),
        "shift_add": sa_area,
        "subtractor": sub_area,
        "rescale": mult_area,
        "reference": const(constants, "reference.adcs_per_block") * adc_area,
    }
    energy = {
        "dac": dac_energy_pj(constants, family, driver_bits),
        "adc": adc_energy_pj(constants, family, adc_bits),
        "sample_hold": const(constants, f"{fam}.sample_hold.energy_pj"),
        "shift_add": sa_energy,
        "subtraction": sub_energy,
        "rescale": mult_energy,
    }
    nodes = {"cells_nm": tech_nm, "converters_nm": family_nm, "digital_published_nm": digital_nm,
             "digital_scaled_to_nm": tech_nm if scale_digital else None}
    return area, energy, nodes


# ------------------------------------------------------------------------------------------ estimate
def _need(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"mapping.json: missing '{key}' in {where}")
    return d[key]


def _total(parts: dict) -> float:
    return float(sum(parts.values()))


def estimate(mapping: dict, constants: dict, family: str = "neurosim", tech_nm: float = 22, cell: str = "1t1r",
             adc_time_share: bool = False, scale_digital: bool | None = None,
             rescale_bits: int | None = None) -> dict:
    """Price a mapping.json document: the cost.json document (area in um^2, energy in pJ per inference).

    ``scale_digital`` / ``rescale_bits``: None = the constants file's ``options``. ``adc_time_share`` applies
    only with ONE periphery design (uniform scaling); the ``time_shared`` block is reported whenever it applies.
    """
    _family(constants, family)
    if scale_digital is None:
        scale_digital = bool(const(constants, "options.scale_digital_to_node"))
    if rescale_bits is None:
        rescale_bits = int(const(constants, "options.rescale_bits"))
    conv = _need(mapping, "converters", "the document")
    dac_bits, adc_bits = int(_need(conv, "dac_bits", "converters")), int(_need(conv, "adc_bits", "converters"))
    mode = conv.get("input_mode", "bit_serial")
    if mode not in ("bit_serial", "multibit"):
        raise ValueError(f"mapping.json: unknown converters.input_mode '{mode}' (bit_serial or multibit)")
    bit_serial = mode == "bit_serial"
    passes = dac_bits if bit_serial else 1
    driver_bits = 1 if bit_serial else dac_bits
    cols = int(_need(_need(mapping, "tile", "the document"), "cols", "tile"))
    layers = _need(mapping, "layers", "the document")
    if not layers:
        raise ValueError("mapping.json: no layers")
    for i, layer in enumerate(layers):
        for k in LAYER_KEYS:
            _need(layer, k, f"layers[{i}]")

    ua, ue, nodes = unit_costs(constants, family, adc_bits, driver_bits, tech_nm, cell, scale_digital, rescale_bits)
    device = mapping.get("device", {})
    designs: dict[str, int] = {}
    for layer in layers:
        d = layer.get("periphery_design", layer["name"])
        designs[d] = designs.get(d, 0) + 1

    # cell energy from the measured input activity (cost_stage adds read_g_us_per_mvm), else the upper bound
    measured = all("read_g_us_per_mvm" in layer for layer in layers)
    out_layers = []
    for layer in layers:
        e_cell = cell_read_energy_pj(constants, device, layer.get("mean_conductance_us"))
        n_sh = layer["tiles"] * (cols // layer["pair"])  # one S&H per sensed (post-subtraction) column signal
        sa_units = layer["shift_add_units"]
        sa_ops = layer["shift_adds_per_mvm"]
        if bit_serial and passes > 1:
            # Bit-serial inputs: every ADC output stream is shifted by its input bit and accumulated, so each ADC
            # needs a shift-and-add unit and each pass adds outputs x slices shift-adds on top of mapping.json's
            # per-pass count (which only combines slices and row tiles).
            sa_units = max(sa_units, layer["adcs"])
            sa_ops += layer["outputs"] * layer["slices"]
        flips = layer.get("sign_flips", 0)
        flip_ops = layer.get("sign_flips_per_mvm", flips)  # provisional (unipolar): one 8-bit add per flip per pass
        design = layer.get("periphery_design", layer["name"])
        area = {
            "cells": layer["devices"] * ua["cell"],
            "adcs": layer["adcs"] * ua["adc"],
            "dacs": layer["dacs"] * ua["dac"],
            "sample_hold": n_sh * ua["sample_hold"],
            "shift_add": sa_units * ua["shift_add"],
            "subtractors": (layer["subtractors"] + flips) * ua["subtractor"],
            "rescale": layer["rescale_units"] * ua["rescale"],
            "references": ua["reference"] / designs[design],  # a shared block is split over its layers
        }
        per_mvm = {
            "dac": passes * layer["dac_activations_per_mvm"] * ue["dac"],
            "cells": (cell_read_energy_pj(constants, mean_conductance_us=layer["read_g_us_per_mvm"][mode])
                      if measured else passes * layer["cell_reads_per_mvm"] * e_cell),
            "adc": passes * layer["adc_conversions_per_mvm"] * ue["adc"],
            "sample_hold": passes * layer["adc_conversions_per_mvm"] * ue["sample_hold"],
            "shift_add": passes * sa_ops * ue["shift_add"],
            "subtraction": passes * (layer["subtractions_per_mvm"] + flip_ops) * ue["subtraction"],
            "rescale": layer["rescales_per_mvm"] * ue["rescale"],  # once per output per MVM, after all passes
        }
        energy = {k: layer["mvms"] * v for k, v in per_mvm.items()}
        upper = layer["mvms"] * passes * layer["cell_reads_per_mvm"] * e_cell
        out_layers.append({"name": layer["name"], "periphery_design": design, "adcs": layer["adcs"],
                           "area_um2": _total(area), "energy_pj_per_inference": _total(energy),
                           "cell_energy_upper_bound_pj": upper,
                           "area_by_component": area, "energy_by_component": energy,
                           "cell_read_energy_pj": e_cell})

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
        ("cell energy measured: each row's input code as the inputs drive it (bit-serial: its 1-bits; multi-bit: "
         "(code / full code)^2) times the programmed G of its used cells, averaged over "
         f"{layers[0]['read_g_us_per_mvm'].get('samples', '?')} training inputs on the mapped crossbar"
         if measured else
         "cell energy counts every used cell of every driven row on every pass at the mean G (all inputs active: "
         "an upper bound)"),
        f"converters at the {family} family's node ({nodes['converters_nm']} nm), cells at tech_nm ({tech_nm} nm)",
        ("digital units (Horowitz 45 nm" + (", ISAAC shift-add 32 nm" if family == "isaac" else "")
         + f") scaled to {tech_nm} nm with Stillmaker & Baas 2017" if scale_digital
         else "digital units at their published nodes (not scaled)"),
        "reference/gain block modelled as one ADC's area per distinct periphery design (no published value found)",
        "pair subtraction and unipolar sign flips priced as 8-bit adders (Horowitz)",
    ]
    if bit_serial and passes > 1:
        notes.append(f"bit-serial: {passes} passes of 1-bit drivers; input-bit shift-adds (outputs x slices per pass) "
                     "added to mapping.json's counts, and one shift-and-add unit per ADC")
    if adc_time_share and not shareable:
        notes.append(f"adc_time_share requested but not applied: {len(designs)} periphery designs (per-layer tuning)")

    return {
        "dataset": mapping.get("dataset"), "variant": mapping.get("variant"), "bits": mapping.get("bits"),
        "scheme": mapping.get("scheme"), "family": family,
        "assumptions": {
            "family": family, "tech_nm": tech_nm, "cell": cell, "input_mode": mode, "passes_per_mvm": passes,
            "driver_bits": driver_bits, "dac_bits": dac_bits, "adc_bits": adc_bits, "rescale_bits": rescale_bits,
            "scale_digital_to_node": scale_digital, "nodes": nodes,
            "cell_conductance": const(constants, "cell_read.conductance"),
            "cell_activity": "measured" if measured else "upper_bound",
            "adc_time_share": {"requested": bool(adc_time_share), "applicable": shareable, "applied": applied},
            "unit_area_um2": ua, "unit_energy_pj": dict(ue, cell=cell_read_energy_pj(constants, device)),
            "notes": notes,
        },
        "total": {
            "area_um2": _total(total_area), "energy_pj_per_inference": _total(energy_total),
            "area_by_component": total_area, "energy_by_component": energy_total,
            "adcs": adcs_max if applied else adcs_sum, "adcs_dedicated": adcs_sum,
            "periphery_designs": len(designs), "reference_blocks": len(designs),
            "cell_energy_upper_bound_pj": sum(l["cell_energy_upper_bound_pj"] for l in out_layers),
        },
        "layers": out_layers,
        **({"time_shared": time_shared} if time_shared else {}),
    }


def _pct(variant: float, baseline: float) -> float | None:
    return None if baseline == 0 else 100.0 * (1.0 - variant / baseline)


def improvement(cost_variant: dict, cost_baseline: dict) -> dict:
    """% improvement of a variant over the baseline (positive = smaller), overall and per component."""
    fv, fb = cost_variant.get("family"), cost_baseline.get("family")
    if fv != fb:
        raise ValueError(f"cannot compare converter families '{fv}' and '{fb}': price both with one family")
    tv, tb = cost_variant["total"], cost_baseline["total"]
    out = {
        "family": fv, "variant": cost_variant.get("variant"), "baseline": cost_baseline.get("variant"),
        "area_pct": _pct(tv["area_um2"], tb["area_um2"]),
        "energy_pct": _pct(tv["energy_pj_per_inference"], tb["energy_pj_per_inference"]),
        "area_by_component": {k: _pct(tv["area_by_component"][k], tb["area_by_component"][k]) for k in AREA_KEYS},
        "energy_by_component": {k: _pct(tv["energy_by_component"][k], tb["energy_by_component"][k])
                                for k in ENERGY_KEYS},
    }
    if "time_shared" in cost_variant:  # the variant with its ADCs time-shared, against the baseline as priced
        out["area_pct_time_shared"] = _pct(cost_variant["time_shared"]["area_um2"], tb["area_um2"])
    return out


def estimate_file(mapping_path: str | os.PathLike, out_path: str | os.PathLike,
                  constants_path: str | os.PathLike | None = None, activity: list[dict] | None = None,
                  **kwargs: Any) -> dict:
    """mapping.json -> cost.json (written atomically: temp file + rename). kwargs go to estimate();
    adc_time_share defaults to the constants file's options.adc_time_share. ``activity``: per layer, the
    measured read conductance per MVM (:meth:`crossbar.Simulator.read_activity`); None = the upper bound."""
    with open(mapping_path) as f:
        mapping = json.load(f)
    for layer, act in zip(mapping["layers"], activity or []):
        layer["read_g_us_per_mvm"] = act
    constants = load_constants(constants_path)
    kwargs.setdefault("adc_time_share", bool(const(constants, "options.adc_time_share")))
    doc = estimate(mapping, constants, **kwargs)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return doc


def constants_of(cfg: dict) -> Path | None:
    """The constants file of an ``estimate_cost`` config (relative paths are relative to the repository)."""
    path = cfg.get("constants") or None
    if path and not Path(path).is_absolute():
        path = REPO / path
    return path


def measured_activity(mapping_json, crossbar_npz, data_npz, samples: int) -> list[dict]:
    """Per layer, what ``samples`` training inputs read on the mapped crossbar (Simulator.read_activity)."""
    import numpy as np

    from .crossbar import Simulator, network_inputs

    with open(mapping_json) as f:
        mapping = json.load(f)
    with np.load(crossbar_npz, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    x, _ = network_inputs(data_npz, "train", samples)
    return Simulator(arrays, mapping).read_activity(x)


def cost_stage(*, mapping_json, model_metrics, out_json, dataset: str, variant: str, bits: int, cfg: dict, seed: int,
               experiment: str | None = None, rule: str = "estimate_cost", crossbar_npz=None, data_npz=None) -> dict:
    """The whole estimate_cost rule: cost.json (atomic) and an MLflow child run of the training run. With
    ``cell_activity: measured`` (needs crossbar_npz and data_npz) the cell read energy follows the inputs."""
    from . import tracking

    constants_path = constants_of(cfg)
    activity = None
    if cfg.get("cell_activity", "measured") == "measured":
        if crossbar_npz is None or data_npz is None:
            raise ValueError("estimate_cost.cell_activity 'measured' needs the crossbar.npz and the prepared data")
        activity = measured_activity(mapping_json, crossbar_npz, data_npz, int(cfg.get("activity_samples", 256)))
    doc = estimate_file(mapping_json, out_json, constants_path, activity=activity, family=cfg["family"],
                        tech_nm=cfg["tech_nm"], cell=cfg["cell"], adc_time_share=cfg["adc_time_share"])
    client, run_id = tracking.start_child_run(experiment, model_metrics, run_name=f"estimate_cost {dataset}/{variant}/b{bits}",
                                              rule=rule, params={"estimate_cost": cfg, "bits": bits}, dataset=dataset,
                                              variant=variant, bits=bits, seed=seed)
    if client:
        client.log_metric(run_id, "area_um2", float(doc["total"]["area_um2"]))
        client.log_metric(run_id, "energy_pj_per_inference", float(doc["total"]["energy_pj_per_inference"]))
        client.log_metric(run_id, "cell_energy_upper_bound_pj", float(doc["total"]["cell_energy_upper_bound_pj"]))
        client.log_artifact(run_id, str(out_json))
        client.set_terminated(run_id, "FINISHED")
    print(f"[estimate_cost] {dataset}/{variant}/b{bits}: {doc['total']['area_um2']:.4g} um^2, "
          f"{doc['total']['energy_pj_per_inference']:.4g} pJ/inference ({cfg['family']})", flush=True)
    return doc

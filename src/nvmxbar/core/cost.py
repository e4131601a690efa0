"""Price the component and operation counts of a mapped circuit into area, energy and latency.

`map_crossbar` COUNTS the components (tiles, devices, ADCs, DACs, ...) of the circuit in mapping.json's
``chip`` (nvmxbar.chip.Chip, the circuit the simulator simulates); the OPERATIONS priced are the ones the
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
    activation   relu_units x A_cmp                            (a comparator per output; the last layer has none)
    pooling      pool_units x A_cmp                            (a comparator per output channel of a pooled layer)
    accumulators accumulator_registers x acc_bits x A_DFF      (one register per output that sums several codes)
    buffers      buffer bits x A_SRAM cell, split over the layers (largest input + output at dac_bits per value)

Energy (pJ) per inference of a layer, from its operations per inference (every bit-serial pass and mux cycle)::

    dac_activations x (E_DAC + E_word_line) + [column current + column_reads x E_bit_line] + conversions x
    (E_ADC + E_S&H) + shift_adds x (E_S&A + acc_bits x E_DFF) + (subtractions + sign_flips) x E_sub + rescales x
    E_mult + (relus + pool_comparisons) x E_cmp + (buffer_writes + buffer_reads) x dac_bits x E_SRAM

(buffer_reads: every MVM's input vector, NeuroSim's convention; with ``digital.buffer_input_reuse`` each input value
once, input_values)

with the column current V_read^2 x sum (u / u_full)^2 G x t_cycle (nvmxbar.core.array_energy; measured activity, or
every read at the mean G). Latency: mvms x passes x mux_cycles x t_cycle per layer, the layers in sequence.
Converters come from ONE family per run (``neurosim`` or ``isaac``); improvement() refuses to compare two families.
"""

from __future__ import annotations

from typing import Any

from ..chip import Chip
from .array_energy import array_units, upper_bound_conductance_us
from .cost_notes import OPERATING_POINT, SCHEDULE, notes
from .cost_units import _family, const, cycle_times, sram_energy_pj_per_bit, unit_costs
from .layout import OPERATION_KEYS

AREA_KEYS = (
    "cells",
    "adcs",
    "dacs",
    "sample_hold",
    "shift_add",
    "subtractors",
    "rescale",
    "references",
    "activation",
    "pooling",
    "accumulators",
    "buffers",
)
ENERGY_KEYS = (
    "dac",
    "word_lines",
    "cells",
    "adc",
    "sample_hold",
    "shift_add",
    "subtraction",
    "rescale",
    "activation",
    "pooling",
    "accumulators",
    "buffers",
)
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
    "mux_cycles",
    "adc_conversions_per_mvm",
    "dacs",
    "dac_activations_per_mvm",
    "cell_reads_per_mvm",
    "column_reads_per_mvm",
    "subtractors",
    "subtractions_per_mvm",
    "shift_adds_per_mvm",
    "shift_add_units",
    "accumulator_registers",
    "rescale_units",
    "rescales_per_mvm",
    "relu_units",
    "pool_units",
    "input_values",
    "output_values",
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
    """Price a mapping.json document: the cost.json document (area in um^2, energy in pJ and latency in ns per
    inference).

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
    passes, driver_bits = chip.passes, chip.driver_bits
    cols = chip.tile.cols
    layers = _need(mapping, "layers", "the document")
    if not layers:
        raise ValueError("mapping.json: no layers")
    for i, layer in enumerate(layers):
        for k in LAYER_KEYS:
            _need(layer, k, f"layers[{i}]")

    ua, ue, nodes = unit_costs(constants, family, adc_bits, driver_bits, tech_nm, cell, scale_digital, rescale_bits)
    times = cycle_times(constants, family, adc_bits)
    au = array_units(constants, chip, tech_nm, cell, times["cycle_ns"])
    acc_bits = const(constants, "digital.accumulator_bits")
    buffer_bits = max(lay["input_values"] + lay["output_values"] for lay in layers) * dac_bits
    e_sram = sram_energy_pj_per_bit(constants, buffer_bits, tech_nm, scale_digital)
    reuse = bool(const(constants, "digital.buffer_input_reuse"))  # each input read once, else by every MVM
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
        g_mean = upper_bound_conductance_us(constants, chip.device, layer.get("mean_conductance_us"))
        e_cell = g_mean * au["per_us_read"]  # one cell read at the mean G, full drive, one mux cycle
        ops = layer["operations"] if counted else analytic_operations(layer)
        flips = layer.get("sign_flips", 0)
        design = layer.get("periphery_design", layer["name"])
        current = (
            layer["mvms"] * layer["read_g_us_per_mvm"][mode] * au["per_us_read"]
            if measured
            else ops["cell_reads"] * e_cell
        )
        bit_lines = ops["column_reads"] * au["bit_line"]
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
            "activation": layer["relu_units"] * ua["comparator"],
            "pooling": layer["pool_units"] * ua["comparator"],
            "accumulators": layer["accumulator_registers"] * acc_bits * ua["register_bit"],
            "buffers": buffer_bits * ua["sram_bit"] / len(layers),  # one buffer, shared by the layers
        }
        energy = {
            "dac": ops["dac_activations"] * ue["dac"],
            "word_lines": ops["dac_activations"] * au["word_line"],
            "cells": current + bit_lines,
            "adc": ops["adc_conversions"] * ue["adc"],
            "sample_hold": ops["adc_conversions"] * ue["sample_hold"],
            "shift_add": ops["shift_adds"] * ue["shift_add"],
            "subtraction": (ops["subtractions"] + ops["sign_flips"]) * ue["subtraction"],
            "rescale": ops["rescales"] * ue["rescale"],
            "activation": ops["relus"] * ue["comparison"],
            "pooling": ops["pool_comparisons"] * ue["comparison"],
            "accumulators": ops["shift_adds"] * acc_bits * ue["register_bit_write"],
            "buffers": (ops["buffer_writes"] + (layer["input_values"] if reuse else ops["buffer_reads"]))
            * dac_bits
            * e_sram,
        }
        latency = layer["mvms"] * passes * layer["mux_cycles"] * times["cycle_ns"]
        out_layers.append(
            {
                "name": layer["name"],
                "periphery_design": design,
                "adcs": layer["adcs"],
                "area_um2": _total(area),
                "energy_pj_per_inference": _total(energy),
                "latency_ns": latency,
                "mux_cycles": layer["mux_cycles"],
                "array_power_uw": energy["cells"] / latency * 1e3,  # pJ / ns = mW
                "array_energy_pj": {"column_current": current, "bit_lines": bit_lines},
                "cell_energy_upper_bound_pj": ops["cell_reads"] * e_cell + bit_lines,
                "area_by_component": area,
                "energy_by_component": energy,
                "cell_read_energy_pj": e_cell,
                "operations": dict(ops),
                **({"read_g_us_per_mvm": layer["read_g_us_per_mvm"]} if measured else {}),  # what priced the cells
                **({"full_drive": {k: layer[k] for k in OPERATING_POINT[:3]}} if OPERATING_POINT[0] in layer else {}),
            }
        )

    area_total = {k: sum(lay["area_by_component"][k] for lay in out_layers) for k in AREA_KEYS}
    energy_total = {k: sum(lay["energy_by_component"][k] for lay in out_layers) for k in ENERGY_KEYS}
    adcs_sum = sum(lay["adcs"] for lay in out_layers)
    adcs_max = max(lay["adcs"] for lay in out_layers)
    shareable = len(designs) == 1
    time_shared = None
    if shareable:  # layers run in sequence and share one periphery design: the ADCs can serve every layer
        ts_area = dict(area_total, adcs=adcs_max * ua["adc"])
        time_shared = {"adcs": adcs_max, "area_um2": _total(ts_area), "area_by_component": ts_area}
    applied = bool(adc_time_share and shareable)
    total_area = time_shared["area_by_component"] if applied else area_total
    latency = sum(lay["latency_ns"] for lay in out_layers)
    mapped_total = mapping.get("total") or {}

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
            "device": chip.to_dict()["device"],
            "cell_conductance": const(constants, "cell_read.conductance"),
            "cell_activity": "measured" if measured else "upper_bound",
            "time_base_ns": times,
            "schedule": SCHEDULE,
            "array_units": au,
            "accumulator_bits": acc_bits,
            "buffer_bits": buffer_bits,
            "buffer_input_reuse": reuse,
            "adc_time_share": {"requested": bool(adc_time_share), "applicable": shareable, "applied": applied},
            "unit_area_um2": ua,
            "unit_energy_pj": dict(
                ue,
                cell=upper_bound_conductance_us(constants, chip.device) * au["per_us_read"],
                bit_line=au["bit_line"],
                word_line=au["word_line"],
                buffer_bit=e_sram,
            ),
            "notes": notes(
                mapping, family, tech_nm, nodes, scale_digital, measured, counted, adc_time_share, designs, reuse
            ),
        },
        "total": {
            "area_um2": _total(total_area),
            "energy_pj_per_inference": _total(energy_total),
            "latency_ns_per_inference": latency,
            "array_power_uw": energy_total["cells"] / latency * 1e3,
            "area_by_component": total_area,
            "energy_by_component": energy_total,
            "adcs": adcs_max if applied else adcs_sum,
            "adcs_dedicated": adcs_sum,
            "periphery_designs": len(designs),
            "reference_blocks": sum(
                next(x.get("adc_ranges", 1) for x in layers if x.get("periphery_design", x["name"]) == d)
                for d in designs
            ),
            "operations": {k: sum(lay["operations"][k] for lay in out_layers) for k in OPERATION_KEYS},
            "operations_source": "simulator" if counted else "mapping",
            "cell_energy_upper_bound_pj": sum(lay["cell_energy_upper_bound_pj"] for lay in out_layers),
            **(
                {"full_drive": {k: mapped_total[k] for k in OPERATING_POINT}}
                if OPERATING_POINT[0] in mapped_total
                else {}
            ),
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

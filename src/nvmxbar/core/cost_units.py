"""Cost constants and unit costs: the published constants (package data nvmxbar/resources/cost_constants.yaml,
every value with its source; docs/COSTMODEL.md gathers them), technology scaling, the mux cycle's time base, and
the area and energy of one ADC, DAC, adder, multiplier, comparator, register bit and SRAM bit.
:mod:`nvmxbar.core.array_energy` prices the array's read, :mod:`nvmxbar.core.cost` a whole mapping."""

from __future__ import annotations

import bisect
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONSTANTS = resources.files("nvmxbar.resources") / "cost_constants.yaml"
FAMILIES = ("neurosim", "isaac")


# ------------------------------------------------------------------------------------------ constants
def load_constants(path: str | os.PathLike | None = None) -> dict:
    """Read the cost constants (default: the packaged nvmxbar/resources/cost_constants.yaml) and check that every
    number has a source."""
    p = Path(path) if path else DEFAULT_CONSTANTS
    with p.open() as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a mapping of cost constants")
    check_sources(doc)
    return doc


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_sources(node: Any, key: str = "", what: str = "cost constant") -> None:
    """Every number must sit in a ``{value: ..., source: "..."}`` constant; raise ValueError naming the key (``what``:
    the kind of constant the message names)."""
    if isinstance(node, dict):
        if "value" in node:
            src = node.get("source")
            if not isinstance(src, str) or not src.strip():
                raise ValueError(f"{what} '{key}' has no source: write it as {{value: ..., source: \"...\"}}")
            return
        for k, v in node.items():
            check_sources(v, f"{key}.{k}" if key else str(k), what)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_sources(v, f"{key}[{i}]", what)
    elif _is_number(node):
        raise ValueError(f"{what} '{key}' = {node} has no source: write it as {{value: ..., source: \"...\"}}")


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
    return (
        (1 - ff) * (1 - tf) * table[fi][ti]
        + (1 - ff) * tf * table[fi][tj]
        + ff * (1 - tf) * table[fj][ti]
        + ff * tf * table[fj][tj]
    )


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
        a_min = const(constants, f"{fam}.adc.min_transistor_area_f2") * f_um**2
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
    window_ns = const(constants, f"{fam}.dac.drive_ns")
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


def cycle_times(constants: dict, family: str, adc_bits: int) -> dict[str, float]:
    """The mux cycle (ns): the rows' drive window t_drive (the DAC's), then the conversion t_conv ((N + 1) cycles of
    the SAR for ``sar_formula``, 1 / sample rate for a ``table`` ADC); t_cycle = t_drive + t_conv."""
    fam = _family(constants, family)
    drive = float(const(constants, f"{fam}.dac.drive_ns"))
    model = const(constants, f"{fam}.adc.model")
    if model == "sar_formula":
        conv = (adc_bits + 1) * float(const(constants, f"{fam}.adc.cycle_ns"))
    elif model == "table":
        conv = 1.0 / float(const(constants, f"{fam}.adc.sample_rate_gsps"))
    else:
        raise ValueError(f"unknown ADC model '{model}' for family '{family}'")
    return {"drive_ns": drive, "conversion_ns": conv, "cycle_ns": drive + conv}


def sram_energy_pj_per_bit(constants: dict, size_bits: float, tech_nm: float, scale_digital: bool) -> float:
    """One bit of a 64-bit access to an SRAM of ``size_bits`` (Horowitz's cache table, geometric in log2(size) between
    its sizes, the end segment's ratio beyond 1 MB, the 8 KB figure below 8 KB), scaled from Horowitz's node to
    ``tech_nm`` when ``scale_digital``."""
    kb = [float(k) for k in const(constants, "digital.sram_kb")]
    e64 = [float(e) for e in const(constants, "digital.sram_energy_pj_per_64b")]
    size_kb = max(size_bits / 8 / 1024, kb[0])
    e = _table_log_interp([math.log2(k) for k in kb], e64, math.log2(size_kb)) / 64
    return e * energy_scale(constants, const(constants, "digital.node_nm"), tech_nm) if scale_digital else e


def unit_costs(
    constants: dict,
    family: str,
    adc_bits: int,
    driver_bits: int,
    tech_nm: float,
    cell: str,
    scale_digital: bool,
    rescale_bits: int,
) -> tuple[dict, dict, dict]:
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
        sa_area, sa_energy = digital(
            const(constants, f"{fam}.shift_add.area_um2"), const(constants, f"{fam}.shift_add.energy_pj"), family_nm
        )
    elif sa.get("model") == "horowitz_adder":
        sa_area, sa_energy = digital(*_adder(constants, const(constants, f"{fam}.shift_add.bits")), digital_nm)
    else:
        raise ValueError(f"unknown shift_add model '{sa.get('model')}' for family '{family}'")
    sub_name = const(constants, "digital.subtractor")
    sub_area, sub_energy = digital(*_horowitz(constants, sub_name), digital_nm)
    cmp_area, cmp_energy = digital(*_horowitz(constants, const(constants, "digital.comparator")), digital_nm)
    f2 = (tech_nm * 1e-3) ** 2  # um^2 per F^2 at the cells' node
    dff_write = const(constants, "digital.dff.energy_pj") * const(constants, "digital.dff.activity")
    _, dff_energy = digital(0.0, dff_write, const(constants, "digital.dff.node_nm"))  # its area is in F^2
    mult_area, mult_energy = digital(*_horowitz(constants, f"mult{rescale_bits}"), digital_nm)
    if const(constants, "reference.model") != "one_adc_area":
        raise ValueError(f"unknown reference.model '{const(constants, 'reference.model')}'")
    adc_area = adc_area_um2(constants, family, adc_bits)
    area = {
        "cell": const(constants, f"cells.{cell}.area_f2") * f2,
        "adc": adc_area,
        "dac": dac_area_um2(constants, family, driver_bits),
        "sample_hold": const(constants, f"{fam}.sample_hold.area_um2"),
        "shift_add": sa_area,
        "subtractor": sub_area,
        "rescale": mult_area,
        "reference": const(constants, "reference.adcs_per_block") * adc_area,
        "comparator": cmp_area,
        "register_bit": const(constants, "digital.dff.area_f2") * f2,
        "sram_bit": const(constants, "digital.sram_cell_area_f2") * f2,
    }
    energy = {
        "dac": dac_energy_pj(constants, family, driver_bits),
        "adc": adc_energy_pj(constants, family, adc_bits),
        "sample_hold": const(constants, f"{fam}.sample_hold.energy_pj"),
        "shift_add": sa_energy,
        "subtraction": sub_energy,
        "rescale": mult_energy,
        "comparison": cmp_energy,
        "register_bit_write": dff_energy,
    }
    nodes = {
        "cells_nm": tech_nm,
        "converters_nm": family_nm,
        "digital_published_nm": digital_nm,
        "digital_scaled_to_nm": tech_nm if scale_digital else None,
    }
    return area, energy, nodes


# ------------------------------------------------------------------------------------------ estimate

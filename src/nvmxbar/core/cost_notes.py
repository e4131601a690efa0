"""What cost.json states beside its numbers (:func:`nvmxbar.core.cost.estimate`): the schedule its latency assumes,
the operating point it carries over from mapping.json, and the notes on how each part was priced."""

from __future__ import annotations

from ..chip import Chip

SCHEDULE = (
    "layers in sequence; a layer's MVMs in sequence; every tile of an MVM in parallel; a tile's mux cycles (and "
    "bit-serial passes) in sequence; digital post-processing (shift-and-add, rescale, ReLU, pooling, buffer) "
    "overlapped with the next cycles"
)
#: mapping.json's operating point (nvmxbar.core.layout.column_currents), carried into cost.json as ``full_drive``
OPERATING_POINT = (
    "max_column_current_ua",
    "mean_column_current_ua",
    "array_power_uw",
    "column_current_limit_ua",
    "column_current_within_limit",
)


def notes(
    mapping: dict,
    family: str,
    tech_nm: float,
    nodes: dict,
    scale_digital: bool,
    measured: bool,
    counted: bool,
    adc_time_share: bool,
    designs: dict,
    buffer_reuse: bool = False,
) -> list[str]:
    """cost.json's notes: how each part was priced."""
    chip = Chip.from_dict(mapping["chip"], "mapping.json chip")
    layers = mapping["layers"]
    out = [
        "energy is dynamic energy per inference; static power (references, leakage) is not included",
        "time base: a mux cycle = the rows' drive window + the ADC's conversion; a tile converts its signals in "
        "sequence on its ADCs and drives its rows again in every cycle; a column conducts in its own cycle only",
        (
            "array column current measured: each row's input as the inputs drive it (bit-serial: its 1-bits; "
            "multi-bit: (code / full code)^2) times the programmed G of its cells, x V_read^2 x t_cycle, averaged over "
            f"{layers[0]['read_g_us_per_mvm'].get('samples', '?')} training inputs on the mapped crossbar"
            if measured
            else "array column current counts every used cell of every driven row on every pass at the mean G "
            "(all inputs at full scale: an upper bound), x V_read^2 x t_cycle"
        ),
        "NeuroSim's capacitive array terms: bit lines charged to V_read per converted column and cycle (in cells), "
        "word lines (wire + 1T1R access gates) charged to V_dd per driven row and cycle (word_lines: every row of "
        "every pass, an upper bound for bit-serial rows whose bit is 0)",
        f"converters at the {family} family's node ({nodes['converters_nm']} nm), cells at tech_nm ({tech_nm} nm)",
        (
            "digital units (Horowitz 45 nm, NeuroSim's DFF 22 nm"
            + (", ISAAC shift-add 32 nm" if family == "isaac" else "")
            + f") scaled to {tech_nm} nm with Stillmaker & Baas 2017"
            if scale_digital
            else "digital units at their published nodes (not scaled)"
        ),
        "ReLU and max-pool comparisons priced as 8-bit adds (Horowitz); accumulator registers as NeuroSim DFFs "
        "(a write of every bit per shift-add, switching activity 0.5); the activation buffer as SRAM (NeuroSim's "
        "cell area, Horowitz's 64-bit access energy by size; its periphery not included), every value written once "
        + (
            "and read once (input reuse: digital.buffer_input_reuse)"
            if buffer_reuse
            else "and read by every MVM that uses it (no input reuse, NeuroSim's convention)"
        ),
        "reference/gain block modelled as one ADC's area per ADC range of each distinct periphery design (no "
        "published value found)",
        (
            "pair and offset subtraction digital (after the ADC): one 8-bit adder (Horowitz) per ADC and one "
            "subtraction per converted signal"
            if chip.subtraction == "digital"
            else "pair and offset subtraction analog (before the ADC): no digital subtractor; the analog subtraction "
            "and the one-device reference column's periphery are not priced beyond its cells"
        ),
        "unipolar sign flips priced as 8-bit adders (Horowitz)",
        f"operations per inference {'counted by the simulator' if counted else 'from mapping.json (analytic)'}",
    ]
    if family == "isaac":
        out.append(
            "isaac family: the same circuit (rows driven in every mux cycle), priced with ISAAC's converters; its "
            "sample-and-hold is priced per conversion, not used to drive the rows once"
        )
    if chip.passes > 1:
        out.append(f"bit-serial: {chip.passes} passes of 1-bit drivers, each converted and shift-added")
    if adc_time_share and len(designs) > 1:
        out.append(f"adc_time_share requested but not applied: {len(designs)} periphery designs (per-layer tuning)")
    return out

"""The array's read, on the mux cycle's time base (docs/COSTMODEL.md, "Array read energy"): what a cell read, a bit
line and a word line cost, and the column current a design is flagged against. Constants from cost_constants.yaml
(``cell_read``, ``array``, ``column_current``, ``cells``); the device and its read voltage are the chip's
(:class:`nvmxbar.chip.Device`).

* A converted column carries its current during its own mux cycle only (its ADC's conversion window and the rows'
  drive before it): a cell read costs V_read^2 (u / u_full)^2 G t_cycle, t_cycle = t_drive + t_conv
  (:func:`nvmxbar.core.cost_units.cycle_times`).
* NeuroSim's capacitive terms (SubArray.cpp CalculatePower, conventionalParallel, l.1299-1301): the bit line of every
  converted column is charged to V_read once per cycle, C_BL = R x height_f F x c_wire; every driven row's word line
  to V_dd once per cycle, C_row = C x (width_f F x c_wire + C_gate) with the access transistor's gate (1T1R), sized
  as NeuroSim sizes it (its resistance a fraction ``ir_drop_tolerance`` of R_on = 1 / G_max).
"""

from __future__ import annotations

from ..chip import Chip, Device
from .cost_units import const


def upper_bound_conductance_us(constants: dict, device: Device, mean_conductance_us: float | None = None) -> float:
    """The G every read is priced at without measured activity: the layer's mean if mapping.json gives one, else
    ``cell_read.conductance`` of the device's range (midpoint (G_min + G_max) / 2, or gmax_half)."""
    if mean_conductance_us is not None:
        return float(mean_conductance_us)
    choice = const(constants, "cell_read.conductance")
    if choice == "midpoint":
        return (device.g_min_us + device.g_max_us) / 2
    if choice == "gmax_half":
        return device.g_max_us / 2
    raise ValueError(f"unknown cell_read.conductance '{choice}' (midpoint or gmax_half)")


def access_gate_cap_f(constants: dict, g_max_us: float) -> float:
    """Gate capacitance (F) of a 1T1R cell's access transistor, sized as NeuroSim sizes it (SubArray.cpp l.202-203,
    l.216): its on-resistance ``ir_drop_tolerance`` x R_on in the linear region, W = multiplier x V_dd / I_on x
    linear_region_ratio / (ir_drop_tolerance x R_on); C = (C_ideal (1 + overlap) + C_fringe) x W."""
    a = "array"
    r_on = 1e6 / g_max_us
    width_m = (
        const(constants, f"{a}.nmos_resistance_multiplier")
        * const(constants, f"{a}.vdd_v")
        / const(constants, f"{a}.nmos_on_current_ua_per_um")  # uA/um = A/m
        * const(constants, f"{a}.linear_region_ratio")
        / (const(constants, f"{a}.ir_drop_tolerance") * r_on)
    )
    per_m = const(constants, f"{a}.gate_cap_ideal_f_per_m") * (1 + const(constants, f"{a}.gate_cap_overlap_ratio"))
    return (per_m + const(constants, f"{a}.gate_cap_fringe_f_per_m")) * width_m


def array_units(constants: dict, chip: Chip, tech_nm: float, cell: str, cycle_ns: float) -> dict[str, float]:
    """Per-unit energies (pJ) of the array's read: ``per_us_read`` = one microsiemens read for one mux cycle at the
    full drive (V_read^2 x 1 uS x t_cycle), ``bit_line`` = one converted column's bit line charged to V_read,
    ``word_line`` = one driven row's word line charged to V_dd; with the capacitances (fF) behind them."""
    if cell not in constants.get("cells", {}):
        raise ValueError(f"unknown cell '{cell}'; known: {sorted(constants.get('cells', {}))}")
    v = chip.device.v_read_v
    f_um = tech_nm * 1e-3
    c_wire = const(constants, "array.wire_cap_ff_per_um") * 1e-15  # F per um
    c_bl = chip.tile.rows * const(constants, f"cells.{cell}.height_f") * f_um * c_wire
    gate = access_gate_cap_f(constants, chip.device.g_max_us) if constants["cells"][cell]["access_transistor"] else 0.0
    c_row = chip.tile.cols * (const(constants, f"cells.{cell}.width_f") * f_um * c_wire + gate)
    vdd = const(constants, "array.vdd_v")
    return {
        "per_us_read": v**2 * 1e-6 * cycle_ns * 1e-9 * 1e12,
        "bit_line": c_bl * v**2 * 1e12,
        "word_line": c_row * vdd**2 * 1e12,
        "bit_line_ff": c_bl * 1e15,
        "word_line_ff": c_row * 1e15,
    }


def column_current_limit_ua(constants: dict, chip: Chip) -> float:
    """The column current (uA) at which the first-order drop along a column wire of the tile's R cells,
    I r (R + 1) / 2 (each cell's current joining at its row, the sense node at the end; r = the chip's
    ``wires.col_ohm_per_cell``), reaches ``drop_fraction`` of V_read (derived, docs/COSTMODEL.md)."""
    r = chip.wires.col_ohm_per_cell
    if r <= 0:
        return float("inf")  # ideal column wires: no drop to limit
    rows = chip.tile.rows
    return const(constants, "column_current.drop_fraction") * chip.device.v_read_v / (r * (rows + 1) / 2) * 1e6

"""The array's energy on one time base (nvmxbar.core.array_energy, .cost_units.cycle_times, .layout.count and
.column_currents, priced by nvmxbar.core.cost), checked against hand computations on one small dense layer: 4
driven rows, 3 outputs on differential pairs (6 physical columns) of one 8 x 8 tile whose 8 columns share one ADC, so
the 3 pair signals are converted in 3 mux cycles of t_drive + t_conv = 1 + 7 ns (6-bit SAR) per pass.

Per cell read, at the neurosim_v13 device's mean G (G_max 166.67 uS, ON/OFF 150: G_mean 83.89 uS, V_read 0.5 V):

* old model, V^2 G x 10 ns (NeuroSim's read pulse, for every cell and pass): 0.2097 pJ;
* this model, V^2 G x (1 + 7) ns (the cell conducts during its column's mux cycle): 0.1678 pJ;
* DNN+NeuroSim V1.3, 0.072341 W / R_col over its (N + 1) x 1 ns conversion (SarADC.cpp GetColumnPower, 22 nm LP,
  l.213-215, l.229): 0.072341 x G x 7 ns = 0.0425 pJ.

Ours / NeuroSim's = V^2 (t_drive + t_conv) / (0.072341 t_conv) = 0.25 x 8 / (0.072341 x 7) = 3.95 at 0.5 V: we charge
the cells' own dissipation V_read^2 G over the drive and the conversion; NeuroSim's SAR power fit charges
0.072341 / R_col (a Cadence fit at 0.5 V, R_col rescaled by 0.5 / V_read: 0.1447 V_read G) over the conversion only.
"""

import copy
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from conftest import map_settings, wires_of

from nvmxbar.core import cost, cost_units, layout
from nvmxbar.core.networks import build, make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator
from nvmxbar.devices import Device
from nvmxbar.stages.estimate_cost import check_operations

#: device levels (2-bit) of the 4 rows x 6 physical columns (output n: columns 2n = G+, 2n + 1 = G-)
LEVELS = np.array([[3, 0, 1, 0, 0, 2], [0, 1, 2, 0, 3, 0], [1, 0, 0, 3, 2, 0], [0, 2, 3, 0, 0, 1]])
#: input codes (4-bit DAC, full code 15) of 3 MVMs
CODES = np.array([[15, 5, 0, 10], [3, 15, 15, 0], [7, 1, 12, 9]], dtype=float)
DEVICES = {
    "neurosim_v13": {"preset": "neurosim_v13", "g_max_us": 166.6667, "on_off_ratio": 150.0, "v_read_v": 0.5},
    "rram_wan2022": {"preset": "rram_wan2022", "g_max_us": 40.0, "on_off_ratio": 40.0, "v_read_v": 0.2},
}
T_CYCLE, T_CONV = 8e-9, 7e-9  # s: 1 ns drive + (6 + 1) x 1 ns SAR conversion
F = 0.022  # um: tech_nm


def one_layer(device, input_mode="multibit", levels=LEVELS, pair=2):
    """crossbar.npz arrays and mapping.json (counted, with its operating point) of one dense layer on an 8 x 8 tile,
    uniform scaling, analog subtraction, 8 columns per ADC."""
    K, cols = levels.shape
    R = C = 8
    lev = np.zeros((1, 1, R, C), dtype=np.int16)
    lev[0, 0, :K, :cols] = levels
    used = np.zeros((1, 1, R, C), dtype=bool)
    used[0, 0, :K, :cols] = True
    d = DEVICES[device]
    g_min = d["g_max_us"] / d["on_off_ratio"]
    arrays = {
        "L0.levels": lev,
        "L0.used": used,
        "L0.row_index": np.array([0, 1, 2, 3, -1, -1, -1, -1], dtype=np.int32),
        "L0.sign": np.ones((1, 1, C), dtype=np.int8),
        "L0.G_us": (g_min + lev * (d["g_max_us"] - g_min) / 3).astype(np.float32),
    }
    spec = {
        "name": "layers.0",
        "kind": "linear",
        "kernel": [],
        "padding": [],
        "in_channels": K,
        "in_spatial": [],
        "pool": 0,
        "outputs": cols // pair,
        "weight_rows": K,
        "rows": K,
        "mvms": 1,
        "slices": 1,
        "pair": pair,
        "row_tiles": 1,
        "col_tiles": 1,
        "dac_fullscale": 15.0,  # DAC step 1: the inputs are the codes
        "weight_step": 1.0,
    }
    mapping = {
        "bits": 2,
        "scheme": "uniform" if pair == 2 else "unipolar",
        "chip": {
            "tile": {"rows": R, "cols": C},
            "device": (
                dev := asdict(
                    Device.from_config({"preset": device, "g_max_us": None, "on_off_ratio": None, "v_read_v": None})
                )
            ),
            "dac_bits": 4,
            "adc_bits": 6,
            "adc_ratio": "pow2",
            "adc_mux": 8,
            "input_mode": input_mode,
            "subtraction": "analog",
            "wires": wires_of(dev, R, C),
        },
        "device": {"bits": 2, "levels": 4},
        "pair": pair,
        "slices": 1,
        "layers": [spec],
        "adc_fullscale": 1e9,
        "adc_dac_ratio": 1.0,
    }
    layout.count(mapping, arrays)
    return arrays, mapping


def g_us(device, levels=LEVELS):
    d = DEVICES[device]
    g_min = d["g_max_us"] / d["on_off_ratio"]
    return g_min + levels * (d["g_max_us"] - g_min) / 3


def priced(arrays, mapping):
    """cost.json as rule estimate_cost prices it: the simulator's operations and measured activity."""
    sim = Simulator(arrays, mapping)
    x = torch.from_numpy(CODES)
    ops = sim.count_operations(x)
    check_operations(mapping["layers"][0], ops[0])
    mapping["layers"][0]["operations"] = ops[0]
    mapping["layers"][0]["read_g_us_per_mvm"] = sim.read_activity(x)[0]
    return cost.estimate(mapping, cost_units.load_constants(), tech_nm=22, cell="1t1r")


def word_line_pj(g_max_us, cols=8):
    """A 1T1R word line of an 8-column tile at 22 nm (NeuroSim SubArray.cpp l.133, l.202-203, l.216): 8 x (12 F of
    wire at 0.2 fF/um + the access transistor's gate), charged to V_dd = 0.85 V; the access transistor's width
    1.77 x 0.85 V / 791.9 uA/um x 0.2 / (0.25 x R_on), its gate (5.245e-10 x 1.2 + 8.004e-10) F/m."""
    width_m = 1.77 * 0.85 / 791.9 * 0.2 / (0.25 * 1e6 / g_max_us)
    c_row = cols * (12 * F * 0.2e-15 + (5.245e-10 * 1.2 + 8.004e-10) * width_m)
    return c_row * 0.85**2 * 1e12


def bit_line_pj(v_read, rows=8):
    """A bit line of an 8-row 1T1R tile at 22 nm (SubArray.cpp l.1272): 8 x 4 F of wire at 0.2 fF/um, to V_read."""
    return rows * 4 * F * 0.2e-15 * v_read**2 * 1e12


def test_the_mux_cycles_drive_the_rows_again_and_set_the_latency():
    """3 pair signals on one ADC: 3 cycles per pass; each drives the 4 rows again; every column conducts once."""
    _, m = one_layer("neurosim_v13")
    lay = m["layers"][0]
    assert (lay["adcs"], lay["mux_cycles"]) == (1, 3)
    assert (lay["dac_activations_per_mvm"], lay["cell_reads_per_mvm"], lay["column_reads_per_mvm"]) == (12, 24, 6)
    _, serial = one_layer("neurosim_v13", "bit_serial")
    assert serial["layers"][0]["dac_activations_per_mvm"] == 4 * 12  # every pass
    doc = cost.estimate(serial, cost_units.load_constants())
    assert doc["total"]["latency_ns_per_inference"] == pytest.approx(4 * 3 * 8.0)  # passes x cycles x (1 + 7) ns
    isaac = cost.estimate(serial, cost_units.load_constants(), family="isaac")
    assert isaac["total"]["latency_ns_per_inference"] == pytest.approx(4 * 3 * (1 + 1 / 1.2))  # 1.2 GS/s


def test_a_reference_column_conducts_in_every_cycle_of_its_tile():
    """One device per weight with analog offset removal: the G_min reference column is subtracted from every
    converted column, so it is read (and its bit line charged) in each of the 3 cycles."""
    levels = np.array([[3, 0, 1], [0, 1, 2], [1, 0, 0], [0, 2, 3]])
    arrays, m = one_layer("neurosim_v13", levels=levels, pair=1)
    lay = m["layers"][0]
    assert (lay["adcs"], lay["mux_cycles"]) == (1, 3)
    assert (lay["cell_reads_per_mvm"], lay["column_reads_per_mvm"]) == (4 * (3 + 3), 3 + 3)
    doc = priced(arrays, m)  # the simulator counts the same reads, and measures the reference's G 3 times
    d = DEVICES["neurosim_v13"]
    g = g_us("neurosim_v13", levels)
    g_ref = d["g_max_us"] / d["on_off_ratio"]
    read = (((CODES / 15) ** 2) @ (g.sum(1) + 3 * g_ref)).mean()
    assert doc["layers"][0]["read_g_us_per_mvm"]["multibit"] == pytest.approx(read, rel=1e-6)


def test_array_energy_of_a_dense_layer_by_hand():
    """rram_wan2022 (40 uS, ON/OFF 40, 0.2 V), multi-bit inputs: E = V_read^2 x sum over MVMs, rows and the row's
    cells of (u / 15)^2 G x 8 ns (each column conducts during its own mux cycle), + 6 bit lines x C_BL V_read^2 per
    MVM; the word lines, 4 rows x 3 cycles x C_row V_dd^2, are their own component."""
    arrays, m = one_layer("rram_wan2022")
    doc = priced(arrays, m)
    g = g_us("rram_wan2022")
    current = float((((CODES / 15) ** 2) @ g.sum(1)).mean()) * 0.2**2 * 1e-6 * T_CYCLE * 1e12
    bit_lines = 6 * bit_line_pj(0.2)
    lay = doc["layers"][0]
    assert lay["array_energy_pj"]["column_current"] == pytest.approx(current, rel=1e-6)
    assert lay["array_energy_pj"]["bit_lines"] == pytest.approx(bit_lines)
    assert lay["energy_by_component"]["cells"] == pytest.approx(current + bit_lines, rel=1e-6)
    assert lay["energy_by_component"]["word_lines"] == pytest.approx(4 * 3 * word_line_pj(40.0))
    assert lay["latency_ns"] == pytest.approx(3 * 8.0)
    assert lay["array_power_uw"] == pytest.approx((current + bit_lines) / 24.0 * 1e3, rel=1e-6)
    assert doc["assumptions"]["device"]["v_read_v"] == 0.2
    # the upper bound: every cell read at the mean G, every input at full scale
    g_mean = (40.0 + 1.0) / 2
    bound = 24 * 0.2**2 * g_mean * 1e-6 * T_CYCLE * 1e12 + bit_lines
    assert lay["cell_energy_upper_bound_pj"] == pytest.approx(bound)


def test_array_energy_against_neurosim_v13_by_hand():
    """neurosim_v13 (6 kOhm, ON/OFF 150, 0.5 V), bit-serial: per pass, each column's conductance over its driven rows
    (those whose input bit is 1). NeuroSim V1.3 (SarADC.cpp GetColumnPower, 22 nm LP) charges each converted column
    0.072341 W x G_col (its column-current term, R_col = 1 / G_col at V_read = 0.5 V) over (N + 1) x 1 ns = 7 ns; ours
    V_read^2 G_col over 8 ns. The capacitive terms are NeuroSim's own (SubArray.cpp l.1299-1301): numColMuxed x
    (C_BL V_read^2 x columns per cycle + C_row V_dd^2 x rows x activityRowRead) per pass; ours charge every row in
    every cycle (the rows are driven in every pass)."""
    arrays, m = one_layer("neurosim_v13", "bit_serial")
    doc = priced(arrays, m)
    g = g_us("neurosim_v13")
    bits = [(CODES.astype(int) >> j) & 1 for j in range(4)]  # (passes) x (MVMs, rows)
    g_col = sum(b @ g for b in bits)  # (MVMs, columns): sum over passes of each column's G on driven rows
    ours_current = float(g_col.sum(1).mean()) * 0.5**2 * 1e-6 * T_CYCLE * 1e12
    neurosim_current = float(g_col.sum(1).mean()) * 1e-6 * 0.072341 * T_CONV * 1e12
    exact = float(sum((0.072341 * np.exp(-2.303 * np.log10(1e6 / (b @ g)[b @ g > 0])) * T_CONV).sum() for b in bits))
    assert neurosim_current == pytest.approx(exact * 1e12 / len(CODES), rel=2e-3)  # exp(-2.303 log10 R) ~ 1 / R
    lay = doc["layers"][0]
    assert lay["array_energy_pj"]["column_current"] == pytest.approx(ours_current, rel=1e-6)
    ratio = 0.5**2 * T_CYCLE / (0.072341 * T_CONV)  # V_read^2 (t_drive + t_conv) / (0.072341 t_conv)
    assert lay["array_energy_pj"]["column_current"] / neurosim_current == pytest.approx(ratio, rel=1e-6)
    assert ratio == pytest.approx(3.9495, rel=1e-4)
    cycles, per_cycle = 3, 2  # numColMuxed (our mux cycles), numReadCells (the pair's two columns)
    neurosim_bl = 4 * cycles * bit_line_pj(0.5) * per_cycle  # per pass, 4 passes
    activity = np.mean([b.mean() for b in bits])  # activityRowRead, over passes and MVMs
    neurosim_wl = 4 * cycles * word_line_pj(166.6667) * 4 * activity
    assert lay["array_energy_pj"]["bit_lines"] == pytest.approx(neurosim_bl)
    assert lay["energy_by_component"]["word_lines"] * activity == pytest.approx(neurosim_wl)
    # per cell read at the mean G: the old 10 ns pulse, this model's cycle, NeuroSim's conversion
    g_mean = (166.6667 + 166.6667 / 150) / 2
    old, new, ns = (0.5**2 * g_mean * 1e-6 * 10e-9 * 1e12, doc["assumptions"]["unit_energy_pj"]["cell"], None)
    ns = 0.072341 * g_mean * 1e-6 * T_CONV * 1e12
    assert (old, new, ns) == pytest.approx((0.2097, 0.1678, 0.04248), rel=1e-3)


def test_the_operating_point_is_in_mapping_json():
    """All driven rows at the DAC full-scale: I = V_read x the sum of G over the column's cells on driven rows (the
    used columns); the array draws V_read x the mean current x the columns converted at once (one pair signal on
    the tile's one ADC: 2 columns). The limit: 25 % of V_read over the first-order drop of 8 cells of 6.363 Ohm."""
    arrays, m = one_layer("neurosim_v13")
    g = g_us("neurosim_v13")
    currents = 0.5 * g.sum(0)  # uA: uS x V
    lay, tot = m["layers"][0], m["total"]
    assert lay["max_column_current_ua"] == pytest.approx(currents.max(), rel=1e-6)
    assert lay["mean_column_current_ua"] == pytest.approx(currents.mean(), rel=1e-6)
    assert lay["array_power_uw"] == pytest.approx(0.5 * currents.mean() * 2, rel=1e-6)
    limit = 0.25 * 0.5 / (1.167 * (8 + 1) / 2) * 1e6  # the column wire: 4F of 1T1R at 22 nm
    assert tot["column_current_limit_ua"] == pytest.approx(limit)
    assert tot["max_column_current_ua"] == pytest.approx(currents.max(), rel=1e-6)
    assert tot["column_current_within_limit"] is bool(currents.max() <= limit) is True
    hot_arrays, hot = one_layer("neurosim_v13", levels=np.full((4, 6), 3))  # all at 166.67 uS: 333 uA per column
    assert hot["total"]["max_column_current_ua"] == pytest.approx(4 * 166.6667 * 0.5, rel=1e-6)
    hot["chip"]["wires"]["col_ohm_per_cell"] = 100.0  # the chip's column wire, 100 Ohm per cell: the limit 278 uA
    layout.column_currents(hot_arrays, hot)
    assert hot["total"]["column_current_limit_ua"] == pytest.approx(0.25 * 0.5 / (100 * 4.5) * 1e6)
    assert hot["total"]["column_current_within_limit"] is False
    hot["chip"]["wires"]["col_ohm_per_cell"] = 0.0  # ideal column wires: no limit
    layout.column_currents(hot_arrays, hot)
    assert hot["total"]["column_current_limit_ua"] is None and hot["total"]["column_current_within_limit"]
    doc = cost.estimate(m, cost_units.load_constants())  # cost.json carries the operating point
    assert doc["total"]["full_drive"]["column_current_limit_ua"] == pytest.approx(limit)
    assert doc["layers"][0]["full_drive"]["max_column_current_ua"] == lay["max_column_current_ua"]


ARCH2D = {"in_shape": [3, 7, 6], "num_classes": 5, "conv": [4, "M", "M", 6], "kernel_size": 3, "hidden": [7]}


def test_relu_pooling_and_buffer_counts_of_a_2d_cnn_agree_with_the_simulator():
    """A 7 x 6 input pooled twice (7 x 6 -> 3 x 3 -> 1 x 1, floors included): 3 comparisons per output of each 2x2
    window; a ReLU per output of every layer but the last; each layer's inputs written once and read by every MVM
    (its weight rows). The simulator's counts equal mapping.json's, and cost.json prices them."""
    torch.manual_seed(0)
    quant = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_ratio": "pow2", "adc_tile_rows": 0}
    arch = make_arch(ARCH2D["in_shape"], ARCH2D["num_classes"], {**ARCH2D, "dropout": 0.0, "bias": True})
    net = build(arch, quant).double()
    x = torch.randn(16, 3, 7, 6, dtype=torch.float64)
    net.train()
    net(x)
    arrays, mapping = map_network(net.eval(), 2, map_settings(rows=128, cols=128))
    first = mapping["layers"][0]
    assert first["pool"] == 2 and first["mvms"] == 42
    assert first["pool_comparisons_per_mvm"] * 42 == 4 * (3 * 3 + 1 * 1) * 3
    assert first["relus_per_mvm"] == 4 and mapping["layers"][-1]["relus_per_mvm"] == 0
    assert (first["input_values"], first["output_values"]) == (3 * 42, 4 * 1)
    assert first["buffer_reads_per_mvm"] == 27 and first["buffer_writes_per_mvm"] == 3
    counted = Simulator(arrays, mapping).count_operations(x[:5], bs=2)
    for layer, ops in zip(mapping["layers"], counted, strict=True):
        check_operations(layer, ops)
        layer["operations"] = ops
    constants = cost_units.load_constants()
    doc = cost.estimate(mapping, constants, scale_digital=False)
    tot = doc["total"]
    e_cmp = 0.03  # Horowitz 8-bit add, unscaled
    assert tot["energy_by_component"]["pooling"] == pytest.approx(tot["operations"]["pool_comparisons"] * e_cmp)
    assert tot["energy_by_component"]["activation"] == pytest.approx(tot["operations"]["relus"] * e_cmp)
    bits = max(lay["input_values"] + lay["output_values"] for lay in mapping["layers"]) * 4
    assert mapping["total"]["buffer_bits"] == bits == doc["assumptions"]["buffer_bits"]
    accesses = tot["operations"]["buffer_writes"] + tot["operations"]["buffer_reads"]
    assert tot["energy_by_component"]["buffers"] == pytest.approx(accesses * 4 * 10 / 64)  # under 8 KB
    assert tot["area_by_component"]["buffers"] == pytest.approx(bits * 280 * F**2)
    assert tot["area_by_component"]["pooling"] == pytest.approx(4 * 36)  # one comparator per pooled channel
    # with input reuse (a line buffer), each input value is read once: writes + input_values, not + every MVM's rows
    reuse = copy.deepcopy(constants)
    reuse["digital"]["buffer_input_reuse"]["value"] = True
    once = cost.estimate(mapping, reuse, scale_digital=False)
    inputs = sum(lay["input_values"] for lay in mapping["layers"])
    assert once["total"]["energy_by_component"]["buffers"] == pytest.approx(
        (tot["operations"]["buffer_writes"] + inputs) * 4 * 10 / 64
    )
    assert inputs < tot["operations"]["buffer_reads"] and once["assumptions"]["buffer_input_reuse"] is True
    assert any("read once" in n for n in once["assumptions"]["notes"])
    assert math.isclose(sum(lay["latency_ns"] for lay in doc["layers"]), tot["latency_ns_per_inference"])


def test_sram_access_energy_follows_horowitz_by_size():
    c = cost_units.load_constants()
    per_bit = lambda kb: cost_units.sram_energy_pj_per_bit(c, kb * 8 * 1024, 45, False)  # noqa: E731
    assert per_bit(1) == per_bit(8) == pytest.approx(10 / 64)  # no smaller figure than 8 KB
    assert per_bit(32) == pytest.approx(20 / 64) and per_bit(1024) == pytest.approx(100 / 64)
    assert per_bit(16) == pytest.approx(math.sqrt(10 * 20) / 64)  # geometric in log2(size)

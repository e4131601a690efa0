"""Cost model (nvmxbar.core.cost, nvmxbar.core.cost_units; the file step nvmxbar.stages.estimate_cost):
hand-computed small mappings, published per-conversion figures, contract keys.

Expected numbers are computed here by hand from the raw YAML values (read with yaml, not through cost.py),
so a wrong formula in cost.py / cost_units.py cannot agree with itself.
"""

import json
import math
from dataclasses import asdict

import pytest
import yaml
from conftest import wires_of

from nvmxbar.config import SCHEMA
from nvmxbar.core import cost, cost_units, layout
from nvmxbar.devices import Device
from nvmxbar.stages.estimate_cost import estimate_file

Y = yaml.safe_load(cost_units.DEFAULT_CONSTANTS.read_text())
#: the noise mapping.json records with the device (the cost model reads none of it)
V13_NOISE = asdict(Device.from_config({"preset": "neurosim_v13", "g_max_us": None, "on_off_ratio": None}).noise)


def v(*keys):
    """Raw value of a constant in the YAML file."""
    node = Y
    for k in keys:
        node = node[k]
    return node["value"]


def layer(name, K, N, S=1, P=2, M=1, R=128, C=128, mux=8, baseline=False, design=None):
    """One mapping.json layer: its geometry, and its counts by the COSTMODEL.md rules (nvmxbar.core.layout.count, as
    map_crossbar counts them) for one multi-bit pass and analog subtraction; :func:`mapping` recounts them for its
    own circuit."""
    rt, ct = math.ceil(K / R), math.ceil(P * N * S / C)
    spec = {
        "name": name,
        "kind": "linear",
        "rows": K,
        "weight_rows": K,
        "in_channels": K,
        "in_spatial": [],
        "pool": 0,
        "outputs": N,
        "mvms": M,
        "slices": S,
        "pair": P,
        "row_tiles": rt,
        "col_tiles": ct,
    }
    doc = mapping([spec], scheme="baseline" if baseline else "uniform", input_mode="multibit", mux=mux, R=R, C=C)
    out = doc["layers"][0]
    if design:
        out["periphery_design"] = design
    return out


def mapping(
    layers,
    scheme="uniform",
    dac_bits=4,
    adc_bits=6,
    input_mode="bit_serial",
    bits=2,
    subtraction="analog",
    mux=8,
    R=128,
    C=128,
):
    """A mapping.json document of these layers for a circuit (uniform scaling with a power-of-two ADC-to-DAC
    ratio), counted by nvmxbar.core.layout.count."""
    doc = {
        "dataset": "har",
        "variant": scheme,
        "bits": bits,
        "scheme": scheme,
        "chip": {
            "tile": {"rows": R, "cols": C},
            "device": {
                "preset": "neurosim_v13",
                "g_max_us": 166.7,
                "on_off_ratio": 166.7 / 1.11,
                "v_read_v": 0.5,
                "noise": V13_NOISE,
            },
            "dac_bits": dac_bits,
            "adc_bits": adc_bits,
            "adc_mux": mux,
            "input_mode": input_mode,
            "subtraction": subtraction,
            "adc_ratio": "free" if scheme == "baseline" else "pow2",
        },
        "device": {"bits": bits, "levels": 2**bits},
        "pair": layers[0]["pair"],
        "slices": layers[0]["slices"],
        "layers": [dict(lay) for lay in layers],
    }
    doc["chip"]["wires"] = wires_of(doc["chip"]["device"], R, C)
    designs = [lay.get("periphery_design") for lay in layers]
    layout.count(doc)
    for lay, d in zip(doc["layers"], designs, strict=True):
        if d and d not in (lay["name"], "global"):
            lay["periphery_design"] = d
    return doc


@pytest.fixture(scope="module")
def constants():
    return cost_units.load_constants()


# ------------------------------------------------------------------------------------------ constants file
def test_every_numeric_constant_has_a_source(constants):
    found = []

    def walk(node, key):
        if isinstance(node, dict):
            if "value" in node:
                assert isinstance(node.get("source"), str) and node["source"].strip(), key
                found.append(key)
                return
            for k, sub in node.items():
                walk(sub, f"{key}.{k}")
        else:
            assert not isinstance(node, (int, float)) or isinstance(node, bool), f"bare number at {key}"

    walk(Y, "")
    assert len(found) > 40


def test_constant_without_source_is_refused_by_name(tmp_path):
    bad = dict(Y, technology={"default_node_nm": 22})
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="technology.default_node_nm"):
        cost_units.load_constants(p)
    bad = dict(Y, technology={"default_node_nm": {"value": 22, "source": " "}})
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="technology.default_node_nm"):
        cost_units.load_constants(p)


@pytest.mark.parametrize(
    "family,bits,expected_pj,tol",
    [
        ("neurosim", 4, 0.033, 0.05),
        ("neurosim", 5, 0.042, 0.05),
        ("neurosim", 8, 0.078, 0.05),
        ("isaac", 8, 1.67, 0.01),
        ("isaac", 4, 0.79, 0.01),
        ("isaac", 6, 1.20, 0.01),
    ],
)
def test_adc_energy_per_conversion_matches_costmodel(constants, family, bits, expected_pj, tol):
    assert cost_units.adc_energy_pj(constants, family, bits) == pytest.approx(expected_pj, rel=tol)


def test_isaac_adc_table_is_extrapolated_geometrically(constants):
    e4, e5 = v("families", "isaac", "adc", "energy_pj")[:2]
    assert cost_units.adc_energy_pj(constants, "isaac", 3) == pytest.approx(e4 * e4 / e5)
    assert cost_units.adc_area_um2(constants, "isaac", 8) == pytest.approx(1200.0)


def test_digital_node_scaling_factors(constants):
    # 22 nm lies 10/12 of the way from 32 nm (column 4) to 20 nm (column 5) of the Stillmaker & Baas table
    assert cost_units.area_scale(constants, 45, 22) == pytest.approx(0.46 / 6 + 0.21 * 5 / 6)
    e = lambda a, b, c: a * 0.64 + b * 0.8 + c  # noqa: E731  (Vdd = 0.8 V)
    e22 = e(0.9559, -0.7823, 0.471) / 6 + e(0.373, -0.1582, 0.04104) * 5 / 6
    assert cost_units.energy_scale(constants, 45, 22) == pytest.approx(e22 / e(1.103, -0.362, 0.2767))
    assert cost_units.area_scale(constants, 45, 45) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ hand-computed
def bit_line_pj(F_um, height_f, v_read, rows=128):
    """NeuroSim's bit line: rows x height_f F of wire at 0.2 fF/um, charged to V_read."""
    return rows * height_f * F_um * 0.2e-15 * v_read**2 * 1e12


def word_line_pj(F_um, width_f, g_max_us=None, cols=128):
    """NeuroSim's 1T1R word line: cols x (width_f F of wire + an access gate) charged to V_dd = 0.85 V; the access
    transistor W = 1.77 x 0.85 V / 791.9 uA/um x 0.2 / (0.25 R_on), its gate (5.245e-10 x 1.2 + 8.004e-10) F/m x W."""
    gate = 0.0
    if g_max_us is not None:
        width_m = 1.77 * 0.85 / 791.9 * 0.2 / (0.25 * 1e6 / g_max_us)
        gate = (5.245e-10 * 1.2 + 8.004e-10) * width_m
    return cols * (width_f * F_um * 0.2e-15 + gate) * 0.85**2 * 1e12


def test_uniform_dense_layer_by_hand(constants):
    """neurosim family, 22 nm 1T1R, bit-serial 4-bit inputs, 6-bit ADC, one 64 x 32 layer on one tile: 32 pair
    signals on the tile's 8 ADCs (64 signals / 8 per ADC) take 4 mux cycles of 1 + 7 ns per pass."""
    m = mapping([layer("fc", K=64, N=32)])
    doc = cost.estimate(m, constants, family="neurosim", tech_nm=22, cell="1t1r", scale_digital=False)
    F2 = 0.022**2
    a_min = v("families", "neurosim", "adc", "min_transistor_area_f2") * F2
    adc_area = a_min * (269 + 109 * 5) + a_min * (209 + 73 * 5)
    add16_area = 36 + (137 - 36) * 8 / 24
    area = {
        "cells": 16384 * 48 * F2,
        "adcs": 8 * adc_area,
        "dacs": 128 * 0.166,
        "sample_hold": 0.0,
        "shift_add": 8 * add16_area,  # bit-serial: one shift-and-add per ADC
        "subtractors": 0.0,  # analog subtraction of the pair: no digital subtractor
        "rescale": 0.0,
        "references": adc_area,
        "activation": 0.0,  # the last layer: no ReLU
        "pooling": 0.0,
        "accumulators": 32 * 16 * 2553.6 * F2,  # a 16-bit register per output (passes are shift-added)
        "buffers": (64 + 32) * 4 * 280 * F2,  # input + output, 4 bits per value
    }
    passes, cycles, t_cycle = 4, 4, 1 + 7
    g_mean = (166.7 + 166.7 / (166.7 / 1.11)) / 2
    e_cell = 0.5**2 * g_mean * 1e-6 * t_cycle * 1e-9 * 1e12
    e_adc = (0.538 * 6 + 4.3753) * 7 * 1e-3  # uW x ns = fJ
    energy = {
        "dac": passes * 64 * cycles * 3.9e-3,  # the rows driven again in every mux cycle
        "word_lines": passes * 64 * cycles * word_line_pj(0.022, 12, 166.7),
        "cells": passes * 4096 * e_cell + passes * 64 * bit_line_pj(0.022, 4, 0.5),  # each column in its cycle
        "adc": passes * 32 * e_adc,
        "sample_hold": 0.0,
        "shift_add": passes * 32 * (0.03 + 0.07 / 3),  # 32 outputs x 1 slice per pass
        "subtraction": 0.0,
        "rescale": 0.0,
        "activation": 0.0,
        "pooling": 0.0,
        "accumulators": passes * 32 * 16 * 0.0051043 * 0.5,  # every shift-add writes a 16-bit register
        "buffers": (64 + 64) * 4 * 10 / 64,  # 64 inputs written, read by the MVM; an 8 KB SRAM's 64-bit access
    }
    tot = doc["total"]
    for k, x in area.items():
        assert tot["area_by_component"][k] == pytest.approx(x), k
    for k, x in energy.items():
        assert tot["energy_by_component"][k] == pytest.approx(x), k
    assert tot["area_um2"] == pytest.approx(sum(area.values()))
    assert tot["energy_pj_per_inference"] == pytest.approx(sum(energy.values()))
    assert tot["latency_ns_per_inference"] == pytest.approx(passes * cycles * t_cycle)  # one MVM
    assert tot["array_power_uw"] == pytest.approx(energy["cells"] / (passes * cycles * t_cycle) * 1e3)
    assert e_adc == pytest.approx(0.0532, rel=1e-3) and e_cell == pytest.approx(0.1678, rel=1e-3)
    assert doc["assumptions"]["time_base_ns"] == {"drive_ns": 1.0, "conversion_ns": 7.0, "cycle_ns": 8.0}


def test_baseline_dense_layer_by_hand(constants):
    """isaac family, 32 nm cross-point cells, one 4-bit DAC pass, 8-bit weights on 2-bit devices (S = 4): two column
    tiles of 64 pair signals, each on 8 ADCs: 8 mux cycles of 1 + 1/1.2 ns."""
    lay = layer("fc", K=64, N=32, S=4, M=3, baseline=True)
    assert (lay["tiles"], lay["adcs"], lay["adc_conversions_per_mvm"], lay["mux_cycles"]) == (2, 16, 128, 8)
    m = mapping([lay], scheme="baseline", input_mode="multibit")
    doc = cost.estimate(m, constants, family="isaac", tech_nm=32, cell="crosspoint", scale_digital=False)
    F2 = 0.032**2
    area = {
        "cells": 32768 * 4 * F2,
        "adcs": 16 * 626.91,
        "dacs": 256 * 0.166015625 * 8,
        "sample_hold": 2 * 64 * 0.0390625,
        "shift_add": 16 * 60.0,
        "subtractors": 0.0,
        "rescale": 32 * 282,
        "references": 626.91,
        "activation": 0.0,
        "pooling": 0.0,
        "accumulators": 32 * 16 * 2553.6 * F2,  # the slices are shift-added
        "buffers": 3 * (64 + 32) * 4 * 280 * F2,  # 3 MVMs' inputs and outputs
    }
    t_cycle = 1 + 1 / 1.2
    e_cell = 0.5**2 * (1.11 + 166.7) / 2 * 1e-6 * t_cycle * 1e-9 * 1e12
    drives = 64 * (8 + 8)  # every row of both column tiles, in each of their 8 cycles
    energy = {
        "dac": drives * 0.41667 * 8,
        "word_lines": drives * word_line_pj(0.032, 2),  # a cross-point row: its wire only
        "cells": 16384 * e_cell + 256 * bit_line_pj(0.032, 2, 0.5),
        "adc": 128 * 1.20,
        "sample_hold": 128 * 0.0010417,
        "shift_add": 128 * 0.021,
        "subtraction": 0.0,
        "rescale": 32 * 0.2,
        "activation": 0.0,
        "pooling": 0.0,
        "accumulators": 128 * 16 * 0.0051043 * 0.5,
        "buffers": (64 + 64) * 4 * 10 / 64,
    }
    tot = doc["total"]
    for k, x in area.items():
        assert tot["area_by_component"][k] == pytest.approx(x), k
    for k, x in energy.items():
        assert tot["energy_by_component"][k] == pytest.approx(3 * x), k  # M = 3 MVMs per inference
    assert tot["area_um2"] == pytest.approx(sum(area.values()))
    assert tot["energy_pj_per_inference"] == pytest.approx(3 * sum(energy.values()))
    assert tot["latency_ns_per_inference"] == pytest.approx(3 * 8 * t_cycle)


# ------------------------------------------------------------------------------------------ comparisons
def test_baseline_has_more_conversions_and_rescale_units(constants):
    uni = cost.estimate(mapping([layer("fc", 64, 32)]), constants)
    base = cost.estimate(mapping([layer("fc", 64, 32, S=4, baseline=True)], scheme="baseline"), constants)
    ue, be = uni["total"]["energy_by_component"], base["total"]["energy_by_component"]
    assert be["adc"] == pytest.approx(4 * ue["adc"])  # 4 slices -> 4x conversions
    assert ue["rescale"] == 0 and be["rescale"] > 0
    assert uni["total"]["area_by_component"]["rescale"] == 0 and base["total"]["area_by_component"]["rescale"] > 0
    imp = cost.improvement(uni, base)
    assert imp["area_pct"] > 0 and imp["energy_pct"] > 0
    assert imp["energy_by_component"]["adc"] == pytest.approx(75.0)
    assert imp["energy_by_component"]["rescale"] == pytest.approx(100.0)


def test_one_reference_block_for_uniform_one_per_layer_for_baseline(constants):
    adc = cost_units.adc_area_um2(constants, "neurosim", 6)
    uni = cost.estimate(mapping([layer("a", 64, 32), layer("b", 33, 10)]), constants)
    base = cost.estimate(
        mapping([layer("a", 64, 32, S=4, baseline=True), layer("b", 33, 10, S=4, baseline=True)], scheme="baseline"),
        constants,
    )
    assert uni["total"]["reference_blocks"] == 1 and base["total"]["reference_blocks"] == 2
    assert uni["total"]["area_by_component"]["references"] == pytest.approx(adc)
    assert base["total"]["area_by_component"]["references"] == pytest.approx(2 * adc)
    for doc in (uni, base):  # layers add up to the total
        assert sum(lay["area_um2"] for lay in doc["layers"]) == pytest.approx(doc["total"]["area_um2"])


def test_time_sharing_reduces_adc_area_only(constants):
    m = mapping([layer("a", 64, 32), layer("b", 200, 32)])  # 8 and 16 ADCs
    plain = cost.estimate(m, constants)
    shared = cost.estimate(m, constants, adc_time_share=True)
    adc = cost_units.adc_area_um2(constants, "neurosim", 6)
    assert plain["total"]["adcs"] == 24 and shared["total"]["adcs"] == 16
    assert plain["time_shared"]["adcs"] == 16
    assert plain["time_shared"]["area_um2"] == pytest.approx(shared["total"]["area_um2"])
    pa, sa = plain["total"]["area_by_component"], shared["total"]["area_by_component"]
    assert pa["adcs"] - sa["adcs"] == pytest.approx(8 * adc)
    assert all(pa[k] == sa[k] for k in cost.AREA_KEYS if k != "adcs")
    assert plain["total"]["energy_by_component"] == shared["total"]["energy_by_component"]
    # per-layer tuning: no time sharing for the baseline, even when asked
    b = mapping([layer("a", 64, 32, S=4, baseline=True), layer("b", 200, 32, S=4, baseline=True)], scheme="baseline")
    bd = cost.estimate(b, constants, adc_time_share=True)
    assert "time_shared" not in bd and bd["assumptions"]["adc_time_share"]["applied"] is False
    assert bd["total"]["area_um2"] == pytest.approx(cost.estimate(b, constants)["total"]["area_um2"])


# ------------------------------------------------------------------------------------------ schema vs constants
ESTIMATE_COST = yaml.safe_load(SCHEMA.read_text())["properties"]["estimate_cost"]["properties"]


@pytest.mark.parametrize("family", ESTIMATE_COST["family"]["enum"])
@pytest.mark.parametrize("cell", ESTIMATE_COST["cell"]["enum"])
def test_every_cell_and_family_the_schema_allows_is_priced(constants, family, cell):
    """estimate_cost.cell / family as the packaged config schema enumerates them: the packaged constants price
    each (a name the schema accepts and the constants spell otherwise fails here, not in the workflow)."""
    lay = layer("fc", 64, 32)
    doc = cost.estimate(mapping([lay]), constants, family=family, tech_nm=22, cell=cell, scale_digital=False)
    f2 = v("cells", cell, "area_f2")
    assert doc["total"]["area_by_component"]["cells"] == pytest.approx(lay["devices"] * f2 * 0.022**2)


@pytest.mark.parametrize("bound", ["minimum", "maximum"])
def test_the_schema_tech_nm_range_is_priced_with_digital_scaling(constants, bound):
    """estimate_cost.tech_nm at either end of the schema's range scales the digital units (the packaged option)
    within the node_scaling table, and the range is the table's."""
    nm = ESTIMATE_COST["tech_nm"][bound]
    nodes = v("node_scaling", "nodes_nm")
    assert nm == (min(nodes) if bound == "minimum" else max(nodes))
    doc = cost.estimate(mapping([layer("fc", 64, 32)]), constants, tech_nm=nm)
    assert doc["total"]["area_um2"] > 0 and doc["assumptions"]["tech_nm"] == nm
    with pytest.raises(ValueError, match="outside the scaling table"):
        cost.estimate(mapping([layer("fc", 64, 32)]), constants, tech_nm=nm + (-1 if bound == "minimum" else 1))


# ------------------------------------------------------------------------------------------ errors, contract
def test_bad_family_cell_mode_and_missing_constants_raise(constants):
    m = mapping([layer("fc", 64, 32)])
    with pytest.raises(ValueError, match="tsmc"):
        cost.estimate(m, constants, family="tsmc")
    with pytest.raises(ValueError, match="2t2r"):
        cost.estimate(m, constants, cell="2t2r")
    with pytest.raises(ValueError, match="input_mode"):
        cost.estimate(mapping([layer("fc", 64, 32)], input_mode="pwm"), constants)
    broken = json.loads(json.dumps(constants))
    del broken["families"]["isaac"]["sample_hold"]["energy_pj"]
    with pytest.raises(ValueError, match="families.isaac.sample_hold.energy_pj"):
        cost.estimate(m, broken, family="isaac")
    bad_layer = mapping([layer("fc", 64, 32)])
    del bad_layer["layers"][0]["adcs"]
    with pytest.raises(ValueError, match="adcs"):
        cost.estimate(bad_layer, constants)
    other = cost.estimate(m, constants, family="isaac")
    with pytest.raises(ValueError, match="famil"):
        cost.improvement(other, cost.estimate(m, constants))


def test_contract_keys_and_file_output(constants, tmp_path):
    src = tmp_path / "mapping.json"
    src.write_text(json.dumps(mapping([layer("fc", 64, 32, M=128)])))
    doc = estimate_file(src, tmp_path / "out" / "cost.json", family="neurosim")
    back = json.loads((tmp_path / "out" / "cost.json").read_text())
    assert back == json.loads(json.dumps(doc))
    assert {"dataset", "variant", "bits", "family", "assumptions", "total", "layers"} <= set(back)
    assert set(back["total"]["area_by_component"]) == set(cost.AREA_KEYS)
    assert set(back["total"]["energy_by_component"]) == set(cost.ENERGY_KEYS)
    assert back["total"]["area_um2"] > 0 and back["total"]["energy_pj_per_inference"] > 0
    lay = back["layers"][0]
    assert {"name", "area_um2", "energy_pj_per_inference", "area_by_component", "energy_by_component"} <= set(lay)
    assert back["time_shared"]["adcs"] == 8
    assert not list((tmp_path / "out").glob("*.tmp"))


@pytest.mark.parametrize("mode, g_read", [("bit_serial", 1000.0), ("multibit", 300.0)])
def test_measured_cell_activity_prices_the_read_conductance(constants, mode, g_read):
    """With read_g_us_per_mvm (what the inputs read, from Simulator.read_activity) the column current costs
    V_read^2 G t_cycle (plus the bit lines, as in the bound); the all-inputs-on upper bound is still reported, and the
    notes say which one priced the energy."""
    m = mapping([layer("fc", K=64, N=32, M=3)], input_mode=mode)
    bound = cost.estimate(m, constants, scale_digital=False)
    m["layers"][0]["read_g_us_per_mvm"] = {"bit_serial": 1000.0, "multibit": 300.0, "mvms_measured": 30, "samples": 10}
    doc = cost.estimate(m, constants, scale_digital=False)
    bit_lines = 3 * 64 * bit_line_pj(0.022, 4, 0.5) * (4 if mode == "bit_serial" else 1)
    current = 3 * 0.5**2 * g_read * 1e-6 * 8e-9 * 1e12
    assert doc["total"]["energy_by_component"]["cells"] == pytest.approx(current + bit_lines)
    assert doc["layers"][0]["array_energy_pj"] == pytest.approx({"column_current": current, "bit_lines": bit_lines})
    assert doc["total"]["cell_energy_upper_bound_pj"] == pytest.approx(bound["total"]["energy_by_component"]["cells"])
    assert doc["assumptions"]["cell_activity"] == "measured" and bound["assumptions"]["cell_activity"] == "upper_bound"
    assert any("measured" in n and "10 training inputs" in n for n in doc["assumptions"]["notes"])
    for k in ("adc", "dac", "word_lines", "subtraction"):  # only the cells change
        assert doc["total"]["energy_by_component"][k] == bound["total"]["energy_by_component"][k]

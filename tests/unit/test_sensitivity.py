"""Sensitivity of the savings (nvmxbar.report.sensitivity, .figure_sensitivity): small mappings (test_cost's
layers, counted by core.layout.count as map_crossbar does) priced by rule estimate_cost's own file step, then
repriced one assumption at a time, every seed against the baseline of its own seed, then averaged over the seeds
(two seeds whose measured read conductance differs by 10 %)."""

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import map_settings

from nvmxbar import files, settings
from nvmxbar.core.cost import improvement
from nvmxbar.core.layout import count
from nvmxbar.devices import load_presets
from nvmxbar.report.device_repricing import DEVICE_FIELDS, MODES, NotRepriceable, preset_device, reprice, set_device
from nvmxbar.report.figure_sensitivity import plot_sensitivity
from nvmxbar.report.figures import save_figure
from nvmxbar.report.sensitivity import GRID, Repricing, marks, value_label, values
from nvmxbar.report.sensitivity import build_sensitivity as build_declared
from nvmxbar.report.sensitivity_text import display_sensitivity, report_section, write_sensitivity
from nvmxbar.stages.estimate_cost import estimate_file

from .test_cost import layer, mapping

#: rule estimate_cost's pricing settings
COST_CFG = settings.Pricing(constants=None, family="neurosim", tech_nm=22, cell="1t1r", adc_time_share=False)
VARIANTS, BITS, SEEDS = ["baseline", "uniform", "unipolar"], [2, 4], [0, 1]
#: (name, matrix rows, outputs, MVMs per inference, input channels) of a small three-layer network: two
#: convolutions (kernels 25 and 15: a buffered input value serves several MVMs) and a dense layer
NET = [("layers.0", 150, 16, 64, 6), ("layers.1", 300, 32, 16, 20), ("layers.2", 64, 6, 1, 64)]


def mapped(variant, bits):
    """mapping.json of NET on 128 x 128 tiles (8 columns per ADC, 6-bit ADCs, 4-bit bit-serial inputs): the
    baseline bit-sliced (8-bit weights) in pairs with per-layer periphery, uniform in pairs, unipolar one device
    per weight."""
    base = variant == "baseline"
    S, P = (math.ceil(8 / bits), 2) if base else (1, 1 if variant == "unipolar" else 2)
    layers = [
        {**layer(n, K, N, S=S, P=P, M=M, baseline=base), "weight_rows": K, "in_channels": c} for n, K, N, M, c in NET
    ]
    m = {**mapping(layers, scheme=variant, bits=bits), "dataset": "har", "variant": variant}
    m["chip"]["device"].update(g_max_us=1e6 / 6000, on_off_ratio=150.0)  # R_on = 6 kOhm: the neurosim_v13 preset
    count(m)  # the counts as map_crossbar writes them
    return m


def activity(mapping, seed=0, cells=True):
    """A measured read conductance per layer and the cells it reads, as Simulator.read_activity reports them (10 %
    more per seed); ``cells`` False: as a cost.json older than read_cells_per_mvm."""
    k = 1 + 0.1 * seed
    out = []
    for i in range(len(mapping["layers"])):
        out.append({"bit_serial": 40.0 * (i + 1) * k, "multibit": 15.0 * (i + 1) * k, "mvms_measured": 4, "samples": 4})
        if cells:
            out[-1]["read_cells_per_mvm"] = {"bit_serial": 10.0 * (i + 1) * k, "multibit": 4.0 * (i + 1) * k}
    return out


def write_results(root, measured=True, cells=True):
    """results/har/<variant>/b<bits>/seed<s>/{mapping,cost}.json, cost.json written by rule estimate_cost's file
    step."""
    for v in VARIANTS:
        for b in BITS:
            for seed in SEEDS:
                d = root / "har" / v / f"b{b}" / f"seed{seed}"
                mapping = mapped(v, b)
                files.write_json(d / "mapping.json", mapping)
                kw = {k: getattr(COST_CFG, k) for k in ("family", "tech_nm", "cell", "adc_time_share")}
                act = activity(mapping, seed, cells) if measured else None
                estimate_file(d / "mapping.json", d / "cost.json", None, act, **kw)
    return root


def build_sensitivity(root, datasets, variants, bits, seeds, cost_cfg):
    """The table from this test's tree, its mapping.json and cost.json declared as rule report_sensitivity does."""
    files = {
        (ds, v, int(b), int(s)): {f: root / ds / v / f"b{b}" / f"seed{s}" / f for f in ("mapping.json", "cost.json")}
        for ds in datasets
        for v in variants
        for b in bits
        for s in seeds
    }
    return build_declared(files, datasets, variants, bits, seeds, cost_cfg)


def write_md(t, folder):
    return write_sensitivity(t, folder / "sensitivity.csv", folder / "sensitivity.md")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("sens") / "results")


@pytest.fixture(scope="module")
def table(results):
    return build_sensitivity(results, ["har"], VARIANTS, BITS, SEEDS, COST_CFG)


def rows(t, variant, bits, parameter):
    return t[(t.variant == variant) & (t.bits == bits) & (t.parameter == parameter)].set_index("value")


def cost_json(root, variant, bits, seed=0):
    return json.loads((root / "har" / variant / f"b{bits}" / f"seed{seed}" / "cost.json").read_text())


def test_one_row_per_deployment_assumption_and_value(table):
    n = sum(len(values(p, None)) for p in GRID)  # the run's values are all on the grid here
    assert len(table) == 2 * len(BITS) * n  # one row per value, not one per seed
    assert (table.n_seeds == len(SEEDS)).all()
    assert set(table.variant) == {"uniform", "unipolar"} and set(table.bits) == set(BITS)
    one = table[(table.variant == "unipolar") & (table.bits == 2)]
    assert one.groupby("parameter").configured.sum().to_dict() == dict.fromkeys(GRID, 1)
    run = one[one.configured].set_index("parameter").value
    assert run["r_on_ohm"] == pytest.approx(6000) and run["v_read_v"] == 0.5  # the chip device's read voltage
    assert run["device"] == "neurosim_v13" and run["on_off_ratio"] == 150
    assert (run["adc_bits"], run["adc_mux"], run["family"], run["subtraction"]) == (6, 8, "neurosim", "analog")


@pytest.mark.parametrize("measured", [True, False])
def test_run_point_reproduces_estimate_cost(results, table, tmp_path, measured):
    """Every assumption at the run's value gives the improvement of rule estimate_cost's own cost.json files,
    each seed against the baseline of its own seed, averaged over the seeds: the measured cell activity is kept
    (cost.json keeps it per layer)."""
    root = results if measured else write_results(tmp_path / "results", measured=False)
    t = table if measured else build_sensitivity(root, ["har"], VARIANTS, BITS, SEEDS, COST_CFG)
    for v in ("uniform", "unipolar"):
        for b in BITS:
            imps = [improvement(cost_json(root, v, b, s), cost_json(root, "baseline", b, s)) for s in SEEDS]
            energy = [cost_json(root, v, b, s)["total"]["energy_pj_per_inference"] for s in SEEDS]
            run = t[(t.variant == v) & (t.bits == b) & t.configured]
            assert len(run) == len(GRID)
            assert np.allclose(run.area_saving_pct, np.mean([i["area_pct"] for i in imps]), rtol=1e-12)
            assert np.allclose(run.energy_saving_pct, np.mean([i["energy_pct"] for i in imps]), rtol=1e-12)
            assert np.allclose(run.variant_energy_pj, np.mean(energy))  # the mean, not the sum over the seeds
            assert np.allclose(run.variant_area_um2, cost_json(root, v, b)["total"]["area_um2"])
            if measured:  # the read energy is measured per seed: the seeds differ, the table is their mean
                assert energy[0] != pytest.approx(energy[1])


def test_without_config_it_prices_as_cost_json_states(results, table):
    again = build_sensitivity(results, ["har"], VARIANTS, BITS, SEEDS, None)
    pd.testing.assert_frame_equal(again, table)


def test_buffer_reuse_moves_only_the_buffer_energy(table):
    for v in ("uniform", "unipolar"):
        r = rows(table, v, 2, "buffer_reads")
        assert r.loc["per MVM"].configured and not r.loc["once"].configured  # the packaged constant: no reuse
        assert r.area_saving_pct.nunique() == 1
        for design in ("variant", "baseline"):
            assert r.loc["once", f"energy_buffers_{design}_pj"] < r.loc["per MVM", f"energy_buffers_{design}_pj"]
            for other in ("adc", "cells", "dac"):
                assert r[f"energy_{other}_{design}_pj"].nunique() == 1


def test_r_on_moves_energy_not_area(table):
    for v in ("uniform", "unipolar"):
        r = rows(table, v, 2, "r_on_ohm")
        assert np.allclose(r.area_saving_pct, r.area_saving_pct.iloc[0])
        assert r.energy_saving_pct.nunique() == len(r)  # the cells' share of the energy changes
        # the array's column current scales with 1/R_on (the bit lines do not): a + b / R_on; the converters do not move
        for design in ("variant", "baseline"):
            cells = r[f"energy_cells_{design}_pj"]
            six = cells.loc[r.configured].iloc[0]
            ratio = (1 / 6e3 - 1 / 1e6) / (1 / 6e3 - 1 / 20e3)
            assert six - cells[1e6] == pytest.approx((six - cells[20e3]) * ratio)
            assert np.allclose(r[f"energy_adc_{design}_pj"], r[f"energy_adc_{design}_pj"].iloc[0])


def test_read_voltage_scales_the_array_energy_not_the_word_lines(table):
    """The chip's read voltage: the column current and the bit lines go with V_read^2; the word lines are charged
    to V_dd, the areas do not move."""
    r = rows(table, "unipolar", 4, "v_read_v")
    for design in ("variant", "baseline"):
        cells = r[f"energy_cells_{design}_pj"]
        assert cells[0.1] == pytest.approx(cells[0.5] * (0.1 / 0.5) ** 2)
        assert np.allclose(r[f"energy_word_lines_{design}_pj"], r[f"energy_word_lines_{design}_pj"].iloc[0])
    assert np.allclose(r.area_saving_pct, r.area_saving_pct.iloc[0])


def test_fewer_columns_per_adc_means_more_adcs_in_both_designs(table):
    for v in ("uniform", "unipolar"):
        r = rows(table, v, 2, "adc_mux")
        for design in ("variant", "baseline"):
            assert r[f"{design}_adcs"][4] == 2 * r[f"{design}_adcs"][8]
            assert r[f"area_adcs_{design}_um2"][4] == pytest.approx(2 * r[f"area_adcs_{design}_um2"][8])
            assert r[f"{design}_adcs"][1] == 8 * r[f"{design}_adcs"][8]


def test_adc_bits_price_both_designs_and_family_switches_converters(table):
    r = rows(table, "uniform", 2, "adc_bits")
    assert list(r.index) == [4, 5, 6, 7, 8]
    assert r.area_adcs_variant_um2.is_monotonic_increasing and r.area_adcs_baseline_um2.is_monotonic_increasing
    assert np.allclose(r.area_cells_variant_um2, r.area_cells_variant_um2.iloc[0])
    assert "accuracy is not re-simulated" in r.note.iloc[0]
    f = rows(table, "uniform", 2, "family")
    assert f.area_adcs_variant_um2["isaac"] != pytest.approx(f.area_adcs_variant_um2["neurosim"])


def test_subtraction_rows_recount_both_designs(table):
    """digital = both columns of a pair converted (layout.count reads converters.subtraction): twice the
    conversions of a paired design, so twice its ADC energy."""
    r = rows(table, "uniform", 2, "subtraction")
    assert list(r.index) == ["analog", "digital"] and bool(r.configured["analog"])
    for design in ("variant", "baseline"):  # uniform and the baseline both sit in pairs
        assert r[f"energy_adc_{design}_pj"]["digital"] == pytest.approx(2 * r[f"energy_adc_{design}_pj"]["analog"])


def test_marks_at_the_thresholds(table):
    assert marks(80.0, 45.0) == {"reaches_area_80": True, "reaches_energy_45": True}
    assert marks(79.999, 44.999) == {"reaches_area_80": False, "reaches_energy_45": False}
    assert marks(None, math.nan) == {"reaches_area_80": False, "reaches_energy_45": False}
    assert (table.reaches_area_80 == (table.area_saving_pct >= 80)).all()
    assert (table.reaches_energy_45 == (table.energy_saving_pct >= 45)).all()


def test_value_labels_and_the_run_value_on_the_grid():
    assert value_label("r_on_ohm", 6000.0) == "6 kΩ" and value_label("r_on_ohm", 1e6) == "1 MΩ"
    assert value_label("v_read_v", 0.2) == "0.2 V" and value_label("adc_mux", 8) == "8"
    assert values("r_on_ohm", 5999.88) == [5999.88, 20e3, 100e3, 1e6]  # the run's own replaces the nominal 6 k
    assert values("adc_mux", 2) == [1, 2, 4, 8, 16] and values("family", "neurosim") == ["neurosim", "isaac"]


def test_table_written_as_csv_and_markdown(table, tmp_path):
    paths = write_md(table, tmp_path)
    assert [p.name for p in paths] == ["sensitivity.csv", "sensitivity.md"]
    back = pd.read_csv(paths[0])
    assert len(back) == len(table) and {"area_cells_baseline_um2", "energy_adc_variant_pj"} <= set(back.columns)
    md = paths[1].read_text()
    heads, body = display_sensitivity(table)
    assert heads[:3] == ["dataset", "assumption", "value"] and "unipolar 2-bit area (%)" in heads
    assert md.count("\n| har |") == len(body) == len(table.groupby(["parameter", "value_label"]))
    assert "*(run)*" in md and "not re-simulated" in md


def test_figure_and_report_section(table, tmp_path):
    paths = save_figure(plot_sensitivity(table, "har"), "sensitivity_har", tmp_path, 80)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 20_000
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    lines = report_section(table, "unipolar", tmp_path, {"sensitivity_har": paths[0]}, lambda p: str(p))
    text = "\n".join(lines)
    assert text.startswith("## Sensitivity of the savings") and "![sensitivity_har]" in text
    assert text.count("- UCI HAR, ") == len(BITS) and "area ≥ 80 %" in text and "energy ≥ 45 %" in text


def test_a_missing_seed_names_its_file(results):
    from nvmxbar.report.collect import ReportInputError

    with pytest.raises(ReportInputError, match=str(results / "har/baseline/b2/seed2/mapping.json")):
        build_sensitivity(results, ["har"], VARIANTS, BITS, [*SEEDS, 2], COST_CFG)


def test_no_baseline_gives_an_empty_table_and_a_figure(tmp_path):
    t = build_sensitivity(tmp_path, ["har"], ["uniform"], [2], [0], COST_CFG)
    assert t.empty and "parameter" in t.columns
    assert write_md(t, tmp_path)[1].read_text().count("| dataset |") == 1
    save_figure(plot_sensitivity(t, "har"), "empty", tmp_path, 50)
    assert Repricing.from_settings(COST_CFG).family == "neurosim"


# ------------------------------------------------------------------------------------------ another device
def test_reprice_by_hand():
    """S = A G_min + dG x levels: 100 uS read with A = 10 cells at (G_min 1, dG 3) is 10 + 30 x 3; at (2, 5):
    20 + 30 x 5. Without A only a common factor of G_min and dG can be followed."""
    assert reprice(100.0, 10.0, (1.0, 3.0), (2.0, 5.0)) == pytest.approx(170.0)
    assert reprice(100.0, None, (1.0, 3.0), (2.0, 6.0)) == pytest.approx(200.0)
    with pytest.raises(NotRepriceable, match="read_cells_per_mvm"):
        reprice(100.0, None, (1.0, 3.0), (2.0, 5.0))


def hand_priced(mapping, mode, g_read, cells, device):
    """cost.json of ``mapping`` (activity g_read, cells per layer at the run's device) on ``device``, computed here:
    the chip's device replaced and each layer's read G set to A G_min' + (S - A G_min) / dG x dG'."""
    m = copy.deepcopy(mapping)
    old = m["chip"]["device"]
    L = m["device"]["levels"] - 1
    gmin0, gmin1 = old["g_max_us"] / old["on_off_ratio"], device["g_max_us"] / device["on_off_ratio"]
    dg0, dg1 = (old["g_max_us"] - gmin0) / L, (device["g_max_us"] - gmin1) / L
    for lay, s, a in zip(m["layers"], g_read, cells, strict=True):
        lay["read_g_us_per_mvm"] = {mode: a * gmin1 + (s - a * gmin0) / dg0 * dg1}
    m["chip"]["device"] = device
    return Repricing.from_settings(COST_CFG).cost(m)


@pytest.mark.parametrize("preset", ["neurosim_v14", "rram_wan2022", "pcm_aihwkit"])
def test_each_preset_reprices_both_designs_as_by_hand(table, preset):
    """The device rows: both designs on the preset's G_max, ON/OFF ratio and read voltage, their measured activity
    repriced exactly; the savings the mean over the seeds of each seed's against its own baseline."""
    device = preset_device(preset)
    assert (device["g_max_us"], device["on_off_ratio"]) == tuple(load_presets()[preset][k] for k in DEVICE_FIELDS[:2])
    for v in ("uniform", "unipolar"):
        for b in BITS:
            priced = {}
            for design in (v, "baseline"):
                m = mapped(design, b)
                mode = m["chip"]["input_mode"]
                for seed in SEEDS:
                    act = activity(m, seed)
                    g = [a[mode] for a in act]
                    cells = [a["read_cells_per_mvm"][mode] for a in act]
                    priced[design, seed] = hand_priced(m, mode, g, cells, device)["total"]
            row = rows(table, v, b, "device").loc[preset]
            saving = [
                100 * (1 - priced[v, s]["energy_pj_per_inference"] / priced["baseline", s]["energy_pj_per_inference"])
                for s in SEEDS
            ]
            assert row.energy_saving_pct == pytest.approx(np.mean(saving), rel=1e-9)
            assert row.variant_energy_pj == pytest.approx(
                np.mean([priced[v, s]["energy_pj_per_inference"] for s in SEEDS])
            )
            assert row.area_saving_pct == pytest.approx(
                100 * (1 - priced[v, 0]["area_um2"] / priced["baseline", 0]["area_um2"])
            )
            assert not row.configured and "not re-simulated" in row.note


def test_on_off_ratio_moves_g_min_only(table):
    """The ON/OFF rows: G_max kept, G_min = G_max / ratio; a lower ratio reads more G_min current in both designs."""
    r = rows(table, "unipolar", 2, "on_off_ratio")
    assert list(r.index) == [10, 17, 40, 100, 150] and bool(r.configured[150])
    for design in ("variant", "baseline"):
        cells = r[f"energy_cells_{design}_pj"]
        assert cells.is_monotonic_decreasing and cells[10] > cells[150]
    assert np.allclose(r.area_saving_pct, r.area_saving_pct.iloc[0])  # the device moves no area


def test_the_decomposition_holds_on_a_simulated_crossbar():
    """Simulator.read_activity's read_cells_per_mvm is the G_min coefficient of its read G: a network measured on
    rram_wan2022 and repriced to pcm_aihwkit equals the same network measured on pcm_aihwkit."""
    from nvmxbar.core.schemes import map_network
    from nvmxbar.core.simulator import Simulator

    from .test_report import make_net

    net, x = make_net({"weight_bits": 2, "dac_bits": 4, "adc_bits": 6})
    measured = {}
    for preset in ("rram_wan2022", "pcm_aihwkit"):
        cfg = map_settings(rows=64, cols=32, adc_mux=8, adc_ratio="free", preset=preset, baseline_adc_fit=False)
        arrays, m = map_network(net, 2, cfg, calib_x=x)
        measured[preset] = (m, Simulator(arrays, m).read_activity(x[:16]))
    m, act = measured["rram_wan2022"]
    moved = copy.deepcopy(m)
    for lay, a in zip(moved["layers"], act, strict=True):
        lay["read_g_us_per_mvm"] = {k: a[k] for k in MODES}
        lay["read_cells_per_mvm"] = a["read_cells_per_mvm"]
    set_device(moved, preset_device("pcm_aihwkit"))
    assert moved["chip"]["device"] == measured["pcm_aihwkit"][0]["chip"]["device"]
    for lay, direct in zip(moved["layers"], measured["pcm_aihwkit"][1], strict=True):
        for k in MODES:
            assert lay["read_g_us_per_mvm"][k] == pytest.approx(direct[k], rel=1e-9)
            assert direct["read_cells_per_mvm"][k] > 0


def test_without_read_cells_the_device_rows_are_not_priced(tmp_path):
    """A cost.json older than read_cells_per_mvm: the preset and ON/OFF rows are NaN with the reason (the measured
    activity cannot follow G_min); the on-resistance rows still are priced (G_min and dG scale alike)."""
    root = write_results(tmp_path / "results", cells=False)
    t = build_sensitivity(root, ["har"], ["baseline", "unipolar"], [2], [0], COST_CFG)
    for p in ("device", "on_off_ratio"):
        r = t[t.parameter == p]
        moved = r[~r.configured]
        assert moved.area_saving_pct.isna().all() and moved.note.str.contains("rerun estimate_cost").all()
        assert r[r.configured].energy_saving_pct.notna().all()  # the run's own device needs no repricing
    assert t[t.parameter == "r_on_ohm"].energy_saving_pct.notna().all()
    assert "n/a" in "".join(c for row in display_sensitivity(t)[1] for c in row)
    text = "\n".join(report_section(t, "unipolar", tmp_path, {}, str))
    assert "not repriced (see the note in sensitivity.csv): device preset neurosim_v14, rram_wan2022" in text
    assert "except device preset" not in text  # an unpriced row is neither reached nor missed

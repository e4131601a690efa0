"""The baseline at its best (nvmxbar.core.converters, nvmxbar.stages.map_crossbar.fit_baseline): its slices combine by
powers of two, the offset encoding is exact and counted, and its DAC bits (the ADC off), ADC bits, weight bits and
encoding are fitted on the validation split, the cheapest within the tolerance deployed."""

from dataclasses import replace

import pytest
import torch
from conftest import SMALL_ARCH, chip_of, make_synthetic_npz, map_settings, small_net

from nvmxbar.core import cost, noise
from nvmxbar.core.converters import ENCODINGS, adc_code_range, adc_steps, slice_ranges, slices_of
from nvmxbar.core.cost_units import load_constants
from nvmxbar.core.networks import make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator
from nvmxbar.settings import MapSettings, NoiseModel, from_params, params
from nvmxbar.stages import map_crossbar
from nvmxbar.stages.estimate_cost import check_operations
from nvmxbar.stages.map_crossbar import fewest_bits, fit_baseline, price

ARCH = SMALL_ARCH
DENSE = {**ARCH, "conv": [], "hidden": []}  # one dense layer: 288 inputs + a bias row, 6 outputs
MODES = ["multibit", "bit_serial"]
SUBTRACTIONS = ["analog", "digital"]


def mapped(net, x, rows=32, cols=32, **over):
    return map_network(net, 2, map_settings(rows=rows, cols=cols, **over), calib_x=x)


def test_slice_ranges_are_the_lsb_range_times_the_smallest_power_of_two_that_holds_each():
    ranges, shifts = slice_ranges([8.0, 3.0, 0.0, 17.0, 8.0], "pow2")
    assert shifts == [0, -1, 0, 2, 0] and ranges == [8.0, 4.0, 8.0, 32.0, 8.0]  # a zero range takes the LSB's
    assert slice_ranges([8.0, 3.0], "free") == ([8.0, 3.0], None)
    assert [slices_of("differential", w, 2) for w in (2, 3, 7, 8)] == [1, 1, 3, 4]  # the magnitude: wb - 1 bits
    assert [slices_of("offset", w, 2) for w in (2, 3, 7, 8)] == [1, 2, 4, 4]  # code + 2^(wb-1): wb bits


def test_baseline_slices_combine_by_powers_of_two():
    """pow2 (the default): each slice's ADC step is the LSB slice's x 2^shift, the smallest power of two whose range
    holds the slice's own calibrated range (free's), so a slice's codes enter its output by a shift; mapping.json
    records the integer shifts; each distinct range is a reference. free keeps the calibrated ranges and pays a
    multiply per converted code of every slice but the LSB."""
    net, x = small_net(ARCH, None)
    arrays, pow2 = mapped(net, x)
    _, free = mapped(net, x, baseline_slice_combination="free")
    S = pow2["slices"]
    assert S == 4 and pow2["converters"]["combination"] == "pow2" and free["converters"]["slice_shifts"] is None
    sim = Simulator(arrays, pow2)
    for i, (p, f) in enumerate(zip(pow2["layers"], free["layers"], strict=True)):
        shifts, own = p["converters"]["slice_shifts"], f["adc_fullscale"]  # own: each slice's calibrated range
        assert pow2["converters"]["slice_shifts"][i] == shifts and all(type(k) is int for k in shifts)
        assert shifts[0] == 0 and p["adc_fullscale"][0] == own[0]
        for k in range(1, S):
            assert p["adc_fullscale"][k] == own[0] * 2.0 ** shifts[k]
            assert own[k] <= p["adc_fullscale"][k] < 2 * own[k]  # holds its range, at most one bit coarser
        steps, _ = adc_steps(sim.chip, sim.mapping, p)
        assert [float(steps[k] / steps[0]) for k in range(S)] == [2.0**k for k in shifts]  # exactly a shift
        assert p["adc_ranges"] == len(set(shifts)) and f["adc_ranges"] == S
        assert own[-1] < own[0] / 2  # the MSB digit of most (small) weights is 0: a far smaller range than the LSB's
    outputs = sum(s["outputs"] for s in pow2["layers"])
    assert pow2["total"]["rescale_units"] == outputs  # the per-layer rescale alone
    assert free["total"]["rescale_units"] == outputs + sum(s["adcs"] for s in free["layers"])  # + a multiplier/ADC
    assert pow2["total"]["adc_ranges"] == sum(len(set(s)) for s in pow2["converters"]["slice_shifts"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("subtraction", SUBTRACTIONS)
def test_offset_encoding_computes_what_differential_pairs_compute(mode, subtraction):
    """Offset encoding (code + 2^(wb-1) in unsigned digits, one device per slice, 2^(wb-1) x the input-code sum
    subtracted digitally) on several row and column tiles: the ideal crossbar's exact sums equal the differential
    pairs' in both input modes and both subtraction schemes."""
    net, x = small_net(ARCH, None)
    out = {}
    for enc in ENCODINGS:
        arrays, m = mapped(net, x, rows=16, cols=8, input_mode=mode, subtraction=subtraction, baseline_encodings=[enc])
        assert m["encoding"] == enc and max(s["row_tiles"] for s in m["layers"]) > 1
        with torch.no_grad():
            out[enc] = Simulator(arrays, m).forward(x, adc=False)[0]
    assert m["pair"] == 1 and m["layers"][1]["weight_offset"] == 128
    assert torch.allclose(out["offset"], out["differential"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_offset_encoding_is_exact_through_an_adc_that_does_not_clip(mode):
    """With an ADC step of one (weight level x input code) and no clipping, every partial sum is its own code: the
    offset-encoded crossbar gives the differential one's integer result, through an unsigned ADC (codes 0 ..
    2^bits - 1) wherever the inputs are non-negative (every layer but the first, whose inputs are signed)."""
    net, x = small_net(ARCH, None)
    out = {}
    for enc in ENCODINGS:
        arrays, m = mapped(net, x, rows=16, cols=8, input_mode=mode, baseline_adc_bits=16, baseline_encodings=[enc])
        for spec in m["layers"]:
            spec["adc_fullscale"] = [float(adc_code_range(spec, 16)[1])] * spec["slices"]  # step 1
        sim = Simulator(arrays, m)
        with torch.no_grad():
            out[enc] = sim.forward(x)[0]
            assert torch.allclose(out[enc], sim.forward(x, adc=False)[0], rtol=0, atol=1e-9)
    adc = [s["converters"]["adc"] for s in m["layers"]]
    assert adc == ["signed"] + ["unsigned"] * (len(adc) - 1)
    assert adc_code_range(m["layers"][1], 6) == (0, 63) and adc_code_range(m["layers"][0], 6) == (-31, 31)
    assert torch.allclose(out["offset"], out["differential"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("scheme", ["offset", "unipolar"])
@pytest.mark.parametrize("subtraction", SUBTRACTIONS)
def test_a_population_of_chips_runs_one_device_columns(scheme, subtraction):
    """Three chips drawn with programming and read noise: each chip's own inputs reach the input-code sums (the
    offset encoding's, and a digitally subtracted G_min offset's) of every layer; with a zero sigma every chip is the
    ideal one."""
    if scheme == "offset":
        net, x = small_net(ARCH, None)
        arrays, m = mapped(net, x, rows=16, cols=8, subtraction=subtraction, baseline_encodings=["offset"])
    else:
        quant = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_tile_rows": 16, "adc_ratio": "pow2"}
        net, x = small_net(make_arch(ARCH["in_shape"], 6, {**ARCH, "polarity": "positive"}), quant)
        arrays, m = map_network(net, 2, map_settings(rows=16, cols=8, subtraction=subtraction, **chip_of(net)))
    sim = Simulator(arrays, m)
    with torch.no_grad():
        ideal = sim.forward(x[:16])[0]
        for sigma in (0.0, 0.05):
            model = replace(NoiseModel.programming(sigma), read_sigma=sigma / 5)
            chips = sim.chips(noise.Perturbation(model, 3, sim, torch.Generator().manual_seed(0)))
            y = sim.forward(x[:16], perturb=chips)
            assert y.shape == (3, 16, 6) and torch.isfinite(y).all()
            assert (y == ideal).all() if sigma == 0 else not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("subtraction", SUBTRACTIONS)
def test_offset_encoding_counts_by_hand(subtraction):
    """One dense layer, K = 289 rows (288 inputs + the bias row), N = 6 outputs, 8-bit weights on 2-bit devices, tiles
    of 128 x 16, 8 columns per ADC. Differential pairs: S = ceil(7/2) = 4 slices x 2 devices = 48 columns; offset:
    S = ceil(8/2) = 4 slices x 1 device = 24 columns, plus the digital offset: K adds and N subtractions per MVM.
    The simulator counts the same while it runs."""
    net, x = small_net(DENSE, None)
    maps = {}
    for enc in ENCODINGS:
        arrays, m = mapped(net, x, rows=128, cols=16, subtraction=subtraction, baseline_encodings=[enc])
        for layer, ops in zip(m["layers"], Simulator(arrays, m).count_operations(x[:4], bs=3), strict=True):
            check_operations(layer, ops)  # raises on any difference
        maps[enc] = m["layers"][0]
    d, o = maps["differential"], maps["offset"]
    K, N, rt = 289, 6, 3
    assert (d["slices"], d["pair"], d["col_tiles"], o["slices"], o["pair"], o["col_tiles"]) == (4, 2, 3, 4, 1, 2)
    digital = subtraction == "digital"
    refs = 0 if digital else 2  # analog: one reference column of G_min cells per column tile, on every row tile
    assert o["devices"] == rt * 2 * 128 * 16 + rt * 128 * refs and d["devices"] == rt * 3 * 128 * 16
    assert o["used_cells"] == K * 24 == d["used_cells"] / 2
    assert o["dacs"] == rt * 2 * 128 < d["dacs"] == rt * 3 * 128
    # rows re-driven every mux cycle: offset 8 + 4 cycles (16 and 8 signals, 2 ADCs per tile), pairs 3 x 8
    assert o["dac_activations_per_mvm"] == K * 12 < d["dac_activations_per_mvm"] == K * 24
    # a reference column is read in every mux cycle of its tile (8 + 4)
    assert o["cell_reads_per_mvm"] == K * (24 + (0 if digital else 12)) and d["cell_reads_per_mvm"] == K * 48
    assert o["adc_conversions_per_mvm"] == N * 4 * rt  # one per slice column: half the pairs' when they are digital
    assert d["adc_conversions_per_mvm"] == N * 4 * rt * (2 if digital else 1)
    # the offset: K adds (input-code sum, bias drive included), N subtractions; digital: + each column's G_min offset
    assert o["subtractions_per_mvm"] == K + N + (N * 4 * rt if digital else 0)
    assert o["subtractors"] == N + 1 + (o["adcs"] if digital else 0)
    assert d["subtractions_per_mvm"] == (N * 4 * rt if digital else 0)
    assert o["rescales_per_mvm"] == d["rescales_per_mvm"] == N and o["sign_flips_per_mvm"] == 0


def test_fewest_bits_searches_both_ways():
    """Down from the start while within (the last width within, though accuracy is not monotone), up until within,
    else the most accurate width tried, not the last."""
    acc = {2: 0.5, 3: 0.8, 4: 0.9, 5: 0.85, 6: 0.95, 7: 0.9, 8: 0.96}
    calls = []

    def accuracy(w):
        calls.append(w)
        return acc[w]

    assert fewest_bits(6, 2, 8, accuracy, 0.85) == (4, True) and calls == [6, 5, 4, 3]
    calls.clear()
    assert fewest_bits(6, 2, 8, accuracy, 0.955) == (8, True) and calls == [6, 7, 8]
    assert fewest_bits(6, 2, 7, accuracy, 0.99) == (6, False)  # 6 and 7 fail: the more accurate, not the last
    assert fewest_bits(2, 2, 8, accuracy, 0.5) == (2, True)


def test_baseline_fit_goes_below_its_start_and_deploys_the_cheapest(tmp_path):
    """Every width within the tolerance (100 points): each encoding's DAC goes down from its start (4 bits) to 2 with
    the ADC off, its ADC from its start (6 bits) to 2 at those DAC bits, its weights from 8 bits down to 2 at those
    ADC bits, the ADC refit there costs nothing new; both candidates are priced as estimate_cost prices them and the
    one of least energy per inference is deployed."""
    npz = make_synthetic_npz(tmp_path / "d.npz", n_val=64)
    torch.manual_seed(0)
    net = small_net({**ARCH, "num_classes": 3}, None)[0].float()
    s = map_settings(rows=32, cols=32, baseline_fit_tolerance_pct=100.0)
    arrays, mapping = fit_baseline(net, 2, s, torch.randn(64, 9, 32), npz, "cpu")
    fit, chosen = mapping["baseline_adc_fit"], mapping["baseline_candidates"]
    by = lambda enc: [  # noqa: E731
        (t["dac_bits"], t["weight_bits"], t["adc_bits"], t["adc"]) for t in fit["tries"] if t["encoding"] == enc
    ]
    assert by("all") == [(d, 8, None, False) for d in (4, 3, 2)]  # the ADC off: one DAC fit for every encoding
    for enc in ENCODINGS:
        assert by(enc) == [(2, 8, a, True) for a in (6, 5, 4, 3, 2)] + [(2, w, 2, True) for w in (7, 6, 5, 4, 3, 2)]
    cands = {c["encoding"]: c for c in chosen["candidates"]}
    assert set(cands) == set(ENCODINGS)
    assert all((c["dac_bits"], c["weight_bits"], c["adc_bits"]) == (2, 2, 2) for c in cands.values())
    best = min(cands.values(), key=lambda c: c["energy_pj_per_inference"])
    assert chosen["deployed"] == best["encoding"] == mapping["encoding"] == fit["encoding"] and best["deployed"]
    assert fit["reached"] and (fit["adc_bits"], fit["weight_bits"]) == (2, 2) == (mapping["chip"]["adc_bits"], 2)
    assert fit["dac_bits"] == mapping["chip"]["dac_bits"] == 2 and fit["start"]["dac_bits"] == 4
    assert mapping["weight_bits"] == 2 and mapping["slices"] == slices_of(best["encoding"], 2, 2)
    assert price(mapping, s.baseline.pricing)["energy_pj_per_inference"] == best["energy_pj_per_inference"]
    assert fit["val_samples"] == 64 and arrays["L0.levels"].shape[-1] == 32


@pytest.mark.parametrize("case", ["one within", "none within"])
def test_baseline_deploys_the_candidate_within_tolerance_else_the_most_accurate(tmp_path, monkeypatch, case):
    """Validation accuracies set by hand: an encoding within the tolerance is deployed whatever it costs; with none
    within, the most accurate try of each encoding is its candidate (reached false) and the most accurate deployed.
    The DAC fit (the ADC off) runs once, on the first encoding's mapping, and serves both."""
    npz = make_synthetic_npz(tmp_path / "d.npz", n_val=32)
    torch.manual_seed(0)
    net = small_net({**ARCH, "num_classes": 3}, None)[0].float()

    def ideal_accuracy(sim, x, y, **kw):
        m = sim.mapping
        if case == "one within":
            return 1.0 if m["encoding"] == "differential" else 0.0
        return 0.1 if m["encoding"] == "offset" and m["chip"]["adc_bits"] == 7 else 0.0

    monkeypatch.setattr(map_crossbar.noise, "ideal_accuracy", ideal_accuracy)
    s = map_settings(rows=32, cols=32)
    _, mapping = fit_baseline(net, 2, s, torch.randn(32, 9, 32), npz, "cpu")
    fit, chosen = mapping["baseline_adc_fit"], mapping["baseline_candidates"]
    cands = {c["encoding"]: c for c in chosen["candidates"]}
    if case == "one within":
        assert chosen["deployed"] == "differential" and fit["reached"] and "cheapest" in chosen["why"]
        assert (cands["differential"]["adc_bits"], cands["differential"]["weight_bits"]) == (2, 2)
        assert (cands["differential"]["dac_bits"], cands["offset"]["dac_bits"]) == (2, 2)  # one DAC fit
        assert (cands["offset"]["adc_bits"], cands["offset"]["weight_bits"]) == (6, 8)  # all tie at 0: fewest bits
    else:
        assert chosen["deployed"] == "offset" and not fit["reached"] and "most accurate" in chosen["why"]
        assert (fit["adc_bits"], fit["weight_bits"]) == (7, 8) and mapping["chip"]["adc_bits"] == 7
        on = [t for t in fit["tries"] if t["encoding"] == "offset" and t["weight_bits"] == 8 and t["adc"]]
        assert [t["adc_bits"] for t in on] == list(range(6, 13))  # up to 12: 7 is the most accurate, not the last
    # one DAC fit for both (the first encoding's mapping); none within: up from its start to 10, the start kept
    off = [(t["encoding"], t["dac_bits"]) for t in fit["tries"] if not t["adc"]]
    assert off == [("all", d) for d in ([4, 3, 2] if case == "one within" else range(4, 11))]


@pytest.mark.parametrize("needs", [3, 7])
def test_baseline_dac_fit_goes_below_or_above_its_start_with_the_adc_off(tmp_path, monkeypatch, needs):
    """With the ADC off, a DAC of ``needs`` bits or more is within the tolerance (set by hand): from the chip's 4 bits
    the fit goes down to 3 (2 fails) or up to 7; the ADC is then fitted at those DAC bits, ADC on; every try records
    its DAC bits and whether the ADC was on; the deployed mapping's chip has the fitted DAC, and the pricing sees it
    (a DAC's energy and area double per bit)."""
    npz = make_synthetic_npz(tmp_path / "d.npz", n_val=32)
    torch.manual_seed(0)
    net = small_net({**ARCH, "num_classes": 3}, None)[0].float()
    calls = []

    def ideal_accuracy(sim, x, y, adc=True, **kw):
        d = sim.mapping["chip"]["dac_bits"]
        assert sim.chip.dac_bits == d and sim.dac_levels == 2**d - 1  # the simulator runs the DAC tried
        calls.append((d, adc))
        return 1.0 if adc or d >= needs else 0.0

    monkeypatch.setattr(map_crossbar.noise, "ideal_accuracy", ideal_accuracy)
    s = map_settings(rows=32, cols=32, baseline_encodings=["offset"], baseline_weight_fit=False)
    assert (s.baseline.dac_bits, s.baseline.dac_fit) == (4, True)
    _, mapping = fit_baseline(net, 2, s, torch.randn(32, 9, 32), npz, "cpu")
    fit, (cand,) = mapping["baseline_adc_fit"], mapping["baseline_candidates"]["candidates"]
    dacs = [4, 3, 2] if needs < 4 else list(range(4, needs + 1))
    assert calls == [(d, False) for d in dacs] + [(needs, True)] * 5  # then the ADC: 6 down to 2
    assert [(t["dac_bits"], t["adc"]) for t in fit["tries"]] == calls
    assert all(t["adc_bits"] is None and t["weight_bits"] == 8 for t in fit["tries"][: len(dacs)])
    assert [t["adc_bits"] for t in fit["tries"][len(dacs) :]] == [6, 5, 4, 3, 2]
    assert fit["reached"] and fit["dac_bits"] == cand["dac_bits"] == mapping["chip"]["dac_bits"] == needs
    assert (fit["fitted"]["dac_bits"], fit["start"]["dac_bits"]) == (True, 4)
    assert price(mapping, s.baseline.pricing)["energy_pj_per_inference"] == cand["energy_pj_per_inference"]
    units = []
    for d in (needs, needs + 1):
        m = {**mapping, "chip": {**mapping["chip"], "dac_bits": d}}
        doc = cost.estimate(m, load_constants(None))
        assert doc["assumptions"]["dac_bits"] == d
        units.append((doc["assumptions"]["unit_energy_pj"]["dac"], doc["assumptions"]["unit_area_um2"]["dac"]))
    assert units[1] == pytest.approx((2 * units[0][0], 2 * units[0][1]))


def test_baseline_dac_fit_off_keeps_the_configured_dac(tmp_path, monkeypatch):
    """baseline_dac_fit false: no ADC-off try; the deployed chip has baseline_dac_bits as given."""
    npz = make_synthetic_npz(tmp_path / "d.npz", n_val=32)
    torch.manual_seed(0)
    net = small_net({**ARCH, "num_classes": 3}, None)[0].float()
    monkeypatch.setattr(map_crossbar.noise, "ideal_accuracy", lambda sim, x, y, adc=True, **kw: 1.0)
    s = map_settings(
        rows=32,
        cols=32,
        baseline_encodings=["offset"],
        baseline_dac_bits=6,
        baseline_dac_fit=False,
        baseline_weight_fit=False,
    )
    _, mapping = fit_baseline(net, 2, s, torch.randn(32, 9, 32), npz, "cpu")
    fit = mapping["baseline_adc_fit"]
    assert all(t["adc"] and t["dac_bits"] == 6 for t in fit["tries"]) and mapping["chip"]["dac_bits"] == 6


def test_a_wide_dac_with_the_adc_off_sums_exactly():
    """A 12-bit DAC, 8-bit weights, one row tile of 289 rows, inputs of one sign: the column sums stay exact in
    float32, but their shift-and-add over the slices (the offset encoding's up to 4095 x 255 x 289, past 2^24) is
    float64: both encodings give the same exact sums with the ADC off (the DAC fit's pass)."""
    net, x = small_net(DENSE, None)
    out = {}
    for enc in ENCODINGS:
        arrays, m = mapped(net, x, rows=512, cols=64, baseline_dac_bits=12, baseline_encodings=[enc])
        sim = Simulator(arrays, m)
        assert sim.dac_levels == 4095 and sim.dtype == torch.float32
        with torch.no_grad():
            out[enc] = sim.forward(x.abs(), adc=False)[0]
    assert torch.allclose(out["offset"], out["differential"], rtol=0, atol=1e-9)


def test_baseline_settings_travel_as_params():
    """The baseline's settings (encodings, slice combination, fits, estimate_cost's pricing) survive a rule's params;
    the quantized variants' mappings hold none of them."""
    s = map_settings(baseline_encodings=["offset"], baseline_slice_combination="free", baseline_weight_fit=False)
    assert from_params(MapSettings, params(s)) == s
    b = s.baseline
    assert (b.encodings, b.slice_combination, b.weight_fit, b.pricing.family) == (
        ("offset",),
        "free",
        False,
        "neurosim",
    )
    assert s.for_variant("uniform").baseline is None
    assert replace(b, encodings=("differential", "offset")).encodings[0] == "differential"

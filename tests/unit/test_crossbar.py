"""Crossbar mapping (nvmxbar.core.schemes, .layout) and the tile simulator (nvmxbar.core.simulator): exact
invariants, counts, and the Monte Carlo (nvmxbar.core.noise)."""

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import SMALL_ARCH, map_settings, rounding_bound, small_net

from nvmxbar.core import noise
from nvmxbar.core.layout import unfold
from nvmxbar.core.networks import build, make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator
from nvmxbar.data.arrays import network_inputs
from nvmxbar.devices import LogClamp, ReadNoise
from nvmxbar.settings import Drift, MonteCarlo, NoiseModel, noise_grid

ARCH = SMALL_ARCH
QUANT = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_ratio": "pow2"}
XCFG = {  # the old device: its programming sigma is 0.02 of the range (a scale s = the old s x 0.02), nu 0.05 +- 0.01
    "preset": "neurosim_v13",
    "rows": 128,
    "cols": 128,
    "g_max_us": 166.67,
    "on_off_ratio": 150,
    "bias": "row",
    "baseline_weight_bits": 8,
    "adc_mux": 8,
    "calibration_samples": 64,
}
BITS = QUANT["weight_bits"]
# one tile per layer (4096 x 4096: the simulator computes every cell of it, tens of seconds), several tiles
TILES = [pytest.param(4096, 4096, marks=pytest.mark.slow), (16, 8), (45, 6)]


def xcfg(**over):
    """MapSettings of XCFG (the rest: the schema's defaults), with ``over`` replacing keys."""
    return map_settings(**{**XCFG, **over})


def make_net(quant=QUANT, seed=0):
    net, x = small_net(ARCH, quant, seed)
    return net.eval(), x


def monte_carlo(instances, batch_size, sweep, drift, instance_chunk=10):
    """evaluate_noise's MonteCarlo: the sweep's lists (the others off) in NOISE_KEYS order."""
    full = {
        "prog_sigma": [0.0],
        "read_sigma": [0.0],
        "stuck_min": [0.0],
        "stuck_max": [0.0],
        "on_off_ratio": [None],
        "drift_t_s": [0.0],
        "wire_scale": [0.0],
        "adc_error_scale": [0.0],
        **sweep,
    }
    return MonteCarlo(instances, None, batch_size, instance_chunk, tuple(noise_grid(full, drift)))


def no_adc(net):
    net.quant.adc = lambda y: y  # an ideal (infinite-resolution, unclipped) ADC
    return net


@pytest.mark.parametrize("rows, cols", TILES)
def test_ideal_crossbar_equals_the_quantized_digital_model_exactly(rows, cols):
    net, x = make_net()
    arrays, mapping = map_network(net, BITS, xcfg(rows=rows, cols=cols))
    sim = Simulator(arrays, mapping)
    with torch.no_grad():
        xbar = sim.forward(x, adc=False)[0]
        digital = no_adc(net)(x)
    assert torch.allclose(xbar, digital, rtol=0, atol=1e-9)
    top2 = digital.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-9  # a tie within the tolerance may fall either way
    assert clear.float().mean() > 0.9 and torch.equal(xbar.argmax(1)[clear], digital.argmax(1)[clear])
    # perturbation object with every non-ideality off gives the same numbers
    off = NoiseModel(
        prog_sigma=0.0,
        read_sigma=0.0,
        stuck_min=0.0,
        stuck_max=0.0,
        on_off_ratio=None,
        drift_t_s=0,
        drift=Drift(compensation="global"),
    )
    assert off.ideal
    pert = noise.Perturbation(off, 3, sim, torch.Generator().manual_seed(0))
    with torch.no_grad():
        noisy = sim.forward(x, perturb=pert, adc=False)
    assert noisy.shape[0] == 3 and all(torch.allclose(noisy[k], xbar, rtol=0, atol=1e-9) for k in range(3))


def test_with_one_row_tile_the_adc_matches_the_trained_network():
    net, x = make_net()
    arrays, mapping = map_network(net, BITS, xcfg(rows=4096, cols=4096))
    with torch.no_grad():
        assert torch.equal(Simulator(arrays, mapping).forward(x)[0].argmax(1), net(x).argmax(1))


def _codes_from_levels(arrays, mapping, i):
    spec, b = mapping["layers"][i], mapping["bits"]
    rt, ct, R, C = arrays[f"L{i}.levels"].shape
    full = arrays[f"L{i}.levels"].transpose(0, 2, 1, 3).reshape(rt * R, ct * C)
    full = full[: spec["rows"], : spec["outputs"] * spec["slices"] * 2]
    full = full.reshape(spec["rows"], spec["outputs"], spec["slices"], 2).astype(np.int64)
    digits = full[..., 0] - full[..., 1]
    return (digits * (2 ** (b * np.arange(spec["slices"])))).sum(-1), full


@pytest.mark.parametrize("bits", [2, 4])
def test_uniform_levels_conductances_and_counts(bits):
    quant = {**QUANT, "weight_bits": bits}
    net, _ = make_net(quant)
    arrays, mapping = map_network(net, bits, xcfg(rows=32, cols=16))
    L = 2**bits - 1
    assert mapping["slices"] == 1 and mapping["total"]["periphery_designs"] == 1
    assert mapping["total"]["rescale_units"] == 0
    for i, spec in enumerate(mapping["layers"]):
        codes, full = _codes_from_levels(arrays, mapping, i)
        assert np.array_equal(codes, arrays[f"L{i}.codes"])
        assert not ((full[..., 0] > 0) & (full[..., 1] > 0)).any()  # one device of a pair is at G_min
        lev = arrays[f"L{i}.levels"]
        assert lev.min() >= 0 and lev.max() <= L
        G = arrays[f"L{i}.G_us"]
        g_min = 166.67 / 150
        assert np.allclose(G, g_min + lev * (166.67 - g_min) / L, rtol=1e-6)
        K, N = spec["rows"], spec["outputs"]
        assert K == spec["weight_rows"] + 1  # bias row
        assert spec["tiles"] == math.ceil(K / 32) * math.ceil(2 * N / 16)
        assert spec["used_cells"] == K * 2 * N and spec["devices"] == spec["tiles"] * 32 * 16
        assert spec["adcs"] == spec["tiles"] * math.ceil((16 // 2) / 8)
        assert spec["adc_conversions_per_mvm"] == N * math.ceil(K / 32)
    t = mapping["total"]
    assert t["devices"] == sum(s["devices"] for s in mapping["layers"])
    assert t["adcs"] == sum(s["adcs"] for s in mapping["layers"]) and t["dacs"] > 0


@pytest.mark.parametrize("bits, slices", [(2, 4), (4, 2), (3, 3)])
def test_baseline_is_bit_sliced_with_per_layer_scales(bits, slices):
    net, x = make_net(quant=None)
    arrays, mapping = map_network(net, bits, xcfg(baseline_dac_bits=4, baseline_adc_bits=6), calib_x=x[:64])
    assert mapping["slices"] == slices and mapping["scheme"] == "baseline"
    assert mapping["total"]["periphery_designs"] == len(mapping["layers"])
    assert mapping["total"]["rescale_units"] == sum(s["outputs"] for s in mapping["layers"])
    for i in range(len(mapping["layers"])):
        codes, _ = _codes_from_levels(arrays, mapping, i)
        assert np.array_equal(codes, arrays[f"L{i}.codes"]) and np.abs(codes).max() == 127
    steps = [s["weight_step"] for s in mapping["layers"]]
    assert len(set(steps)) == len(steps)  # a scale per layer
    sim = Simulator(arrays, mapping)
    with torch.no_grad():
        ideal = sim.forward(x, adc=False)[0]
        fl = net(x)
    assert (ideal.argmax(1) == fl.argmax(1)).float().mean() > 0.9  # 8-bit weights, 4-bit inputs: close to float


def test_monte_carlo_is_seeded_vectorised_and_hurts_with_noise():
    net, x = make_net()
    arrays, mapping = map_network(net, BITS, xcfg(rows=32, cols=16))
    sim = Simulator(arrays, mapping)
    with torch.no_grad():
        y = sim.forward(x)[0].argmax(1)  # labels = the ideal crossbar's own predictions: ideal accuracy 1.0
    mc = monte_carlo(
        6,
        100,
        {"prog_sigma": [0.0, 5.0], "stuck_max": [0.0, 0.05]},
        Drift(compensation="global"),
        instance_chunk=3,
    )
    rows = noise.evaluate(sim, x, y, mc, seed=3)
    assert len(rows) == 4 and all(r["instances"] == 6 for r in rows)
    clean = rows[0]
    assert clean["prog_sigma"] == 0 and clean["stuck_max"] == 0
    assert clean["accuracy_mean"] == 1.0 and clean["accuracy_std"] == 0.0
    for r in rows[1:]:
        assert r["accuracy_mean"] < 1.0 and r["accuracy_std"] > 0
        assert r["accuracy_p5"] <= r["accuracy_p50"] <= r["accuracy_p95"]
    again = noise.evaluate(sim, x, y, mc, seed=3)
    assert [r["accuracy_mean"] for r in again] == [r["accuracy_mean"] for r in rows]


def test_chips_that_cannot_differ_are_simulated_once():
    """Wires alone (and the ON/OFF ratio) draw nothing per chip: one chip is simulated and recorded (instances 1,
    no spread), with the accuracy of any one of them; with programming noise beside it every chip is drawn. The
    progress still reaches its total."""
    net, x = make_net()
    arrays, mapping = map_network(net, BITS, xcfg(rows=32, cols=16))
    sim = Simulator(arrays, mapping)
    with torch.no_grad():
        y = sim.forward(x)[0].argmax(1)
    mc = monte_carlo(6, 100, {"prog_sigma": [0.0, 1.0], "wire_scale": [40.0]}, Drift(compensation="global"), 3)
    seen = []
    wired, both = noise.evaluate(sim, x, y, mc, seed=3, progress=lambda d, t: seen.append((d, t)))
    assert (wired["instances"], wired["accuracy_std"]) == (1, 0.0) and both["instances"] == 6
    assert wired["accuracy_mean"] < 1.0  # 40 x the wires: IR drop costs accuracy
    one = sim.forward(x, perturb=noise.Perturbation(mc.models[0], 2, sim, torch.Generator().manual_seed(0)))
    assert wired["accuracy_mean"] == pytest.approx(float((one[1].argmax(-1) == y).double().mean()))
    assert seen[-1][0] == seen[-1][1]


def test_extra_settings_and_the_realistic_chip_take_extra_instances_chips():
    from dataclasses import replace as dc_replace

    from nvmxbar.noise_settings import one_setting

    net, x = make_net()
    arrays, mapping = map_network(net, BITS, xcfg(rows=32, cols=16))
    sim = Simulator(arrays, mapping)
    drift = Drift(compensation="global")
    mc = monte_carlo(4, 100, {"prog_sigma": [1.0]}, drift, 3)
    extra = (one_setting({"prog_sigma": 1.0}, drift, "extra"), one_setting({"prog_sigma": 2.0}, drift, "realistic"))
    mc = dc_replace(mc, models=mc.models + extra, extra_instances=2)
    assert [r["instances"] for r in noise.evaluate(sim, x, x[:, 0, 0] > 0, mc, seed=1)] == [4, 2, 2]
    assert [dc_replace(mc, extra_instances=None).chips(m) for m in mc.models] == [4, 4, 4]


def test_read_noise_and_drift_switch_on_and_off():
    """pcm_aihwkit: the preset with both read noise and drift (t0 20 s)."""
    net, x = make_net()
    arrays, mapping = map_network(
        net, BITS, xcfg(rows=32, cols=16, preset="pcm_aihwkit", g_max_us=None, on_off_ratio=None)
    )
    sim = Simulator(arrays, mapping)
    with torch.no_grad():
        y = sim.forward(x)[0].argmax(1)
    mc = monte_carlo(4, 256, {"read_sigma": [0.0, 1.0], "drift_t_s": [0, 1e6]}, Drift(compensation="global"))
    acc = {(r["read_sigma"], r["drift_t_s"]): r["accuracy_mean"] for r in noise.evaluate(sim, x, y, mc, 0)}
    assert acc[(0.0, 0)] == 1.0 and acc[(1.0, 0)] < 1.0 and acc[(0.0, 1e6)] < 1.0


# ------------------------------------------------------------------------------------------- drift compensation
DRIFT_T = 1e6  # (t/t0)^-0.05 about 0.5: half the conductance gone without compensation


def with_noise(sim, **parts):
    """The simulator with its device's noise parts (DeviceNoise fields) replaced: a device of the test's own."""
    out, dev = copy.copy(sim), sim.chip.device
    out.chip = replace(sim.chip, device=replace(dev, noise=replace(dev.noise, **parts)))
    return out


def drifted(sim, mode, nu_std=None, prog_sigma=0.0, read_sigma=0.0, t=DRIFT_T, chips=4, seed=5):
    """Per layer: (nominal G (K, columns), the chips' G (chips, K, columns)) under drift compensation ``mode``, on
    neurosim_v13 (t0 1 s, nu 0.05 +- 0.01; ``nu_std`` another constant spread; read noise 1 % of G x ``read_sigma``)."""
    drift = sim.chip.device.noise.drift
    if nu_std is not None:
        sim = with_noise(sim, drift=replace(drift, nu_std=LogClamp(0.0, nu_std, nu_std, nu_std)))
    if read_sigma:
        sim = with_noise(sim, read=ReadNoise(coef=0.01, exponent=0.0, cap=1.0, factor=1.0))
    model = NoiseModel(prog_sigma, read_sigma, 0.0, 0.0, None, t, Drift(mode))
    pert = noise.Perturbation(model, chips, sim, torch.Generator().manual_seed(seed))
    return [(lev + sim.g_off, pert(i, lev + sim.g_off)) for i, lev in enumerate(sim.levels)]


@pytest.fixture(scope="module")
def tiled_sim():
    net, _ = make_net()
    arrays, mapping = map_network(net, BITS, xcfg(rows=16, cols=8))  # several row and column tiles per layer
    sim = Simulator(arrays, mapping)
    assert any(len(t) > 1 for t in sim.tiles)
    return sim


def test_drift_none_leaves_the_drifted_conductances_and_oracle_is_the_exact_mean_gain(tiled_sim):
    """none: G (t/t0)^-nu with each device's nu (drawn first from the generator); oracle: that times the exact
    mean drift (t/t0)^nu, as before the named modes."""
    ratio = DRIFT_T / 1.0
    (g, none), (_, oracle) = drifted(tiled_sim, "none")[0], drifted(tiled_sim, "oracle")[0]
    nu = (0.05 + 0.01 * torch.randn(none.shape, generator=torch.Generator().manual_seed(5))).abs()
    assert torch.allclose(none, g * ratio ** (-nu), rtol=1e-6, atol=0)
    assert torch.allclose(oracle, none * ratio**0.05, rtol=1e-6, atol=0)
    assert float(none.mean()) < 0.6 * float(g.mean())  # half the conductance drifted away


@pytest.mark.parametrize("prog_sigma", [0.0, 2.5])
def test_global_compensation_restores_each_chips_programmed_layer_mean(tiled_sim, prog_sigma):
    """global: one gain per chip and layer from the all-ones reference read, so each chip's layer sum (mean) at t
    equals its programmed one at t0 (after programming noise: the chip reads its own devices)."""
    at_t0 = drifted(tiled_sim, "none", prog_sigma=prog_sigma, t=0)  # layer 0: the same programming draws, no drift
    for i, ((g, comp), (_, prog), (_, none)) in enumerate(
        zip(
            drifted(tiled_sim, "global", prog_sigma=prog_sigma),
            at_t0,
            drifted(tiled_sim, "none", prog_sigma=prog_sigma),
            strict=True,
        )
    ):
        if i == 0:  # (the later layers' draws follow the drift draws of the earlier ones)
            assert torch.allclose(comp.mean((1, 2)), prog.mean((1, 2)), rtol=1e-5, atol=0)
        if prog_sigma:
            assert not torch.allclose(prog.mean((1, 2)), g.mean().expand(4), rtol=1e-4)  # the chip's own mean
        for c, n in zip(comp, none, strict=True):  # one number per chip (devices clipped at G = 0 say nothing)
            gain = c[n > 0] / n[n > 0]
            assert torch.allclose(gain, gain.median().expand_as(gain), rtol=1e-5)


def test_column_compensation_restores_every_physical_columns_programmed_sum(tiled_sim):
    """column: one gain per physical column (a row tile's column): every column of every row tile sums to its
    programmed sum, so every matrix column does too; the cells of one physical column share a gain."""
    for i, ((g, comp), (_, none)) in enumerate(zip(drifted(tiled_sim, "column"), drifted(tiled_sim, "none"))):
        for a, e in tiled_sim.tiles[i]:
            assert torch.allclose(comp[:, a:e].sum(1), g[a:e].sum(0).expand(4, -1), rtol=1e-5, atol=0)
            gain = comp[:, a:e] / none[:, a:e]
            assert torch.allclose(gain, gain[:, :1].expand_as(gain), rtol=1e-5)
        assert torch.allclose(comp.sum(1), g.sum(0).expand(4, -1), rtol=1e-5, atol=0)


def test_estimated_gains_differ_from_the_oracle_unless_every_device_drifts_alike(tiled_sim):
    """The reference read estimates the gain from the chip's devices: with nu_std > 0 it differs from the oracle's
    (t/t0)^nu and from chip to chip; with nu_std 0 every device drifts by (t/t0)^-nu and the two agree."""
    oracle = DRIFT_T**0.05
    for (_, comp), (_, none) in zip(drifted(tiled_sim, "global"), drifted(tiled_sim, "none")):
        gain = (comp / none)[:, 0, 0]
        assert (gain / oracle - 1).abs().min() > 1e-3 and (gain.max() - gain.min()) / oracle > 1e-4
    for mode in ("global", "column"):
        for (_, comp), (_, none) in zip(drifted(tiled_sim, mode, nu_std=0.0), drifted(tiled_sim, "none", nu_std=0.0)):
            assert torch.allclose(comp / none, torch.full_like(comp, oracle), rtol=1e-5)


def test_reference_reads_carry_read_noise(tiled_sim):
    """With read noise on, each reference read draws it once: the column gains are close to, not exactly, the
    noiseless ones (the first layer: its nu are drawn before any reference read, the same in both)."""
    (_, quiet), (_, noisy) = drifted(tiled_sim, "column")[0], drifted(tiled_sim, "column", read_sigma=1.0)[0]
    assert not torch.equal(quiet, noisy) and torch.allclose(quiet, noisy, rtol=0.05, atol=0)


def test_drift_compensation_recovers_accuracy(tiled_sim):
    x = make_net()[1]
    with torch.no_grad():
        y = tiled_sim.forward(x)[0].argmax(1)
    acc = {}
    for mode in ("none", "global", "column", "oracle"):
        mc = monte_carlo(4, 256, {"drift_t_s": [DRIFT_T]}, Drift(mode))
        acc[mode] = noise.evaluate(tiled_sim, x, y, mc, 0)[0]["accuracy_mean"]
    assert acc["none"] < min(acc["global"], acc["column"], acc["oracle"]), acc


# ------------------------------------------------------------------------------------------- unipolar
POLARITIES = {
    "positive": "positive",
    "mixed": [
        {"sign": 1},
        {"sign": 1, "row_groups": 2},
        {"sign": 1, "col_groups": 2},
        {"sign": -1, "row_groups": 2, "col_groups": 3},
    ],
    "positive_split": "positive",  # with [x, -x] into the first layer and a 4x pool (see EXTRA)
}
EXTRA = {"positive_split": {"input_split": True, "conv": [8, "M", "M", 12, "M"]}}


def make_unipolar(polarity, seed=0, **extra):
    arch = make_arch(ARCH["in_shape"], ARCH["num_classes"], {**ARCH, **extra, "polarity": polarity})
    net, x = small_net(arch, QUANT, seed)
    return net.eval(), x


@pytest.mark.parametrize("polarity", list(POLARITIES))
@pytest.mark.parametrize("rows, cols", TILES)
def test_unipolar_ideal_crossbar_equals_the_quantized_model_exactly(polarity, rows, cols):
    net, x = make_unipolar(POLARITIES[polarity], **EXTRA.get(polarity, {}))
    arrays, mapping = map_network(net, BITS, xcfg(rows=rows, cols=cols))
    assert mapping["pair"] == 1 and all(lay["pair"] == 1 for lay in mapping["layers"])
    for i in range(len(mapping["layers"])):
        lev = arrays[f"L{i}.levels"]
        assert lev.min() >= 0 and lev.max() <= 3  # one device per weight: levels 0..2^b-1
    sim = Simulator(arrays, mapping)
    with torch.no_grad():
        xbar = sim.forward(x, adc=False)[0]
        digital = no_adc(net)(x)
    assert torch.allclose(xbar, digital, rtol=0, atol=1e-9)


def test_unipolar_halves_the_devices_and_counts_one_flip_per_negative_group():
    netu, x = make_net()
    _, mu = map_network(netu, BITS, xcfg())
    netp, _ = make_unipolar("positive")
    _, mp = map_network(netp, BITS, xcfg())
    # same architecture, one device per weight instead of a pair (+1 bias row per layer)
    for lu, lp in zip(mu["layers"], mp["layers"], strict=True):
        assert lp["used_cells"] == (lu["rows"] + 1) * lu["outputs"]
        assert lu["used_cells"] == 2 * lu["rows"] * lu["outputs"]
    assert mp["total"]["used_cells"] < 0.6 * mu["total"]["used_cells"]
    assert mp["total"]["sign_flips"] == 0
    netm, _ = make_unipolar(POLARITIES["mixed"])
    arrays, mm = map_network(netm, BITS, xcfg())
    layers = mm["layers"]
    # layer 1: two row groups of 4 channels x 5 taps (+ 2 bias rows in the last) -> two row tiles of 128
    assert layers[1]["row_groups"] == [20, 22] and layers[1]["row_tiles"] == 2 and layers[1]["sign_flips"] == 1
    # layer 2: one row group, two column groups (+, -): one flip group in the one tile
    assert layers[2]["sign_flips"] == 1 and layers[2]["sign_flips_per_mvm"] == 10
    # layer 3: sign -1, 2 x 3 groups -> per row tile the column signs alternate -,+,- / +,-,+
    assert layers[3]["sign_flips"] == 2 + 1
    signs = arrays["L3.sign"][:, 0, :6]
    assert signs.tolist() == [[-1, -1, 1, 1, -1, -1], [1, 1, -1, -1, 1, 1]]
    assert mm["total"]["sign_flips"] == sum(lay["sign_flips"] for lay in layers)


def test_unipolar_weights_keep_their_sign_through_training():
    torch.manual_seed(0)
    arch = make_arch([9, 32], 6, {**ARCH, "polarity": POLARITIES["mixed"]})
    net = build(arch, QUANT)
    x, y = torch.randn(128, 9, 32), torch.randint(0, 6, (128,))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net.train()
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        net.project_polarity()
        for i, layer in enumerate(net.layers):
            mask = getattr(net, f"_pol{i}")
            assert (layer.weight * mask >= 0).all()  # latent weights projected
            assert (net.quant.weight(layer.weight, mask) * mask >= 0).all()  # quantized weights exact


def test_input_split_doubles_the_first_layers_rows_and_weighs_an_input_either_way():
    net, x = make_unipolar("positive", input_split=True)
    _, mapping = map_network(net, BITS, xcfg())
    assert net.layers[0].in_channels == 18 and mapping["layers"][0]["weight_rows"] == 18 * 5
    w = net.quant.weight(net.layers[0].weight, net._pol0)
    eff = w[:, :9] - w[:, 9:]  # the signed filter the one-sign weights realise on x
    assert (w >= 0).all() and (eff < 0).any() and (eff > 0).any()


def test_one_sign_layers_on_relu_inputs_start_sparse_with_a_common_mode_gain_of_one():
    net, _ = make_unipolar("positive")
    step = net.quant.weight_fullscale.item() / net.quant.w_levels
    for i, layer in enumerate(net.layers):
        codes = net.quant.weight(layer.weight, getattr(net, f"_pol{i}")).detach() / step
        assert torch.allclose(codes, codes.round()) and codes.min() >= 0
        if i == 0:  # signed network input: Kaiming spread, dense
            assert (codes > 0).float().mean() > 0.5
            continue
        gain = codes.flatten(1).sum(1) * step  # per output: the sum of its weights, the common-mode gain
        assert set(codes.unique().tolist()) <= {0.0, 1.0}
        assert 0.6 < gain.mean().item() < 1.5, (i, gain)
    # +/- row groups keep Kaiming's dense start
    netm, _ = make_unipolar(POLARITIES["mixed"])
    assert (netm.quant.weight(netm.layers[1].weight, netm._pol1) != 0).float().mean() > 0.5


@pytest.mark.parametrize("polarity", [None, "positive", "mixed", "positive_split"])
@pytest.mark.parametrize("rows", [16, 30, 45])
def test_training_with_the_per_tile_adc_matches_the_crossbar(polarity, rows):
    """quant.adc_tile_rows = the tile rows: the network converts each row tile's partial sum as the crossbar does,
    so the ideal crossbar WITH its ADC equals the network (several row tiles per layer)."""
    quant = {**QUANT, "adc_tile_rows": rows}
    if polarity is None:
        net, x = make_net(quant)
    else:
        net, x = make_unipolar(POLARITIES[polarity], **EXTRA.get(polarity, {}))
        net.quant.adc_tile_rows = rows
    arrays, mapping = map_network(net, BITS, xcfg(rows=rows, cols=8))
    assert max(lay["row_tiles"] for lay in mapping["layers"]) > 1
    with torch.no_grad():
        xbar = Simulator(arrays, mapping).forward(x)[0]
        digital = net(x)
    assert torch.allclose(xbar, digital, rtol=0, atol=1e-9)
    if rows == 16:  # and it differs from one conversion of the whole sum
        net.quant.adc_tile_rows = 0
        with torch.no_grad():
            assert not torch.allclose(xbar, net(x), rtol=0, atol=1e-6)


def test_read_activity_counts_each_rows_input_bits_times_its_programmed_conductance():
    """Cell read energy follows the inputs: the first layer's activity recomputed from the DAC codes and the
    stored G_us, and every layer's activity at most the all-bits-on bound."""
    net, x = make_net()
    arrays, mapping = map_network(net, BITS, xcfg(rows=32, cols=16), calib_x=x)
    act = Simulator(arrays, mapping).read_activity(x, bs=7)
    spec = mapping["layers"][0]
    La = 2 ** QUANT["dac_bits"] - 1
    u = torch.clamp(torch.round(x.double() / (spec["dac_fullscale"] / La)), -La, La)
    rows = unfold(u, spec)  # (MVMs, matrix rows)
    rows = torch.cat([rows, torch.full((rows.shape[0], 1), float(La), dtype=rows.dtype)], 1)  # the bias row
    g = arrays["L0.G_us"] * arrays["L0.used"]
    row_g = torch.from_numpy(g.sum(axis=(1, 3)).reshape(-1).astype(np.float64))  # per physical row
    idx = torch.from_numpy(arrays["L0.row_index"].astype(np.int64))
    code = rows[:, idx.clamp(min=0)].abs().long() * (idx >= 0)
    ones = sum((code >> k) & 1 for k in range(QUANT["dac_bits"]))
    assert act[0]["mvms_measured"] == rows.shape[0] and act[0]["samples"] == len(x)
    assert act[0]["bit_serial"] == pytest.approx(float((ones * row_g).sum() / rows.shape[0]), rel=1e-5)
    assert act[0]["multibit"] == pytest.approx(float(((code / La) ** 2 * row_g).sum() / rows.shape[0]), rel=1e-5)
    for i, a in enumerate(act):
        g_used = float((arrays[f"L{i}.G_us"] * arrays[f"L{i}.used"]).sum())
        assert 0 < a["multibit"] <= a["bit_serial"] <= QUANT["dac_bits"] * g_used * (1 + 1e-6)


def test_network_inputs_subsets_span_the_classes_of_a_class_ordered_split(tmp_path):
    # prepared CIFAR-10 splits are ordered by class: a subset (smoke noise samples, calibration, activity,
    # search score) must not be the first n, which would all be one class
    y = np.repeat(np.arange(10), 50)
    x = np.arange(500, dtype=np.float32)[:, None].repeat(3, 1)
    np.savez(tmp_path / "d.npz", x_test=x, y_test=y)
    xs, ys = network_inputs(tmp_path / "d.npz", "test", 100)
    assert len(ys) == 100 and len(set(ys.tolist())) == 10 and ys.bincount().max() <= 20
    assert torch.equal(xs[:, 0].long(), torch.sort(xs[:, 0].long()).values)  # split order kept
    assert torch.equal(network_inputs(tmp_path / "d.npz", "test", 100)[0], xs)  # deterministic
    assert len(network_inputs(tmp_path / "d.npz", "test", None)[1]) == 500
    assert len(network_inputs(tmp_path / "d.npz", "test", 900)[1]) == 500


# ------------------------------------------------------------------------- 2-D convolutions and chip batching
ARCH2D = {
    "in_shape": [3, 8, 8],
    "num_classes": 5,
    "conv": [4, "M", 6],
    "kernel_size": 3,
    "hidden": [7],
    "dropout": 0.0,
    "bias": True,
}


def make_2d(polarity=None, adc_tile_rows=0, seed=0):
    """A small 2-D CNN in float64 (3 x 8 x 8 inputs), calibrated like small_net."""
    torch.manual_seed(seed)
    arch = make_arch(ARCH2D["in_shape"], ARCH2D["num_classes"], {**ARCH2D, "polarity": polarity})
    net = build(arch, {**QUANT, "adc_tile_rows": adc_tile_rows}).double()
    x = torch.randn(64, 3, 8, 8, dtype=torch.float64)
    net.train()
    net(x)
    return net.eval(), x


@pytest.mark.parametrize("polarity", [None, "positive", [{"sign": 1, "row_groups": 2}, {"sign": -1}, {}, {}]])
@pytest.mark.parametrize("rows", [16, 20])
def test_conv2d_row_tiles_split_kernels_and_stay_exact(polarity, rows):
    """Tiles of 16 or 20 rows cut a 3 x 3 kernel's 9 rows of a channel in two: each tile convolves the channels
    it touches with the other tiles' rows masked out. The ideal crossbar equals the digital model without the
    ADC, and with the per-tile ADC equals the network trained with adc_tile_rows = the tile rows."""
    net, x = make_2d(polarity, adc_tile_rows=rows)
    arrays, mapping = map_network(net, BITS, xcfg(rows=rows, cols=8))
    assert mapping["layers"][1]["row_tiles"] > 1
    sim = Simulator(arrays, mapping)
    with torch.no_grad():
        assert torch.allclose(sim.forward(x)[0], net(x), rtol=0, atol=1e-9)
        net.quant.adc_tile_rows = 0
        assert torch.allclose(sim.forward(x, adc=False)[0], no_adc(net)(x), rtol=0, atol=1e-9)


class _OneChip:
    """Chip k of a drawn population, as a Perturb of one chip."""

    def __init__(self, pert, k):
        self.pert, self.k, self.read_sigma = pert, k, 0.0

    def __call__(self, i, g):
        return self.pert(i, g)[self.k : self.k + 1]


@pytest.mark.parametrize("make", ["1d", "2d"])
def test_chips_simulated_at_once_equal_each_chip_alone(make):
    """A population of chips is a leading axis (one GEMM or one grouped convolution): each chip's logits equal
    that chip simulated alone; drawing them again from the same seed gives the same chips."""
    net, x = make_net() if make == "1d" else make_2d()
    arrays, mapping = map_network(net, BITS, xcfg(rows=16, cols=8))
    sim = Simulator(arrays, mapping)
    model = NoiseModel(2.5, 0.0, 0.01, 0.01, None, 0, None)
    pert = noise.Perturbation(model, 4, sim, torch.Generator().manual_seed(1))
    chips = sim.chips(pert)
    together = sim.forward(x, perturb=chips)
    assert together.shape[:2] == (4, len(x))
    # perturbed conductances: float32 sums in another order (one GEMM of 4 chips, or one): each off by the bound
    g_max = max(float(m.abs().max()) for m, *_ in chips.tiles[-1] if m is not None)
    for k in range(4):
        alone = sim.forward(x, perturb=sim.chips(_OneChip(pert, k)))[0]
        assert (together[k] - alone).abs().max() <= 2 * rounding_bound(sim, alone, g_max)
    assert not torch.allclose(together[0], together[1])  # chips differ
    again = noise.Perturbation(model, 4, sim, torch.Generator().manual_seed(1))
    assert torch.equal(sim.forward(x, perturb=sim.chips(again)), together)


def test_read_noise_is_a_gaussian_on_each_partial_sum_with_the_cells_variance():
    """One dense layer, one tile, the ADC off: the column sums' spread over reads is sqrt(sum_r x_r^2 (sigma G_r)^2)
    summed over both devices of the pair (rram_wan2022: sigma = 1 % of G x the scale 5)."""
    arch = {"in_shape": [20], "num_classes": 3, "conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0}
    torch.manual_seed(0)
    net = build({**arch, "bias": False}, QUANT).double()
    x = torch.randn(1, 20, dtype=torch.float64).repeat(4000, 1)
    net.train()
    net(x)
    net.eval()
    arrays, mapping = map_network(net, BITS, xcfg(rows=64, cols=64, preset="rram_wan2022"))
    sim = Simulator(arrays, mapping)
    model = NoiseModel(0.0, 5.0, 0.0, 0.0, None, 0, None)
    chips = sim.chips(noise.Perturbation(model, 1, sim, torch.Generator().manual_seed(0)))
    out = sim.forward(x, perturb=chips, adc=False)[0]  # 4000 reads of the same input
    spec = mapping["layers"][0]
    La = 2 ** QUANT["dac_bits"] - 1
    a_step = spec["dac_fullscale"] / La
    u = torch.clamp(torch.round(x[0] / a_step), -La, La)
    g = sim.levels[0].double() + sim.g_off  # (K, N*2) nominal conductances, dG units
    sd = ((u[:, None] ** 2) * (0.05 * g) ** 2).sum(0).reshape(-1, 2).sum(1).sqrt()  # per output, both devices
    expected = sd * spec["weight_step"] * a_step
    assert torch.allclose(out.std(0), expected, rtol=0.06)
    assert torch.allclose(out.mean(0), sim.forward(x[:1], adc=False)[0, 0], atol=4 * float(expected.max()) / 60)


def test_batch_for_keeps_the_unfolded_inputs_within_the_budget():
    mapping = {"layers": [{"mvms": 1024, "rows": 289}, {"mvms": 1, "rows": 4097}]}
    bs = noise.batch_for(mapping, chips=5, budget=16_000_000)
    assert bs * 1024 * 289 * 5 <= 16_000_000 < (bs + 1) * 1024 * 289 * 5
    assert noise.batch_for({"layers": [{"mvms": 1, "rows": 10}]}, 1) == 1024
    assert noise.batch_for({"layers": [{"mvms": 10**6, "rows": 10**3}]}, 25) == 1

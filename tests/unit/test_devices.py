"""Device presets and their noise (nvmxbar.devices): every model checked against a hand computation from the
sources' formulas (docs/sources/devices.md), the preset loader's refusals, the chip record, and the Monte Carlo's use
of them (nvmxbar.core.noise.Perturbation) and the one-device reference column's shared read (the simulator)."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from conftest import map_settings, small_net

from nvmxbar import config
from nvmxbar.chip import Chip, ChipError
from nvmxbar.core import noise
from nvmxbar.core.networks import build, make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator
from nvmxbar.devices import PRESETS, Device, Wires, load_presets, parse_presets
from nvmxbar.settings import Drift, NoiseModel


def device(preset, **over):
    return Device.from_config({"preset": preset, "g_max_us": None, "on_off_ratio": None, "v_read_v": None, **over})


def phi(z):
    """The standard normal CDF."""
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# ------------------------------------------------------------------------------------------- the presets
def test_the_schema_enum_is_the_presets_and_the_default_is_rram_wan2022():
    schema = yaml.safe_load(config.SCHEMA.read_text())
    preset = schema["properties"]["chip"]["properties"]["device"]["properties"]["preset"]
    assert preset["enum"] == list(PRESETS) == ["neurosim_v13", "neurosim_v14", "rram_wan2022", "pcm_aihwkit"]
    assert config.validate({})["chip"]["device"]["preset"] == "rram_wan2022"


@pytest.mark.parametrize(
    "preset, x, sigma_us",
    [
        # 0.02 x (G_max - G_min) = 0.02 x 166.6667 x 149/150, constant in G (the project's old setting)
        ("neurosim_v13", 0.0, 0.02 * 166.6667 * 149 / 150),
        ("neurosim_v13", 0.7, 0.02 * 166.6667 * 149 / 150),
        # aihwkit ReRamWan2022 coeff_dic[1 s] at 40 uS: 0.348 + 16.030x - 43.853x^2 + 45.393x^3 - 16.815x^4
        ("rram_wan2022", 0.0, 0.348),
        ("rram_wan2022", 0.5, 0.348 + 8.015 - 10.96325 + 5.674125 - 1.0509375),  # 2.0229375
        ("rram_wan2022", 1.0, 0.348 + 16.030 - 43.853 + 45.393 - 16.815),  # 1.103
        # the same fit scaled to NeuroSim V1.4's 10 uS: x 10/40
        ("neurosim_v14", 0.5, 0.25 * 2.0229375),
        # aihwkit PCMLikeNoiseModel at 25 uS: 0.26348 + 1.9650x - 1.1731x^2
        ("pcm_aihwkit", 0.5, 0.26348 + 0.9825 - 0.293275),  # 0.952705
        ("pcm_aihwkit", 1.0, 0.26348 + 1.9650 - 1.1731),  # 1.05538
    ],
)
def test_programming_sigma_at_a_level_is_the_sources_fit(preset, x, sigma_us):
    assert device(preset).prog_sigma_us(x) == pytest.approx(sigma_us, rel=1e-4)


def test_an_overridden_g_max_rescales_sigma_as_aihwkit_does():
    """sigma(x) x g_max / g_ref: the rram_wan2022 fit at 80 uS is twice the 40 uS one at every x."""
    x = np.array([0.0, 0.25, 0.5, 1.0])
    base, double = device("rram_wan2022"), device("rram_wan2022", g_max_us=80.0)
    assert np.allclose(double.prog_sigma_us(x), 2 * base.prog_sigma_us(x), rtol=1e-12)
    chip = Chip.from_config(config.validate({"chip": {"device": {"preset": "pcm_aihwkit", "g_max_us": 12.5}}})["chip"])
    assert chip.device.prog_sigma_us(0.5) == pytest.approx(0.5 * 0.952705, rel=1e-6)


@pytest.mark.parametrize(
    "preset, x, q",
    [
        ("rram_wan2022", 0.1, 0.01),  # 1 % of G, constant (assumed)
        ("rram_wan2022", 1.0, 0.01),
        ("neurosim_v14", 0.5, 0.01),
        # aihwkit PCM: 4.1838 x min(0.0088 / max(x^0.65, 1e-3), 0.2); 4.1838 = sqrt(ln((20 s + 250 ns) / 500 ns))
        ("pcm_aihwkit", 1.0, 4.1838 * 0.0088),
        ("pcm_aihwkit", 0.5, 4.1838 * 0.0088 / math.exp(0.65 * math.log(0.5))),  # 0.0088 / 0.63728
        ("pcm_aihwkit", 1e-3, 4.1838 * 0.2),  # 0.0088 / 0.01122 = 0.78: capped at 0.2
    ],
)
def test_read_noise_relative_to_g_is_the_sources_fit(preset, x, q):
    assert device(preset).noise.read.relative(x) == pytest.approx(q, rel=1e-9)


def test_the_pcm_factor_is_the_one_over_f_noise_accumulated_at_t0():
    assert device("pcm_aihwkit").noise.read.factor == pytest.approx(math.sqrt(math.log(20.0 / 500e-9)), abs=5e-5)


def test_neurosim_v13_has_no_read_noise_and_the_rram_presets_no_drift():
    assert device("neurosim_v13").noise.read is None
    assert device("rram_wan2022").noise.drift is None and device("neurosim_v14").noise.drift is None


@pytest.mark.parametrize(
    "x, mean, std",
    [
        # aihwkit pcm.py: mean clamp(-0.0155 ln x + 0.0244, 0.049, 0.1), std clamp(-0.0125 ln x - 0.0059, 0.008, 0.045)
        (0.01, 0.0155 * math.log(100) + 0.0244, 0.045),  # 0.09578; std 0.05166 capped at 0.045
        (0.1, 0.0155 * math.log(10) + 0.0244, 0.0125 * math.log(10) - 0.0059),  # 0.06009, 0.02288
        (0.5, 0.049, 0.008),  # 0.03514 and 0.00276, both at their floors
        (1e-9, 0.1, 0.045),  # x floored at 1e-7: both at their caps
    ],
)
def test_pcm_drift_exponent_mean_and_spread_at_a_level(x, mean, std):
    d = device("pcm_aihwkit").noise.drift
    assert d.t0_s == 20.0
    assert d.nu_mean(x) == pytest.approx(mean, rel=1e-9) and d.nu_std(x) == pytest.approx(std, rel=1e-9)


def test_neurosim_v13_keeps_the_old_constant_drift():
    d = device("neurosim_v13").noise.drift
    assert d.t0_s == 1.0 and d.nu_mean(np.array([0.01, 1.0])).tolist() == [0.05, 0.05]
    assert d.nu_std(0.3) == 0.01


@pytest.mark.parametrize(
    "doc, where",
    [
        ({"p": {"g_max_us": 40}}, "p.g_max_us"),
        ({"p": {"g_max_us": {"value": 40, "source": " "}}}, "p.g_max_us"),
        ({"p": {"noise": {"prog": {"coeffs_us": {"value": [1.0]}}}}}, "p.noise.prog.coeffs_us"),
        ({"p": {"noise": {"drift": None}}}, "p.noise.drift"),
        ({"p": {"noise": {"read": {"q": {"value": {"coef": 0.01}, "source": "x", "unit": "1"}}}}}, "p.noise.read.q"),
    ],
)
def test_the_loader_refuses_a_number_without_a_source_naming_it(doc, where):
    with pytest.raises(ChipError, match=rf"device preset {where}\b"):
        parse_presets(doc)


def test_every_packaged_preset_resolves_with_its_noise():
    for name in PRESETS:
        dev = device(name)
        assert dev.noise.prog.coeffs_us and load_presets()[name]["description"]


# ------------------------------------------------------------------------------------------- the chip record
def test_the_chip_record_carries_the_noise_and_reads_back_strictly():
    chip = Chip.from_config(config.validate({"chip": {"device": {"preset": "pcm_aihwkit"}}})["chip"])
    d = json.loads(json.dumps(chip.to_dict()))  # as mapping.json stores it
    assert d["device"]["noise"]["prog"] == {"coeffs_us": [0.26348, 1.965, -1.1731], "g_ref_us": 25.0}
    assert d["device"]["noise"]["drift"]["nu_mean"] == {"a": -0.0155, "b": 0.0244, "lo": 0.049, "hi": 0.1}
    assert Chip.from_dict(d) == chip
    del d["device"]["noise"]["read"]
    with pytest.raises(ChipError, match=r"mapping.json chip.device.noise: missing read"):
        Chip.from_dict(d, "mapping.json chip")
    d = json.loads(json.dumps(chip.to_dict()))
    d["device"]["noise"]["drift"]["nu_std"]["c"] = 1.0
    with pytest.raises(ChipError, match=r"chip.device.noise.drift.nu_std: unknown c"):
        Chip.from_dict(d)
    d = json.loads(json.dumps(chip.to_dict()))
    del d["device"]["noise"]
    with pytest.raises(ChipError, match=r"chip.device: missing noise"):
        Chip.from_dict(d)


# ------------------------------------------------------------------------------------------- config validation
@pytest.mark.parametrize(
    "chip, sweep, message",
    [
        ("rram_wan2022", {"drift_t_s": [0, 3600]}, "chip.device.preset rram_wan2022 has no drift model"),
        ("pcm_aihwkit", {"drift_t_s": [0, 10]}, r"\[10\] before chip.device.preset pcm_aihwkit's drift t0_s \(20.0\)"),
        ("neurosim_v13", {"read_sigma": [0.0, 1.0]}, "chip.device.preset neurosim_v13 has no read noise"),
    ],
)
def test_a_drift_time_or_read_noise_the_device_lacks_is_a_config_error(chip, sweep, message):
    with pytest.raises(config.ConfigError, match=message):
        config.validate({"chip": {"device": {"preset": chip}}, "evaluate_noise": {"sweep": sweep}})
    sweep = {"drift_t_s": [0, 20, 3600], "read_sigma": [0.0, 1.0]}  # pcm_aihwkit has both, from t0 = 20 s
    assert config.validate({"chip": {"device": {"preset": "pcm_aihwkit"}}, "evaluate_noise": {"sweep": sweep}})


# ------------------------------------------------------------------------------------------- the Monte Carlo
def fake_sim(preset, levels=4, **over):
    """What Perturbation reads of a simulator: the level count, G_min in dG units and the chip's device."""
    dev = device(preset, **over)
    L = levels - 1
    return SimpleNamespace(L=L, g_off=L / (dev.on_off_ratio - 1), chip=SimpleNamespace(device=dev), tiles=None)


def perturb(sim, chips, seed=0, prog=0.0, read=0.0, t=0.0, compensation="none", on_off=None):
    model = NoiseModel(prog, read, 0.0, 0.0, on_off, t, Drift(compensation))
    pert = noise.Perturbation(model, chips, sim, torch.Generator().manual_seed(seed))
    g = (torch.arange(sim.L + 1, dtype=torch.float32) + sim.g_off)[None]  # (1, levels): one cell per level
    return pert, g, pert(0, g)


def test_scale_zero_is_the_ideal_chip_bitwise():
    """Every scale 0: each chip's conductances are the programmed targets, bit for bit (a mapped layer too)."""
    sim = fake_sim("pcm_aihwkit")
    _, g, out = perturb(sim, 3)
    assert torch.equal(out, g[None].expand(3, -1, -1))
    real = one_device_layer()
    pert = noise.Perturbation(NoiseModel(0.0, 0.0, 0.0, 0.0, None, 0, None), 2, real, torch.Generator())
    for i, lev in enumerate(real.levels):
        assert torch.equal(pert(i, lev + real.g_off), (lev + real.g_off)[None].expand(2, -1, -1))


def test_programming_noise_is_sigma_at_each_cells_target_level():
    """pcm_aihwkit, 2-bit: the middle levels (8.5 and 16.75 uS, far from both clips) spread by sigma(x) x scale."""
    sim = fake_sim("pcm_aihwkit")
    dg = (25.0 - 0.25) / 3  # uS per level
    _, g, out = perturb(sim, 20000, prog=0.5)
    for level in (1, 2):
        x = (0.25 + level * dg) / 25.0  # 0.34, 0.67
        sigma = 0.26348 + 1.9650 * x - 1.1731 * x**2  # uS
        spread = float((out[:, 0, level] - g[0, level]).std()) * dg
        assert spread == pytest.approx(0.5 * sigma, rel=0.03)


def test_programming_noise_is_clipped_at_zero_and_at_g_max():
    """neurosim_v13's constant sigma, scaled so that scale x sigma = G_max: a cell at G_max lands at G_max with
    probability 1/2 and at 0 with Phi(-1); a cell at G_min at 0 with Phi(-G_min/G_max) and at G_max with
    Phi(-(G_max - G_min)/G_max); nothing is ever outside [0, G_max]."""
    sim = fake_sim("neurosim_v13")
    dev = sim.chip.device
    top = sim.g_off + sim.L  # G_max, dG units
    scale = dev.g_max_us / dev.prog_sigma_us(1.0)
    _, _, out = perturb(sim, 40000, prog=scale)
    assert float(out.min()) == 0.0 and bool(out.max() == top)
    at_top, at_zero = (out == top).float().mean(0)[0], (out == 0).float().mean(0)[0]
    r = dev.on_off_ratio  # 150
    assert float(at_top[-1]) == pytest.approx(0.5, abs=0.01) and float(at_zero[-1]) == pytest.approx(phi(-1), abs=0.01)
    assert float(at_zero[0]) == pytest.approx(phi(-1 / r), abs=0.01)
    assert float(at_top[0]) == pytest.approx(phi(-(1 - 1 / r)), abs=0.01)
    _, _, small = perturb(sim, 40000, prog=1.0)  # sigma 0.02 of the range: the top level is clipped half the time
    assert bool(small.max() == top) and float((small[:, 0, -1] == top).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_read_noise_is_the_scale_times_q_at_the_programmed_conductance():
    sim = fake_sim("pcm_aihwkit")
    pert, g, out = perturb(sim, 2, read=2.0)
    top = sim.g_off + sim.L
    x = (g / top).double()
    q = 4.1838 * torch.clamp(0.0088 / torch.clamp(x**0.65, min=1e-3), max=0.2)
    assert torch.allclose(pert.read_std(0, out).double(), (2.0 * q * g).expand(2, -1), rtol=1e-6)
    assert perturb(sim, 2)[0].read_std(0, out) is None


def test_drift_draws_nu_per_device_at_its_level():
    """pcm_aihwkit with 100 levels (on/off 100: x = (1 + level) / 100): nu = -ln(G(t)/G(t0)) / ln(t/t0) has, at
    x = 0.1, the mean 0.0601 and spread 0.0229 of the fit (|N| folds 0.1 % of it), at x = 1 0.049 +- 0.008."""
    sim = fake_sim("pcm_aihwkit", levels=100)
    t = 20.0 * 1e4
    _, g, out = perturb(sim, 20000, t=t)
    nu = -torch.log(out / g).double() / math.log(1e4)
    for level, mean, std in ((9, 0.0155 * math.log(10) + 0.0244, 0.0125 * math.log(10) - 0.0059), (99, 0.049, 0.008)):
        assert float(nu[:, 0, level].mean()) == pytest.approx(mean, rel=0.01)
        assert float(nu[:, 0, level].std()) == pytest.approx(std, rel=0.03)
    _, _, oracle = perturb(sim, 4, t=t, compensation="oracle", seed=0)
    _, _, none = perturb(sim, 4, t=t, compensation="none", seed=0)
    assert torch.allclose(oracle[:, 0, 99], none[:, 0, 99] * 1e4**0.049, rtol=1e-5)


@pytest.mark.parametrize(
    "preset, kwargs, message",
    [
        ("rram_wan2022", {"t": 3600.0}, "drift_t_s 3600.0: device preset rram_wan2022 has no drift model"),
        ("pcm_aihwkit", {"t": 10.0}, "drift_t_s 10.0 is before device preset pcm_aihwkit's drift t0_s 20.0"),
        ("neurosim_v13", {"read": 1.0}, "read_sigma 1.0: device preset neurosim_v13 has no read noise"),
    ],
)
def test_the_monte_carlo_refuses_what_the_device_lacks(preset, kwargs, message):
    with pytest.raises(ValueError, match=message):
        perturb(fake_sim(preset), 1, **kwargs)


# ------------------------------------------------------------------------------------------- the reference column
def one_device_layer(preset="rram_wan2022", **chip):
    """A one-device (positive) dense layer of 20 inputs and 6 outputs, mapped with an analog reference column per
    column tile (tiles of 4 columns: outputs 0-3 and 4-5)."""
    cfg = {"conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0, "bias": False, "polarity": "positive"}
    arch = make_arch([20], 6, cfg)
    quant = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_ratio": "pow2"}
    torch.manual_seed(0)
    net = build(arch, quant).double()
    net.train()
    net(torch.randn(256, 20, dtype=torch.float64))
    net.eval()
    arrays, mapping = map_network(net, 2, map_settings(preset=preset, rows=64, cols=4, **chip))
    assert mapping["layers"][0]["pair"] == 1 and mapping["layers"][0]["col_tiles"] == 2
    return Simulator(arrays, mapping)


def test_the_reference_columns_read_noise_is_one_draw_shared_by_its_tiles_columns():
    """rram_wan2022 at on/off 2 (G_min = 3 dG: a reference column as loud as the weights), read noise 1 % x 5:
    over 20000 reads of one input, two outputs of one column tile covary by the reference column's variance
    sum_r u_r^2 (0.05 G_min)^2, outputs of different tiles not at all, and each output's variance is its own
    cells' plus the reference's, as before."""
    sim = one_device_layer(on_off_ratio=2.0)
    spec = sim.layers[0]
    La = sim.dac_levels
    x = torch.randn(1, 20, dtype=torch.float64)
    u = torch.clamp(torch.round(x[0] / (spec["dac_fullscale"] / La)), -La, La)
    model = NoiseModel(0.0, 5.0, 0.0, 0.0, None, 0, None)
    chips = sim.chips(noise.Perturbation(model, 1, sim, torch.Generator().manual_seed(0)))
    out = sim.forward(x.repeat(20000, 1), perturb=chips, adc=False)[0]  # (reads, 6)
    unit = spec["weight_step"] * spec["dac_fullscale"] / La
    g = sim.levels[0].double() + sim.g_off  # (20, 6 + 2 reference columns), dG units
    assert torch.all(g[:, 6:] == sim.g_off)
    ref = float(((u**2) * (0.05 * sim.g_off) ** 2).sum()) * unit**2
    own = ((u[:, None] ** 2) * (0.05 * g[:, :6]) ** 2).sum(0) * unit**2
    cov = torch.cov(out.T)
    assert torch.allclose(cov.diagonal(), own + ref, rtol=0.05)
    same = [cov[a, b] for a in range(4) for b in range(4) if a < b] + [cov[4, 5]]
    assert float(torch.stack(same).mean()) == pytest.approx(ref, rel=0.05)
    other = cov[:4, 4:].flatten()
    assert float(other.abs().max()) < 0.1 * ref


def test_a_one_device_convolution_with_read_noise_runs_and_is_noisy():
    cfg = {"conv": [8, "M"], "kernel_size": 5, "hidden": [], "dropout": 0.0, "bias": True, "polarity": "positive"}
    arch = make_arch([9, 32], 6, cfg)
    net, x = small_net(arch, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_ratio": "pow2"})
    arrays, mapping = map_network(net, 2, map_settings(preset="rram_wan2022", rows=16, cols=4))
    sim = Simulator(arrays, mapping)
    assert all(lay["pair"] == 1 and lay["col_tiles"] > 1 for lay in mapping["layers"])
    model = NoiseModel(0.0, 1.0, 0.0, 0.0, None, 0, None)
    noisy = sim.forward(x, perturb=noise.Perturbation(model, 2, sim, torch.Generator().manual_seed(0)), adc=False)
    ideal = sim.forward(x, adc=False)[0]
    assert noisy.shape == (2, *ideal.shape) and torch.isfinite(noisy).all()
    assert 0 < float((noisy - ideal).abs().mean()) < 0.1 * float(ideal.abs().mean())


def test_wires_come_from_their_preset_and_neurosims_switch_sizing():
    """The default interconnect: 13.26 Ohm/um (NeuroSim V1.3 at 22 nm: 4.03e-8 Ohm m over 40 nm x 40 nm x 1.9) over a
    1T1R cell's 12F row run and 4F column run at F = 22 nm; the driver and sense switches 0.25 R_on / cells served
    (R_on 25 kOhm on rram_wan2022, 128 x 128: 48.8 Ohm), recorded whole in the chip and read back strictly."""
    unit = 4.03e-8 / (40e-9 * 40e-9 * 1.9) * 1e-6  # Ohm per um
    chip = Chip.from_config(config.validate({})["chip"])
    w = chip.wires
    assert (w.row_ohm_per_cell, w.col_ohm_per_cell) == pytest.approx((unit * 12 * 0.022, unit * 4 * 0.022), rel=1e-3)
    assert w.driver_ohm == w.sense_ohm == pytest.approx(0.25 * 25e3 / 128)
    tall = Chip.from_config(config.validate({"chip": {"tile": {"rows": 256, "cols": 64}}})["chip"]).wires
    assert (tall.driver_ohm, tall.sense_ohm) == pytest.approx((0.25 * 25e3 / 64, 0.25 * 25e3 / 256))
    own = {"row_ohm_per_cell": 0.0, "col_ohm_per_cell": 2.5, "driver_ohm": 10, "sense_ohm": None}
    over = Chip.from_config(config.validate({"chip": {"wires": own}})["chip"]).wires
    assert (over.row_ohm_per_cell, over.col_ohm_per_cell, over.driver_ohm) == (0.0, 2.5, 10.0)
    d = json.loads(json.dumps(chip.to_dict()))
    assert Chip.from_dict(d) == chip
    del d["wires"]["sense_ohm"]
    with pytest.raises(ChipError, match="missing sense_ohm"):
        Chip.from_dict(d)
    with pytest.raises(ChipError, match="a resistance in ohms"):
        Wires("neurosim_v13_22nm_1t1r", row_ohm_per_cell=-1.0, col_ohm_per_cell=1, driver_ohm=0, sense_ohm=0,
              reference_column="last")  # fmt: skip
    assert chip.wires.reference_column == "last"  # a one-device tile's reference column: the far end of the rows
    first = Chip.from_config(config.validate({"chip": {"wires": {"reference_column": "first"}}})["chip"]).wires
    assert first.reference_column == "first" and Chip.from_dict(json.loads(json.dumps(chip.to_dict())))
    with pytest.raises(ChipError, match="reference_column 'left'"):
        Wires("neurosim_v13_22nm_1t1r", 1.0, 1.0, 0.0, 0.0, reference_column="left")


def test_wires_of_another_node_must_be_given():
    """The preset's wires hold at 22 nm 1T1R: pricing another node or cell without giving both per-cell values is a
    config error naming the keys; giving them is accepted."""
    with pytest.raises(config.ConfigError, match="chip.wires.preset.*45 nm"):
        config.validate({"estimate_cost": {"tech_nm": 45}})
    with pytest.raises(config.ConfigError, match="crosspoint"):
        config.validate({"estimate_cost": {"cell": "crosspoint"}})
    own = {"row_ohm_per_cell": 1.0, "col_ohm_per_cell": 1.0}
    assert (
        config.validate({"estimate_cost": {"tech_nm": 45}, "chip": {"wires": own}})["chip"]["wires"]["col_ohm_per_cell"]
        == 1.0
    )

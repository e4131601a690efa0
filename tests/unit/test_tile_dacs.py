"""Row-DAC error in the simulator (nvmxbar.core.tile_dacs): the bit-plane GEMM equals each row driver's output
L_r(u) = sign(u) sum_k bit_k(|u|) E_{r,k} computed one row and one output at a time; in the simulator, drawn DACs
equal the ideal chip fed the drivers' outputs as analog inputs; scale 0 changes nothing."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import chip_of, map_settings, small_net

from nvmxbar.core import tile_dacs
from nvmxbar.core.converter_params import ConverterErrors
from nvmxbar.core.networks import make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator

BITS = 4


class Chip4:
    passes, dac_bits = 1, BITS


def elements(shape, sigma=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    nominal = torch.tensor([2.0**k for k in range(BITS)], dtype=torch.float64)
    return nominal * (1 + sigma * torch.randn(*shape, BITS, generator=g, dtype=torch.float64))


def driver_out(codes, E):
    """L(u) one value at a time: sign(u) x the sum of the elements |u|'s bits select."""
    mag = codes.abs().long()
    bits = ((mag[..., None] >> torch.arange(BITS)) & 1).double()
    return (bits * E).sum(-1) * codes.sign()


def test_a_dense_tiles_bit_planes_and_looked_up_drivers_equal_every_driver_one_at_a_time():
    """3 chips, 10 rows, 6 columns on 2 column tiles, signed codes (-15 .. 15, sign-magnitude): the bit-plane GEMM
    and the GEMM on looked-up driver outputs (what the simulator runs for a dense layer) both."""
    I, K, N = 3, 10, 6
    E, tiles_of = elements((I, K, 2)), torch.tensor([0, 0, 0, 1, 1, 1])
    m = torch.randn(I, K, N, dtype=torch.float64)
    u = torch.randint(-15, 16, (1, 5, K)).double()
    up, nb = tile_dacs.planes(u, Chip4)
    got = up @ tile_dacs.expand(m, E, tiles_of, None)
    want = torch.stack(
        [torch.stack([driver_out(u[0], E[i, :, tiles_of[n]]) @ m[i, :, n] for n in range(N)], -1) for i in range(I)]
    )
    assert nb == BITS and up.shape == (1, 5, K * BITS)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    chip = SimpleNamespace(tile=SimpleNamespace(cols=3), subtraction="analog", passes=1, dac_bits=BITS)
    spec = {"pair": 1, "outputs": N, "slices": 1}  # one device per weight: signal q on column q, 3 per tile
    assert tile_dacs.column_tiles(chip, spec).tolist() == tiles_of.tolist()
    assert torch.allclose(tile_dacs.dense_sum(u, m, E, chip, spec), want, rtol=0, atol=1e-12)  # drivers looked up
    assert not torch.allclose(u @ m, want, atol=1e-3)  # the errors matter at 5 %


def test_a_convolutions_rows_each_have_their_own_driver():
    """One pixel reaches a kernel's 5 rows through 5 drivers: the grouped convolution on bit planes equals the sum
    over every window position of each row's driver output times its weight."""
    I, N, C, k, L = 2, 3, 3, 5, 12
    E, tiles_of = elements((I, C * k, 2), seed=1), torch.tensor([0, 1, 1])
    m = torch.randn(I * N, C, k, dtype=torch.float64)
    x = torch.randint(0, 16, (1, 2, C, L)).double()
    up, _ = tile_dacs.planes(x, Chip4)
    got = F.conv1d(up[0], tile_dacs.expand(m, E, tiles_of, [k]), padding=2)  # (B, I x N, L)
    xp = F.pad(x[0], (2, 2))
    want = torch.zeros_like(got)
    for i in range(I):
        for n in range(N):
            En = E[i, :, tiles_of[n]].reshape(C, k, BITS)
            for p in range(L):
                want[:, i * N + n, p] = (driver_out(xp[:, :, p : p + k], En) * m[i * N + n]).sum((1, 2))
    assert torch.allclose(got, want, rtol=0, atol=1e-11)


DENSE = {"in_shape": [9, 32], "num_classes": 5, "conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0}


class Drawn:
    """One chip with every device at its target and its converters drawn at ``scale``."""

    def __init__(self, scale, seed=0):
        self.wire_scale, errors = 0.0, ConverterErrors.load().scaled(scale)
        self.converter_errors = None if errors.ideal else errors
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, i, g):
        return g[None].clone()


@pytest.mark.parametrize("polarity", [None, "positive"])
def test_drawn_dacs_equal_the_ideal_chip_fed_the_drivers_outputs(polarity):
    """A dense layer on one column tile (its drivers one per row), signed inputs: the chip with drawn DACs (exact
    column sums, adc=False) equals the ideal chip fed a_step x L_r(u_r) as exact analog inputs; at scale 0 the
    chip is the ideal one, bit for bit."""
    quant = {"weight_bits": 2, "dac_bits": BITS, "adc_bits": 6, "adc_tile_rows": 0, "adc_ratio": "pow2"}
    arch = make_arch(DENSE["in_shape"], 5, {**DENSE, "bias": False, "polarity": polarity})
    net, x = small_net(arch, quant, seed=1)
    s = map_settings(rows=512, cols=16, preset="neurosim_v13", **chip_of(net))
    arrays, mapping = map_network(net, 2, s, calib_x=x)
    sim = Simulator(arrays, mapping)
    x = x[:16]
    assert torch.equal(sim.forward(x, perturb=sim.chips(Drawn(0.0))), sim.forward(x))
    chips = sim.chips(Drawn(4.0))
    (E,) = chips.dacs
    assert E.shape == (1, sim.levels[0].shape[0], 1, BITS)
    spec = sim.layers[0]
    a_step = spec["dac_fullscale"] / sim.dac_levels
    u = (x.flatten(1) / a_step).round().clamp(-sim.dac_levels, sim.dac_levels)
    fed = (driver_out(u, E[0, :, 0]) * a_step).reshape(x.shape)
    got = sim.forward(x, perturb=chips, adc=False)
    want = sim.forward(fed, adc=False, dac=False)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    assert not torch.allclose(got, sim.forward(x, adc=False), rtol=1e-3)
    with pytest.raises(ValueError, match="ideal DACs"):
        sim.forward(x, perturb=chips, dac=False)


def test_the_cited_unit_mismatch_gives_a_4_bit_driver_a_small_inl():
    """1 % unit elements (converter_errors.yaml): a 4-bit driver's worst INL over 2,000 drivers stays below 0.15
    LSB (0.072 drawn), its median near 0.02: a fraction of the DAC's own rounding (0.5 LSB)."""
    from nvmxbar.core.dac_error import draw_dacs, inl_lsb

    bank = draw_dacs(1, 2000, BITS, ConverterErrors.load(), torch.Generator().manual_seed(0))
    inl = inl_lsb(bank)
    assert float(inl.max()) < 0.15 and 0.01 < float(inl.median()) < 0.06


def test_a_convolutions_drawn_dacs_run_through_the_simulators_row_tiles(monkeypatch):
    """A 1-D convolution split over row tiles of 16 rows (9 channels x 3 positions = 27 rows: a kernel cut between
    tiles), its drivers given one element set per input channel: its exact column sums (adc=False) equal those of the
    ideal chip on the drivers' outputs L_c(u) as inputs; drawn per row, they differ from both."""
    quant = {"weight_bits": 2, "dac_bits": BITS, "adc_bits": 6, "adc_tile_rows": 16, "adc_ratio": "pow2"}
    arch = make_arch(DENSE["in_shape"], 5, {**DENSE, "conv": [4], "bias": False, "polarity": None})
    net, x = small_net(arch, quant, seed=2)
    arrays, mapping = map_network(net, 2, map_settings(rows=16, cols=32, **chip_of(net)), calib_x=x)
    sim = Simulator(arrays, mapping)
    spec = sim.layers[0]
    assert spec["kind"] == "conv1d" and len(sim.tiles[0]) == 2
    per_channel = elements((1, 9, 1), seed=3)  # (chip, channel, column tile, bits)
    K = sim.levels[0].shape[0]

    def draw(chip, layers, rows, n, scale, generator):
        E = per_channel.repeat_interleave(3, 1)  # every position of a channel: its channel's driver
        return [E, elements((1, rows[1], 1), sigma=0.0)]

    monkeypatch.setattr(tile_dacs, "draw_chips", draw)
    chips = sim.chips(Drawn(1.0))
    assert chips.dacs[0].shape == (1, K, 1, BITS)
    u = (x[:8] / (spec["dac_fullscale"] / sim.dac_levels)).round().clamp(-sim.dac_levels, sim.dac_levels)[None]
    fed = driver_out(u, per_channel[0, :, 0][:, None, :])  # (1, B, channels, length): L_c(u)
    got = sim._mvm(0, u.float(), spec, chips, False, False, torch.float64)
    want = sim._mvm(0, fed.float(), spec, sim.nominal, False, False, torch.float64)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    per_row = elements((1, K, 1), seed=4)
    monkeypatch.setattr(tile_dacs, "draw_chips", lambda *a: [per_row, elements((1, a[2][1], 1), sigma=0.0)])
    other = sim._mvm(0, u.float(), spec, sim.chips(Drawn(1.0)), False, False, torch.float64)
    assert not torch.allclose(other, want, rtol=1e-3) and not torch.allclose(other, got, rtol=1e-3)


def test_each_converter_error_switches_off_on_its_own():
    """evaluate_noise.converter_parts: a part at 0 leaves the others as cited; the DAC alone draws no ADC (ideal
    ADCs, exactly round and clip), the ADCs alone no DAC; every part 0 is the ideal chip."""
    from nvmxbar.core import noise
    from nvmxbar.settings import ConverterParts, NoiseModel

    quant = {"weight_bits": 2, "dac_bits": BITS, "adc_bits": 6, "adc_tile_rows": 0, "adc_ratio": "pow2"}
    net, x = small_net(make_arch(DENSE["in_shape"], 5, {**DENSE, "bias": True}), quant, seed=1)
    arrays, mapping = map_network(net, 2, map_settings(rows=512, cols=16, **chip_of(net)), calib_x=x)
    sim = Simulator(arrays, mapping)
    model = NoiseModel(0.0, 0.0, 0.0, 0.0, None, 0, None, adc_error_scale=4.0)
    dac_off = ConverterParts(dac_sigma=0.0)
    only_dac = ConverterParts(0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    p = noise.Perturbation(model, 2, sim, torch.Generator(), dac_off)
    assert p.converter_errors.dac_sigma == 0 and p.converter_errors.cap_sigma == 4 * ConverterErrors.load().cap_sigma
    with_dac = sim.chips(noise.Perturbation(model, 2, sim, torch.Generator().manual_seed(0), only_dac))
    assert with_dac.adcs is None and with_dac.dacs is not None
    no_dac = sim.chips(noise.Perturbation(model, 2, sim, torch.Generator().manual_seed(0), dac_off))
    assert no_dac.dacs is None and no_dac.adcs is not None
    assert noise.Perturbation(model, 2, sim, torch.Generator(), ConverterParts(*[0.0] * 6)).converter_errors is None
    with pytest.raises(ValueError, match="converter_parts.gain_sigma = -1"):
        ConverterParts(gain_sigma=-1)

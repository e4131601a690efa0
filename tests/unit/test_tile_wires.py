"""IR drop in the simulator (nvmxbar.core.tile_wires): the matrices a chip population runs on, with wires, equal the
exact nodal solve (nvmxbar.core.parasitics) of each physical tile and mux cycle, combined as the circuit combines
them (a pair subtracted, a one-device column minus its cycle's reference column); no wires leave them unchanged."""

import numpy as np
import pytest
import torch
from conftest import chip_of, map_settings, small_net

from nvmxbar.core import parasitics, tile_adcs, tile_wires
from nvmxbar.core.converter_params import ConverterErrors
from nvmxbar.core.networks import make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator

DENSE = {"in_shape": [9, 32], "num_classes": 5, "conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0}
DENSE |= {"bias": True}


class Nominal:
    """A Perturb that draws one chip with every device at its target, under IR drop at ``wire_scale``."""

    def __init__(self, wire_scale):
        self.wire_scale = wire_scale

    def __call__(self, i, g):
        return g[None].clone()


def mapped(polarity, rows, cols, **chip):
    quant = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_tile_rows": rows, "adc_ratio": "pow2"}
    net, x = small_net(make_arch(DENSE["in_shape"], 5, {**DENSE, "polarity": polarity}), quant, seed=1)
    s = map_settings(rows=rows, cols=cols, preset="neurosim_v13", **{**chip_of(net), **chip})
    arrays, mapping = map_network(net, 2, s, calib_x=x)
    return Simulator(arrays, mapping), arrays


def exact(sim, arrays, layer, scale):
    """The effective (K, N*S) matrix of layer 0's first row tile, in dG units, from the exact solver: per column tile
    and cycle, the physical tile's transfer matrix (wires x scale), then the pair or the reference subtracted."""
    spec, chip = sim.layers[layer], sim.chip
    w = chip.wires
    wires = parasitics.Wires(
        *(scale * v for v in (w.row_ohm_per_cell, w.col_ohm_per_cell)), w.driver_ohm * scale, w.sense_ohm * scale
    )
    lev = sim.levels[layer].double() + sim.g_off  # (K, columns [+ references]), dG units
    a, e = sim.tiles[layer][0]
    refs = sim.ref_cols[layer]
    ncol = lev.shape[1] - refs
    out = torch.zeros(e - a, ncol, dtype=torch.float64)
    ref = torch.zeros_like(out)
    rows = tile_wires.row_positions(arrays, layer, lev.shape[0])[a:e]
    C, R = chip.tile.cols, chip.tile.rows
    for j in range(-(-ncol // C)):
        cols = np.arange(j * C, min((j + 1) * C, ncol))
        cyc = tile_wires.cycle_of(cols - j * C, chip, spec["pair"])
        for k in np.unique(cyc):
            sel = cols[cyc == k]
            # (physical position, column of the used-cell matrix) of every conducting column, by position: the
            # reference at r, the data columns from r on one position further
            r = {"last": C, "first": 0, "middle": C // 2}[chip.wires.reference_column]
            cond = sorted([(int(p + (p >= r) if refs else p), int(c)) for p, c in zip(sel - j * C, sel, strict=True)]
                          + ([(r, ncol + j)] if refs else []))  # fmt: skip
            G = np.zeros((R, len(cond)))
            G[rows] = lev[a:e][:, [c for _, c in cond]].numpy()
            pos = np.array([p for p, _ in cond])
            W = parasitics.transfer_matrix(G * sim.dg_us * 1e-6, pos, wires) / (sim.dg_us * 1e-6)
            for q, (_, c) in enumerate(cond):
                if c < ncol:
                    out[:, c] = torch.from_numpy(W[rows, q])
            if refs:
                q = [c for _, c in cond].index(ncol + j)
                ref[:, sel] = torch.from_numpy(W[rows, q : q + 1]).expand(-1, len(sel))
    if spec["pair"] == 2:
        return out[:, 0::2] - out[:, 1::2]
    return (out - ref) * sim.row_sign[layer][a:e]


@pytest.mark.parametrize(
    ("polarity", "reference"), [(None, "last"), ("positive", "last"), ("positive", "first"), ("positive", "middle")]
)
@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_the_simulators_wired_matrices_are_the_exact_solve(polarity, reference, scale):
    """Differential pairs (uniform) and one device per weight with a reference column (unipolar), on 16-row tiles of
    8 columns, 2 columns per ADC (two cycles; 40 x the wires: a drop of several per cent): every matrix entry the
    simulator runs on equals the exact nodal solve of its physical tile and cycle to 1e-6 of the largest cell
    conductance (the chips are stored in float32, CG stops at a relative residual of 1e-6)."""
    sim, arrays = mapped(polarity, rows=16, cols=8, adc_mux=2, reference_column=reference)
    assert sim.chip.wires.reference_column == reference
    chips = sim.chips(Nominal(scale))
    m = chips.tiles[0][0][0][0]  # layer 0, row tile 0: (rows, N*S) of the one chip
    want = exact(sim, arrays, 0, scale)
    ideal = sim.nominal.tiles[0][0][0][0].double()
    assert (want - ideal).abs().max() > (0.01 if scale > 1 else 1e-5) * ideal.abs().max()  # the wires matter
    top = float((sim.levels[0] + sim.g_off).max())
    assert torch.allclose(m.double(), want, rtol=0, atol=1e-6 * top)


def test_no_wires_leave_the_chip_unchanged_and_the_cycles_follow_the_adcs():
    """Scale 0 is the ideal chip, exactly; a tile's signals are sensed one per ADC per cycle (contiguous groups of
    adc_mux signals per ADC; an analog pair is one signal)."""
    sim, _ = mapped(None, rows=16, cols=8, adc_mux=2)
    ideal = sim.nominal.tiles[0][0][0][0]
    same = sim.chips(Nominal(0.0)).tiles[0][0][0][0]
    assert torch.equal(same.double(), ideal.double())
    chip = sim.chip
    assert tile_wires.cycle_of(np.arange(8), chip, 2).tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert tile_wires.cycle_of(np.arange(8), chip, 1).tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


class Drawn(Nominal):
    """One chip with every device at its target and its converters drawn at ``adc_error_scale``."""

    def __init__(self, adc_error_scale, seed=0):
        super().__init__(0.0)
        errors = ConverterErrors.load().scaled(adc_error_scale)
        self.converter_errors = None if errors.ideal else errors
        self.generator = torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("polarity", [None, "positive"])
def test_each_signal_is_converted_by_its_own_drawn_adc(polarity):
    """Scale 0 converts exactly as the ideal ADC; a tile's signals map to its ADCs in contiguous groups of adc_mux
    (a pair subtracted in analog is one signal), every ADC of the layer used; at 4 x the cited errors the logits move,
    reproducibly from the generator's seed."""
    sim, _ = mapped(polarity, rows=16, cols=8, adc_mux=2)
    x = torch.randn(32, 9, 32, dtype=torch.float64)
    ideal = sim.forward(x)
    assert torch.equal(sim.forward(x, perturb=sim.chips(Drawn(0.0))), ideal)
    spec = sim.layers[0]
    index, count = tile_adcs.adc_index(sim.chip, spec, len(sim.tiles[0]))
    per_tile = 8 // spec["pair"] // 2  # 8 columns, a pair one signal, 2 signals per ADC
    assert count == len(sim.tiles[0]) * -(-spec["physical_cols"] // 8) * per_tile
    assert int(index.max()) < count and len(set(index.flatten().tolist())) > count // 2
    assert index[0, :4].tolist() == [0, 0, 1, 1]  # signals 0-3 of the first tile: ADC 0 takes 0-1, ADC 1 2-3
    assert (index[1] - index[0]).unique().tolist() == [count // len(sim.tiles[0])]  # the next row tile's own ADCs
    if spec["pair"] == 2:  # 5 pairs on 8-column tiles: the fifth pair is the first signal of the next column tile
        assert index[0, 4] == per_tile
    noisy = sim.forward(x, perturb=sim.chips(Drawn(4.0)))
    assert not torch.equal(noisy, ideal)
    assert torch.equal(noisy, sim.forward(x, perturb=sim.chips(Drawn(4.0))))


def test_the_fast_model_holds_on_full_tiles_up_to_the_checked_load_and_is_refused_beyond():
    """Full 128 x 128 tiles of neurosim_v13 cells (G_min .. 166.7 uS, a third at G_max) on 5 x the 22 nm wires and
    switches, a wire load of 31.9: the fast model's transfer matrix equals the exact solve to 1e-5 of its largest
    entry, for all columns at once and for a mux cycle's 16 columns; the simulator refuses a load beyond
    LOAD_CHECKED, naming it."""
    from nvmxbar import config
    from nvmxbar.chip import Chip
    from nvmxbar.core.ir_drop import effective_conductance

    chip = Chip.from_config(config.validate({"chip": {"device": {"preset": "neurosim_v13"}}})["chip"])
    g_max = chip.device.g_max_us * 1e-6
    load = tile_wires.wire_load(g_max, chip, 5.0)
    assert load == pytest.approx(31.9, abs=0.05) and load <= tile_wires.LOAD_CHECKED
    rng = np.random.default_rng(3)
    G = rng.uniform(g_max / chip.device.on_off_ratio, g_max, (128, 128))
    G[rng.random(G.shape) < 1 / 3] = g_max
    w = chip.wires
    r = [5.0 * v for v in (w.row_ohm_per_cell, w.col_ohm_per_cell, w.driver_ohm, w.sense_ohm)]
    for cols in (np.arange(128), np.arange(3, 128, 8)):
        want = parasitics.transfer_matrix(G[:, cols], cols, parasitics.Wires(*r))
        got = effective_conductance(torch.from_numpy(G[:, cols]), torch.from_numpy(cols), *r).W.numpy()
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
        assert np.abs(G[:, cols] - want).max() > 0.3 * g_max  # the wires matter: a third of G_max and more
    sim, _ = mapped(None, rows=16, cols=8, adc_mux=2)
    with pytest.raises(ValueError, match=r"outside the range where the fast model was checked .*up to 32"):
        sim.chips(Nominal(1e4))

"""One circuit, simulated and costed the same (nvmxbar.settings.Circuit): the operations the simulator performs are
the ones the cost model prices, both input modes and both subtraction schemes are simulated exactly, uniform
scaling's ADC-to-DAC ratio is a power of two (the baseline's own converters: tests/unit/test_baseline.py)."""

import math

import pytest
import torch
from conftest import SMALL_ARCH, chip_of, map_settings, rounding_bound, small_net

from nvmxbar.core import cost, cost_units
from nvmxbar.core.networks import make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator
from nvmxbar.stages.estimate_cost import check_operations

ARCH = SMALL_ARCH
SPLIT = {**ARCH, "conv": [8, "M", "M", 12, "M"], "input_split": True}
MIXED = [{"sign": 1}, {"sign": 1, "row_groups": 2}, {"sign": 1, "col_groups": 2}, {"sign": -1, "col_groups": 3}]
MODES = ["multibit", "bit_serial"]
SUBTRACTIONS = ["analog", "digital"]


def quantized(input_mode="multibit", polarity=None, rows=16, arch=ARCH, seed=0):
    """A small calibrated float64 network of the circuit (per-tile ADC of ``rows`` rows, pow2 ratio)."""
    quant = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_tile_rows": rows, "input_mode": input_mode}
    quant["adc_ratio"] = "pow2"
    a = make_arch(arch["in_shape"], arch["num_classes"], {**arch, "polarity": polarity})
    return small_net(a, quant, seed)


def mapped(net, x, rows=16, cols=8, **over):
    """Map ``net`` onto a chip of its own converters and drive (``over`` replaces chip or map_crossbar keys)."""
    s = map_settings(rows=rows, cols=cols, **{**chip_of(net), **over})
    return map_network(net, 2, s, calib_x=x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("polarity", [None, "positive", MIXED])
def test_ideal_crossbar_equals_the_network_in_both_input_modes(mode, polarity):
    """The network trains the circuit it is mapped onto: multi-bit or bit-serial drive (dac_bits passes, each
    converted per row tile and shift-added), with the ADC, on several row tiles: the ideal crossbar equals it."""
    arch = SPLIT if polarity == "positive" else ARCH
    net, x = quantized(mode, polarity, arch=arch)
    arrays, mapping = mapped(net, x, input_mode=mode)
    assert mapping["chip"]["input_mode"] == mode and max(s["row_tiles"] for s in mapping["layers"]) > 1
    with torch.no_grad():
        xbar = Simulator(arrays, mapping).forward(x)[0]
        assert torch.allclose(xbar, net(x), rtol=0, atol=1e-9)
        assert torch.equal(xbar.argmax(1), net(x).argmax(1))


def test_bit_serial_differs_from_multibit_and_refuses_the_other_crossbar():
    """A pass's partial sums are rounded by the ADC on their own: bit-serial is another circuit, and a model trained
    for one drive is not mapped onto the other."""
    net, x = quantized("bit_serial")
    serial = net(x)
    net.quant.input_mode = "multibit"
    assert not torch.allclose(serial, net(x))
    net.quant.input_mode = "bit_serial"
    with pytest.raises(ValueError, match=r"input_mode 'bit_serial' \(the chip has 'multibit'\)"):
        mapped(net, x, input_mode="multibit")


def test_bit_serial_gradient_is_the_multibit_one_without_clipping():
    """Straight through the bit planes: with no ADC clipping (a wide ADC) the weights' gradient is the multi-bit
    network's."""
    dense = {"in_shape": [9, 32], "num_classes": 7, "conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0}
    grads = []
    for mode in MODES:
        net, x = quantized(mode, rows=0, arch={**dense, "bias": True})
        net.quant.adc_ratio = "free"  # an ADC range nothing reaches, and a fine step
        net.quant.scales.data[2] = 1e3
        net.quant.adc_levels = 2**30
        net.train()
        x = x.clone().requires_grad_(True)
        (net(x) * torch.linspace(-1, 1, 7, dtype=x.dtype)).sum().backward()
        grads.append((net.layers[0].weight.grad.clone(), x.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-6, atol=1e-9)  # the weights'
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-6, atol=1e-9)  # the inputs' (straight through)


@pytest.mark.parametrize("polarity", [None, MIXED])
def test_digital_subtraction_is_exact_without_the_adc_and_converts_twice(polarity):
    """Digital subtraction converts a pair's two columns (or a one-device column with its G_min offset) and
    subtracts after the ADC: without the ADC it is the same sum as the analog circuit; with it the codes differ
    (the ADC sees the currents before subtraction) and a pair costs twice the conversions."""
    net, x = quantized("multibit", polarity)
    a_arr, a_map = mapped(net, x, subtraction="analog")
    d_arr, d_map = mapped(net, x, subtraction="digital")
    sa, sd = Simulator(a_arr, a_map), Simulator(d_arr, d_map)
    assert sd.dtype == torch.float64  # a digital column's sums hold G_min / dG: no integers, float32 would round
    with torch.no_grad():
        ya, yd = sa.forward(x, adc=False), sd.forward(x, adc=False)
    assert (ya - yd).abs().max() <= rounding_bound(sd, ya)
    assert not torch.equal(sa.forward(x), sd.forward(x))
    ca, cd = sa.count_operations(x), sd.count_operations(x)
    conv = sum(c["adc_conversions"] for c in cd) / sum(c["adc_conversions"] for c in ca)
    assert conv == (2 if polarity is None else 1)
    assert sum(c["subtractions"] for c in ca) == 0 < sum(c["subtractions"] for c in cd)


def test_one_device_tiles_hold_a_reference_column_that_noise_perturbs():
    """Analog offset removal: each one-device tile has a column of G_min cells read with its inputs (counted as
    devices and reads), simulated like the others: perturbing it moves the outputs."""
    net, x = quantized("multibit", "positive", arch=SPLIT)
    arrays, mapping = mapped(net, x)
    sim = Simulator(arrays, mapping)
    spec = mapping["layers"][1]
    assert sim.ref_cols[1] == spec["col_tiles"] and spec["reference_cells"] == spec["rows"] * spec["col_tiles"]

    def refs_only(i, g):  # +1 dG on the reference cells alone
        out = g[None].clone()
        out[..., g.shape[-1] - sim.ref_cols[i] :] += 1.0
        return out

    with torch.no_grad():
        assert not torch.allclose(sim.forward(x, perturb=refs_only, adc=False), sim.forward(x, adc=False))


@pytest.mark.parametrize("scheme", ["baseline", "baseline/offset", "baseline/free", "uniform", "unipolar"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("subtraction", SUBTRACTIONS)
def test_counted_operations_are_the_priced_operations(scheme, mode, subtraction):
    """The simulator counts every conversion, drive (every mux cycle), cell read, bit line, subtraction, sign flip,
    shift-add, rescale, ReLU and max-pool comparison and buffer access while it runs; they equal mapping.json's
    analytic counts layer by layer, and cost.json prices exactly them: the baseline's offset encoding (its input-code
    sums and output subtractions) and free slice ranges (a multiply per converted code) included."""
    over = {}
    if scheme.startswith("baseline"):
        net, x = small_net(ARCH, None)
        over = {"baseline_encodings": ["offset" if scheme == "baseline/offset" else "differential"]}
        over["baseline_slice_combination"] = "free" if scheme == "baseline/free" else "pow2"
    else:
        net, x = quantized(mode, MIXED if scheme == "unipolar" else None)
    arrays, mapping = mapped(net, x, input_mode=mode, subtraction=subtraction, **over)
    if scheme == "baseline/offset":
        assert mapping["pair"] == 1 and all(s["weight_offset"] == 128 for s in mapping["layers"])
        assert mapping["total"]["operations"]["subtractions"] > 0
    counted = Simulator(arrays, mapping).count_operations(x[:5], bs=2)
    for layer, ops in zip(mapping["layers"], counted, strict=True):
        check_operations(layer, ops)  # raises on any difference
        layer["operations"] = ops
    passes = 4 if mode == "bit_serial" else 1
    first = mapping["layers"][0]
    # one ADC per 8-column tile: each signal a tile converts takes a mux cycle, and every cycle drives the rows again
    signals = first["outputs"] * first["slices"] * (2 if subtraction == "digital" and first["pair"] == 2 else 1)
    assert counted[0]["dac_activations"] == first["mvms"] * first["rows"] * signals * passes
    doc = cost.estimate(mapping, cost_units.load_constants())
    assert doc["total"]["operations_source"] == "simulator"
    ue = doc["assumptions"]["unit_energy_pj"]
    ops = doc["total"]["operations"]
    assert doc["total"]["energy_by_component"]["adc"] == pytest.approx(ops["adc_conversions"] * ue["adc"])
    assert doc["total"]["energy_by_component"]["rescale"] == pytest.approx(ops["rescales"] * ue["rescale"])
    if not scheme.startswith("baseline"):
        assert ops["rescales"] == 0  # a power-of-two ratio is a shift
    elif scheme == "baseline/free":  # a multiply per converted code of every slice but the LSB, on top of the rescale
        layer = mapping["layers"][-1]
        per_mvm = layer["outputs"] * (1 + (layer["slices"] - 1) * layer["row_tiles"] * passes)
        assert counted[-1]["rescales"] == layer["mvms"] * per_mvm
    with pytest.raises(ValueError, match="the costed circuit is not the simulated one"):
        check_operations(mapping["layers"][0], {**counted[0], "adc_conversions": counted[0]["adc_conversions"] + 1})


@pytest.mark.parametrize("polarity", [None, MIXED])
def test_adc_to_dac_ratio_is_a_power_of_two_after_training(polarity):
    """Uniform scaling ties the ADC step to the DAC step times 2^k (k learned through a straight-through round): after
    training steps that move both full-scales, mapping.json's ratio is still an exact power of two, the ADC codes
    reach the next DAC as a shift, and mapping.json says so."""
    net, x = quantized("multibit", polarity)
    batch, y = x[:64], torch.randint(0, 6, (64,))  # 5 steps on 64 windows move both (log2 ratio by ~0.13-0.2)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    before = (float(net.quant.act_fullscale), float(net.quant.log2_ratio))
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(batch), y).backward()
        opt.step()
    net.eval()
    assert (float(net.quant.act_fullscale), float(net.quant.log2_ratio)) != before  # both learned
    _, mapping = mapped(net, x)
    ratio = mapping["adc_dac_ratio"]
    assert mapping["chip"]["adc_ratio"] == "pow2" and math.log2(ratio) == round(math.log2(ratio))
    spec = mapping["layers"][0]
    measured = (mapping["adc_fullscale"] / 31) / (spec["dac_fullscale"] / 15)
    assert measured == pytest.approx(ratio, rel=1e-12)
    assert mapping["total"]["rescale_units"] == 0


def test_free_ratio_keeps_a_multiply_and_it_is_costed():
    net, x = small_net(ARCH, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_tile_rows": 16})
    _, mapping = mapped(net, x)
    assert mapping["chip"]["adc_ratio"] == "free"
    assert mapping["total"]["rescale_units"] == sum(s["outputs"] for s in mapping["layers"])
    doc = cost.estimate(mapping, cost_units.load_constants())
    assert doc["total"]["area_by_component"]["rescale"] > 0 and doc["total"]["energy_by_component"]["rescale"] > 0


@pytest.mark.parametrize("mode", MODES)
def test_per_layer_scales_at_device_precision_are_simulated_exactly(mode):
    """The attribution's perlayer variant: one weight, DAC and ADC full-scale per layer, trained at device precision
    and mapped on one slice of differential pairs: the ideal crossbar equals the network; every layer is a
    periphery design of its own with a rescale of every output, priced."""
    quant = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_tile_rows": 16, "input_mode": mode, "per_layer": True}
    net, x = small_net(ARCH, quant)
    with torch.no_grad():  # a calibrated ADC range is a percentile of the layer's own outputs, an exact multiple of
        for q in net.quant.layers:  # its weight x DAC step, whose ties float rounding breaks either way; trained
            q.scales[2] *= 1.001  # ranges are not
    scales = [q.fullscales() for q in net.quant.layers]
    assert len({s["act_fullscale"] for s in scales}) == len(scales)  # each layer its own
    arrays, mapping = mapped(net, x, input_mode=mode)
    assert mapping["scheme"] == "perlayer" and mapping["slices"] == 1
    assert mapping["total"]["periphery_designs"] == len(mapping["layers"])
    assert mapping["total"]["rescale_units"] == sum(s["outputs"] for s in mapping["layers"])
    with torch.no_grad():
        assert torch.allclose(Simulator(arrays, mapping).forward(x)[0], net(x), rtol=0, atol=1e-9)
    counted = Simulator(arrays, mapping).count_operations(x[:3])
    for layer, ops in zip(mapping["layers"], counted, strict=True):
        check_operations(layer, ops)

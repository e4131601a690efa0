"""The weight errors IR drop leaves a network (nvmxbar.core.wire_error), which hardware-aware training adds to its
weights (quant.train_wires): the network with them computes what the simulator computes on the chip's wires."""

import pytest
import torch
from conftest import chip_of, map_settings, small_net

from nvmxbar.core.networks import make_arch
from nvmxbar.core.schemes import map_network
from nvmxbar.core.simulator import Simulator
from nvmxbar.core.wire_error import weight_errors

ARCH = {"conv": [8, "M"], "kernel_size": 3, "hidden": [12], "dropout": 0.0, "bias": True}


class Wired:
    """A Perturb of one chip with every device at its target, under IR drop at ``wire_scale`` x the chip's wires."""

    def __init__(self, wire_scale):
        self.wire_scale = wire_scale

    def __call__(self, i, g):
        return g[None].clone()


def setup(polarity, scale):
    quant = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_tile_rows": 16, "adc_ratio": "pow2"}
    net, x = small_net(make_arch([9, 32], 5, {**ARCH, "polarity": polarity}), quant, seed=3)
    s = map_settings(rows=16, cols=8, adc_mux=2, preset="neurosim_v13", **chip_of(net))
    return net, x, s, Simulator(*map_network(net, 2, s))


@pytest.mark.parametrize("polarity", [None, "positive"])
def test_the_network_with_its_wire_errors_computes_the_wired_crossbar(polarity):
    """Differential pairs and one device per weight (its reference column at the tile's end), a convolution over two
    row tiles and a dense layer over several column tiles, two mux cycles, biases on driven rows, 40 x the 22 nm
    wires: the training forward on the quantized weights plus their errors gives the logits of the simulator on those
    wires (the same ADC codes; float rounding at a code threshold may move a few), while the wires move the ideal
    crossbar's logits by far more."""
    net, x, s, sim = setup(polarity, 40.0)
    errors = weight_errors(net, 2, s, 40.0)
    assert [tuple(dw.shape) for dw, _ in errors] == [tuple(layer.weight.shape) for layer in net.layers]
    assert all(db is not None and db.shape == layer.bias.shape for (_, db), layer in zip(errors, net.layers))
    wired = sim.forward(x, perturb=sim.chips(Wired(40.0)))[0].double()
    ideal = sim.forward(x)[0].double()
    with torch.no_grad():
        ref = net(x)  # eval: no wire errors, the ideal crossbar's logits in the network's units
        unit = float(ref.abs().max() / ideal.abs().max())
        net.train()
        net.wire_errors = errors
        got = net(x) / unit
        net.wire_errors = None
        assert torch.allclose(net(x), ref, atol=1e-9)  # training mode without errors: the ideal network
    moved = (wired - ideal).abs()
    assert float(moved.mean()) > 0.5  # ADC codes: the wires move the logits by codes
    off = (got - wired).abs()
    assert float((off > 1e-6).double().mean()) < 0.01, float(off.max())
    assert float((got.argmax(-1) == wired.argmax(-1)).double().mean()) > 0.99


def test_wire_errors_grow_with_the_wires_and_vanish_without_them():
    """At 1e-6 x the wires every error is below 1e-4 weight steps; the rms error grows with the scale (first order
    in the drop: 10 x the wires, about 10 x the error, less for the stiffer network); the network is left as it was."""
    net, x, s, _ = setup("positive", 1.0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    step = float(net.quant.weight_fullscale.detach() / net.quant.w_levels)

    def rms(scale):
        e = torch.cat([dw.flatten() for dw, _ in weight_errors(net, 2, s, scale)])
        return float(e.square().mean().sqrt()) / step

    assert rms(1e-6) < 1e-4
    small, large = rms(1.0), rms(10.0)
    assert 0 < small and 5 < large / small <= 10.5, (small, large)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items()) and not net.training


def test_training_refuses_wires_beyond_the_checked_load_before_any_epoch():
    """quant.train_wires at 100 x the 22 nm wires on neurosim_v13's 128 x 128 tiles: a load far past the one the fast
    model was checked at, refused when the callback is made (the train stage makes it before the fit), naming it."""
    from nvmxbar import config
    from nvmxbar.chip import Chip
    from nvmxbar.settings import TrainWires
    from nvmxbar.training.wire_aware import WireAware

    chip = Chip.from_config(config.validate({"chip": {"device": {"preset": "neurosim_v13"}}})["chip"])
    WireAware(TrainWires(1.0, chip, "row"), 2)  # the chip's own wires: within
    with pytest.raises(ValueError, match=r"outside the range where the fast model was checked .*up to 32"):
        WireAware(TrainWires(100.0, chip, "row"), 2)

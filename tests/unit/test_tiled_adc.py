"""The per-row-tile ADC of quantized training (Net._tiled_mvm: one gather, one grouped convolution or batched
matmul, one ADC call) against the straightforward per-tile loop it replaced (kept here as the reference):
same forward values, same gradients, for 1-D and 2-D convolutions and dense layers, bipolar and unipolar
weights, with and without bias, and row tiles that split a channel's kernel."""

import types

import pytest
import torch
import torch.nn.functional as F

from nvmxbar.core.groups import row_tiles
from nvmxbar.core.networks import build, make_arch


def reference_tiled_mvm(self, i, layer, xq, w, b):
    """The per-tile loop: each row tile a convolution on its channel slice with its rows' weights, through the ADC,
    then the partial sums added (the implementation before the grouped one)."""
    q, spec = self.quant, (self.polarity[i] if self.polarity else None)
    per_ch = w[0, 0].numel()
    n_bias = 0 if b is None else (2 if spec is not None else 1)
    tiles = row_tiles(w.shape, spec, n_bias, q.adc_tile_rows)
    K = w.shape[1] * per_ch
    w_rows = torch.tensor(tiles[:K], device=w.device)
    if b is not None:
        if spec is None:
            b_tile = torch.full_like(b, tiles[K], dtype=torch.long)
        else:
            col = getattr(self, f"_pol{i}").reshape(w.shape[0], -1)[:, -1]
            b_tile = torch.where(col * b > 0, tiles[K], tiles[K + 1]).long()
    y = 0
    for t in sorted(set(tiles)):
        rows = (w_rows == t).nonzero().flatten()
        bias_t = None if b is None else torch.where(b_tile == t, b, torch.zeros_like(b))
        if len(rows) == 0:
            part = bias_t.reshape(1, -1, *[1] * (xq.dim() - 2)).expand(xq.shape[0], -1, *xq.shape[2:])
        else:
            c0, c1 = int(rows[0]) // per_ch, int(rows[-1]) // per_ch + 1
            m = (w_rows == t).to(w.dtype).reshape(w.shape[1], *w.shape[2:])[c0:c1][None]
            wt, xt = w[:, c0:c1] * m, xq[:, c0:c1]
            part = layer._conv_forward(xt, wt, bias_t) if i < self.n_conv else F.linear(xt, wt, bias_t)
        y = y + q.adc(part)
    return y


# Row tiles that split a channel's kernel at 128 rows: conv1d's second convolution (30 channels x 5 taps = 150 rows),
# conv2d's (20 channels x 3 x 3 = 180 rows). A tile of bias rows alone: conv2d's second convolution at 45 rows and
# its dense layer (256 rows) at 16 and 128; after a single weight tile: conv1d's first layer (45 rows) and linear's
# classifier (45 rows) at 45.
ARCHS = {
    "conv1d": {"in_shape": [9, 32], "conv": [30, "M", 12, "M"], "kernel_size": 5, "hidden": [20]},
    "conv2d": {"in_shape": [3, 8, 8], "conv": [20, "M", 16], "kernel_size": 3, "hidden": [24]},
    "linear": {"in_shape": [300], "conv": [], "kernel_size": 3, "hidden": [45]},
    # unipolar at 16 rows: the +A bias row ends a tile and the -A row starts the next one (47 + 1, 31 + 1 rows)
    "bias_split": {"in_shape": [47], "conv": [], "kernel_size": 3, "hidden": [31]},
}
POLARITIES = {
    "bipolar": None,
    "positive": "positive",
    "groups": {"sign": -1, "row_groups": 2, "col_groups": 3},
}
QUANT = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6}


def make(arch_name, polarity, bias, tile_rows, seed=0):
    cfg = {**ARCHS[arch_name], "dropout": 0.0, "bias": bias}
    if polarity is not None:
        cfg["polarity"] = polarity
    arch = make_arch(cfg["in_shape"], 6, cfg)
    torch.manual_seed(seed)
    net = build(arch, QUANT).double()
    x = torch.randn(48, *cfg["in_shape"], dtype=torch.float64)
    net.train()
    net(x)  # calibrate the shared full-scales
    if bias:  # non-zero biases of both signs, as after some training
        with torch.no_grad():
            for layer in net.layers:
                layer.bias.copy_(torch.randn_like(layer.bias) * 0.3)
    net.quant.adc_tile_rows = tile_rows
    return net, x


def layer_inputs(net, x):
    """The input of every weight layer of the quantized ``net`` on ``x`` (what its DAC sees)."""
    seen, dac = [], net.quant.dac
    net.quant.dac = lambda v, signed=False: seen.append(v.detach()) or dac(v, signed)
    try:
        with torch.no_grad():
            net(x)
    finally:
        del net.quant.dac
    assert len(seen) == len(net.layers)
    return seen


def mvm_with_grads(net, i, x, g, impl):
    """Layer i's tiled output on the layer input ``x`` (DAC, weights and bias quantized as in the network) and
    the gradients of ``(output * g).sum()`` with respect to x, the layer's weight and bias and the full-scales."""
    q, layer = net.quant, net.layers[i]
    net.zero_grad()
    x = x.clone().requires_grad_(True)
    w, b = q.weight(layer.weight, getattr(net, f"_pol{i}")), q.bias(layer.bias)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)  # as Net._forward hands it on the CPU
    y = impl(net, i, layer, q.dac(x, signed=(i == 0)), w, b)
    (y * g).sum().backward()
    grads = [x.grad, layer.weight.grad, q.scales.grad] + ([layer.bias.grad] if layer.bias is not None else [])
    return y.detach(), [t.clone() for t in grads]


@pytest.mark.parametrize("tile_rows", [16, 45, 128])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("polarity", list(POLARITIES))
@pytest.mark.parametrize("arch_name", list(ARCHS))
def test_grouped_tiles_equal_the_per_tile_loop(arch_name, polarity, bias, tile_rows):
    net, x = make(arch_name, POLARITIES[polarity], bias, tile_rows)
    tiles = [max(row_tiles(layer.weight.shape, None, 0, tile_rows)) + 1 for layer in net.layers]
    assert max(tiles) > 1 or arch_name == "bias_split"  # which fits one 128-row tile: the plain path
    # every layer on its own inputs: values and gradients
    net.train()
    for i, xi in enumerate(layer_inputs(net, x)):
        out_shape = net.layers[i](xi).shape
        g = torch.randn(out_shape, dtype=xi.dtype, generator=torch.Generator().manual_seed(i))
        y, grads = mvm_with_grads(net, i, xi, g, type(net)._tiled_mvm)
        y_ref, grads_ref = mvm_with_grads(net, i, xi, g, reference_tiled_mvm)
        assert torch.equal(y, y_ref), i  # the same floats, added in the same order
        for k, (a, r) in enumerate(zip(grads, grads_ref)):
            assert torch.allclose(a, r, rtol=1e-9, atol=1e-12), (i, ["x", "weight", "scales", "bias"][k])
    # the whole network: same outputs in training and in evaluation
    for train in (True, False):
        net.train(train)
        with torch.no_grad():
            y = net(x)
            net._tiled_mvm = types.MethodType(reference_tiled_mvm, net)
            y_ref = net(x)
            del net._tiled_mvm
        assert torch.equal(y, y_ref)


def test_a_row_tile_can_split_a_channels_kernel():
    """20 channels x 3 x 3 at 128 rows: channel 14's taps 0-1 are in tile 0, taps 2-8 in tile 1."""
    net, x = make("conv2d", None, True, 128)
    plan = net._tile_plan(1, net.layers[1].weight, None, 1)
    assert plan["T"] == plan["Tw"] == 2 and plan["c_max"] == 15
    # tile 0: channels 0-14 at slots 0-14; tile 1: channels 14-19 at slots 15-20
    assert plan["ranges"] == ((0, 0, 15), (15, 14, 6))
    mask = plan["mask"].reshape(2, 15, 9)
    assert mask[0, 14].tolist() == [1, 1] + [0] * 7 and mask[1, 0].tolist() == [0, 0] + [1] * 7
    assert mask.sum() == 180  # every weight row in exactly one tile
    assert mask[1, 6:].sum() == 0  # the padding slots


def test_float32_layer_close_to_the_per_tile_loop():
    """float32: the sums run in another order, so a partial sum at a code boundary may, rarely, round to the
    neighbouring ADC code; values and gradients otherwise agree."""
    torch.manual_seed(1)
    cfg = {"conv": [32, "M", 32, "M"], "kernel_size": 3, "hidden": [32], "dropout": 0.0, "bias": True}
    net = build(make_arch([3, 16, 16], 10, cfg), {**QUANT, "adc_tile_rows": 128})
    x = torch.randn(16, 3, 16, 16)
    net.train()
    net(x)
    xi = layer_inputs(net, x)[1]  # 32 channels x 3 x 3 = 288 rows: 3 row tiles
    g = torch.randn(16, 32, 8, 8)
    y, grads = mvm_with_grads(net, 1, xi, g, type(net)._tiled_mvm)
    y_ref, grads_ref = mvm_with_grads(net, 1, xi, g, reference_tiled_mvm)
    step = net.quant.adc_fullscale.item() / net.quant.adc_levels
    assert (y - y_ref).abs().max() <= 3 * step * 1.0001
    assert (y - y_ref).abs().gt(1e-4 * step).float().mean() < 0.01
    for a, r in zip(grads, grads_ref):
        assert torch.allclose(a, r, rtol=1e-4, atol=1e-4 * r.abs().max().item())

import pytest
import torch

from nvmxbar.core.fakequant import fake_quant, ste_round, tile_adc, to_int
from nvmxbar.core.groups import polarity_mask, weight_bounds
from nvmxbar.core.networks import build
from nvmxbar.core.quant import UniformQuantizer

HAR_ARCH = {
    "in_shape": [9, 128],
    "num_classes": 6,
    "conv": [8, "M", 16, "M"],
    "kernel_size": 5,
    "hidden": [32],
    "dropout": 0.0,
    "bias": True,
}


def quantizer(bits, dac=4, adc=6, w=1.0, a=2.0, y=3.0):
    return UniformQuantizer(bits, dac, adc, weight_fullscale=w, act_fullscale=a, adc_fullscale=y)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_differential_pair_weight_levels(bits):
    q = quantizer(bits)
    w = torch.linspace(-3, 3, 20001)
    levels = torch.unique(q.weight(w))
    assert len(levels) == 2 * (2**bits - 1) + 1  # -(2^b-1)..(2^b-1) steps
    assert levels.max().item() == pytest.approx(1.0) and levels.min().item() == pytest.approx(-1.0)
    steps = levels / (1.0 / (2**bits - 1))
    assert torch.allclose(steps, steps.round(), atol=1e-4)


@pytest.mark.parametrize("bits", [2, 4])
def test_polarity_gives_one_device_levels(bits):
    q = quantizer(bits)
    w = torch.linspace(-3, 3, 4001).repeat(2, 1)  # two output channels
    wq = q.weight(w, polarity=torch.tensor([1.0, -1.0]))
    pos, neg = torch.unique(wq[0]), torch.unique(wq[1])
    assert len(pos) == 2**bits and len(neg) == 2**bits
    assert pos.min().item() == 0.0 and neg.max().item() == 0.0


def test_dac_and_adc_levels():
    q = quantizer(2, dac=3, adc=5)
    x = torch.linspace(-5, 5, 10001).reshape(1, -1)
    assert len(torch.unique(q.dac(x))) == 2**3  # unsigned: 0..7 steps of A/7
    assert len(torch.unique(q.dac(x, signed=True))) == 2 * (2**3 - 1) + 1
    assert q.dac(x).max().item() == pytest.approx(2.0) and q.dac(x).min().item() == 0.0
    assert len(torch.unique(q.adc(x))) == 2**5 - 1  # signed, symmetric
    assert q.adc(x).abs().max().item() == pytest.approx(3.0)


def test_gradients_pass_straight_through_and_reach_the_scale():
    s = torch.tensor(1.0, requires_grad=True)
    x = torch.tensor([-2.0, -0.31, 0.0, 0.52, 2.0], requires_grad=True)
    fake_quant(x, s, 3, -3, 3).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # identity inside the range, zero where clipped
    assert s.grad is not None and s.grad.item() != 0.0


def autograd_fake_quant(x, full_scale, levels, lo, hi):
    """The composite the fused fake_quant replaces, differentiated by autograd."""
    step = full_scale / levels
    return ste_round(torch.clamp(x / step, lo, hi)) * step


def _values_and_grads(fn, x, s, g, *args):
    x, s = x.clone().requires_grad_(True), s.clone().requires_grad_(True)
    y = fn(x, s, *args)
    (y * g).sum().backward()
    return y.detach(), x.grad, s.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bounds", ["symmetric", "unsigned", "polarity"])
def test_fused_fake_quant_has_the_values_and_gradients_of_autograd(dtype, bounds):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 5, generator=gen, dtype=dtype) * 1.5  # a good share beyond the full-scale: clipped
    x[0, 0, :4] = torch.tensor([1.2, -1.2, 0.6, 0.0])  # exactly on the bounds and a half step (0.6 / 0.4 = 1.5)
    s, levels = torch.tensor(1.2, dtype=dtype), 3
    lo, hi = {
        "symmetric": (-levels, levels),
        "unsigned": (0, levels),
        "polarity": weight_bounds(2, polarity_mask(x.shape, {"sign": 1, "row_groups": 2}).to(dtype), x.shape),
    }[bounds]
    g = torch.randn(x.shape, generator=gen, dtype=dtype)
    y, gx, gs = _values_and_grads(fake_quant, x, s, g, levels, lo, hi)
    y_ref, gx_ref, gs_ref = _values_and_grads(autograd_fake_quant, x, s, g, levels, lo, hi)
    assert torch.equal(y, y_ref)
    assert (gx_ref == 0).any() and (gx_ref != 0).any()  # some values clipped, some inside
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(gx, gx_ref, rtol=tol, atol=tol)  # 1 inside (bounds included), 0 where clipped
    assert torch.allclose(gs, gs_ref, rtol=10 * tol, atol=tol)  # the LSQ step-size gradient


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tile_adc_is_the_sum_of_each_tiles_fake_quant(dtype):
    gen = torch.Generator().manual_seed(1)
    parts = torch.randn(5, 7, 6, 4, 4, generator=gen, dtype=dtype) * 2.0  # (tiles, batch, outputs, H, W)
    s, levels = torch.tensor(2.5, dtype=dtype), 7
    g = torch.randn(parts.shape[1:], generator=gen, dtype=dtype)

    def looped(p, s, levels):
        return sum(autograd_fake_quant(p[t], s, levels, -levels, levels) for t in range(p.shape[0]))

    y, gp, gs = _values_and_grads(tile_adc, parts, s, g, levels)
    y_ref, gp_ref, gs_ref = _values_and_grads(looped, parts, s, g, levels)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(y, y_ref, rtol=tol, atol=tol)
    assert torch.allclose(y / (s / levels), (y / (s / levels)).round(), atol=tol)  # on the ADC grid
    assert torch.allclose(gp, gp_ref, rtol=tol, atol=tol)
    assert torch.allclose(gs, gs_ref, rtol=10 * tol, atol=tol)
    with torch.no_grad():  # evaluation: the same values
        assert torch.equal(tile_adc(parts, s, levels), y)


def test_same_grid_in_every_layer_and_no_per_layer_scale():
    torch.manual_seed(0)
    net = build(HAR_ARCH, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6})
    x = torch.randn(32, 9, 128)
    net.train()
    net(x)  # first batch calibrates the shared full-scales
    q = net.quant
    assert bool(q.calibrated) and (q.scales > 0).all()
    W = q.weight_fullscale.item()
    for layer in net.layers:
        codes = to_int(layer.weight, W, q.w_levels, -q.w_levels, q.w_levels)
        wq = q.weight(layer.weight)
        assert torch.allclose(wq, codes * W / q.w_levels, atol=1e-6)  # one step size W/3 for all layers
        assert wq.abs().max().item() <= W + 1e-6
    # one set of scales for the whole network: the only quantizer parameters are the three full-scales
    assert [n for n, _ in net.named_parameters() if "quant" in n] == ["quant.scales"]
    assert q.scales.numel() == 3


def test_quantized_training_step_updates_weights_and_scales():
    torch.manual_seed(0)
    net = build(HAR_ARCH, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6})
    x, y = torch.randn(64, 9, 128), torch.randint(0, 6, (64,))
    net.train()
    net(x)
    before = net.quant.scales.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert all(layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0 for layer in net.layers)
    assert net.quant.scales.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, net.quant.scales.detach())


def test_invalid_bits_rejected():
    with pytest.raises(ValueError, match="adc_bits"):
        UniformQuantizer(2, 4, 1)
    with pytest.raises(ValueError, match="weight_bits"):
        UniformQuantizer(0, 4, 6)


def test_train_noise_is_programming_noise_on_the_device_range_in_training_only():
    torch.manual_seed(0)
    q = UniformQuantizer(2, 4, 6, weight_fullscale=0.6, act_fullscale=1.0, adc_fullscale=2.0, train_noise=0.05)
    w = torch.rand(400, 500) * 0.6
    pos = torch.ones_like(w)
    q.eval()
    clean_pair, clean_one = q.weight(w), q.weight(w, pos)
    assert torch.equal(q.weight(w), clean_pair)  # no noise outside training
    q.train()
    d_pair, d_one = q.weight(w) - clean_pair, q.weight(w, pos) - clean_one
    assert d_one.std().item() == pytest.approx(0.05 * 0.6, rel=0.02)  # one device: sigma x its range (W)
    assert d_pair.std().item() == pytest.approx(0.05 * 0.6 * 2**0.5, rel=0.02)  # a pair: two devices
    assert abs(d_one.mean().item()) < 1e-3
    wg = w.clone().requires_grad_(True)
    q.weight(wg, pos).sum().backward()
    assert wg.grad is not None and wg.grad.abs().sum() > 0  # the straight-through gradient still flows
    with pytest.raises(ValueError, match="train_noise"):
        UniformQuantizer(2, 4, 6, train_noise=1.5)

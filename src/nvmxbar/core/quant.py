"""Fake quantization with UNIFORM SCALING: one weight full-scale, one activation (DAC) full-scale and one
column-output (ADC) full-scale, shared by every layer of a network.

Integer grids (``step = full_scale / levels``):

* weights on a differential pair of b-bit devices: ``-(2^b - 1) .. (2^b - 1)`` steps;
  a unipolar group of polarity +1 (one device): ``0 .. 2^b - 1``; polarity -1: ``-(2^b - 1) .. 0``.
  ``polarity`` is a tensor of +1/-1 per output channel (or None for bipolar): the sign constraint of the
  unipolar variant slots in here without another code path.
* layer inputs (DAC): ``0 .. 2^dac - 1`` steps of ``A / (2^dac - 1)``; the network input, which is
  signed, uses the same step on ``[-A, A]`` (two input phases on the same DAC design).
* column outputs (ADC): ``-(2^(adc-1) - 1) .. 2^(adc-1) - 1`` steps on ``[-Y, Y]``.

Rounding uses the straight-through estimator; full-scales get the LSQ gradient (Esser et al., ICLR 2020)
because ``round(clamp(v/s)) * s`` is differentiated through ``s`` and the clamp.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest in the forward pass, identity gradient in the backward pass."""
    return (x.round() - x).detach() + x


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Forward: x. Backward: gradient multiplied by ``scale`` (LSQ's step-size gradient scaling)."""
    return (x - x * scale).detach() + x * scale


def fake_quant(
    x: torch.Tensor, full_scale: torch.Tensor, levels: int, lo: float | torch.Tensor, hi: float | torch.Tensor
) -> torch.Tensor:
    """Quantize ``x`` onto the grid ``step * k``, ``k`` an integer in ``[lo, hi]``, ``step = full_scale / levels``."""
    step = full_scale / levels
    return ste_round(torch.clamp(x / step, lo, hi)) * step


def to_int(
    x: torch.Tensor, full_scale: float | torch.Tensor, levels: int, lo: float | torch.Tensor, hi: float | torch.Tensor
) -> torch.Tensor:
    """The integer codes ``k`` of :func:`fake_quant` (no gradient): what a device or converter holds."""
    step = full_scale / levels
    return torch.clamp(x / step, lo, hi).round()


def weight_bounds(bits: int, polarity: torch.Tensor | None, shape: torch.Size) -> tuple:
    """Integer bounds of the weight grid. ``polarity``: None (differential pair), +1/-1 per output channel,
    or a +1/-1 tensor of the weight's own shape (see :func:`polarity_mask`)."""
    levels = 2**bits - 1
    if polarity is None:
        return -levels, levels
    pol = polarity if tuple(polarity.shape) == tuple(shape) else polarity.reshape((-1,) + (1,) * (len(shape) - 1))
    lo = torch.where(pol > 0, torch.zeros_like(pol), torch.full_like(pol, -levels))
    hi = torch.where(pol > 0, torch.full_like(pol, levels), torch.zeros_like(pol))
    return lo, hi


# ------------------------------------------------------------------------------- unipolar sign groups
POLARITY_KEYS = ("sign", "row_groups", "col_groups")


def polarity_groups(weight_shape: tuple | torch.Size, spec: dict) -> tuple[list[int], list[int], list[list[int]]]:
    """Sign groups of one weight layer (the unipolar variant).

    ``spec = {"sign": +1|-1, "row_groups": r, "col_groups": c}`` splits the layer's crossbar matrix into r x c
    blocks: r contiguous groups of input channels (matrix rows; a convolution's kernel is never split) and c
    contiguous groups of outputs (matrix columns). Block (i, j) holds weights of ONE sign,
    ``sign * (-1)^(i + j)``: ``{sign: 1, row_groups: 1, col_groups: 1}`` is an all-positive layer.
    Returns (row bounds in matrix rows, column bounds, signs[i][j])."""
    out_ch, in_ch = int(weight_shape[0]), int(weight_shape[1])
    per_ch = math.prod(int(k) for k in weight_shape[2:])
    r, c, sign = int(spec.get("row_groups", 1)), int(spec.get("col_groups", 1)), int(spec.get("sign", 1))
    if sign not in (1, -1):
        raise ValueError(f"polarity sign must be +1 or -1, got {sign}")
    if not 1 <= r <= in_ch or not 1 <= c <= out_ch:
        raise ValueError(
            f"polarity {spec}: row_groups must be in 1..{in_ch} and col_groups in 1..{out_ch} for this layer"
        )
    rb = [int(t[0]) * per_ch for t in torch.arange(in_ch).tensor_split(r)] + [in_ch * per_ch]
    cb = [int(t[0]) for t in torch.arange(out_ch).tensor_split(c)] + [out_ch]
    return rb, cb, [[sign * (-1) ** (i + j) for j in range(c)] for i in range(r)]


def polarity_mask(weight_shape: tuple | torch.Size, spec: dict) -> torch.Tensor:
    """+1/-1 per weight element (the weight's shape) from a polarity spec, see :func:`polarity_groups`."""
    rb, cb, signs = polarity_groups(weight_shape, spec)
    out_ch, in_ch = int(weight_shape[0]), int(weight_shape[1])
    per_ch = math.prod(int(k) for k in weight_shape[2:])
    m = torch.empty(out_ch, in_ch * per_ch)
    for i in range(len(rb) - 1):
        for j in range(len(cb) - 1):
            m[cb[j] : cb[j + 1], rb[i] : rb[i + 1]] = signs[i][j]
    return m.reshape(tuple(weight_shape))


def row_tiles(weight_shape: tuple | torch.Size, spec: dict | None, bias_rows: int, tile_rows: int) -> list[int]:
    """Row tile of every crossbar matrix row (weight rows in F.unfold order, then the bias rows), as
    nvmxbar.core.schemes.map_network places them: consecutive rows fill tiles of ``tile_rows``; with a unipolar sign
    spec each row group starts on a new tile and the bias rows join the last group."""
    per_ch = math.prod(int(k) for k in weight_shape[2:])
    K = int(weight_shape[1]) * per_ch
    if spec is None:
        return [r // tile_rows for r in range(K + bias_rows)]
    rb, _, _ = polarity_groups(weight_shape, spec)
    rb = rb[:-1] + [K + bias_rows]
    out, t0 = [], 0
    for g in range(len(rb) - 1):
        n = rb[g + 1] - rb[g]
        out += [t0 + r // tile_rows for r in range(n)]
        t0 += math.ceil(n / tile_rows)
    return out


class UniformQuantizer(nn.Module):
    """The three full-scales shared by all layers, and the functions that quantize onto them.

    ``learn_scales`` makes the full-scales trainable (LSQ); otherwise they stay at their initial value.
    A full-scale of 0 means "calibrate from the first batch" (:meth:`calibrate`).
    ``adc_tile_rows`` > 0: a layer's column sum is converted per row tile of that many rows (each partial
    sum through the ADC, then added digitally), as the crossbar does; 0 converts the whole sum once.
    ``train_noise`` > 0: hardware-aware training. Every quantized weight gets fresh Gaussian noise in each
    training forward, sigma = train_noise x the device's conductance range per device (the weight full-scale
    W spans it: one device, or sqrt(2) for a differential pair), the same model as evaluate_noise's
    programming noise ``prog_sigma``.
    """

    def __init__(
        self,
        weight_bits: int,
        dac_bits: int,
        adc_bits: int,
        *,
        weight_fullscale: float = 0.0,
        act_fullscale: float = 0.0,
        adc_fullscale: float = 0.0,
        learn_scales: bool = True,
        train_noise: float = 0.0,
        adc_tile_rows: int = 0,
    ) -> None:
        super().__init__()
        if int(adc_tile_rows) < 0:
            raise ValueError(
                f"adc_tile_rows must be >= 0 (0 = one ADC conversion of the whole sum), got {adc_tile_rows}"
            )
        self.adc_tile_rows = int(adc_tile_rows)
        if not 0.0 <= float(train_noise) < 1.0:
            raise ValueError(
                f"train_noise must be in [0, 1) (a fraction of the device's conductance range), got {train_noise}"
            )
        self.train_noise = float(train_noise)
        for name, b in (("weight_bits", weight_bits), ("dac_bits", dac_bits), ("adc_bits", adc_bits)):
            if not 1 <= int(b) <= 16:
                raise ValueError(f"{name} must be in 1..16, got {b}")
        if adc_bits < 2:
            raise ValueError("adc_bits must be >= 2 (a signed ADC needs a sign bit)")
        self.weight_bits, self.dac_bits, self.adc_bits = int(weight_bits), int(dac_bits), int(adc_bits)
        self.w_levels = 2**self.weight_bits - 1
        self.dac_levels = 2**self.dac_bits - 1
        self.adc_levels = 2 ** (self.adc_bits - 1) - 1
        init = torch.tensor([weight_fullscale, act_fullscale, adc_fullscale], dtype=torch.float32)
        self.scales = nn.Parameter(init, requires_grad=learn_scales)
        self.register_buffer("calibrated", torch.tensor(bool((init > 0).all())))
        self._n_weights = 1  # for the LSQ gradient scale, set by the network

    # --- the three shared full-scales -------------------------------------------------------------------
    @property
    def weight_fullscale(self) -> torch.Tensor:
        return self.scales[0].abs() + 1e-8

    @property
    def act_fullscale(self) -> torch.Tensor:
        return self.scales[1].abs() + 1e-8

    @property
    def adc_fullscale(self) -> torch.Tensor:
        return self.scales[2].abs() + 1e-8

    def _scaled(self, s: torch.Tensor, n: int, levels: int) -> torch.Tensor:
        return grad_scale(s, 1.0 / math.sqrt(max(n, 1) * levels)) if self.training else s

    # --- quantizers ---------------------------------------------------------------------------------------
    def weight(self, w: torch.Tensor, polarity: torch.Tensor | None = None) -> torch.Tensor:
        lo, hi = weight_bounds(self.weight_bits, polarity, w.shape)
        s = self._scaled(self.weight_fullscale, self._n_weights, self.w_levels)
        wq = fake_quant(w, s, self.w_levels, lo, hi)
        if self.training and self.train_noise > 0:
            devices = 1.0 if polarity is not None else math.sqrt(2.0)
            wq = wq + torch.randn_like(wq) * (self.train_noise * devices * self.weight_fullscale.detach())
        return wq

    def bias(self, b: torch.Tensor | None) -> torch.Tensor | None:
        """A bias is a driven row: one extra device pair whose input is the DAC full-scale A.
        Its value is therefore ``A * (a weight-grid value)``."""
        if b is None:
            return None
        a = self.act_fullscale.detach()
        return a * self.weight(b / a)

    def dac(self, x: torch.Tensor, signed: bool = False) -> torch.Tensor:
        s = self._scaled(self.act_fullscale, x[0].numel(), self.dac_levels)
        lo = -self.dac_levels if signed else 0
        return fake_quant(x, s, self.dac_levels, lo, self.dac_levels)

    def adc(self, y: torch.Tensor) -> torch.Tensor:
        s = self._scaled(self.adc_fullscale, y[0].numel(), self.adc_levels)
        return fake_quant(y, s, self.adc_levels, -self.adc_levels, self.adc_levels)

    @torch.no_grad()
    def calibrate(self, weights: list[torch.Tensor], x: torch.Tensor) -> None:
        """Set uncalibrated full-scales from data: weights to the 99.9th percentile of |w| over all layers,
        the DAC to the 99.9th percentile of |network input|. The ADC full-scale is set by the network on
        the first forward pass (it needs the layer outputs), see ``observe_output``."""
        if bool(self.calibrated):
            return
        allw = torch.cat([w.detach().abs().flatten() for w in weights])
        if self.scales[0] <= 0:
            self.scales[0] = torch.quantile(allw[torch.randperm(allw.numel())[:200_000]], 0.999)
        if self.scales[1] <= 0:
            self.scales[1] = torch.quantile(x.detach().abs().flatten()[:200_000].float(), 0.999)

    @torch.no_grad()
    def observe_output(self, y: torch.Tensor) -> None:
        """During calibration: widen the ADC full-scale to cover the 99.9th percentile of this layer's output."""
        q = torch.quantile(y.detach().abs().flatten()[:200_000].float(), 0.999)
        self.scales[2] = torch.maximum(self.scales[2], q)

    def extra_repr(self) -> str:
        return (
            f"weight_bits={self.weight_bits}, dac_bits={self.dac_bits}, adc_bits={self.adc_bits}, "
            f"W={self.weight_fullscale.item():.4g}, A={self.act_fullscale.item():.4g}, "
            f"Y={self.adc_fullscale.item():.4g}"
        )

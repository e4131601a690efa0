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
because ``round(clamp(v/s)) * s`` is differentiated through ``s`` and the clamp. Both gradients are written out
in one autograd node per quantizer call (:func:`fake_quant`; :func:`tile_adc` for a layer's row tiles at once),
which saves the memory and passes of the composite's many nodes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..chip import ADC_RATIOS, INPUT_MODES, passes
from .fakequant import abs_quantile, fake_quant, fake_quant_step, grad_scale, ste_round, tile_adc_step
from .groups import weight_bounds


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
        input_mode: str = "multibit",
        adc_ratio: str = "free",
    ) -> None:
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
        if adc_ratio not in ADC_RATIOS:
            raise ValueError(f"adc_ratio must be one of {ADC_RATIOS}, got {adc_ratio!r}")
        self.input_mode, self.adc_ratio = input_mode, adc_ratio
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
        # the training inputs the full-scales were calibrated on (model.pt records it; 0 = given, not calibrated)
        self.register_buffer("calibration_samples", torch.zeros((), dtype=torch.long))
        self._n_weights = 1  # for the LSQ gradient scale, set by the network
        if adc_ratio == "pow2":  # log2(ADC step / DAC step), rounded in every forward (straight-through)
            self.log2_ratio = nn.Parameter(torch.zeros(()), requires_grad=learn_scales)
            if bool(self.calibrated):
                self.tie_adc()

    # --- the three shared full-scales -------------------------------------------------------------------
    @property
    def weight_fullscale(self) -> torch.Tensor:
        return self.scales[0].abs() + 1e-8

    @property
    def act_fullscale(self) -> torch.Tensor:
        return self.scales[1].abs() + 1e-8

    @property
    def adc_fullscale(self) -> torch.Tensor:
        """Y. With ``adc_ratio: pow2`` it is not a free value: ``Y / adc_levels = (A / dac_levels) 2^k``."""
        if self.adc_ratio == "pow2":
            return self.adc_step() * self.adc_levels
        return self.scales[2].abs() + 1e-8

    def adc_step(self) -> torch.Tensor:
        """The ADC step Y / adc_levels; pow2: exactly the DAC step A / dac_levels times 2^k (k = the rounded
        log2_ratio), so that an ADC code times 2^k is the next layer's DAC code, with no rounding between."""
        if self.adc_ratio == "pow2":
            return (self.act_fullscale / self.dac_levels) * torch.exp2(ste_round(self.log2_ratio))
        return self.adc_fullscale / self.adc_levels

    @torch.no_grad()
    def adc_dac_ratio(self) -> float:
        """ADC step / DAC step (mapping.json adc_dac_ratio): 2^k with pow2, any number with free."""
        if self.adc_ratio == "pow2":
            return float(2.0 ** round(float(self.log2_ratio)))
        return float((self.adc_fullscale / self.adc_levels) / (self.act_fullscale / self.dac_levels))

    @torch.no_grad()
    def tie_adc(self) -> None:
        """pow2: set k from the calibrated (or given) ADC full-scale Y: the power of two nearest to
        (Y / adc_levels) / (A / dac_levels)."""
        ratio = (self.scales[2].abs() / self.adc_levels) / (self.scales[1].abs() / self.dac_levels)
        self.log2_ratio.fill_(float(torch.log2(ratio).round()))

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

    def _adc_step(self, n: int) -> torch.Tensor:
        return self._scaled(self.adc_step(), n, self.adc_levels)

    def adc(self, y: torch.Tensor) -> torch.Tensor:
        step = self._adc_step(y[0].numel())
        return fake_quant_step(y, step, -self.adc_levels, self.adc_levels)

    def adc_tiles(self, parts: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Row tiles' partial sums (leading axis: tile, then batch) each through the ADC, then added digitally:
        ``sum_t adc(parts[t])``, computed by :func:`tile_adc`. ``n``: the outputs per sample the LSQ gradient scale
        counts (default: those of ``parts[0][0]``; a broadcast constant gives its own)."""
        n = parts[0][0].numel() if n is None else n
        return tile_adc_step(parts, self._adc_step(n), self.adc_levels)

    @property
    def passes(self) -> int:
        """Array reads per MVM (:func:`nvmxbar.chip.passes`): dac_bits bit-serial, 1 multi-bit."""
        return passes(self.input_mode, self.dac_bits)

    def bit_planes(self, xq: torch.Tensor) -> torch.Tensor:
        """Bit-serial drive: the DAC outputs ``xq`` (codes x the DAC step) as ``dac_bits`` passes stacked on the
        batch axis (pass j first-axis block j): each row driven at sign(code) x bit j of |code| (x the DAC step).
        Forward: the passes sum, with weights 2^j, to ``xq``. Backward (straight through): every pass's gradient
        reaches ``xq`` with weight 2^j / (2^dac_bits - 1), so that with no ADC clipping the gradient is the
        multi-bit one."""
        step = (self.act_fullscale / self.dac_levels).detach()
        code = (xq.detach() / step).round()
        mag, sgn = code.abs(), code.sign()
        planes = []
        for j in range(self.dac_bits):
            bit = torch.remainder(torch.div(mag, 2**j, rounding_mode="floor"), 2) * sgn * step
            w = 2**j / self.dac_levels
            planes.append(bit + (xq - xq.detach()) * (w / 2**j))
        return torch.cat(planes, 0)

    def shift_add(self, y: torch.Tensor) -> torch.Tensor:
        """The passes' converted outputs (stacked on the batch axis as :meth:`bit_planes` stacks them) shift-added:
        ``sum_j 2^j y_j``."""
        ys = y.unflatten(0, (self.dac_bits, -1))
        out = ys[0]
        for j in range(1, self.dac_bits):
            out = out + ys[j] * float(2**j)
        return out

    @torch.no_grad()
    def calibrate(self, weights: list[torch.Tensor], x: torch.Tensor) -> None:
        """Set uncalibrated full-scales from data: weights to the 99.9th percentile of |w| over all layers,
        the DAC to the 99.9th percentile of |network input|. The ADC full-scale is set by the network on
        the first forward pass (it needs the layer outputs), see ``observe_output``."""
        if bool(self.calibrated):
            return
        allw = torch.cat([w.detach().abs().flatten() for w in weights])
        if self.scales[0] <= 0:
            self.scales[0] = abs_quantile(allw, 0.999)
        if self.scales[1] <= 0:
            self.scales[1] = abs_quantile(x, 0.999)
        self.calibration_samples.fill_(len(x))

    @torch.no_grad()
    def observe_output(self, y: torch.Tensor) -> None:
        """During calibration: widen the ADC full-scale to cover the 99.9th percentile of this layer's output
        (bit-serial: of one pass's, taken as 2 / 2^dac_bits of the whole sum's; LSQ then learns it)."""
        q = abs_quantile(y, 0.999)
        if self.input_mode == "bit_serial":
            q = q * 2.0 / 2**self.dac_bits
        self.scales[2] = max(float(self.scales[2]), q)
        if self.adc_ratio == "pow2":  # the next layers' calibration forward sees the tied ADC
            self.tie_adc()

    per_layer = False

    def __getitem__(self, i: int) -> UniformQuantizer:
        """Layer i's quantizer: this one, shared by every layer (see :class:`PerLayerQuantizer`)."""
        return self

    def fullscales(self) -> dict[str, float]:
        """The learned full-scales, as metrics.json records them."""
        return {
            "weight_fullscale": self.weight_fullscale.item(),
            "act_fullscale": self.act_fullscale.item(),
            "adc_fullscale": self.adc_fullscale.item(),
        }

    def extra_repr(self) -> str:
        return (
            f"{self.input_mode}, adc_ratio={self.adc_ratio}, "
            f"weight_bits={self.weight_bits}, dac_bits={self.dac_bits}, adc_bits={self.adc_bits}, "
            f"W={self.weight_fullscale.item():.4g}, A={self.act_fullscale.item():.4g}, "
            f"Y={self.adc_fullscale.item():.4g}"
        )


class PerLayerQuantizer(nn.Module):
    """Per-layer scales at device precision: one :class:`UniformQuantizer` per weight layer, each with its own weight,
    DAC and ADC full-scale (its ADC-to-DAC ratio free: a rescale per output). It is the conventional per-layer
    deployment trained at the device's precision, the ablation that separates the saving of training at device
    precision from the saving of the shared scale (variant ``perlayer``)."""

    per_layer = True

    def __init__(self, n_layers: int, **kwargs: Any) -> None:
        super().__init__()
        kwargs = {**kwargs, "adc_ratio": "free"}
        self.layers = nn.ModuleList(UniformQuantizer(**kwargs) for _ in range(n_layers))
        self.register_buffer("calibrated", torch.tensor(all(bool(q.calibrated) for q in self.layers)))

    def __getitem__(self, i: int) -> UniformQuantizer:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    # what every layer shares (the circuit and the grids)
    weight_bits = property(lambda self: self.layers[0].weight_bits)
    dac_bits = property(lambda self: self.layers[0].dac_bits)
    adc_bits = property(lambda self: self.layers[0].adc_bits)
    w_levels = property(lambda self: self.layers[0].w_levels)
    dac_levels = property(lambda self: self.layers[0].dac_levels)
    adc_levels = property(lambda self: self.layers[0].adc_levels)
    input_mode = property(lambda self: self.layers[0].input_mode)
    adc_ratio = property(lambda self: "free")
    passes = property(lambda self: self.layers[0].passes)
    train_noise = property(lambda self: self.layers[0].train_noise)

    @property
    def adc_tile_rows(self) -> int:
        return self.layers[0].adc_tile_rows

    @adc_tile_rows.setter
    def adc_tile_rows(self, rows: int) -> None:
        for q in self.layers:
            q.adc_tile_rows = int(rows)

    def fullscales(self) -> dict[str, list[float]]:
        return {k: [q.fullscales()[k] for q in self.layers] for k in self.layers[0].fullscales()}

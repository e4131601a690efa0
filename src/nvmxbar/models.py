"""Plain nn.Module networks: a small convolutional net (1-D for HAR windows, 2-D VGG-style for CIFAR-10)
or an MLP (no convolutions), built from a JSON-able architecture dict, optionally quantized with
:class:`nvmxbar.quant.UniformQuantizer`.

Every weight layer is mappable onto a crossbar: a convolution unrolls to a (kernel x in-channels) by
out-channels matrix, a linear layer is the matrix itself. Max-pooling and ReLU are digital and act on
ADC codes. There is no batch-norm, so nothing rescales a layer's output: under uniform scaling the ADC
code of one layer is the DAC code of the next.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .quant import UniformQuantizer


def make_arch(in_shape: list[int], num_classes: int, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The architecture dict stored in model.pt: everything needed to rebuild the network."""
    arch = {"in_shape": [int(s) for s in in_shape], "num_classes": int(num_classes)}
    arch.update({k: model_cfg[k] for k in ("conv", "kernel_size", "hidden", "dropout", "bias")})
    return arch


class Net(nn.Module):
    """conv: list of out-channels or "M" (2x max-pool); hidden: widths of the dense layers before the classifier."""

    def __init__(self, in_shape: list[int], num_classes: int, conv: list, kernel_size: int | list[int] = 3,
                 hidden: list[int] = (), dropout: float = 0.0, bias: bool = True,
                 quantizer: UniformQuantizer | None = None):
        super().__init__()
        self.in_shape, self.dims = list(in_shape), len(in_shape) - 1
        if self.dims not in (0, 1, 2):
            raise ValueError(f"in_shape {in_shape}: expected (features,), (channels, length) or (channels, H, W)")
        if conv and self.dims == 0:
            raise ValueError("a convolutional architecture needs an input with channels (conv: [] gives an MLP)")
        n_conv = sum(1 for c in conv if c != "M")
        ks = list(kernel_size) if isinstance(kernel_size, (list, tuple)) else [kernel_size] * n_conv
        if len(ks) != n_conv:
            raise ValueError(f"kernel_size has {len(ks)} entries for {n_conv} convolutions")
        Conv = nn.Conv1d if self.dims == 1 else nn.Conv2d
        self.layers = nn.ModuleList()
        self.pool_after: list[bool] = []
        ch, size, k_iter = in_shape[0], list(in_shape[1:]), iter(ks)
        for c in conv:
            if c == "M":
                if not self.layers or self.pool_after[-1]:
                    raise ValueError("'M' (max-pool) must follow a convolution")
                self.pool_after[-1] = True
                size = [s // 2 for s in size]
                continue
            k = next(k_iter)
            self.layers.append(Conv(ch, int(c), k, padding=k // 2, bias=bias))
            self.pool_after.append(False)
            ch = int(c)
        self.n_conv = len(self.layers)
        flat = ch * int(torch.tensor(size).prod().item()) if size else ch
        for h in list(hidden) + [num_classes]:
            self.layers.append(nn.Linear(flat, int(h), bias=bias))
            self.pool_after.append(False)
            flat = int(h)
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        self.dropout = float(dropout)
        self.quant = quantizer
        if quantizer is not None:
            quantizer._n_weights = sum(layer.weight.numel() for layer in self.layers)

    def weight_layers(self) -> list[nn.Module]:
        return list(self.layers)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """Set the quantizer's full-scales that are still 0 from one batch (called once, before training)."""
        q = self.quant
        if q is None or bool(q.calibrated):
            return
        q.calibrate([layer.weight for layer in self.layers], x)
        self._forward(x, observe=True)
        q.calibrated.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is not None and not bool(self.quant.calibrated):
            self.calibrate(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor, observe: bool = False) -> torch.Tensor:
        q, last = self.quant, len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == self.n_conv:
                x = x.flatten(1)
            if q is None:
                y = layer(x)
            else:
                xq = q.dac(x, signed=(i == 0))
                w, b = q.weight(layer.weight), q.bias(layer.bias)
                y = layer._conv_forward(xq, w, b) if i < self.n_conv else F.linear(xq, w, b)
                if observe:
                    q.observe_output(y)
                y = q.adc(y)
            if i == last:
                break
            x = F.relu(y)
            if self.pool_after[i]:
                x = F.max_pool1d(x, 2) if self.dims == 1 else F.max_pool2d(x, 2)
            if self.dropout and i >= self.n_conv:
                x = F.dropout(x, self.dropout, self.training)
        return y


def build(arch: dict[str, Any], quant: dict[str, Any] | None = None) -> Net:
    """Network from an architecture dict and, for quantized variants, the quantizer settings
    (``weight_bits``, ``dac_bits``, ``adc_bits``, optional full-scales and ``learn_scales``)."""
    quantizer = UniformQuantizer(**quant) if quant else None
    kw = {k: arch[k] for k in ("conv", "kernel_size", "hidden", "dropout", "bias")}
    return Net(arch["in_shape"], arch["num_classes"], quantizer=quantizer, **kw)

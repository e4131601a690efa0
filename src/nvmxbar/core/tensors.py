"""Tensor helpers of the crossbar simulator (:mod:`nvmxbar.core.simulator`): a chip population ready to run, the
perturbation hook's type, the compute device, bit-serial input planes and the GEMM of a shared input with every
chip's matrix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: A chip population's conductances: (layer index, nominal G in dG units, shape (K, N*S*P): the layer's used
#: cells) -> perturbed G with a leading chip axis; it may carry ``read_std(i, G)`` (each cell's read-noise sigma,
#: dG units, or None) and ``generator`` (see nvmxbar.core.noise.Perturbation).
Perturb = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass
class Chips:
    """A population of ``n`` chips, ready to run: per layer and row tile, what the tile computes (its weight rows
    as a matrix or convolution kernel of effective conductances, G+ - G- or sign x (G - G_min nominal); the same
    of the read-noise variance summed over a converted signal's own cells, or None without read noise; its bias
    rows' sums; and an analog one-device tile's reference columns' read-noise variances, a draw shared by the
    tile's columns), see Simulator._tile_ops. Built once by Simulator.chips and reused for every batch."""

    n: int
    tiles: list[list[tuple]]
    generator: torch.Generator | None = None
    adcs: list | None = None  # per layer, its drawn ADCs (nvmxbar.core.tile_adcs.LayerAdcs); None: ideal ADCs
    dacs: list | None = None  # per layer, its row drivers' elements (nvmxbar.core.tile_dacs); None: ideal DACs


def auto_device(device: str = "auto") -> torch.device:
    """``auto``: cuda when present, cpu otherwise; anything else as torch names it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bit_planes(u: torch.Tensor, bits: int) -> torch.Tensor:
    """Bit-serial passes of integer input codes ``u`` (I, B, ...): (I, bits x B, ...), pass j (block j of the batch
    axis) = sign(u) x bit j of |u|: a row is driven (+V or -V) in the passes of its code's 1-bits."""
    mag, sgn = u.abs(), u.sign()
    return torch.cat([torch.remainder(torch.div(mag, 2**j, rounding_mode="floor"), 2) * sgn for j in range(bits)], 1)


def matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(1 or I, Bm, k) @ (1 or I, k, n) -> (I, Bm, n). A shared input (the network input, or one chip) meets every
    chip's matrix in one GEMM."""
    if x.shape[0] == 1 and w.shape[0] > 1:
        I, k, n = w.shape
        return (x[0] @ w.permute(1, 0, 2).reshape(k, I * n)).reshape(-1, I, n).permute(1, 0, 2)
    return torch.bmm(x, w) if x.shape[0] == w.shape[0] else torch.matmul(x, w)

"""Row-DAC error in the simulator: every row driver of a chip population drawn once (:func:`nvmxbar.core.dac_error.
draw_dacs`, constants from nvmxbar/resources/converter_errors.yaml scaled by ``adc_error_scale``, the scale of all
converter errors, and weighted by ``evaluate_noise.converter_parts``), and run exactly, INL included.

**One DAC per physical row.** A matrix row (a dense layer's input feature, or a convolution's (channel, kernel
position): one pixel reaches several rows, each through its own driver) is a physical row in each column tile it
spans, and every column tile has its own row drivers (the cost model counts them so: ``dac_activations``). A layer's
drivers: (matrix rows K, column tiles), its bias rows included.

**Exact.** A dense layer's row tile runs on its drivers' outputs, looked up per chip and column tile
(:func:`dense_sum`): the same GEMM work as ideal drivers. A convolution's rows see one pixel through several
drivers; it is run by bit planes. A binary-weighted unit-element DAC outputs, for code c, the sum of the elements its
magnitude's bits select, with c's sign (sign-magnitude): L(c) = sign(c) sum_k bit_k(|c|) E_k. That is linear in the
code's signed bit planes, so the tile's column sum sum_r w_r L_r(u_r) = sum_r sum_k (sign bit_k)(u_r) (w_r E_{r,k}):
one GEMM (or convolution) whose rows are the (row, plane) pairs, on weights scaled per chip, row, column tile and
element (:func:`expand`), with the input's planes (:func:`planes`). It costs ``bits`` x the tile's rows. A bit-serial
pass drives one bit (bits = 1): its DAC is one element per row, a per-row gain, and the GEMM keeps its size. Bias rows
are driven at the full code: their weights are scaled by L_r(full) / full (:func:`bias_rows`). The digital side
(the one-device offset it subtracts, the read-noise variance, the operation counts) keeps the ideal codes.
"""

from __future__ import annotations

import math

import torch

from ..chip import Chip
from .converter_params import ConverterErrors
from .dac_error import draw_dacs


def column_tiles(chip: Chip, spec: dict) -> torch.Tensor:
    """The column tile of each of a layer's converted signals (the simulator's matrix columns): an analog pair's
    signal q sits on physical columns 2q, 2q + 1; otherwise signal q is physical column q."""
    analog_pair = spec["pair"] == 2 and chip.subtraction != "digital"
    q = torch.arange(spec["outputs"] * spec["slices"] * (1 if analog_pair else spec["pair"]))
    phys = 2 * q if analog_pair else q
    return phys // chip.tile.cols


def draw_chips(
    chip: Chip,
    layers: list[dict],
    rows: list[int],
    n: int,
    errors: ConverterErrors | None,
    generator: torch.Generator | None,
) -> list[torch.Tensor] | None:
    """Per layer, every driver's element values E (n, K, column tiles, bits) in ideal code units (element k: 2^k
    plus its error), for ``n`` chips with ``errors.dac_sigma``; ``rows``: each layer's K (weight and bias rows).
    None where ``errors`` is None or its DAC sigma 0: ideal DACs."""
    if errors is None or not errors.dac_sigma:
        return None
    bits = _bits(chip)
    out = []
    for spec, K in zip(layers, rows, strict=True):
        ct = int(spec["col_tiles"])
        out.append(draw_dacs(n, K * ct, bits, errors, generator).elements.reshape(n, K, ct, bits))
    return out


def _per_column(E: torch.Tensor, tiles_of: torch.Tensor) -> torch.Tensor:
    """(I, rows, column tiles, bits) -> (I, rows, columns, bits): each column's own drivers."""
    return E[:, :, tiles_of.to(E.device)]


def _bits(chip: Chip) -> int:
    return 1 if chip.passes > 1 else chip.dac_bits  # bit-serial: one bit per pass


def bias_rows(w: torch.Tensor, E: torch.Tensor, spec: dict, chip: Chip) -> torch.Tensor:
    """``w`` (I, K, columns) with its bias rows (from ``spec["weight_rows"]`` on, driven at the full code) scaled by
    L_r(full) / full = sum_k E_{r,k} / full, per chip and column tile; weight rows unchanged."""
    first, full = int(spec["weight_rows"]), float(2 ** _bits(chip) - 1)
    if first >= w.shape[1]:
        return w
    s = _per_column(E[:, first:], column_tiles(chip, spec)).sum(-1) / full  # (I, bias rows, columns)
    return torch.cat([w[:, :first], w[:, first:] * s.to(w.dtype)], 1)


def expand(m: torch.Tensor, E: torch.Tensor, tiles_of: torch.Tensor, kernel: list[int] | None) -> torch.Tensor:
    """A row tile's weight rows as bit-plane rows: a matrix (I, rows, columns) -> (I, rows x bits, columns), row
    r's plane k = w_r E_{r,k} (its column tile's driver); a kernel (I x columns, channels, *kernel) -> (I x columns,
    channels x bits, *kernel), the rows (channel, kernel position) each scaled by their own driver's elements. ``E``:
    (I, the tile's matrix rows, column tiles, bits), the rows in the matrix's order (channel-major for a kernel)."""
    I, bits = E.shape[0], E.shape[-1]
    Ec = _per_column(E, tiles_of).to(m.dtype)  # (I, rows, columns, bits)
    if kernel is None:
        return (m[..., None] * Ec).movedim(-1, 2).reshape(I, -1, m.shape[-1])
    cols, ch = m.shape[0] // I, m.shape[1]
    k = m.reshape(I, cols, ch, math.prod(kernel))  # rows r = channel x prod(kernel) + position
    e = Ec.reshape(I, ch, math.prod(kernel), cols, bits).permute(0, 3, 1, 4, 2)  # (I, cols, ch, bits, positions)
    return (k[:, :, :, None] * e).reshape(I * cols, ch * bits, *kernel)


def expand_layer(ops: list[tuple], E: torch.Tensor, geometry: list[tuple], spec: dict, chip: Chip) -> list:
    """A convolution's row tiles (Simulator._tile_ops) with their weight rows expanded (:func:`expand`); ``geometry``:
    per tile (c0, c1, ...), its input channels (the kernel's rows c0 x positions ..). A dense layer's are kept: it
    runs on its drivers' outputs (:func:`dense_sum`)."""
    if spec["kind"] == "linear":
        return ops
    kernel, tiles_of = spec["kernel"], column_tiles(chip, spec)
    per_ch = math.prod(kernel)
    return [
        (None if op[0] is None else expand(op[0], E[:, c0 * per_ch : c1 * per_ch], tiles_of, kernel), *op[1:])
        for op, (c0, c1, *_) in zip(ops, geometry, strict=True)
    ]


def dense_sum(u: torch.Tensor, m: torch.Tensor, E: torch.Tensor, chip: Chip, spec: dict) -> torch.Tensor:
    """A dense row tile's column sums on its drivers' outputs: each chip's and column tile's L_r(u_r) looked up
    (sign-magnitude), then one GEMM per column tile, the same work as with ideal drivers. ``u`` (1 or I, B, rows)
    codes, ``m`` (I, rows, columns), ``E`` (I, rows, column tiles, bits) -> (I, B, columns)."""
    I, rows, _, bits = E.shape
    digits = (torch.arange(2**bits, device=E.device)[:, None] >> torch.arange(bits, device=E.device)) & 1
    levels = (E @ digits.T.to(E.dtype)).to(m.dtype)  # (I, rows, column tiles, 2^bits): L_r(|code|)
    mag, sgn = u.abs().long().expand(I, -1, -1), u.sign().to(m.dtype)
    tiles_of = column_tiles(chip, spec).tolist()
    out = []
    for t in sorted(set(tiles_of)):  # a column tile's columns are contiguous
        a, b = tiles_of.index(t), len(tiles_of) - tiles_of[::-1].index(t)
        drive = levels[:, :, t].transpose(1, 2).gather(1, mag) * sgn  # (I, B, rows)
        out.append(torch.bmm(drive, m[:, :, a:b]))
    return torch.cat(out, -1)


def planes(u: torch.Tensor, chip: Chip) -> tuple[torch.Tensor, int]:
    """Integer codes (1 or I, B, features) or (1 or I, B, channels, *spatial) -> their signed bit planes, plane k =
    sign(u) bit_k(|u|), next to each other: (.., B, features x bits) or (.., B, channels x bits, *spatial); and
    the planes per code (the chip's DAC bits; 1 for a bit-serial pass, whose code is its plane)."""
    bits = _bits(chip)
    if bits == 1:
        return u, 1
    mag, sgn = u.abs(), u.sign()
    p = torch.stack([torch.remainder(torch.div(mag, 2**k, rounding_mode="floor"), 2) * sgn for k in range(bits)], 3)
    return p.flatten(2, 3), bits  # (.., B, features or channels, bits, *spatial) -> rows r x bits + k

"""The crossbar geometry of a weight layer that training and mapping share: the integer bounds of its weight grid,
its unipolar sign groups (blocks of one sign, each on its own tiles) and its row tiles (the rows one ADC conversion
sums)."""

from __future__ import annotations

import math
from typing import Any

import torch


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


def tile_span(a: int, e: int, per_ch: int, weight_rows: int) -> tuple[int, int, torch.Tensor]:
    """A row tile holding matrix rows ``[a, e)`` (weight rows in F.unfold order, ``per_ch`` kernel taps per input
    channel, then bias rows from ``weight_rows`` on): the input channels ``[c0, c1)`` its weight rows touch, and
    which of those channels' taps are its rows, a ``(c1 - c0, per_ch)`` 0/1 mask. Training (Net's per-tile ADC)
    and the simulator both read a tile's convolution this way."""
    a_w, e_w = min(a, weight_rows), min(e, weight_rows)
    c0, c1 = a_w // per_ch, -(-e_w // per_ch)
    r = torch.arange(c0 * per_ch, c1 * per_ch).reshape(c1 - c0, per_ch)
    return c0, c1, ((r >= a) & (r < e)).float()


def expand_polarity(polarity: Any, n_layers: int) -> list[dict[str, int]]:
    """Per-layer polarity specs (see nvmxbar.core.groups.polarity_groups) from ``"positive"``, ``"negative"``,
    one spec for every layer, or a list with one spec per weight layer."""
    if polarity in ("positive", "negative"):
        polarity = {"sign": 1 if polarity == "positive" else -1}
    if isinstance(polarity, dict):
        polarity = [polarity] * n_layers
    if not isinstance(polarity, list) or len(polarity) != n_layers:
        raise ValueError(
            f"polarity: expected 'positive', 'negative', one spec or a list of {n_layers} specs "
            f"(one per weight layer), got {polarity!r}"
        )
    out = []
    for spec in polarity:
        unknown = set(spec) - set(POLARITY_KEYS)
        if unknown:
            raise ValueError(f"polarity spec {spec}: unknown keys {sorted(unknown)} (known: {list(POLARITY_KEYS)})")
        out.append(
            {
                "sign": int(spec.get("sign", 1)),
                "row_groups": int(spec.get("row_groups", 1)),
                "col_groups": int(spec.get("col_groups", 1)),
            }
        )
    return out

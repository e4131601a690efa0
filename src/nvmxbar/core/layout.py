"""Crossbar layout: how a network's weight layers become crossbar matrices, how matrix rows and physical
columns are placed on R x C tiles, and how many of each component a mapped network needs.

Matrices: a convolution unrolls to rows = in-channels x kernel (F.unfold order), columns = out-channels;
a linear layer is its transposed weight. A bias is one more row driven at the DAC full-scale
(``bias: row``) or added digitally after the ADC (``bias: digital``).

Physical columns: output n, slice s, pair member p sit at column ``(n * S + s) * P + p`` (p = 0 holds the
positive part G+, p = 1 the negative part G-), so a differential pair is never split across tiles when
C is even. Device levels are integers 0 .. 2^b - 1; G = G_min + level * (G_max - G_min) / (2^b - 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..chip import Chip
from .groups import polarity_groups, row_tiles
from .networks import Net

README = """nvmxbar crossbar.npz
Per weight layer i (in network order): 
  L{i}.G_us        float32 (row_tiles, col_tiles, R, C): programmed conductance of every cell in microsiemens;
                   unused cells are at G_min.
  L{i}.levels      int16 (row_tiles, col_tiles, R, C): device level 0..2^b-1 of every cell (G = G_min + level*dG).
  L{i}.used        bool (row_tiles, col_tiles, R, C): the cell holds part of a weight.
  L{i}.row_index   int32 (row_tiles * R,): the matrix row driven on each physical row (-1 = unused).
  L{i}.sign        int8 (row_tiles, col_tiles, C): sign applied digitally to each column's ADC output (+1, or
                   -1 for a negative unipolar group: one sign flip per group, not per weight).
  L{i}.codes       int32 (matrix rows, outputs): the signed integer weights before slicing.
Matrix rows are in-channels x kernel (F.unfold order), then the bias row(s) if bias: row (bipolar: one row
driven at +DAC full-scale; unipolar: a +full-scale and a -full-scale row, so the bias keeps its sign).
Physical row p of the layer is tile p // R, tile row p % R; unipolar sign groups of rows start on a new tile.
Physical column (n*S + s)*P + p sits in tile col // C at tile column col % C, for output n, weight slice s
(most significant last: weight = sum_s level_s * 2^(b*s)), pair member p (0 = G+, 1 = G-; P = 1 for
unipolar). mapping.json gives R, C, S, P, G_min, G_max, the scales and the counts.
"""


# ------------------------------------------------------------------------------------- layer geometry
def layer_specs(net: Net, in_shape: list[int]) -> list[dict[str, Any]]:
    """Per weight layer: kind, matrix rows/cols, kernel and padding, output positions (MVMs per inference)."""
    specs, shape = [], list(in_shape)
    for i, layer in enumerate(net.layers):
        if i < net.n_conv:
            k = layer.kernel_size
            spec = {
                "kind": f"conv{net.dims}d",
                "kernel": list(k),
                "padding": list(layer.padding),
                "in_channels": layer.in_channels,
                "outputs": layer.out_channels,
                "weight_rows": layer.in_channels * math.prod(k),
                "mvms": math.prod(shape[1:]),
            }
            shape = [layer.out_channels] + [s // 2 ** net.pool_after[i] for s in shape[1:]]
        else:
            spec = {
                "kind": "linear",
                "kernel": [],
                "padding": [],
                "in_channels": layer.in_features,
                "outputs": layer.out_features,
                "weight_rows": layer.in_features,
                "mvms": 1,
            }
            shape = [layer.out_features]
        spec.update(
            name=f"layers.{i}",
            index=i,
            pool=int(net.pool_after[i]),
            has_bias=layer.bias is not None,
            input_split=bool(i == 0 and net.input_split),
        )
        specs.append(spec)
    return specs


def unfold(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """Layer input -> matrix rows: (B * positions, weight_rows) for a convolution, (B, rows) for a dense layer."""
    if spec["kind"] == "linear":
        return x.flatten(1)
    if spec["kind"] == "conv1d":
        cols = F.unfold(x[:, :, None, :], (1, spec["kernel"][0]), padding=(0, spec["padding"][0]))
    else:
        cols = F.unfold(x, tuple(spec["kernel"]), padding=tuple(spec["padding"]))
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def fold(y: torch.Tensor, spec: dict, batch: int, in_spatial: list[int]) -> torch.Tensor:
    """Matrix outputs back to the layer's output tensor."""
    if spec["kind"] == "linear":
        return y
    return y.reshape(batch, *in_spatial, -1).movedim(-1, 1)


def weight_matrix(layer: torch.nn.Module) -> torch.Tensor:
    """(rows, outputs): rows in F.unfold order."""
    return layer.weight.detach().reshape(layer.weight.shape[0], -1).t()


# ------------------------------------------------------------------------------------------ mapping
def _tiles(rows_of_levels: np.ndarray, R: int, C: int, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    K, cols = rows_of_levels.shape
    rt, ct = math.ceil(K / R), math.ceil(cols / C)
    lev = np.full((rt * R, ct * C), fill, dtype=np.int16)
    used = np.zeros((rt * R, ct * C), dtype=bool)
    lev[:K, :cols], used[:K, :cols] = rows_of_levels, True
    to_t = lambda a: a.reshape(rt, R, ct, C).transpose(0, 2, 1, 3).copy()  # noqa: E731
    return to_t(lev), to_t(used)


def _unipolar_tiles(
    codes: np.ndarray, weight_shape: torch.Size | tuple, spec: dict, R: int, C: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One device per weight (P = 1). Each row group of one sign starts on its own row tiles (a tile's columns
    sum every row, so two signs never share a tile column); the bias rows join the last row group.
    Returns levels, used, row_index (physical row -> matrix row or -1) and the per-tile column signs."""
    rb, cb, signs = polarity_groups(weight_shape, spec)
    K, N = codes.shape
    rb = rb[:-1] + [K]  # the bias rows (if any) belong to the last group
    ct = math.ceil(N / C)
    tiles = row_tiles(weight_shape, spec, K - math.prod(int(k) for k in weight_shape[1:]), R)  # the one placement rule
    rt = tiles[-1] + 1
    row_index = np.full(rt * R, -1, dtype=np.int32)
    sign_rows = np.ones((rt, ct * C), dtype=np.int8)
    for g in range(len(rb) - 1):  # a group's rows run on from its first tile
        first, last = tiles[rb[g]], tiles[rb[g + 1] - 1]
        row_index[first * R : first * R + rb[g + 1] - rb[g]] = np.arange(rb[g], rb[g + 1])
        col_sign = np.ones(ct * C, dtype=np.int8)
        for j in range(len(cb) - 1):
            col_sign[cb[j] : cb[j + 1]] = signs[g][j]
        sign_rows[first : last + 1] = col_sign
    expected = np.repeat(sign_rows, R, axis=0)[row_index >= 0][:, :N]  # the sign every used cell must carry
    placed = codes[row_index[row_index >= 0]]
    if (placed * expected < 0).any():
        raise ValueError("unipolar mapping: a weight has the wrong sign for its group (model and polarity disagree)")
    lev = np.zeros((rt * R, ct * C), dtype=np.int16)
    used = np.zeros((rt * R, ct * C), dtype=bool)
    lev[row_index >= 0, :N] = np.abs(placed)
    used[row_index >= 0, :N] = True
    to_t = lambda a: a.reshape(rt, R, ct, C).transpose(0, 2, 1, 3).copy()  # noqa: E731
    return to_t(lev), to_t(used), row_index, sign_rows.reshape(rt, ct, C)


def _group_rows(weight_shape: torch.Size | tuple, spec: dict, rows: int) -> list[int]:
    rb, _, _ = polarity_groups(weight_shape, spec)
    sizes = [rb[g + 1] - rb[g] for g in range(len(rb) - 1)]
    sizes[-1] += rows - rb[-1]  # bias rows
    return sizes


def _negative_groups(sign_t: np.ndarray, used_t: np.ndarray) -> int:
    """Sign-flip units: per tile, one per contiguous run of used negative columns (a group)."""
    n = 0
    col_used = used_t.any(axis=2)  # (rt, ct, C)
    for t in np.ndindex(sign_t.shape[:2]):
        neg = (sign_t[t] < 0) & col_used[t]
        n += int(neg[0]) + int(((~neg[:-1]) & neg[1:]).sum())
    return n


def _slices(codes: np.ndarray, bits: int, n_slices: int) -> np.ndarray:
    """Signed integer codes (K, N) -> device levels (K, N*S*2): magnitude digits base 2^b, sign by pair member."""
    mag, base = np.abs(codes).astype(np.int64), 2**bits
    out = np.zeros(codes.shape + (n_slices, 2), dtype=np.int16)
    for s in range(n_slices):
        digit = (mag // base**s) % base
        out[..., s, 0] = np.where(codes > 0, digit, 0)
        out[..., s, 1] = np.where(codes < 0, digit, 0)
    return out.reshape(codes.shape[0], -1)


#: Operations per inference, counted by the simulator (Simulator.count_operations) and by :func:`count`, priced by
#: nvmxbar.core.cost.
OPERATION_KEYS = (
    "adc_conversions",
    "dac_activations",
    "cell_reads",
    "subtractions",
    "sign_flips",
    "shift_adds",
    "rescales",
    "mvms",
)


def count(mapping: dict) -> None:
    """Fill per-layer and total component and operation counts (the counting rules of COSTMODEL.md) for the
    circuit of ``mapping["chip"]`` (:class:`nvmxbar.chip.Chip`). Operation counts are per MVM (``*_per_mvm``,
    every pass included) and per inference (``total["operations"]``); the simulator counts the same while it runs.

    * Conversions: every converted signal of every row tile, in every pass: outputs x slices per row tile, twice
      that for a pair subtracted digitally (its two columns converted).
    * ADCs: one per ``adc_mux`` signals of a tile (a tile's C columns: C/2 pair signals with analog subtraction).
    * Subtractions: digital only, one per converted signal (a pair's two codes, or a one-device column's offset);
      one subtractor per ADC (time-shared like it). Analog subtraction needs none (the pair's currents, or the
      reference column's, are subtracted on the column).
    * Reference columns: a one-device tile with analog offset removal holds one column of G_min cells (its
      devices and reads are counted).
    * Shift-adds: every converted signal after the subtraction is accumulated into its output when an output has
      more than one (slices, row tiles or bit-serial passes); one shift-and-add unit per ADC.
    * Rescales: one multiply per output per MVM for the baseline (per-layer scale) and for uniform scaling whose
      ADC-to-DAC ratio is not a power of two (adc_ratio free); a power of two is a shift (free). The baseline's
      slices combined with free ranges (``converters.combination`` free) add one multiply per converted code of
      every slice but the least significant (one multiplier per ADC); pow2 slice shifts add none.
    * Offset encoding (``weight_offset`` 2^(wb-1)): per MVM, K adds that sum the input codes (bias drive included)
      and one subtraction of 2^(wb-1) x that sum per output: N + K subtractions, N + 1 subtractors.
    * ADC ranges: the baseline calibrates one per layer and distinct slice range (adc_ranges), each a reference of
      its own."""
    chip = Chip.from_dict(mapping["chip"], "mapping.json chip")
    R, C = chip.tile.rows, chip.tile.cols
    mux = chip.adc_mux
    passes = chip.passes
    digital = chip.subtraction == "digital"
    per_layer = mapping["scheme"] in ("baseline", "perlayer")  # a periphery design (references) per layer
    rescale = per_layer or chip.rescales
    tot: dict[str, Any] = {
        k: 0
        for k in (
            "devices",
            "tiles",
            "used_cells",
            "reference_cells",
            "adcs",
            "dacs",
            "subtractors",
            "shift_add_units",
            "rescale_units",
            "sign_flips",
            "weights",
            "adc_ranges",
        )
    }
    ops = dict.fromkeys(OPERATION_KEYS, 0)
    tot["pair"] = mapping["pair"]
    for spec in mapping["layers"]:
        K, N, S, P = spec["rows"], spec["outputs"], spec["slices"], spec["pair"]
        phys = N * S * P
        rt, ct = spec["row_tiles"], spec["col_tiles"]
        tiles = rt * ct
        pc = 2 if digital and P == 2 else 1  # conversions per signal
        refs = ct if P == 1 and not digital else 0  # reference columns of the layer, each on every row tile
        signals_per_tile = (C // P) * pc  # what a tile's ADCs convert
        adcs = tiles * math.ceil(signals_per_tile / mux)
        many = S > 1 or rt > 1 or passes > 1
        free = spec.get("converters", {}).get("combination") == "free"  # baseline: a multiply per non-LSB slice code
        offset = N + K if spec.get("weight_offset") else 0  # offset encoding: K adds (input sum), N subtractions
        spec.update(
            physical_cols=phys,
            tiles=tiles,
            devices=tiles * R * C + (rt * R * refs if refs else 0),
            used_cells=K * phys,
            reference_cells=K * refs,
            utilisation=K * phys / (tiles * R * C),
            adcs=adcs,
            passes=passes,
            adc_conversions_per_mvm=N * S * pc * rt * passes,
            dacs=tiles * R,
            dac_activations_per_mvm=K * ct * passes,
            cell_reads_per_mvm=K * (phys + refs) * passes,
            subtractors=(adcs if digital else 0) + (N + 1 if offset else 0),
            subtractions_per_mvm=(N * S * rt * passes if digital else 0) + offset,
            shift_adds_per_mvm=N * S * rt * passes if many else 0,
            shift_add_units=adcs if many else 0,
            rescale_units=(N if rescale else 0) + (adcs if free and S > 1 else 0),
            rescales_per_mvm=(N if rescale else 0) + (N * (S - 1) * rt * passes if free else 0),
            sign_flips=spec.get("negative_groups", 0),
            sign_flips_per_mvm=spec.get("negative_conversions_per_mvm", 0) * passes,
            periphery_design=spec["name"] if per_layer else "global",
            adc_ranges=int(spec.get("adc_ranges", 1)),
            weights=spec["weight_rows"] * N,
        )
        for k in tot:
            if k != "pair":
                tot[k] += spec[k]
        for k, per in (
            ("adc_conversions", "adc_conversions_per_mvm"),
            ("dac_activations", "dac_activations_per_mvm"),
            ("cell_reads", "cell_reads_per_mvm"),
            ("subtractions", "subtractions_per_mvm"),
            ("sign_flips", "sign_flips_per_mvm"),
            ("shift_adds", "shift_adds_per_mvm"),
            ("rescales", "rescales_per_mvm"),
        ):
            ops[k] += spec["mvms"] * spec[per]
        ops["mvms"] += spec["mvms"]
    tot["utilisation"] = tot["used_cells"] / max(tot["devices"], 1)
    tot["periphery_designs"] = len({s["periphery_design"] for s in mapping["layers"]})
    tot["operations"] = ops
    mapping["total"] = tot

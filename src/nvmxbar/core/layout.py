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
from .array_energy import column_current_limit_ua
from .cost_units import load_constants
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
                "in_spatial": list(shape[1:]),
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
                "in_spatial": [],
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
    "column_reads",
    "subtractions",
    "sign_flips",
    "shift_adds",
    "rescales",
    "relus",
    "pool_comparisons",
    "buffer_writes",
    "buffer_reads",
    "mvms",
)
#: Component counts :func:`count` sums over the layers into mapping.json's total.
TOTAL_KEYS = (
    "devices",
    "tiles",
    "used_cells",
    "reference_cells",
    "adcs",
    "dacs",
    "subtractors",
    "shift_add_units",
    "rescale_units",
    "relu_units",
    "pool_units",
    "accumulator_registers",
    "sign_flips",
    "weights",
    "adc_ranges",
)


def tile_cycles(columns: int, C: int, pair: int, per_signal: int, mux: int) -> list[int]:
    """Mux cycles per pass of each column tile of a layer of ``columns`` physical columns on C-column tiles: the
    signals a tile converts (a pair's one, or ``per_signal`` = 2 when subtracted digitally; a one-device column's one)
    in turn on its ceil(C / pair x per_signal / mux) ADCs: ceil(signals / ADCs) cycles, in sequence."""
    adcs = math.ceil((C // pair) * per_signal / mux)
    return [math.ceil(min(C, columns - j * C) // pair * per_signal / adcs) for j in range(math.ceil(columns / C))]


def pool_comparisons(spec: dict) -> int:
    """Comparisons of the max-pools after a layer, per inference: each 2x stage (window 2^dims) takes window - 1
    comparisons per output it keeps, on the outputs x spatial positions left by the stages before it."""
    dims = {"conv1d": 1, "conv2d": 2}.get(spec["kind"], 0)
    if int(spec["pool"]) and not dims:
        raise ValueError(f"{spec['name']}: a max-pool after a {spec['kind']} layer")
    sp, n = list(spec["in_spatial"]), 0
    for _ in range(int(spec["pool"])):
        sp = [s // 2 for s in sp]
        n += spec["outputs"] * math.prod(sp) * (2**dims - 1)
    return n


def count(mapping: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    """Fill per-layer and total component and operation counts (the counting rules of COSTMODEL.md) for the
    circuit of ``mapping["chip"]`` (:class:`nvmxbar.chip.Chip`). Operation counts are per MVM (``*_per_mvm``,
    every pass included) and per inference (``total["operations"]``); the simulator counts the same while it runs.
    With the crossbar's ``arrays`` (crossbar.npz), also the operating point (:func:`column_currents`).

    * Conversions: every converted signal of every row tile, in every pass: outputs x slices per row tile, twice
      that for a pair subtracted digitally (its two columns converted).
    * ADCs: one per ``adc_mux`` signals of a tile (a tile's C columns: C/2 pair signals with analog subtraction).
    * Mux cycles: a tile converts its signals in turn on its ADCs, ceil(signals / ADCs) cycles per pass
      (:func:`tile_cycles`); the rows are driven again in every cycle (drives: rows x cycles of every tile), and a
      column conducts (its cells read, its bit line charged) in its own cycle. ``mux_cycles``: the layer's longest
      tile (the tiles of an MVM run in parallel).
    * Subtractions: digital only, one per converted signal (a pair's two codes, or a one-device column's offset);
      one subtractor per ADC (time-shared like it). Analog subtraction needs none (the pair's currents, or the
      reference column's, are subtracted on the column).
    * Reference columns: a one-device tile with analog offset removal holds one column of G_min cells (its
      devices counted), read with every cycle of its tile (it is subtracted from every converted column).
    * Shift-adds: every converted signal after the subtraction is accumulated into its output when an output has
      more than one (slices, row tiles or bit-serial passes); one shift-and-add unit per ADC, one accumulator
      register per output.
    * Rescales: one multiply per output per MVM for the baseline (per-layer scale) and for uniform scaling whose
      ADC-to-DAC ratio is not a power of two (adc_ratio free); a power of two is a shift (free). The baseline's
      slices combined with free ranges (``converters.combination`` free) add one multiply per converted code of
      every slice but the least significant (one multiplier per ADC); pow2 slice shifts add none.
    * Offset encoding (``weight_offset`` 2^(wb-1)): per MVM, K adds that sum the input codes (bias drive included)
      and one subtraction of 2^(wb-1) x that sum per output: N + K subtractions, N + 1 subtractors.
    * ReLU: one comparison per output of every layer but the last (one comparator per output); max-pool: window - 1
      comparisons per pooled output (:func:`pool_comparisons`, one comparator per output channel).
    * Buffer: a layer's inputs (in_channels x MVMs values) are written once and read by every MVM (its weight rows);
      one buffer holds the largest layer input + output at ``dac_bits`` per value (``total["buffer_bits"]``).
    * ADC ranges: the baseline calibrates one per layer and distinct slice range (adc_ranges), each a reference of
      its own."""
    chip = Chip.from_dict(mapping["chip"], "mapping.json chip")
    R, C = chip.tile.rows, chip.tile.cols
    mux = chip.adc_mux
    passes = chip.passes
    digital = chip.subtraction == "digital"
    per_layer = mapping["scheme"] in ("baseline", "perlayer")  # a periphery design (references) per layer
    rescale = per_layer or chip.rescales
    tot: dict[str, Any] = dict.fromkeys(TOTAL_KEYS, 0)
    ops = dict.fromkeys(OPERATION_KEYS, 0)
    tot["pair"] = mapping["pair"]
    layers = mapping["layers"]
    in_values = [s["in_channels"] * s["mvms"] for s in layers]
    for idx, spec in enumerate(layers):
        K, N, S, P = spec["rows"], spec["outputs"], spec["slices"], spec["pair"]
        phys = N * S * P
        rt, ct = spec["row_tiles"], spec["col_tiles"]
        tiles = rt * ct
        pc = 2 if digital and P == 2 else 1  # conversions per signal
        refs = ct if P == 1 and not digital else 0  # reference columns of the layer, each on every row tile
        signals_per_tile = (C // P) * pc  # what a tile's ADCs convert
        adcs = tiles * math.ceil(signals_per_tile / mux)
        cycles = tile_cycles(phys, C, P, pc, mux)
        read_cols = phys + (sum(cycles) if refs else 0)  # columns conducting per pass (a reference: every cycle)
        many = S > 1 or rt > 1 or passes > 1
        last = idx == len(layers) - 1
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
            mux_cycles=max(cycles),
            adc_conversions_per_mvm=N * S * pc * rt * passes,
            dacs=tiles * R,
            dac_activations_per_mvm=K * sum(cycles) * passes,
            cell_reads_per_mvm=K * read_cols * passes,
            column_reads_per_mvm=rt * read_cols * passes,
            subtractors=(adcs if digital else 0) + (N + 1 if offset else 0),
            subtractions_per_mvm=(N * S * rt * passes if digital else 0) + offset,
            shift_adds_per_mvm=N * S * rt * passes if many else 0,
            shift_add_units=adcs if many else 0,
            accumulator_registers=N if many else 0,
            rescale_units=(N if rescale else 0) + (adcs if free and S > 1 else 0),
            rescales_per_mvm=(N if rescale else 0) + (N * (S - 1) * rt * passes if free else 0),
            relu_units=0 if last else N,
            relus_per_mvm=0 if last else N,
            pool_units=N if int(spec["pool"]) else 0,
            pool_comparisons_per_mvm=pool_comparisons(spec) / spec["mvms"],
            input_values=in_values[idx],
            output_values=N * spec["mvms"] if last else in_values[idx + 1],
            buffer_writes_per_mvm=spec["in_channels"],
            buffer_reads_per_mvm=spec["weight_rows"],
            sign_flips=spec.get("negative_groups", 0),
            sign_flips_per_mvm=spec.get("negative_conversions_per_mvm", 0) * passes,
            periphery_design=spec["name"] if per_layer else "global",
            adc_ranges=int(spec.get("adc_ranges", 1)),
            weights=spec["weight_rows"] * N,
        )
        for k in TOTAL_KEYS:
            tot[k] += spec[k]
        for k in OPERATION_KEYS:
            ops[k] += spec["mvms"] * (1 if k == "mvms" else spec[f"{k}_per_mvm"])
    tot["utilisation"] = tot["used_cells"] / max(tot["devices"], 1)
    tot["periphery_designs"] = len({s["periphery_design"] for s in layers})
    tot["buffer_bits"] = max(s["input_values"] + s["output_values"] for s in layers) * chip.dac_bits
    tot["operations"] = ops
    mapping["total"] = tot
    if arrays is not None:
        column_currents(arrays, mapping)


def column_currents(arrays: dict[str, np.ndarray], mapping: dict, constants: dict | None = None) -> None:
    """The operating point, into mapping.json (after :func:`count`): per layer, the column currents with every driven
    row at the DAC full-scale, I = V_read x the sum of G over the column's cells on driven rows, over the tile
    columns that hold a used cell (reference columns included): ``max_column_current_ua``,
    ``mean_column_current_ua``; ``array_power_uw``, what the array draws at full drive: V_read x the mean current x
    the columns conducting at once (one signal per ADC of every tile; a pair's two columns, a reference column).
    In ``total``: the largest current, the mean over every column, the largest layer's power (layers run one after
    another), and the limit a design is flagged against (:func:`nvmxbar.core.array_energy.column_current_limit_ua`,
    from ``constants``, default the packaged ones) with ``column_current_within_limit``."""
    chip = Chip.from_dict(mapping["chip"], "mapping.json chip")
    v, g_min, C = chip.device.v_read_v, chip.device.g_min_us, chip.tile.cols
    digital = chip.subtraction == "digital"
    currents = []
    for i, spec in enumerate(mapping["layers"]):
        g = arrays[f"L{i}.G_us"].astype(np.float64)  # (rt, ct, R, C)
        rt, ct, R, _ = g.shape
        driven = (arrays[f"L{i}.row_index"].reshape(rt, R) >= 0).astype(np.float64)
        col = v * np.einsum("tr,tcrk->tck", driven, g)[arrays[f"L{i}.used"].any(axis=2)]
        P, pc = spec["pair"], 2 if digital and spec["pair"] == 2 else 1
        refs = P == 1 and not digital
        if refs:  # one reference column of G_min cells per tile, on the tile's driven rows
            col = np.concatenate([col, np.repeat(v * g_min * driven.sum(1), ct)])
        adcs = math.ceil((C // P) * pc / chip.adc_mux)
        signals = [min(C, spec["physical_cols"] - j * C) // P * pc for j in range(ct)]
        at_once = rt * sum(min(adcs, s) * (2 if P == 2 and not digital else 1) + int(refs) for s in signals)
        spec.update(
            max_column_current_ua=float(col.max()),
            mean_column_current_ua=float(col.mean()),
            array_power_uw=float(v * col.mean() * at_once),
        )
        currents.append(col)
    tot = mapping["total"]
    limit = column_current_limit_ua(constants or load_constants(), chip)
    tot.update(
        max_column_current_ua=max(s["max_column_current_ua"] for s in mapping["layers"]),
        mean_column_current_ua=float(np.concatenate(currents).mean()),
        array_power_uw=max(s["array_power_uw"] for s in mapping["layers"]),
        column_current_limit_ua=limit if math.isfinite(limit) else None,  # None: ideal column wires, no limit
    )
    tot["column_current_within_limit"] = bool(tot["max_column_current_ua"] <= limit)

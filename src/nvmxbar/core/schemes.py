"""The mapping schemes: a trained network -> device levels and conductances on tiles (crossbar.npz arrays)
and the mapping document (mapping.json), with one function per scheme:

* :func:`differential_codes` (uniform scaling): weight codes already on the device grid (-(2^b-1)..2^b-1),
  one slice on a differential pair, one global weight, DAC and ADC full-scale, no per-layer rescale;
* :func:`unipolar_codes` (one device per weight): the same global grid, each sign group of a layer on its own
  tiles (the sign is applied digitally per column group), a signed bias as a +A and a -A row;
* :func:`bitsliced_codes` (the baseline): float weights quantized after training with a per-layer scale to
  ``baseline_weight_bits`` (signed), bit-sliced into b-bit digits (shift-and-add) on differential pairs (the
  magnitude) or offset-encoded on one device per slice (the code + 2^(wb-1)), per-layer DAC and per-slice ADC ranges
  calibrated on training data (slices combined by powers of two, or free: :mod:`nvmxbar.core.converters`), and a
  per-layer digital rescale of every output.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..chip import Chip
from ..settings import MapSettings
from .converters import offset_tiles, slice_ranges, slices_of, weight_offset
from .fakequant import abs_quantile, to_int
from .groups import polarity_groups, weight_bounds
from .layout import (
    README,
    _group_rows,
    _negative_groups,
    _slices,
    _tiles,
    _unipolar_tiles,
    count,
    layer_specs,
    weight_matrix,
)
from .networks import Net, pool
from .quant import UniformQuantizer
from .simulator import Simulator


@torch.no_grad()
def _float_layer_inputs(net: Net, x: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every weight layer of the float network (baseline calibration)."""
    inputs = []
    if net.input_split:
        x = torch.cat([x, -x], 1)
    for i, layer in enumerate(net.layers):
        if i == net.n_conv:
            x = x.flatten(1)
        inputs.append(x)
        x = layer(x)
        if i < len(net.layers) - 1:
            x = pool(F.relu(x), net.pool_after[i], net.dims)
    return inputs


@dataclass
class LayerCodes:
    """One layer's signed integer weights on its crossbar matrix (rows = weight rows then bias rows, columns =
    outputs) and the scales that turn them back into weights."""

    codes: torch.Tensor
    weight_fullscale: float
    weight_levels: int
    weight_step: float
    dac_fullscale: float


def bitsliced_codes(
    layer: torch.nn.Module, bias: torch.Tensor | None, weight_bits: int, layer_input: torch.Tensor, name: str = "layer"
) -> LayerCodes:
    """Baseline: the float weights quantized with the layer's own scale to ``weight_bits`` (signed), the layer's
    own DAC range (99.9th percentile of |its inputs| over every value of every calibration sample); a bias row is
    driven at that range. A zero range (all-zero weights or inputs) is a ValueError naming the layer."""
    w = weight_matrix(layer).double()
    wmax = float(w.abs().max())
    levels_w = 2 ** (weight_bits - 1) - 1
    a_l = abs_quantile(layer_input, 0.999)  # per-layer DAC
    if not wmax > 0 or not a_l > 0:
        raise ValueError(
            f"{name}: zero {'weight' if not wmax > 0 else 'input'} range on {len(layer_input)} calibration samples "
            "(all its weights or the 99.9th percentile of its inputs are 0): no DAC or weight scale can be set"
        )
    codes = to_int(w, wmax, levels_w, -levels_w, levels_w)
    if bias is not None:
        codes = torch.cat([codes, to_int(bias / a_l, wmax, levels_w, -levels_w, levels_w)[None]], 0)
    return LayerCodes(codes, wmax, levels_w, wmax / levels_w, a_l)


def differential_codes(layer: torch.nn.Module, q: UniformQuantizer, bias: torch.Tensor | None, bits: int) -> LayerCodes:
    """Uniform scaling on differential pairs: the training grid of the shared weight full-scale W, one bias row
    driven at the shared DAC full-scale A."""
    W, A, L = q.weight_fullscale.item(), q.act_fullscale.item(), 2**bits - 1
    lo, hi = weight_bounds(bits, None, layer.weight.shape)
    codes = to_int(layer.weight.detach().double(), W, L, lo, hi).reshape(layer.weight.shape[0], -1).t()
    if bias is not None:
        codes = torch.cat([codes, to_int(bias / A, W, L, -L, L)[None]], 0)
    return LayerCodes(codes, W, L, W / L, A)


def unipolar_codes(
    layer: torch.nn.Module, q: UniformQuantizer, bias: torch.Tensor | None, bits: int, mask: torch.Tensor, spec: dict
) -> LayerCodes:
    """One device per weight: the training grid with each sign group's bounds; a signed bias in a one-sign
    column is two rows, driven at +A and -A, each holding the part of the column's sign."""
    W, A, L = q.weight_fullscale.item(), q.act_fullscale.item(), 2**bits - 1
    lo, hi = weight_bounds(bits, mask, layer.weight.shape)  # the training grid, sign groups included
    codes = to_int(layer.weight.detach().double(), W, L, lo, hi).reshape(layer.weight.shape[0], -1).t()
    if bias is not None:
        bcodes = to_int(bias / A, W, L, -L, L)
        _, cb, signs = polarity_groups(layer.weight.shape, spec)
        col_sign = torch.tensor(
            [signs[-1][j] for j in range(len(cb) - 1) for _ in range(cb[j], cb[j + 1])], dtype=bcodes.dtype
        )
        lev_p, lev_m = (col_sign * bcodes).clamp(min=0), (-col_sign * bcodes).clamp(min=0)
        codes = torch.cat([codes, (col_sign * lev_p)[None], (col_sign * lev_m)[None]], 0)
    return LayerCodes(codes, W, L, W / L, A)


def _pair_tiles(
    codes: np.ndarray, bits: int, slices: int, R: int, C: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Differential pairs (and bit slices): levels, used, row_index (physical row -> matrix row or -1), signs."""
    lev_t, used_t = _tiles(_slices(codes, bits, slices), R, C)
    row_index = np.full(lev_t.shape[0] * R, -1, dtype=np.int32)
    row_index[: codes.shape[0]] = np.arange(codes.shape[0])
    return lev_t, used_t, row_index, np.ones((lev_t.shape[0], lev_t.shape[1], C), dtype=np.int8)


def scheme_of(net: Net) -> str:
    """baseline (a float network: per-layer scales, bit slices), perlayer (trained at device precision with per-layer
    scales: one slice on differential pairs, a rescale per output), uniform (differential pairs, shared scales) or
    unipolar."""
    if net.quant is None:
        return "baseline"
    if net.quant.per_layer:
        return "perlayer"
    return "unipolar" if net.polarity is not None else "uniform"


def trained_chip(q: UniformQuantizer, chip: Chip, per_layer: bool = False) -> Chip:
    """The chip a quantized network runs on: ``chip`` itself, with the free ADC-to-DAC ratio of a per-layer-scaled
    network. A ValueError names every field the network was trained otherwise (retrain it for this chip)."""
    want = {"dac_bits": chip.dac_bits, "adc_bits": chip.adc_bits, "input_mode": chip.input_mode}
    want["adc_ratio"] = "free" if per_layer else chip.adc_ratio
    diff = [f"{k} {getattr(q, k)!r} (the chip has {v!r})" for k, v in want.items() if getattr(q, k) != v]
    if diff:
        raise ValueError(
            f"model trained for another chip: {'; '.join(diff)}. Retrain it: the chip's converters and drive are "
            "part of the training"
        )
    return replace(chip, adc_ratio=want["adc_ratio"])


def map_network(
    net: Net, bits: int, settings: MapSettings, calib_x: torch.Tensor | None = None, device: str = "cpu"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Map a trained network onto ``bits``-bit devices. Returns (arrays for crossbar.npz, mapping.json document).
    ``calib_x``: training inputs that set the baseline's per-layer DAC and ADC ranges (simulated on ``device``)."""
    R, C = settings.chip.tile.rows, settings.chip.tile.cols
    b = int(bits)
    L = 2**b - 1
    g_max, g_min = settings.chip.device.g_max_us, settings.chip.device.g_min_us
    bias_row = settings.bias == "row"
    scheme = scheme_of(net)
    specs = layer_specs(net, net.in_shape)
    encoding, offset = None, 0
    if scheme == "baseline":
        encoding = settings.baseline.encodings[0]  # map_crossbar fits each encoding in turn
        offset = weight_offset(encoding, settings.baseline.weight_bits)
        S = slices_of(encoding, settings.baseline.weight_bits, b)
        chip = settings.baseline_chip()
        if calib_x is None:
            raise ValueError("the baseline mapping needs calibration inputs (per-layer DAC ranges)")
        inputs = _float_layer_inputs(net, calib_x)
    else:
        q = net.quant
        S = 1
        if q.weight_bits != b:
            raise ValueError(f"model trained for {q.weight_bits}-bit devices cannot be mapped onto {b}-bit devices")
        chip = trained_chip(q, settings.chip, per_layer=scheme == "perlayer")
    uni = scheme == "unipolar"
    P = 1 if uni or offset else 2
    arrays = {"README": np.array(README)}
    layers = []
    for i, (layer, spec) in enumerate(zip(net.layers, specs, strict=True)):
        bias = layer.bias.detach().double() if layer.bias is not None else None
        row_bias = bias if bias_row else None
        if scheme == "baseline":
            lc = bitsliced_codes(layer, row_bias, settings.baseline.weight_bits, inputs[i], specs[i]["name"])
        elif scheme in ("uniform", "perlayer"):
            lc = differential_codes(layer, q[i], row_bias, b)
        else:
            lc = unipolar_codes(layer, q, row_bias, b, getattr(net, f"_pol{i}"), net.polarity[i])
        codes_np = lc.codes.numpy().astype(np.int64)
        if uni:
            lev_t, used_t, row_index, sign_t = _unipolar_tiles(codes_np, layer.weight.shape, net.polarity[i], R, C)
        elif offset:
            lev_t, used_t, row_index, sign_t = offset_tiles(codes_np, offset, b, S, R, C)
        else:
            lev_t, used_t, row_index, sign_t = _pair_tiles(codes_np, b, S, R, C)
        arrays[f"L{i}.levels"] = lev_t
        arrays[f"L{i}.used"] = used_t
        arrays[f"L{i}.row_index"] = row_index
        arrays[f"L{i}.sign"] = sign_t
        arrays[f"L{i}.G_us"] = (g_min + lev_t.astype(np.float64) * (g_max - g_min) / L).astype(np.float32)
        arrays[f"L{i}.codes"] = codes_np.astype(np.int32)  # signed integer weights (rows, outputs), before slicing
        if bias is not None and not bias_row:
            arrays[f"L{i}.bias"] = bias.numpy().astype(np.float64)
        rows = codes_np.shape[0]
        bias_mode = ("row" if bias_row else "digital") if bias is not None else "none"
        layers.append(
            {
                **spec,
                "rows": rows,
                "bias_mode": bias_mode,
                "bias_rows": (2 if uni else 1) if bias_mode == "row" else 0,
                "polarity": net.polarity[i] if uni else None,
                "row_groups": _group_rows(layer.weight.shape, net.polarity[i], rows) if uni else [rows],
                "negative_groups": _negative_groups(sign_t, used_t) if uni else 0,
                "negative_conversions_per_mvm": int(((sign_t < 0) & used_t.any(axis=2)).sum()),
                "weight_fullscale": lc.weight_fullscale,
                "weight_levels": lc.weight_levels,
                "weight_step": lc.weight_step,
                "dac_fullscale": lc.dac_fullscale,
                "slices": S,
                "pair": P,
                "row_tiles": lev_t.shape[0],
                "col_tiles": lev_t.shape[1],
            }
        )
        if scheme == "baseline":  # unsigned ADC where the sums cannot be negative (offset digits, inputs >= 0)
            layers[-1].update(encoding=encoding, weight_offset=offset)
            layers[-1]["converters"] = {"adc": "unsigned" if offset and i > 0 else "signed"}
    mapping = {
        "bits": b,
        "scheme": scheme,
        "chip": chip.to_dict(),
        "device": {"bits": b, "levels": L + 1},  # the chip's device at this resolution
        "pair": P,
        "slices": S,
        "layers": layers,
    }
    if offset:
        mapping["weight_offset"] = (
            f"offset encoding (ISAAC): every weight code c stored as c + {offset} in {S} unsigned {b}-bit digits, one "
            f"device each; {offset} x (the sum of the layer's input codes, the bias row's drive included) subtracted "
            "digitally from every output after the shift-and-add"
        )
    if scheme == "baseline":  # the float weights' quantization, and how they are stored
        mapping.update(encoding=encoding, weight_bits=settings.baseline.weight_bits)
    if P == 1:
        mapping["offset_correction"] = (
            "G_min offset removed in analog: a reference column of G_min cells per tile, read with the tile's "
            "inputs, subtracted from every column before the ADC"
            if chip.subtraction == "analog"
            else "G_min offset removed digitally: each column converted with its offset, then G_min/dG x (sum of "
            "the tile's input codes) subtracted from every conversion (ISAAC-style), one subtractor per ADC"
        )
    if scheme == "perlayer":  # each layer's own ADC step (a periphery design of its own)
        for spec, qi in zip(layers, q.layers, strict=True):
            spec["adc_step"] = [float(qi.adc_fullscale.item()) / qi.adc_levels]
            spec["adc_ranges"] = 1
    elif scheme != "baseline":
        mapping["adc_fullscale"] = q.adc_fullscale.item()
        mapping["adc_dac_ratio"] = q.adc_dac_ratio()  # ADC step / next DAC step
    else:
        _calibrate_baseline_adc(arrays, mapping, calib_x, device, settings.baseline.slice_combination)
    count(mapping, arrays)
    return arrays, mapping


def _calibrate_baseline_adc(
    arrays: dict[str, np.ndarray], mapping: dict, calib_x: torch.Tensor, device: str, combination: str
) -> None:
    """The baseline's ADC ranges, one per layer AND slice, from the 99.9th percentile of |partial sums| of that
    slice's columns (over row tiles and MVMs) on the calibration inputs, through the ideal crossbar. A slice of weight
    2^(b s) would otherwise share the range its most significant sibling needs and lose bits. ``combination`` pow2:
    the LSB slice's range as calibrated, every other slice's the power-of-two multiple of it that holds its own
    (mapping.json ``converters.slice_shifts``, integers); free: each slice's own range (a multiply per code).
    Each distinct range is one reference, counted by the cost model."""
    sim = Simulator(arrays, mapping, device=device)
    sim.forward(calib_x, adc=False, record=True)
    shifts = []
    for spec, per_slice in zip(mapping["layers"], sim.recorded):
        zero = [k for k, p in enumerate(per_slice) if not p > 0]
        if 0 in zero or (zero and combination == "free"):
            raise ValueError(
                f"{spec['name']}: the partial sums of weight slice(s) {zero} are all zero on {len(calib_x)} "
                "calibration samples: no ADC range can be set"
            )
        ranges, layer_shifts = slice_ranges(per_slice, combination)
        spec["adc_fullscale"] = ranges
        spec["adc_ranges"] = len(set(ranges))
        spec["converters"].update(combination=combination, slice_shifts=layer_shifts)
        shifts.append(layer_shifts)
    mapping["converters"] = {"combination": combination, "slice_shifts": shifts if combination == "pow2" else None}
    mapping["calibration"] = {"samples": len(calib_x), "quantile": 0.999, "values": "every value of every sample"}

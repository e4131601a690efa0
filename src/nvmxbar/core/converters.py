"""The baseline's converters and weight encodings (issue 29, "a baseline at its best"): how its bit slices are
combined, what each ADC converts, and the offset encoding's digital correction.

* **Slice combination** (``map_crossbar.baseline_slice_combination``). ``pow2``: each slice's ADC step is the least
  significant slice's step x 2^shift (an integer per slice and layer), so slice s enters its output with the factor
  2^(b s + shift): a shift. The LSB slice's range is its own calibrated one (99.9th percentile of its partial sums);
  every other slice takes the smallest such power-of-two multiple that holds its own calibrated range,
  shift = ceil(log2(range_s / range_0)) (:func:`slice_ranges`): it clips no more than its own range would, at the
  price of at most one bit of that slice's resolution. ``free``: every slice keeps its own range, and its codes are
  multiplied by range_s / range_0 before the shift-and-add: one multiply per converted code of every slice but the
  least significant, counted and priced as a rescale.
* **Encodings** (``map_crossbar.baseline_encodings``). ``differential``: sign-magnitude codes on differential pairs,
  the magnitude's wb - 1 bits in S = ceil((wb - 1) / b) slices. ``offset`` (ISAAC, Shafiee et al., ISCA 2016): every
  weight code c stored as the unsigned c + 2^(wb-1), its wb bits in S = ceil(wb / b) slices of ONE device each
  (P = 1); the devices' G_min offset is removed as for a one-device column (chip.subtraction), and 2^(wb-1) x (the sum
  of the layer's input codes, its bias row's drive included) is subtracted digitally from every output after the
  shift-and-add (:func:`remove_weight_offset`). A column of non-negative digits read with non-negative inputs sums
  to >= 0: its ADC is unsigned, codes 0 .. 2^bits - 1 (:func:`adc_code_range`); the first layer's inputs are signed,
  so its ADC stays signed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..chip import Chip
from .layout import _tiles

#: ``map_crossbar.baseline_slice_combination``.
COMBINATIONS = ("pow2", "free")
#: ``map_crossbar.baseline_encodings``.
ENCODINGS = ("differential", "offset")


def slices_of(encoding: str, weight_bits: int, bits: int) -> int:
    """Slices of a ``weight_bits``-bit signed weight on ``bits``-bit devices: a pair holds the magnitude (wb - 1
    bits), the offset encoding the unsigned code (wb bits)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"baseline encoding {encoding!r}: one of {', '.join(ENCODINGS)}")
    return math.ceil((weight_bits - (encoding == "differential")) / bits)


def weight_offset(encoding: str, weight_bits: int) -> int:
    """The bias 2^(wb-1) the offset encoding adds to every weight code (0 for differential pairs)."""
    return 2 ** (weight_bits - 1) if encoding == "offset" else 0


def offset_tiles(
    codes: np.ndarray, offset: int, bits: int, slices: int, R: int, C: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Offset encoding: signed codes (K, N) + ``offset`` -> unsigned digits base 2^b, one device per slice (column
    n * S + s). Returns levels, used, row_index (physical row -> matrix row or -1) and the column signs (all +1)."""
    unsigned = codes.astype(np.int64) + offset
    if (unsigned < 0).any() or (unsigned >= 2 ** (bits * slices)).any():
        raise ValueError(f"offset encoding: codes + {offset} outside 0 .. 2^{bits * slices} - 1")
    digits = np.stack([(unsigned // 2 ** (bits * s)) % 2**bits for s in range(slices)], -1)
    lev_t, used_t = _tiles(digits.reshape(codes.shape[0], -1).astype(np.int16), R, C)
    row_index = np.full(lev_t.shape[0] * R, -1, dtype=np.int32)
    row_index[: codes.shape[0]] = np.arange(codes.shape[0])
    return lev_t, used_t, row_index, np.ones((lev_t.shape[0], lev_t.shape[1], C), dtype=np.int8)


def slice_ranges(fullscales: list[float], combination: str) -> tuple[list[float], list[int] | None]:
    """Each slice's ADC range (integer units) from its calibrated one, and the slices' shifts (None: free). pow2:
    range_s = range_0 x 2^shift_s, shift_s = ceil(log2(range_s / range_0)); a slice whose calibrated range is 0
    (no partial sum on the calibration inputs) takes the LSB slice's range (shift 0)."""
    if combination == "free":
        return [float(f) for f in fullscales], None
    if combination != "pow2":
        raise ValueError(f"baseline slice combination {combination!r}: one of {', '.join(COMBINATIONS)}")
    r0 = float(fullscales[0])
    shifts = [0] + [math.ceil(math.log2(f / r0)) if f > 0 else 0 for f in fullscales[1:]]
    return [math.ldexp(r0, k) for k in shifts], shifts


def adc_code_range(spec: dict, adc_bits: int) -> tuple[int, int]:
    """The ADC codes of a layer's conversions: -(2^(bits-1) - 1) .. 2^(bits-1) - 1, or 0 .. 2^bits - 1 where the
    converted sums cannot be negative (mapping.json ``converters.adc`` unsigned: offset encoding, inputs >= 0)."""
    if spec.get("converters", {}).get("adc") == "unsigned":
        return 0, 2**adc_bits - 1
    return -(2 ** (adc_bits - 1) - 1), 2 ** (adc_bits - 1) - 1


def adc_steps(chip: Chip, mapping: dict, spec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The ADC step of each slice, (S,): in integer units (weight level x input code, what the partial sums are
    in) and in the network's units (what an ADC code is worth). Baseline: per layer and slice (its range over its
    ADC codes: a power of two times the LSB slice's with pow2); uniform scaling: the global Y / adc_levels, which
    with adc_ratio pow2 is exactly the DAC step x 2^k (so that an ADC code x 2^k is the next DAC code, no rounding
    between). ``chip`` and ``mapping``: mapping.json's (the simulator's)."""
    dac_levels, adc_levels = 2**chip.dac_bits - 1, 2 ** (chip.adc_bits - 1) - 1
    S, unit = int(spec["slices"]), spec["weight_step"] * spec["dac_fullscale"] / dac_levels
    if "adc_step" in spec:  # per-layer scales trained at device precision: the layer's own step, network units
        value = torch.tensor(spec["adc_step"], dtype=torch.float64)
        return value / unit, value
    if mapping["scheme"] == "baseline":
        fs = spec["adc_fullscale"]  # integer (code x level) units, one per slice or one for all
        levels = adc_code_range(spec, chip.adc_bits)[1]
        steps = torch.tensor(fs if isinstance(fs, list) else [fs] * S, dtype=torch.float64) / levels
        return steps, steps * unit
    if chip.adc_ratio == "pow2":
        ratio = float(mapping["adc_dac_ratio"])
        value = torch.full((S,), spec["dac_fullscale"] / dac_levels * ratio, dtype=torch.float64)
    else:
        value = torch.full((S,), mapping["adc_fullscale"] / adc_levels, dtype=torch.float64)
    return value / unit, value


def remove_weight_offset(spec: dict, input_sum: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """The offset encoding's digital correction of a layer's outputs ``y`` (I, B, N, *spatial): minus 2^(wb-1) x
    ``input_sum``, the sum of the layer's input codes (every weight row's, and its bias rows' drives; (1 or I, B, 1,
    *spatial), integers) x ``scale`` (the network units of one weight level x input code; 1 in integer units).
    Other layers: ``y`` as it is."""
    offset = int(spec.get("weight_offset", 0))
    if not offset:
        return y
    return y - (input_sum.double() * (offset * scale)).to(y.dtype)

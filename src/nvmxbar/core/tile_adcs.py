"""Converter error in the simulator: every ADC of a chip population drawn once (:func:`nvmxbar.core.converter_error.
draw_adcs`, constants from nvmxbar/resources/converter_errors.yaml scaled by ``adc_error_scale`` and weighted by
``evaluate_noise.converter_parts``), and each converted
signal converted by the ADC that serves it on the chip (:func:`adc_index`): its tile's ADCs take contiguous groups of
``adc_mux`` signals (a pair subtracted in analog is one signal; subtracted digitally, each of its columns is one), as
the layout counts them (:func:`nvmxbar.core.layout.tile_cycles`). Thermal noise is drawn per conversion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..chip import Chip
from .converter_error import AdcBank, convert, draw_adcs
from .converter_params import ConverterErrors
from .converters import adc_code_range


@dataclass(frozen=True, eq=False)
class LayerAdcs:
    """A layer's drawn ADCs and, per row tile, the ADC each of its converted signals (N x S x conversions per signal,
    in the simulator's order) is converted by: ``index`` (row tiles, signals)."""

    bank: AdcBank
    index: torch.Tensor


def adc_index(chip: Chip, spec: dict, row_tiles: int) -> tuple[torch.Tensor, int]:
    """(row tiles, signals) the layer-wide index of the ADC converting each signal, and the layer's ADC count."""
    C, mux = chip.tile.cols, chip.adc_mux
    P = spec["pair"]
    pc = 2 if chip.subtraction == "digital" and P == 2 else 1  # conversions per signal
    per_tile = math.ceil((C // P) * pc / mux)
    ct = math.ceil(spec["outputs"] * spec["slices"] * P / C)
    nsig = spec["outputs"] * spec["slices"] * pc
    q = torch.arange(nsig)
    if P == 2 and pc == 1:  # an analog pair: signal q on columns 2q, 2q + 1, one conversion unit
        col, unit = 2 * q, (2 * q % C) // 2
    else:  # a column per conversion (one device, or a pair's columns converted one by one)
        col, unit = q, q % C
    within = (col // C) * per_tile + unit // mux  # over the layer's column tiles
    tiles = torch.arange(row_tiles)[:, None] * (ct * per_tile)
    return tiles + within[None, :], row_tiles * ct * per_tile


def draw(
    chip: Chip, spec: dict, row_tiles: int, lo: int, errors: ConverterErrors, n: int, generator: torch.Generator | None
) -> LayerAdcs:
    """``n`` chips' ADCs of one layer with ``errors`` (signed codes unless ``lo`` is 0)."""
    index, count = adc_index(chip, spec, row_tiles)
    return LayerAdcs(draw_adcs(n, count, chip.adc_bits, lo < 0, errors, generator), index)


def draw_chips(
    chip: Chip,
    layers: list[dict],
    tiles: list[list],
    n: int,
    errors: ConverterErrors | None,
    generator: torch.Generator | None,
) -> list[LayerAdcs] | None:
    """Every layer's ADCs for ``n`` chips with ``errors`` (the cited ones scaled: ConverterErrors.load().scaled(s);
    codes signed unless the layer's ADC range starts at 0); None where ``errors`` is None or has no ADC error."""
    if errors is None or errors.adc_ideal:
        return None
    return [
        draw(chip, spec, len(t), adc_code_range(spec, chip.adc_bits)[0], errors, n, generator)
        for spec, t in zip(layers, tiles, strict=True)
    ]


def quantize(cur: torch.Tensor, adcs: LayerAdcs, tile: int, generator: torch.Generator | None) -> torch.Tensor:
    """A row tile's signals in LSB units, (I, B, N, S, conversions, *spatial) -> their ADC codes, each signal by its
    own ADC, with its thermal noise per conversion."""
    shape = cur.shape
    x = cur.reshape(shape[0], shape[1], -1, *shape[5:])  # the signals on axis 2, where they are: no copy
    return convert(x, adcs.bank, adcs.index[tile], generator, noise_lsb=adcs.bank.noise_lsb, axis=2).reshape(shape)

"""The row DAC's error (:func:`draw_dacs`, :func:`dac_levels`) and the converters' INL and DNL for reporting
(:func:`inl_lsb`, :func:`dnl_lsb`): the DAC half of :mod:`nvmxbar.core.converter_error` (its module docstring
states both models)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .converter_error import (
    AdcBank,
    ConverterErrors,
    _check_bits,
    _check_chips,
    _check_count,
    _check_index,
    _digits,
    _normals,
    ideal_thresholds,
)


@dataclass(frozen=True, eq=False)
class DacBank:
    """Drawn row DACs: ``levels`` (n_chips, n_rows, 2^bits) float64, the output (in ideal code units) for each code
    magnitude 0 .. 2^bits - 1; ``elements`` (n_chips, n_rows, bits): element k's value (ideal 2^k)."""

    levels: torch.Tensor
    bits: int
    elements: torch.Tensor

    @property
    def n_chips(self) -> int:
        return self.levels.shape[0]

    @property
    def n_rows(self) -> int:
        return self.levels.shape[1]


def build_dacs(elements: torch.Tensor, bits: int) -> DacBank:
    """A :class:`DacBank` from given element values (n_chips, n_rows, bits), in unit elements."""
    _check_bits(bits)
    elements = torch.as_tensor(elements, dtype=torch.float64)
    if elements.dim() != 3 or elements.shape[-1] != bits:
        raise ValueError(f"elements: shape (n_chips, n_rows, {bits}), got {tuple(elements.shape)}")
    return DacBank((elements @ _digits(bits, elements.device).T).contiguous(), bits, elements)


def draw_dacs(
    n_chips: int, n_rows: int, bits: int, errors: ConverterErrors, generator: torch.Generator | None
) -> DacBank:
    """``n_chips`` x ``n_rows`` binary-weighted unit-element row DACs of ``bits`` bits: element k = 2^k +
    dac_sigma sqrt(2^k) N(0, 1); one ``randn`` (n_chips, n_rows, bits) from ``generator``. dac_sigma 0: the
    identity."""
    _check_count("n_chips", n_chips)
    _check_count("n_rows", n_rows)
    _check_bits(bits)
    if not isinstance(errors, ConverterErrors):
        raise ValueError("errors: a ConverterErrors (ConverterErrors.load().scaled(s))")
    z = _normals((n_chips, n_rows, bits), generator)
    nominal = torch.tensor([2.0**k for k in range(bits)], dtype=torch.float64, device=z.device)
    return build_dacs(nominal + errors.dac_sigma * nominal.sqrt() * z, bits)


def dac_levels(codes: torch.Tensor, bank: DacBank, row_index: torch.Tensor) -> torch.Tensor:
    """What each row driver outputs for integer ``codes`` (chips or 1, ..., n_rows) (float, |code| <= 2^bits - 1;
    negative: sign-magnitude), in ideal code units: (n_chips, ..., n_rows) in codes' dtype; row r is driven by DAC
    ``row_index[r]`` of each chip."""
    if not isinstance(codes, torch.Tensor) or not codes.is_floating_point():
        raise ValueError("codes: a floating-point tensor of integer DAC codes")
    _check_chips(codes, bank.n_chips, "codes")
    idx = _check_index("row_index", row_index, codes.shape[-1], bank.n_rows).to(codes.device)
    top = 2**bank.bits - 1
    mag = codes.abs()
    if codes.numel() and (float(mag.max()) > top or bool((mag != mag.round()).any())):
        raise ValueError(f"codes: integers with |code| <= {top} ({bank.bits}-bit DAC)")
    I, L = bank.n_chips, 2**bank.bits
    chip = torch.arange(I, device=codes.device).reshape(I, *[1] * (codes.dim() - 1))
    flat = (chip * bank.n_rows + idx) * L + mag.long()  # (I, ..., n_rows)
    out = bank.levels.to(codes.device, codes.dtype).reshape(-1)[flat]
    return out * codes.sign()


# ------------------------------------------------------------------------------------------ INL / DNL
def _points(bank: AdcBank | DacBank) -> tuple[torch.Tensor, torch.Tensor]:
    """The transfer's points and their ideal positions: an ADC's thresholds, a DAC's levels (codes 0 .. 2^b - 1)."""
    if isinstance(bank, AdcBank):
        return bank.thresholds, ideal_thresholds(bank.bits, bank.signed).to(bank.thresholds.device)
    if isinstance(bank, DacBank):
        return bank.levels, torch.arange(2**bank.bits, dtype=torch.float64, device=bank.levels.device)
    raise ValueError("bank: an AdcBank or a DacBank")


def _slope(p: torch.Tensor, ideal: torch.Tensor) -> torch.Tensor:
    return (p[..., -1:] - p[..., :1]) / (ideal[-1] - ideal[0])


def inl_lsb(bank: AdcBank | DacBank, reference: str = "endpoint") -> torch.Tensor:
    """Per instance (n_chips, n_instances) the largest |INL| in LSB. ``endpoint``: against the straight line through
    the first and last points (an ADC's first and last transitions, a DAC's codes 0 and 2^b - 1), in that line's
    LSB: offset and gain error excluded (0 where there are fewer than 2 points). ``absolute``: against the ideal
    thresholds or codes, in ideal LSB, offset and gain error included."""
    p, ideal = _points(bank)
    if reference == "absolute":
        dev = p - ideal
    elif reference == "endpoint":
        if p.shape[-1] < 2:
            return p.new_zeros(p.shape[:2])
        slope = _slope(p, ideal)
        dev = (p - p[..., :1]) / slope - (ideal - ideal[0])
    else:
        raise ValueError(f"INL reference {reference!r}: 'endpoint' or 'absolute'")
    return dev.abs().amax(-1) if p.shape[-1] else p.new_zeros(p.shape[:2])


def dnl_lsb(bank: AdcBank | DacBank) -> torch.Tensor:
    """Per instance (n_chips, n_instances) the largest |DNL| in the endpoint line's LSB: each code width (ADC) or
    step (DAC) over the average one, minus 1 (a missing ADC code: -1). 0 where there are fewer than 2 points."""
    p, ideal = _points(bank)
    if p.shape[-1] < 2:
        return p.new_zeros(p.shape[:2])
    return (p.diff(dim=-1) / _slope(p, ideal) - 1).abs().amax(-1)

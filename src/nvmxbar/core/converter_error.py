"""Converter error: an explicit model of the ADC's and the row DAC's errors, drawn once per chip (static) and, for
the ADC's thermal noise, once per conversion. Constants: package data nvmxbar/resources/converter_errors.yaml
(every number with its source); reading notes: docs/sources/converters.md. The parameters:
:mod:`nvmxbar.core.converter_params`; the DAC and the INL/DNL report: :mod:`nvmxbar.core.dac_error`.

**ADC** (:func:`draw_adcs`, :func:`convert`). Each instance is a single-ended, non-split SAR of ``bits`` bits, as
CrossSim's ``SarADC`` (Spear et al., IEEE JXCDC 2023) with its non-split CDAC, but every ADC instance of every chip
drawn on its own (CrossSim draws one set of capacitor errors per core, shared by its ADC groups; only the comparator
offsets differ: docs/sources/converters.md). Its CDAC holds capacitors C_k = 2^k (1 + e_k), k = 0 .. b-1, and a
terminating unit capacitor C_t = 1 + e_t, with e_k ~ N(0, sigma_u^2 / 2^k), e_t ~ N(0, sigma_u^2) (Pelgrom's area
law: an absolute sigma of sigma_u sqrt(2^k) unit capacitors). In LSB units (the simulator's ``cur / step``) the
level the comparator sees for the SAR's trial code p is

    level(p) = g (V(p) - m - 1/2) + o,        V(p) = 2^b sum_k p_k C_k / C_tot,  C_tot = sum_k C_k + C_t,

with m = 0 (unsigned) or 2^(b-1) (signed: offset binary, mid-scale is zero input), the ADC's gain
g = (1 + gain_mean)(1 + N(0, gain_sigma^2)) and its comparator offset o ~ N(0, (comparator_sigma 2^b)^2). The
comparator decides 1 when the input is strictly above the level (CrossSim's rule). With every error 0,
level(p) = p - m - 1/2: the simulator's thresholds at half-integers.

A SAR's binary search has a monotone transfer whatever its levels: two inputs first decided differently at some bit
got the same prefix and compared against the same level, so the larger one got the 1. Its code transitions
T(d) = inf {x : code(x) >= d} are therefore non-decreasing, even where the CDAC's levels are not (a too-large lower
capacitor); a code whose transition equals the next one is missing. T(d) follows from the levels bit by bit
(:func:`_transitions`): from the LSB up, with the trial code of bit j the prefix of d above j with bit j set,
T <- max(level, T) where d has bit j set, min(level, T) where not. The stored thresholds are T(1 .. 2^b - 1)
(unsigned: codes 0 .. 2^b - 1) or T(2 .. 2^b - 1) (signed: codes -(2^(b-1) - 1) .. 2^(b-1) - 1, the SAR's lowest
code clipped into the next, as the simulator's clamp). :func:`convert` counts the thresholds below each input,
code = lo + #{T < x}: by default from the input's one-code cell on the instance's endpoint line, whose base count
and few in-cell thresholds are tabled once per bank (exact: the thresholds are monotone), or by
``torch.searchsorted`` (the same codes, several times slower). **Ties**: an
input exactly on a threshold takes the even one of the two codes, as ``torch.round`` (half to even), so that with
every error 0 ``convert`` is exactly ``round(x).clamp(lo, hi)``, ties included (a physical comparator's decision at
exact equality is undefined; the rule matters only for the ideal path, where integer sums over power-of-two steps do
land on half-integers).

Thermal noise: the kT/C noise of the CDAC's total capacitance, sampled once per conversion and referred to the
input, sigma = sqrt(k T / (2^b C_u)) / V_FS of the span (:meth:`ConverterErrors.thermal_lsb`: in LSB). It is
added to the input before the search when ``convert`` is given ``noise_lsb`` (e.g. ``bank.noise_lsb``).

**DAC** (:func:`draw_dacs`, :func:`dac_levels`): each row driver is a binary-weighted unit-element DAC of ``bits``
bits: element k is 2^k unit elements, its value 2^k + sigma_d sqrt(2^k) N(0, 1) (in ideal code units), and code c
outputs the sum of its set elements' values (no normalisation to the full scale: the element errors give gain
error and INL together). Negative codes are sign-magnitude (the same elements, polarity switched), as CrossSim's
``SignMagnitudeDAC``. With sigma_d 0 the output is the code.

**Reporting** (:func:`inl_lsb`, :func:`dnl_lsb`): per instance the largest |INL| or |DNL| in LSB, by default
against the endpoint line (through the first and the last transition or level, which leaves out offset and gain
error; ``reference="absolute"`` measures against the ideal thresholds or codes instead, offset and gain included).

Draws: one ``torch.randn`` per bank, in float64, from the caller's generator: reproducible from its seed,
independent per chip and per instance. Memory of an ADC bank: n_chips x n_adcs x 2^bits float64 thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .converter_params import ConverterErrors, check_bits

# ------------------------------------------------------------------------------------------ checks
_check_bits = check_bits


def _check_count(name: str, n: Any) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} {n!r}: an integer >= 1")
    return n


def _check_index(name: str, index: Any, n_signals: int, n_instances: int) -> torch.Tensor:
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name}: a 1-D integer tensor (one instance per signal)")
    if index.numel() != n_signals:
        raise ValueError(f"{name} has {index.numel()} entries for {n_signals} signals (the last axis)")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_instances):
        raise ValueError(
            f"{name} out of range: {int(index.min())} .. {int(index.max())} for {n_instances} instances (0 .. "
            f"{n_instances - 1})"
        )
    return index.long()


def _check_chips(x: torch.Tensor, n_chips: int, what: str) -> None:
    if x.dim() < 2:
        raise ValueError(f"{what}: shape (chips, ..., signals), got {tuple(x.shape)}")
    if x.shape[0] not in (1, n_chips):
        raise ValueError(f"{what}: {x.shape[0]} chips on the first axis for a bank of {n_chips} (1 or {n_chips})")


def _normals(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, dtype=torch.float64, device=device)


# ------------------------------------------------------------------------------------------ ADC
def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """The simulator's ADC codes (nvmxbar.core.converters.adc_code_range): -(2^(b-1) - 1) .. 2^(b-1) - 1 signed,
    0 .. 2^b - 1 unsigned."""
    _check_bits(bits)
    return (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def ideal_thresholds(bits: int, signed: bool) -> torch.Tensor:
    """The ideal code transitions, lo + 1/2 .. hi - 1/2 (float64): round + clamp's."""
    lo, hi = code_range(bits, signed)
    return torch.arange(lo, hi, dtype=torch.float64) + 0.5


@dataclass(frozen=True, eq=False)
class AdcBank:
    """Drawn SAR ADCs: ``thresholds`` (n_chips, n_adcs, n_thresholds) float64, non-decreasing, in LSB: the input
    above which each code starts (:func:`convert`); the components they came from: ``caps`` (n_chips, n_adcs,
    bits + 1) the CDAC's capacitors C_0 .. C_{b-1} (weights 2^k) and the terminating one, in unit capacitors;
    ``offset_lsb`` and ``gain`` (n_chips, n_adcs); ``noise_lsb``: the thermal noise sigma per conversion at these
    bits (what :func:`convert` adds when given it)."""

    thresholds: torch.Tensor
    bits: int
    signed: bool
    caps: torch.Tensor
    offset_lsb: torch.Tensor
    gain: torch.Tensor
    noise_lsb: float = 0.0
    cells: tuple = ()  # :func:`_cells`' tables for :func:`convert`, built once with the bank

    @property
    def lo(self) -> int:
        return code_range(self.bits, self.signed)[0]

    @property
    def hi(self) -> int:
        return code_range(self.bits, self.signed)[1]

    @property
    def n_chips(self) -> int:
        return self.thresholds.shape[0]

    @property
    def n_adcs(self) -> int:
        return self.thresholds.shape[1]


def _digits(bits: int, device: torch.device) -> torch.Tensor:
    """(2^b, b) float64: bit k of every code."""
    codes = torch.arange(2**bits, device=device)
    return ((codes[:, None] >> torch.arange(bits, device=device)) & 1).double()


def _cdac_levels(caps: torch.Tensor, offset: torch.Tensor, gain: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
    """level(p) for every trial code p = 0 .. 2^b - 1: g (V(p) - m - 1/2) + o, (..., 2^b)."""
    total = caps.sum(-1, keepdim=True)
    v = (caps[..., :bits] @ _digits(bits, caps.device).T) * (2**bits / total)
    m = 2 ** (bits - 1) if signed else 0
    return gain[..., None] * (v - (m + 0.5)) + offset[..., None]


def cdac_levels(bank: AdcBank) -> torch.Tensor:
    """The comparator's level for each SAR trial code p = 0 .. 2^b - 1, (n_chips, n_adcs, 2^b), LSB (p = 0 is
    never a trial). Not monotone where a capacitor is far off; the transitions (``bank.thresholds``) always are."""
    return _cdac_levels(bank.caps, bank.offset_lsb, bank.gain, bank.bits, bank.signed)


def _transitions(levels: torch.Tensor, bits: int) -> torch.Tensor:
    """T(d) = inf {x : SAR code(x) >= d} for d = 0 .. 2^b - 1 (T(0) = -inf), from the trial levels (..., 2^b), the
    comparator deciding 1 when the input is strictly above the level. From the LSB up: bit j's trial code is d's
    prefix above j with bit j set; T <- max(level, T) where d has bit j, min(level, T) where not."""
    d = torch.arange(2**bits, device=levels.device)
    t = torch.full_like(levels, -math.inf)
    for j in range(bits):
        trial = ((d >> (j + 1)) << (j + 1)) | (1 << j)
        lv = levels[..., trial]
        t = torch.where(((d >> j) & 1).bool(), torch.maximum(lv, t), torch.minimum(lv, t))
    return t


def build_adcs(
    caps: torch.Tensor,
    offset_lsb: torch.Tensor,
    gain: torch.Tensor,
    bits: int,
    signed: bool,
    noise_lsb: float = 0.0,
) -> AdcBank:
    """An :class:`AdcBank` from given components: ``caps`` (n_chips, n_adcs, bits + 1) in unit capacitors (C_0 ..
    C_{b-1}, then the terminating one), ``offset_lsb`` and ``gain`` (n_chips, n_adcs). :func:`draw_adcs` draws
    them; a test may choose them."""
    _check_bits(bits)
    caps, offset_lsb, gain = (torch.as_tensor(t, dtype=torch.float64) for t in (caps, offset_lsb, gain))
    if caps.dim() != 3 or caps.shape[-1] != bits + 1:
        raise ValueError(f"caps: shape (n_chips, n_adcs, {bits + 1}) for {bits} bits, got {tuple(caps.shape)}")
    if offset_lsb.shape != caps.shape[:2] or gain.shape != caps.shape[:2]:
        raise ValueError(f"offset_lsb and gain: shape {tuple(caps.shape[:2])} (n_chips, n_adcs)")
    if not math.isfinite(noise_lsb) or noise_lsb < 0:
        raise ValueError(f"noise_lsb {noise_lsb!r}: a sigma cannot be negative")
    t = _transitions(_cdac_levels(caps, offset_lsb, gain, bits, signed), bits)
    thresholds = (t[..., 2:] if signed else t[..., 1:]).contiguous()
    cells = _cells(thresholds) if thresholds.shape[-1] else ()
    return AdcBank(thresholds, bits, bool(signed), caps, offset_lsb, gain, float(noise_lsb), cells)


def _cells(thr: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per instance, its endpoint line cut into M + 2 cells of one code: cell c spans [b_{c-1}, b_c), b_k = T_0 +
    s (k - 1/2), k = 0 .. M (b_{-1} = -inf, b_{M+1} = inf), s = (T_{M-1} - T_0) / (M - 1). A cell's tables: the
    count of thresholds below it, base = #{T < b_{c-1} - eps}, and the thresholds inside it, [b_{c-1} - eps, b_c +
    eps), padded with NaN to the bank's largest number D (one almost everywhere; more where DNL is large).
    eps = 10^-3 s covers the rounding of the cell index x r + c in float32. Returns r = 1/s and c = 3/2 - T_0 r
    (cell = floor(x r + c), clamped to 0 .. M + 1), base (I, A, M + 2) and the D in-cell tables (D, I, A, M + 2)."""
    I, A, M = thr.shape
    t0 = thr[..., :1]
    s = (thr[..., -1:] - t0) / (M - 1) if M >= 2 else torch.ones_like(t0)
    s = torch.where(s > 0, s, torch.ones_like(s))  # all thresholds equal (degenerate): the ideal step
    b = t0 + s * (torch.arange(M + 1, dtype=thr.dtype, device=thr.device) - 0.5)
    inf = torch.full_like(t0, math.inf)
    lower, upper = torch.cat([-inf, b], -1) - 1e-3 * s, torch.cat([b, inf], -1) + 1e-3 * s
    base, end = torch.searchsorted(thr, lower), torch.searchsorted(thr, upper)
    j = base[..., None] + torch.arange(max(1, int((end - base).max())), device=thr.device)  # (I, A, M + 2, D)
    inside = thr.gather(-1, j.clamp(max=M - 1).flatten(-2)).reshape(j.shape)
    inside = torch.where(j < end[..., None], inside, math.nan).movedim(-1, 0)
    r = 1 / s[..., 0]
    return r, 1.5 - t0[..., 0] * r, base, inside.contiguous()


def draw_adcs(
    n_chips: int,
    n_adcs: int,
    bits: int,
    signed: bool,
    errors: ConverterErrors,
    generator: torch.Generator | None,
) -> AdcBank:
    """``n_chips`` x ``n_adcs`` SAR ADCs of ``bits`` bits (signed or unsigned codes, as the simulator's), each with
    its own capacitor values, comparator offset and gain from ``errors``; one ``randn`` (n_chips, n_adcs, bits + 3)
    from ``generator`` (None: torch's global one). Every error 0: the ideal thresholds exactly."""
    _check_count("n_chips", n_chips)
    _check_count("n_adcs", n_adcs)
    _check_bits(bits)
    if not isinstance(errors, ConverterErrors):
        raise ValueError("errors: a ConverterErrors (ConverterErrors.load().scaled(s))")
    z = _normals((n_chips, n_adcs, bits + 3), generator)
    nominal = torch.tensor([2.0**k for k in range(bits)] + [1.0], dtype=torch.float64, device=z.device)
    caps = nominal + errors.cap_sigma * nominal.sqrt() * z[..., : bits + 1]
    offset = errors.comparator_sigma * 2**bits * z[..., bits + 1]
    gain = (1 + errors.gain_mean) * (1 + errors.gain_sigma * z[..., bits + 2])
    return build_adcs(caps, offset, gain, bits, signed, errors.thermal_lsb(bits))


def convert(
    x: torch.Tensor,
    bank: AdcBank,
    adc_index: torch.Tensor,
    generator: torch.Generator | None = None,
    noise_lsb: float = 0.0,
    method: str = "cells",
    axis: int = -1,
) -> torch.Tensor:
    """The codes of analog values ``x`` (chips or 1, ..., n_signals), in LSB (the simulator's cur / step): signal s
    is converted by instance ``adc_index[s]`` of each chip. Adds N(0, noise_lsb^2) per conversion first (from
    ``generator``, made on its device, in float32: the noise needs no more), then code = lo + #{thresholds strictly
    below x}, an input exactly on a threshold to the even code (as torch.round); a NaN input gets an arbitrary code
    (no error). Returns the codes (n_chips, ..., n_signals) in x's dtype. ``axis``: the signals' axis of ``x``
    (the last by default; another one spares the caller a copy).

    ``method`` finds the count, both exactly: ``cells`` (default) finds the input's one-code cell on the instance's
    endpoint line (offset and gain removed) and adds the cell's base count to its in-cell thresholds below x
    (:func:`_cells`: D + 1 gathers, D the most thresholds in a cell, 1 to 2 at the cited errors); ``search`` is
    ``torch.searchsorted`` on each instance's thresholds (the signals moved to the second axis: a copy), O(log
    2^bits) per input but several times slower on the CPU."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("x: a floating-point tensor of analog values in LSB")
    _check_chips(x, bank.n_chips, "x")
    if not isinstance(axis, int) or not 1 <= axis % x.dim() < x.dim():
        raise ValueError(f"axis {axis!r}: the signals' axis of x, after the chips' (1 .. {x.dim() - 1} or negative)")
    axis %= x.dim()
    idx = _check_index("adc_index", adc_index, x.shape[axis], bank.n_adcs).to(x.device)
    if not isinstance(noise_lsb, (int, float)) or not math.isfinite(noise_lsb) or noise_lsb < 0:
        raise ValueError(f"noise_lsb {noise_lsb!r}: a sigma cannot be negative")
    if method not in ("cells", "search"):
        raise ValueError(f"convert method {method!r}: 'cells' or 'search'")
    if noise_lsb > 0:
        device = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32, device=device)
        x = x.add(noise.to(x.device), alpha=noise_lsb)
    I, M = bank.n_chips, bank.thresholds.shape[-1]
    if M == 0:  # signed 1 bit: the single code 0
        return torch.full((I, *x.shape[1:]), float(bank.lo), dtype=x.dtype, device=x.device)
    if method == "search":
        count, tie = (t.movedim(-1, axis) for t in _count_search(x.movedim(axis, -1), bank, idx))
    else:
        count, tie = _count_cells(x, bank, idx, axis)
    code = count.add_(bank.lo)
    odd = (code & 1).bool()
    out = code.to(x.dtype)
    return out.add_(tie & odd)  # on the next threshold: ties to even, as torch.round


def _count_search(x: torch.Tensor, bank: AdcBank, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """#{T < x} by torch.searchsorted, and whether x is on the threshold just above the count (a tie)."""
    I, n, rest, M = bank.n_chips, x.shape[-1], x.shape[1:-1], bank.thresholds.shape[-1]
    thr = bank.thresholds.to(x.device, x.dtype)[:, idx]  # (I, n, M)
    xs = x.movedim(-1, 1).expand(I, n, *rest).contiguous().reshape(I, n, -1)  # (I, n, R)
    count = torch.searchsorted(thr, xs)
    after = thr.gather(2, count.clamp(max=M - 1))  # clamped: below x, never a tie
    back = (I, n, *rest)
    return count.reshape(back).movedim(1, -1), (after == xs).reshape(back).movedim(1, -1)


def _count_cells(x: torch.Tensor, bank: AdcBank, idx: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """#{T < x} from each input's cell on its instance's endpoint line (:func:`_cells`): the cell's base count plus
    its in-cell thresholds below x; and whether x is on one of them (a tie). D + 1 flat gathers, no loop."""
    r, c, base, inside = bank.cells
    I, A, cells = base.shape
    itype = torch.int32 if base.numel() < 2**31 else torch.int64
    shape = [I] + [1] * (x.dim() - 1)  # the instances' constants broadcast over x's other axes
    shape[axis] = x.shape[axis]
    first = ((torch.arange(I, device=x.device)[:, None] * A + idx) * cells).reshape(shape).to(itype)
    rr, cc = (t.to(x.device, x.dtype)[:, idx].reshape(shape) for t in (r, c))
    cell = torch.addcmul(cc, x, rr).nan_to_num_(nan=0.0).floor_().clamp_(0, cells - 1).to(itype)
    q = (cell + first).reshape(-1)  # (a NaN input: a valid cell, an arbitrary code)
    xf = x.expand(cell.shape).reshape(-1)
    count = base.to(x.device, itype).reshape(-1).index_select(0, q)
    tie = torch.zeros_like(xf, dtype=torch.bool)
    for table in inside.to(x.device, x.dtype).reshape(inside.shape[0], -1):  # NaN padding: never below, never equal
        t = table.index_select(0, q)
        count += t < xf
        tie |= t == xf
    return count.reshape(cell.shape), tie.reshape(cell.shape)


# ------------------------------------------------------------------------------------------ DAC

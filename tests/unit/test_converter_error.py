"""The converter-error model (nvmxbar.core.converter_error): ideal converters equal round + clamp exactly, a
hand-computed 3-bit SAR, the SAR's transitions against a literal bit-by-bit binary search, the statistics of the
drawn errors against their sigmas (within sampling error), reproducible and independent draws, scaling, the DAC,
the INL/DNL helpers, bad input, the packaged constants and the conversion's speed."""

import math
import time
from importlib import resources

import pytest
import torch

from nvmxbar.core.converter_error import build_adcs, cdac_levels, code_range, convert, draw_adcs, ideal_thresholds
from nvmxbar.core.converter_params import ConverterErrors
from nvmxbar.core.dac_error import build_dacs, dac_levels, dnl_lsb, draw_dacs, inl_lsb

IDEAL = ConverterErrors()
METHODS = ("cells", "search")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def sar_reference(x, levels, bits, signed):
    """The literal SAR: from the MSB down, set the bit, keep it when the input is strictly above the comparator's
    level for that trial code. ``x`` (n_chips, n_inputs, n_adcs), ``levels`` (n_chips, n_adcs, 2^bits). Then the
    simulator's codes: the SAR code (unsigned) or code - 2^(bits-1) clipped at -(2^(bits-1) - 1) (signed)."""
    code = torch.zeros(x.shape, dtype=torch.long)
    lv = levels[:, None].expand(-1, x.shape[1], -1, -1)  # (chips, inputs, adcs, 2^b)
    for j in reversed(range(bits)):
        trial = code | (1 << j)
        code = torch.where(x > lv.gather(3, trial[..., None])[..., 0], trial, code)
    if signed:
        code = (code - 2 ** (bits - 1)).clamp(min=-(2 ** (bits - 1) - 1))
    return code.double()


# ------------------------------------------------------------------------------------------ ideal path
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ideal_convert_is_round_and_clamp(signed, bits, dtype):
    """Every error 0: the thresholds are lo + 1/2 .. hi - 1/2 exactly, and convert equals round(x).clamp(lo, hi) on
    random inputs over and past the range, for 3 chips x 5 ADCs shared by 10 signals, with middle axes, from one
    chip's inputs or each chip's own; on half-integers (ties: to even, as torch.round) and on infinite inputs too."""
    lo, hi = code_range(bits, signed)
    bank = draw_adcs(3, 5, bits, signed, IDEAL, gen())
    assert torch.equal(bank.thresholds, ideal_thresholds(bits, signed).expand(3, 5, -1))
    g = gen(1)
    x = (torch.rand(3, 4, 6, 10, generator=g, dtype=torch.float64) * (hi - lo + 8) + lo - 4).to(dtype)
    ties = (torch.arange(lo - 3, hi + 3, dtype=dtype) + 0.5).reshape(1, -1, 1, 1).expand(3, -1, 6, 10)
    edges = torch.tensor([-math.inf, math.inf, lo - 1e6, hi + 1e6], dtype=dtype).reshape(1, -1, 1, 1)
    edges = edges.expand(3, -1, 6, 10)
    idx = torch.arange(10) % 5
    for inputs in (x, ties, x[:1], edges):
        want = torch.round(inputs).clamp(lo, hi).expand(3, -1, -1, -1)
        for method in METHODS:
            got = convert(inputs, bank, idx, method=method)
            assert got.dtype == dtype and got.shape == (3, *inputs.shape[1:])
            assert torch.equal(got, want), method


def test_ideal_dac_is_identity():
    """dac_sigma 0: each row outputs its code, signed codes included."""
    bank = draw_dacs(2, 6, 5, IDEAL, gen())
    codes = torch.arange(-31, 32, dtype=torch.float32).reshape(1, -1, 1).expand(2, -1, 4).contiguous()
    assert torch.equal(dac_levels(codes, bank, torch.tensor([0, 5, 2, 2])), codes)
    assert torch.equal(inl_lsb(bank), torch.zeros(2, 6, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ hand-computed SAR
def test_hand_computed_3bit_sar():
    """A 3-bit SAR with C_0 = 1.0, C_1 = 2.7, C_2 = 3.5 and the terminating C_t = 0.8 (C_tot = 8.0: no gain error
    from the capacitors), comparator offset +0.25 LSB, gain 1. Unsigned, level(p) = V(p) - 1/2 + 0.25 with
    V(p) = 8 sum_k p_k C_k / 8: p = 1..7 -> V = 1.0, 2.7, 3.7, 3.5, 4.5, 6.2, 7.2; levels 0.75, 2.45, 3.45, 3.25,
    4.25, 5.95, 6.95 (non-monotone: level(3) > level(4), C_1 + C_0 > C_2).

    The binary search: MSB against level(4) = 3.25. Above: against level(6) = 5.95, then level(7) = 6.95 (codes 7,
    6) or level(5) = 4.25 (codes 5, 4). At or below 3.25: against level(2) = 2.45; above it, against level(3) =
    3.45, which an input <= 3.25 never exceeds: code 2, and code 3 is missing; at or below 2.45, against level(1)
    = 0.75 (codes 1, 0). Transitions T(1..7) = 0.75, 2.45, 3.25, 3.25, 4.25, 5.95, 6.95.

    Signed (offset binary, m = 4): the levels shift by -4, and T(1) is dropped (the SAR's lowest code clipped into
    the next): -1.55, -0.75, -0.75, 0.25, 1.95, 2.95 for the codes -3 .. 3."""
    caps = torch.tensor([[[1.0, 2.7, 3.5, 0.8]]], dtype=torch.float64)
    offset, gain = torch.tensor([[0.25]]), torch.tensor([[1.0]])
    unsigned = build_adcs(caps, offset, gain, 3, False)
    hand_levels = torch.tensor([0.75, 2.45, 3.45, 3.25, 4.25, 5.95, 6.95], dtype=torch.float64)
    assert torch.allclose(cdac_levels(unsigned)[0, 0, 1:], hand_levels, rtol=0, atol=1e-12)
    hand = torch.tensor([0.75, 2.45, 3.25, 3.25, 4.25, 5.95, 6.95], dtype=torch.float64)
    assert torch.allclose(unsigned.thresholds[0, 0], hand, rtol=0, atol=1e-12)
    x = torch.tensor([[0.7, 0.8, 2.4, 2.5, 3.0, 3.3, 4.3, 6.0, 7.0]], dtype=torch.float64)[..., None]
    want = torch.tensor([0, 1, 1, 2, 2, 4, 5, 6, 7], dtype=torch.float64)
    for method in METHODS:
        assert torch.equal(convert(x, unsigned, torch.tensor([0]), method=method)[0, :, 0], want)
    signed = build_adcs(caps, offset, gain, 3, True)
    hand_signed = torch.tensor([-1.55, -0.75, -0.75, 0.25, 1.95, 2.95], dtype=torch.float64)
    assert torch.allclose(signed.thresholds[0, 0], hand_signed, rtol=0, atol=1e-12)
    assert torch.equal(convert(x - 4, signed, torch.tensor([0]))[0, :, 0], (want - 4).clamp(min=-3))
    # the INL/DNL helpers on the same SAR: endpoint line through T(1) and T(7), LSB (6.95 - 0.75) / 6
    slope = (6.95 - 0.75) / 6
    inl = ((hand - 0.75) / slope - torch.arange(7, dtype=torch.float64)).abs().max()
    assert inl_lsb(unsigned)[0, 0].item() == pytest.approx(inl.item(), abs=1e-12)
    assert inl_lsb(unsigned, "absolute")[0, 0].item() == pytest.approx(0.95, abs=1e-12)  # T(2) 2.45 against 1.5
    assert dnl_lsb(unsigned)[0, 0].item() == pytest.approx(1.0, abs=1e-12)  # code 3 missing: DNL -1


# ------------------------------------------------------------------------------------------ SAR structure
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", [3, 6])
def test_transitions_match_the_literal_binary_search(signed, bits):
    """Large errors (unit-capacitor sigma 20 %, offsets and gains): the CDAC levels are non-monotone in places, and
    convert (both methods) still equals a literal bit-by-bit SAR on the drawn levels, for random inputs."""
    errors = ConverterErrors(cap_sigma=0.2, comparator_sigma=0.02, gain_mean=-0.01, gain_sigma=0.02)
    bank = draw_adcs(4, 6, bits, signed, errors, gen(3))
    levels = cdac_levels(bank)
    assert (levels[..., 1:].diff(dim=-1) < 0).any()  # the test exercises non-monotone CDACs
    lo, hi = code_range(bits, signed)
    x = torch.rand(4, 300, 6, generator=gen(4), dtype=torch.float64) * (hi - lo + 10) + lo - 5
    want = sar_reference(x, levels, bits, signed)
    for method in METHODS:
        assert torch.equal(convert(x, bank, torch.arange(6), method=method), want), method


def test_thresholds_are_monotone_for_every_instance():
    """A SAR's transfer is monotone whatever its capacitors (two inputs first decided differently got the same
    prefix and the same level: the larger one got the 1): over 2000 instances at 30 % unit mismatch the CDAC levels
    go down somewhere, missing codes appear (DNL -1), and every instance's thresholds are non-decreasing."""
    errors = ConverterErrors(cap_sigma=0.3, comparator_sigma=0.05, gain_sigma=0.05)
    for signed in (False, True):
        bank = draw_adcs(20, 100, 6, signed, errors, gen(5))
        assert (cdac_levels(bank)[..., 1:].diff(dim=-1) < 0).any()
        assert (bank.thresholds.diff(dim=-1) >= 0).all()
        assert (bank.thresholds.diff(dim=-1) == 0).any()  # missing codes
        assert (dnl_lsb(bank) >= 1).any()


# ------------------------------------------------------------------------------------------ statistics
def _rel_tol(n, k=5):
    """k standard errors of a standard deviation estimated from n normal samples, relative."""
    return k / math.sqrt(2 * (n - 1))


@pytest.mark.parametrize("bits", [4, 8])
def test_capacitor_mismatch_statistics(bits):
    """Only the unit capacitor's sigma (1 %): to first order level(d) - (d - 1/2) = sum of the selected capacitors'
    errors - d / 2^b x all errors (the normalisation by C_tot), variance sigma_u^2 d (2^b - d) / 2^b (each capacitor
    of w units contributes variance sigma_u^2 w). The MSB transition (the first comparison) is level(2^(b-1)): its
    error std is sigma_u 2^((b-2)/2), e.g. 0.08 LSB at 8 bits. 20000 instances: within 5 standard errors."""
    s, n = 0.01, 20000
    bank = draw_adcs(40, 500, bits, False, ConverterErrors(cap_sigma=s), gen(6))
    N = 2**bits
    err = cdac_levels(bank) - (torch.arange(N, dtype=torch.float64) - 0.5)
    for d in (1, N // 4 + 1, N // 2, N - 1):
        want = s * math.sqrt(d * (N - d) / N)
        got = err[..., d].std().item()
        assert abs(got / want - 1) < _rel_tol(n), (d, got, want)
    msb = bank.thresholds[..., N // 2 - 1] - (N // 2 - 0.5)  # T(2^(b-1)), at index 2^(b-1) - 1 (unsigned)
    assert abs(msb.std().item() / (s * 2 ** ((bits - 2) / 2)) - 1) < _rel_tol(n)
    assert abs(msb.mean().item()) < 5 * s * 2 ** ((bits - 2) / 2) / math.sqrt(n)


@pytest.mark.parametrize("signed", [False, True])
def test_comparator_offset_shifts_every_threshold(signed):
    """Only the comparator: each instance's thresholds all move by the same amount, its offset, whose std over
    20000 instances is comparator_sigma x 2^bits LSB (relative to the full span)."""
    bits, sc = 6, 0.004
    bank = draw_adcs(40, 500, bits, signed, ConverterErrors(comparator_sigma=sc), gen(7))
    shift = bank.thresholds - ideal_thresholds(bits, signed)
    assert torch.allclose(shift, shift[..., :1].expand_as(shift), rtol=0, atol=1e-12)
    assert torch.allclose(shift[..., 0], bank.offset_lsb, rtol=0, atol=1e-12)
    assert abs(bank.offset_lsb.std().item() / (sc * 2**bits) - 1) < _rel_tol(20000)


@pytest.mark.parametrize("signed", [False, True])
def test_gain_error_scales_every_threshold(signed):
    """Only gain errors: each instance's thresholds are the ideal ones times its gain g = (1 + gain_mean)(1 + N(0,
    gain_sigma^2)); over 20000 instances g's mean is 1 + gain_mean and its std (1 + gain_mean) gain_sigma."""
    bits, gm, gs = 6, -0.001, 0.004
    bank = draw_adcs(40, 500, bits, signed, ConverterErrors(gain_mean=gm, gain_sigma=gs), gen(8))
    ratio = bank.thresholds / ideal_thresholds(bits, signed)
    assert torch.allclose(ratio, bank.gain[..., None].expand_as(ratio), rtol=1e-12, atol=0)
    n = bank.gain.numel()
    assert abs(bank.gain.mean().item() - (1 + gm)) < 5 * gs / math.sqrt(n)
    assert abs(bank.gain.std().item() / ((1 + gm) * gs) - 1) < _rel_tol(n)


@pytest.mark.parametrize("sigma", [0.7, 3.0])
def test_thermal_noise_in_the_codes(sigma):
    """A constant input 100.3 LSB on ideal ADCs, 200000 conversions with noise_lsb sigma: the codes are
    round(100.3 + N(0, sigma^2)), whose exact mean and std follow from P(k) = Phi((k + 1/2 - x) / sigma) -
    Phi((k - 1/2 - x) / sigma); the sample matches them within 5 standard errors (no clipping: 0 .. 255)."""
    x0, n = 100.3, 200000
    bank = draw_adcs(2, 4, 8, False, IDEAL, gen())
    x = torch.full((2, n // 8, 4), x0, dtype=torch.float64)
    codes = convert(x, bank, torch.arange(4), generator=gen(9), noise_lsb=sigma)
    ks = range(int(x0 - 12 * sigma) - 1, int(x0 + 12 * sigma) + 2)
    p = {k: phi((k + 0.5 - x0) / sigma) - phi((k - 0.5 - x0) / sigma) for k in ks}
    mean = sum(k * q for k, q in p.items())
    std = math.sqrt(sum((k - mean) ** 2 * q for k, q in p.items()))
    assert abs(codes.mean().item() - mean) < 5 * std / math.sqrt(n)
    assert abs(codes.std().item() / std - 1) < _rel_tol(n)
    again = convert(x, bank, torch.arange(4), generator=gen(9), noise_lsb=sigma)
    assert torch.equal(codes, again)  # reproducible from the generator
    assert not torch.equal(codes, convert(x, bank, torch.arange(4), generator=gen(10), noise_lsb=sigma))


def test_dac_element_mismatch_statistics():
    """Binary-weighted unit elements, sigma_d 1 %: v(c) - c sums the set elements' errors, variance sigma_d^2 c
    (element k is 2^k units of variance sigma_d^2 each); negative codes mirror positive ones (sign-magnitude)."""
    s, bits = 0.01, 6
    bank = draw_dacs(40, 500, bits, ConverterErrors(dac_sigma=s), gen(11))
    for c in (1, 21, 32, 63):
        got = (bank.levels[..., c] - c).std().item()
        assert abs(got / (s * math.sqrt(c)) - 1) < _rel_tol(20000), c
    codes = torch.tensor([[-63.0, -21.0, 21.0, 63.0]]).expand(40, -1)
    out = dac_levels(codes[:, None, :], bank, torch.tensor([3, 3, 3, 3]))[:, 0]
    assert torch.equal(out[:, :2], -out[:, 2:].flip(-1))


# ------------------------------------------------------------------------------------------ draws and scaling
def test_draws_are_reproducible_and_independent():
    """The same seed gives the same bank; another seed another one. Offsets, capacitors and gains of different
    chips and of different ADCs of a chip are uncorrelated (sample correlation within 5 / sqrt(n) of 0), and no two
    instances share a draw."""
    errors = ConverterErrors.load()
    a, b = draw_adcs(50, 200, 6, True, errors, gen(12)), draw_adcs(50, 200, 6, True, errors, gen(12))
    for name in ("thresholds", "caps", "offset_lsb", "gain"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    c = draw_adcs(50, 200, 6, True, errors, gen(13))
    assert not torch.equal(a.thresholds, c.thresholds)

    def corr(u, v):
        u, v = u.flatten() - u.mean(), v.flatten() - v.mean()
        return (u @ v / (u.norm() * v.norm())).item()

    for t in (a.offset_lsb, a.gain, a.caps[..., 5], a.caps[..., 0]):
        n = t[:, 1:].numel()
        assert abs(corr(t[:-1], t[1:])) < 5 / math.sqrt(n)  # chip i vs chip i + 1
        assert abs(corr(t[:, :-1], t[:, 1:])) < 5 / math.sqrt(n)  # ADC j vs ADC j + 1
    assert a.offset_lsb.flatten().unique().numel() == 50 * 200
    d1, d2 = draw_dacs(3, 4, 5, errors, gen(14)), draw_dacs(3, 4, 5, errors, gen(14))
    assert torch.equal(d1.levels, d2.levels)
    assert d1.elements.flatten().unique().numel() == 3 * 4 * 5


def test_scaling():
    """scaled(0) is ideal (thresholds and DAC levels exact); scaled(4) has 4x every sigma and gain error, and from
    the same seed 4x the capacitor errors, offsets, gain deviations and DAC element errors."""
    e = ConverterErrors.load()
    assert e.scaled(0).ideal and not e.ideal
    bank0 = draw_adcs(2, 3, 5, False, e.scaled(0), gen(15))
    assert torch.equal(bank0.thresholds, ideal_thresholds(5, False).expand(2, 3, -1))
    assert bank0.noise_lsb == 0
    assert torch.equal(draw_dacs(2, 3, 5, e.scaled(0), gen(15)).levels, torch.arange(32.0).expand(2, 3, -1).double())
    e4 = e.scaled(4)
    for f in ("cap_sigma", "comparator_sigma", "gain_mean", "gain_sigma", "thermal_sigma", "dac_sigma"):
        assert getattr(e4, f) == pytest.approx(4 * getattr(e, f), rel=1e-15)
    assert e4.thermal_lsb(8) == pytest.approx(4 * e.thermal_lsb(8), rel=1e-15)
    b1, b4 = draw_adcs(2, 3, 5, True, e, gen(16)), draw_adcs(2, 3, 5, True, e4, gen(16))
    nominal = torch.tensor([1.0, 2, 4, 8, 16, 1], dtype=torch.float64)
    assert torch.allclose(b4.caps - nominal, 4 * (b1.caps - nominal), rtol=1e-12, atol=0)
    assert torch.allclose(b4.offset_lsb, 4 * b1.offset_lsb, rtol=1e-12, atol=0)
    z1 = (b1.gain / (1 + e.gain_mean) - 1) / e.gain_sigma
    z4 = (b4.gain / (1 + e4.gain_mean) - 1) / e4.gain_sigma
    assert torch.allclose(z1, z4, rtol=1e-9, atol=1e-12)
    assert b4.noise_lsb == pytest.approx(4 * b1.noise_lsb, rel=1e-15)
    d1, d4 = draw_dacs(2, 3, 5, e, gen(17)), draw_dacs(2, 3, 5, e4, gen(17))
    nominal = torch.tensor([1.0, 2, 4, 8, 16], dtype=torch.float64)
    assert torch.allclose(d4.elements - nominal, 4 * (d1.elements - nominal), rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------------ constants
def test_packaged_constants():
    """The packaged YAML (package data: pyproject's nvmxbar.resources *.yaml) and the numbers derived from it by
    hand: comparator 3.44 mV / 0.85 V; finite gain 60 dB -> 1 / (1 + 10^-3) - 1; kT/C of one 1 fF unit at 300 K,
    sqrt(1.380649e-23 x 300 / 1e-15) V = 2.035 mV over 0.85 V; at 8 bits x sqrt(256): 0.0383 LSB."""
    assert (resources.files("nvmxbar.resources") / "converter_errors.yaml").is_file()
    e = ConverterErrors.load()
    assert e.cap_sigma == 0.01 and e.dac_sigma == 0.01 and e.gain_sigma == pytest.approx(0.004047)
    assert e.comparator_sigma == pytest.approx(3.44e-3 / 0.85, rel=1e-12)
    assert e.gain_mean == pytest.approx(1 / 1.001 - 1, rel=1e-12)
    assert e.thermal_sigma == pytest.approx(math.sqrt(1.380649e-23 * 300 / 1e-15) / 0.85, rel=1e-12)
    assert e.thermal_lsb(8) == pytest.approx(0.03831, rel=1e-3)


def test_constants_need_sources(tmp_path):
    """A number without a source, or a missing key, is refused with its name."""
    import yaml

    doc = yaml.safe_load((resources.files("nvmxbar.resources") / "converter_errors.yaml").read_text())
    doc["adc"]["cap_unit_sigma"] = 0.02
    with pytest.raises(ValueError, match="adc.cap_unit_sigma"):
        ConverterErrors.from_dict(doc)
    doc["adc"]["cap_unit_sigma"] = {"value": 0.02, "source": " "}
    with pytest.raises(ValueError, match="adc.cap_unit_sigma"):
        ConverterErrors.from_dict(doc)
    del doc["adc"]["cap_unit_sigma"]
    with pytest.raises(ValueError, match="missing 'adc.cap_unit_sigma'"):
        ConverterErrors.from_dict(doc)
    doc["adc"]["cap_unit_sigma"] = {"value": 0.02, "source": "a test"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert ConverterErrors.load(path).cap_sigma == 0.02
    doc["adc"]["cap_unit_sigma"] = {"value": -0.02, "source": "a test"}
    with pytest.raises(ValueError, match="cap_sigma = -0.02: a sigma cannot be negative"):
        ConverterErrors.from_dict(doc)


# ------------------------------------------------------------------------------------------ bad input
def test_the_signals_may_sit_on_any_axis_after_the_chips():
    """convert(..., axis=2) on (chips, MVMs, signals, positions) equals the same signals moved to the last axis."""
    bank = draw_adcs(3, 4, 6, True, ConverterErrors.load().scaled(4.0), gen(40))
    x = torch.randn(3, 5, 8, 7, generator=gen(41), dtype=torch.float64) * 20
    idx = torch.arange(8) % 4
    for method in METHODS:
        want = convert(x.movedim(2, -1), bank, idx, method=method).movedim(-1, 2)
        assert torch.equal(convert(x, bank, idx, method=method, axis=2), want), method
    with pytest.raises(ValueError, match="axis 0"):
        convert(x, bank, idx, axis=0)


def test_bad_input_is_refused():
    """Negative sigmas and scales, bits < 1 (or > 16), adc_index out of range or of the wrong length, a chip axis
    that fits no bank, negative noise, DAC codes that are not integers within the DAC's range: ValueError naming
    the problem."""
    with pytest.raises(ValueError, match="comparator_sigma = -0.1: a sigma cannot be negative"):
        ConverterErrors(comparator_sigma=-0.1)
    with pytest.raises(ValueError, match="gain_mean"):
        ConverterErrors(gain_mean=-1.0)
    with pytest.raises(ValueError, match="scale -1"):
        ConverterErrors().scaled(-1)
    for bits in (0, -3, 17, 2.0):
        with pytest.raises(ValueError, match="bits"):
            draw_adcs(1, 1, bits, True, IDEAL, gen())
        with pytest.raises(ValueError, match="bits"):
            draw_dacs(1, 1, bits, IDEAL, gen())
    with pytest.raises(ValueError, match="n_adcs 0"):
        draw_adcs(1, 0, 4, True, IDEAL, gen())
    with pytest.raises(ValueError, match="n_chips 0"):
        draw_dacs(0, 1, 4, IDEAL, gen())
    bank = draw_adcs(2, 3, 4, True, IDEAL, gen())
    x = torch.zeros(2, 5, 4)
    with pytest.raises(ValueError, match=r"adc_index out of range: 0 \.\. 3 for 3 instances"):
        convert(x, bank, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="adc_index out of range"):
        convert(x, bank, torch.tensor([0, -1, 2, 2]))
    with pytest.raises(ValueError, match="adc_index has 3 entries for 4 signals"):
        convert(x, bank, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="3 chips on the first axis for a bank of 2"):
        convert(torch.zeros(3, 5, 4), bank, torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ValueError, match="noise_lsb -0.5"):
        convert(x, bank, torch.tensor([0, 1, 2, 2]), noise_lsb=-0.5)
    with pytest.raises(ValueError, match="method"):
        convert(x, bank, torch.tensor([0, 1, 2, 2]), method="bisect")
    dacs = draw_dacs(2, 3, 4, IDEAL, gen())
    with pytest.raises(ValueError, match=r"\|code\| <= 15"):
        dac_levels(torch.full((2, 1, 3), 16.0), dacs, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integers"):
        dac_levels(torch.full((2, 1, 3), 1.5), dacs, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="row_index out of range"):
        dac_levels(torch.ones(2, 1, 3), dacs, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="reference"):
        inl_lsb(bank, "best")
    with pytest.raises(ValueError, match="caps: shape"):
        build_adcs(torch.ones(1, 1, 3), torch.zeros(1, 1), torch.ones(1, 1), 3, False)
    with pytest.raises(ValueError, match="elements: shape"):
        build_dacs(torch.ones(1, 1, 3), 4)


# ------------------------------------------------------------------------------------------ speed
def test_speed_against_round_and_clamp():
    """10^6 values (one chip, 7812 MVMs x 128 signals, 16 ADCs of 8 columns, 8-bit signed, the cited errors):
    both methods agree, and the time of each against plain round + clamp is printed (best of 3; no timing
    assertion on a shared machine beyond a generous bound)."""
    bank = draw_adcs(1, 16, 8, True, ConverterErrors.load(), gen(18))
    x = torch.randn(1, 10**6 // 128, 128, generator=gen(19)) * 40
    idx = torch.arange(128) // 8

    def best(f):
        t = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = f()
            t.append(time.perf_counter() - t0)
        return min(t), out

    t_round, _ = best(lambda: x.round().clamp(-127, 127))
    t_cells, cells = best(lambda: convert(x, bank, idx))
    t_search, search = best(lambda: convert(x, bank, idx, method="search"))
    assert torch.equal(cells, search)
    print(
        f"\nconvert 10^6 values: cells {t_cells * 1e3:.1f} ms ({t_cells / t_round:.0f}x round+clamp "
        f"{t_round * 1e3:.2f} ms), searchsorted {t_search * 1e3:.1f} ms ({t_search / t_round:.0f}x)"
    )
    assert t_cells < 5.0

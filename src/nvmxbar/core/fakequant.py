"""Fake quantization with straight-through gradients: rounding to a grid (:func:`fake_quant`, LSQ-scaled step
gradient), the integer codes a device or converter holds (:func:`to_int`), and the ADC of every row tile's partial
sum (:func:`tile_adc`), in one fused autograd function that keeps training's memory near the float network's."""

from __future__ import annotations

from typing import Any

import torch


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest in the forward pass, identity gradient in the backward pass."""
    return (x.round() - x).detach() + x


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Forward: x. Backward: gradient multiplied by ``scale`` (LSQ's step-size gradient scaling)."""
    return (x - x * scale).detach() + x * scale


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``t`` summed over the dimensions that broadcasting added or expanded to reach it from ``shape``."""
    return t.sum() if len(shape) == 0 else t.sum_to_size(shape)


class _FakeQuant(torch.autograd.Function):
    """``round(clamp(x / step, lo, hi)) * step`` in one node: the forward allocates one tensor, the backward
    keeps only ``x`` (and the step and bounds) and gives the gradients of the composite it replaces
    (``ste_round(torch.clamp(x / step, lo, hi)) * step`` under autograd):

    * x: straight through inside the range (bounds included, as clamp's gradient), zero where clipped;
    * step (LSQ): ``g * (round(v) - v)`` inside the range, ``g * bound`` outside, ``v = x / step``.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, step: torch.Tensor, lo: float | torch.Tensor, hi: float | torch.Tensor
    ) -> torch.Tensor:
        tensor_bounds = [b for b in (lo, hi) if isinstance(b, torch.Tensor)]
        ctx.scalars = tuple(None if isinstance(b, torch.Tensor) else b for b in (lo, hi))
        ctx.save_for_backward(x, step, *tensor_bounds)
        return (x / step).clamp_(lo, hi).round_().mul_(step)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        x, step, *tensor_bounds = ctx.saved_tensors
        it = iter(tensor_bounds)
        lo, hi = (next(it) if b is None else b for b in ctx.scalars)
        v = x / step
        c = torch.clamp(v, lo, hi)
        f = torch.eq(c, v, out=v)  # 1.0 inside the range, bounds included (clamp's gradient); float: fast
        gs = None
        if ctx.needs_input_grad[1]:  # round(v) - v inside, the bound (= c = round(c)) outside
            e = torch.round(c).addcmul_(c, f, value=-1.0)
            gs = _sum_to(e.mul_(g), step.shape)
        gx = f.mul_(g) if ctx.needs_input_grad[0] else None
        return gx, gs, None, None


#: Elements of one tile's partial sums processed at a time by :func:`_tile_adc_values` (a few MB: the buffers
#: stay in cache while every tile's sums pass through them).
_CHUNK = 1 << 21


def _tile_adc_values(
    parts: torch.Tensor, step: torch.Tensor, levels: int, inside: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``Y = sum_t round(clamp(parts[t] / step, -levels, levels)) * step`` over the leading (tile) axis of ``parts``
    (tile, batch, ...), added in tile order as ``y = y + fake_quant(parts[t])`` adds them (the same floats). With
    ``inside`` (a bool tensor of ``parts``' shape) also fills it with ``|parts[t] / step| <= levels`` and returns
    ``E = sum_t (round(v_t) - v_t inside the range, the bound outside)``, ``v_t = parts[t] / step``.

    Chunks of the batch at a time (on the CPU: the whole batch elsewhere), every tile through the same few buffers:
    no temporary of the partial sums' size, and only float arithmetic in the inner loop (comparisons into bool
    tensors are slow on the CPU)."""
    Y = torch.empty_like(parts[0])
    E = torch.empty_like(parts[0]) if inside is not None else None
    chunk = max(1, _CHUNK // max(parts[0, 0].numel(), 1)) if parts.device.type == "cpu" else parts.shape[1]
    buf = None
    for b0 in range(0, parts.shape[1], chunk):
        b1 = b0 + chunk
        p, y = parts[:, b0:b1], Y[b0:b1]
        if buf is None or buf[0].shape != p[0].shape:
            buf = [torch.empty_like(p[0]) for _ in range(3)]
        v, c, f = buf
        e = E[b0:b1] if E is not None else None
        for t in range(parts.shape[0]):
            torch.div(p[t], step, out=v)
            torch.clamp(v, -levels, levels, out=c)
            if e is not None:
                torch.eq(c, v, out=f)  # 1.0 inside the range, bounds included (clamp's gradient)
                inside[t, b0:b1].copy_(f)
                c.round_()
                if t == 0:  # e_t = round(v) - v inside; outside, round(c) = c = the bound
                    torch.addcmul(c, v, f, value=-1.0, out=e)
                else:
                    e.add_(c).addcmul_(v, f, value=-1.0)
            else:
                c.round_()
            if t == 0:
                torch.mul(c, step, out=y)
            else:
                y.add_(c.mul_(step))
    return Y, E


class _TileADC(torch.autograd.Function):
    """``sum_t round(clamp(parts[t] / step, -levels, levels)) * step``: the ADC applied to every row tile's
    partial sums (leading axis), the converted sums added up. The gradients are those of
    ``sum_t fake_quant(parts[t])`` (:class:`_FakeQuant`); the backward keeps one bool per partial sum (inside the
    ADC range or clipped) and one tensor of the output's size, ``E`` of :func:`_tile_adc_values`, the LSQ step
    gradient being ``sum(g * E)``: apart from the gradient itself, no float tensor of the partial sums' size is
    kept or allocated."""

    @staticmethod
    def forward(ctx: Any, parts: torch.Tensor, step: torch.Tensor, levels: int) -> torch.Tensor:
        inside = torch.empty_like(parts, dtype=torch.bool)
        Y, E = _tile_adc_values(parts, step, levels, inside)
        ctx.save_for_backward(inside, E, step)
        return Y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        inside, E, step = ctx.saved_tensors
        gp = gs = None
        if ctx.needs_input_grad[0]:
            # uint8 -> float (same strides: one flat copy), then times g: fast, unlike ops on bool tensors
            gp = torch.empty_like(inside, dtype=g.dtype).copy_(inside.view(torch.uint8)).mul_(g)
        if ctx.needs_input_grad[1]:
            gs = _sum_to(E * g, step.shape)
        return gp, gs, None


def tile_adc(parts: torch.Tensor, full_scale: torch.Tensor, levels: int) -> torch.Tensor:
    """``sum_t fake_quant(parts[t], full_scale, levels, -levels, levels)`` over the leading (row tile) axis of
    ``parts``: the same values (added in the same order) and gradients, from one node that keeps a bool per
    partial sum for the backward (:class:`_TileADC`)."""
    return tile_adc_step(parts, full_scale / levels, levels)


def tile_adc_step(parts: torch.Tensor, step: torch.Tensor, levels: int) -> torch.Tensor:
    """:func:`tile_adc` with the ADC step given (``full_scale / levels``)."""
    if torch.is_grad_enabled() and (parts.requires_grad or step.requires_grad):
        return _TileADC.apply(parts, step, levels)
    return _tile_adc_values(parts, step, levels)[0]


def fake_quant(
    x: torch.Tensor, full_scale: torch.Tensor, levels: int, lo: float | torch.Tensor, hi: float | torch.Tensor
) -> torch.Tensor:
    """Quantize ``x`` onto the grid ``step * k``, ``k`` an integer in ``[lo, hi]``, ``step = full_scale / levels``.

    The same values and gradients as ``ste_round(torch.clamp(x / step, lo, hi)) * step`` (straight-through
    rounding, LSQ step gradient) from one fused autograd node (:class:`_FakeQuant`)."""
    step = full_scale / levels
    return _FakeQuant.apply(x, step, lo, hi)


def to_int(
    x: torch.Tensor, full_scale: float | torch.Tensor, levels: int, lo: float | torch.Tensor, hi: float | torch.Tensor
) -> torch.Tensor:
    """The integer codes ``k`` of :func:`fake_quant` (no gradient): what a device or converter holds."""
    step = full_scale / levels
    return torch.clamp(x / step, lo, hi).round()


def fake_quant_step(x: torch.Tensor, step: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """:func:`fake_quant` on a grid given by its ``step`` (the ADC's, tied to the DAC's by a power of two)."""
    return _FakeQuant.apply(x, step, lo, hi)


def abs_quantile(t: torch.Tensor, q: float) -> float:
    """The ``q`` quantile of ``|t|`` over ALL its values (linear interpolation, as ``torch.quantile``), exact at any
    size: every calibration sample counts, not a flat prefix of the first ones (``torch.quantile`` refuses more
    than 2^24 values; ``kthvalue`` has no such limit)."""
    v = t.detach().abs().flatten().double()
    if v.numel() == 0:
        raise ValueError("a quantile of no values")
    pos = q * (v.numel() - 1)
    lo, frac = int(pos), pos - int(pos)
    a = float(v.kthvalue(lo + 1).values)
    return a if frac == 0 else a + frac * (float(v.kthvalue(min(lo + 2, v.numel())).values) - a)

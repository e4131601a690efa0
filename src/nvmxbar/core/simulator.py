"""The crossbar simulator: inference on mapped tiles, exact on ideal devices, with a hook for perturbed
conductances (:mod:`nvmxbar.core.noise`) and read noise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .layout import fold, unfold
from .networks import pool

#: A chip population's conductances: (layer index, nominal G in dG units) -> perturbed G with a leading instance
#: axis; it may carry ``read_sigma`` and ``generator`` (see nvmxbar.core.noise.Perturbation).
Perturb = Callable[[int, torch.Tensor], torch.Tensor]


class Simulator:
    """Inference on mapped tiles. Conductances are handled in units of dG = (G_max - G_min)/(2^b - 1), so a
    programmed cell is ``g_off + level`` with ``g_off = G_min / dG``; non-idealities perturb that. With no
    perturbation the column currents are exact integers and the result equals the integer digital model."""

    def __init__(self, arrays: dict[str, np.ndarray], mapping: dict) -> None:
        self.mapping, self.layers = mapping, mapping["layers"]
        dev = mapping["device"]
        self.L = dev["levels"] - 1
        self.g_off = dev["g_min_us"] / ((dev["g_max_us"] - dev["g_min_us"]) / self.L)
        self.R, self.C = mapping["tile"]["rows"], mapping["tile"]["cols"]
        self.levels = [torch.from_numpy(arrays[f"L{i}.levels"].astype(np.float32)) for i in range(len(self.layers))]
        self.used = [torch.from_numpy(arrays[f"L{i}.used"]) for i in range(len(self.layers))]
        self.bias = [
            torch.from_numpy(arrays[f"L{i}.bias"]) if f"L{i}.bias" in arrays else None for i in range(len(self.layers))
        ]
        self.row_index = [torch.from_numpy(arrays[f"L{i}.row_index"].astype(np.int64)) for i in range(len(self.layers))]
        self.sign = [torch.from_numpy(arrays[f"L{i}.sign"].astype(np.float32)) for i in range(len(self.layers))]
        conv = mapping["converters"]
        self.dac_levels = 2 ** conv["dac_bits"] - 1
        self.adc_levels = 2 ** (conv["adc_bits"] - 1) - 1
        self.recorded: list[float] = []
        self.activity: list[list[float]] | None = None  # read_activity's accumulators, one per layer

    def _adc_step(self, spec: dict) -> float:
        """ADC step in units of (weight step x DAC step): uniform = global Y/La; baseline = per-layer."""
        if self.mapping["scheme"] == "baseline":
            fs_units = spec["adc_fullscale"]  # already in integer (code x code) units
            return fs_units / self.adc_levels
        unit = spec["weight_step"] * spec["dac_fullscale"] / self.dac_levels
        return self.mapping["adc_fullscale"] / self.adc_levels / unit

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, perturb: Perturb | None = None, adc: bool = True, record: bool = False
    ) -> torch.Tensor:
        """x: normalised network input (B, ...). perturb(i, g) -> g with a leading instance axis (I, ...),
        applied to the conductances of layer i; None = ideal devices (I = 1). Returns logits (I, B, classes)."""
        self.recorded = []
        B = x.shape[0]
        h = x.double()[None]  # (I, B, ...)
        if self.layers[0].get("input_split"):  # the first layer's rows see [x, -x]
            h = torch.cat([h, -h], 2)
        for i, spec in enumerate(self.layers):
            I = h.shape[0]
            if spec["kind"] == "linear":
                h = h.flatten(2)
            spatial = list(h.shape[3:])
            first = i == 0
            # DAC: integer input codes
            a_step = spec["dac_fullscale"] / self.dac_levels
            lo = -self.dac_levels if first else 0
            u = torch.clamp(torch.round(h / a_step), lo, self.dac_levels)
            rows = torch.stack([unfold(u[k], spec) for k in range(I)])  # (I, Bm, weight_rows)
            if spec["bias_mode"] == "row":  # driven at +full-scale (and -full-scale: the unipolar bias pair)
                drive = torch.tensor([float(self.dac_levels), -float(self.dac_levels)][: spec.get("bias_rows", 1)])
                rows = torch.cat([rows, drive.expand(*rows.shape[:-1], -1).to(rows.dtype)], -1)
            y = self._mvm(i, rows, spec, perturb, adc, record)  # (I', Bm, N) in weight-step x DAC-step units
            unit = spec["weight_step"] * a_step
            y = y * unit
            if self.bias[i] is not None:
                y = y + self.bias[i]
            h = torch.stack([fold(y[k], spec, B, spatial) for k in range(y.shape[0])])
            if i < len(self.layers) - 1:
                h = torch.relu(h)
                if spec["pool"]:
                    flat = pool(h.flatten(0, 1), int(spec["pool"]), 1 if spec["kind"] == "conv1d" else 2)
                    h = flat.reshape(h.shape[0], B, *flat.shape[1:])
        return h

    @torch.no_grad()
    def read_activity(self, x: torch.Tensor, bs: int = 256) -> list[dict[str, float]]:
        """What the inputs actually read, per layer and per MVM (ideal devices): sum over driven rows of
        a_r x (the row's used-cell conductance, uS), averaged over the MVMs of ``x``. ``bit_serial``: a_r = the
        number of 1-bits of the row's input code (one pass per bit; a negative code drives -V, same energy);
        ``multibit``: a_r = (code / full code)^2 (one pass). Times V_read^2 t_read it is the cell read energy."""
        dev = self.mapping["device"]
        dg = (dev["g_max_us"] - dev["g_min_us"]) / self.L
        self._row_g = [
            ((lev * dg + dev["g_min_us"]) * used).sum(dim=(1, 3)) for lev, used in zip(self.levels, self.used)
        ]
        self.activity = [[0.0, 0.0, 0] for _ in self.layers]
        try:
            for a in range(0, len(x), bs):
                self.forward(x[a : a + bs])
            return [
                {"bit_serial": s / n, "multibit": m / n, "mvms_measured": n, "samples": len(x)}
                for s, m, n in self.activity
            ]
        finally:
            self.activity = None

    def _mvm(
        self, i: int, rows: torch.Tensor, spec: dict, perturb: Perturb | None, adc: bool, record: bool
    ) -> torch.Tensor:
        R, C, S, P = self.R, self.C, spec["slices"], spec["pair"]
        lev = self.levels[i]  # (rt, ct, R, C) float32: integer sums stay exact below 2^24
        rt, ct = lev.shape[:2]
        I, Bm, K = rows.shape
        ext = torch.cat([rows.float(), torch.zeros(I, Bm, 1)], -1)  # index -1 (unused physical row) reads the 0
        xin = ext[..., self.row_index[i]].reshape(I, Bm, rt, R)
        if self.activity is not None:
            code = xin[0].abs().round().long()  # (Bm, rt, R)
            ones = sum((code >> k) & 1 for k in range(max(1, self.dac_levels.bit_length())))
            acc = self.activity[i]
            acc[0] += float((ones.double() * self._row_g[i]).sum())
            acc[1] += float(((code.double() / self.dac_levels) ** 2 * self._row_g[i]).sum())
            acc[2] += Bm
        if perturb is None:
            # ideal devices: exact integer currents (levels and inputs are integers; G_min cancels in the pair)
            cur = torch.einsum("ibrk,rckn->ibrcn", xin, lev)
        else:
            g = perturb(i, lev + self.g_off)  # (I, rt, ct, R, C) perturbed conductances, dG units
            if I == 1 and g.shape[0] > 1:
                xin = xin.expand(g.shape[0], -1, -1, -1)
            # one einsum over the perturbed array; the nominal G_min offset cancels in the pair (or against
            # the reference column), its perturbation does not
            cur = torch.einsum("ibrk,irckn->ibrcn", xin, g - self.g_off)
            if getattr(perturb, "read_sigma", 0.0):
                var = torch.einsum("ibrk,irckn->ibrcn", xin**2, (g * perturb.read_sigma) ** 2)
                cur = cur + torch.randn(cur.shape, generator=perturb.generator, dtype=cur.dtype) * var.sqrt()
        # (I, Bm, rt, ct, C) -> per-column sign (unipolar groups) -> pairs -> analog subtraction
        if P == 1:
            cur = cur * self.sign[i].to(cur.dtype)  # (rt, ct, C); symmetric rounding: flip before or after the ADC
        cur = cur.reshape(*cur.shape[:3], ct * C)[..., : spec["outputs"] * S * P]
        cur = cur.reshape(*cur.shape[:3], spec["outputs"], S, P)
        diff = (cur[..., 0] - cur[..., 1] if P == 2 else cur[..., 0]).double()  # (I, Bm, rt, N, S)
        if record:
            self.recorded.append(float(torch.quantile(diff.abs().flatten()[:1_000_000].float(), 0.999)))
        if adc:
            step = self._adc_step(spec)
            diff = torch.clamp(torch.round(diff / step), -self.adc_levels, self.adc_levels) * step
        b = self.mapping["bits"]
        shifts = torch.tensor([float(2 ** (b * s)) for s in range(S)], dtype=diff.dtype)
        return (diff * shifts).sum(dim=(2, 4))  # digital shift-and-add over slices, sum over row tiles

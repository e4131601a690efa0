"""The crossbar simulator: inference on mapped tiles, exact on ideal devices, with a hook for perturbed
conductances (:mod:`nvmxbar.core.noise`) and read noise; every operation is counted while it runs
(:mod:`nvmxbar.core.accounting`: the cost model prices these counts).

Arithmetic is done where the crossbar does it and nowhere else (docs/DESIGN.md, "How the simulator computes it"):
a layer's used cells are one (matrix rows) x (physical columns) matrix, a row tile a contiguous range of its rows;
a pair is subtracted before the multiply, a unipolar column's sign and G_min offset likewise; a convolution's row
tile is a convolution over the input channels its rows touch; a population of chips is one grouped convolution or
GEMM, built once (:class:`Chips`). Column sums are float32 where they stay exact (integers below 2^24), float64
otherwise (digital subtraction: a column's G_min offset); the digital side works in the input's dtype.

The circuit is mapping.json's ``chip`` (:class:`nvmxbar.chip.Chip`): multi-bit inputs in one pass or bit-serial
passes (bit j of every code, each pass converted, shifted by j and added); a pair subtracted before the ADC
(analog) or after it (digital); a one-device column's G_min offset removed by a reference column of G_min cells
(analog: simulated, perturbed like the others) or subtracted digitally after a conversion that holds it. Drawn
chips may carry IR drop (:mod:`.tile_wires`), row-DAC (:mod:`.tile_dacs`) and ADC (:mod:`.tile_adcs`) errors."""

from __future__ import annotations

import numpy as np
import torch

from ..chip import Chip
from . import tile_adcs, tile_dacs, tile_wires
from .accounting import Accounting, layer_conv
from .converters import adc_code_range, adc_steps, remove_weight_offset
from .fakequant import abs_quantile
from .groups import tile_span
from .tensors import Chips, Perturb, auto_device, bit_planes, matmul

__all__ = ["Chips", "Perturb", "Simulator", "auto_device", "bit_planes"]


class Simulator(Accounting):
    """Inference on mapped tiles. Conductances are handled in units of dG = (G_max - G_min)/(2^b - 1), so a
    programmed cell is ``g_off + level`` with ``g_off = G_min / dG``; non-idealities perturb that. With no
    perturbation the column currents are exact integers and the result equals the integer digital model."""

    def __init__(self, arrays: dict[str, np.ndarray], mapping: dict, device: str | torch.device = "cpu") -> None:
        self.mapping, self.layers = mapping, mapping["layers"]
        self.device = auto_device(device) if isinstance(device, str) else device
        self.chip = chip = Chip.from_dict(mapping["chip"], "mapping.json chip")
        self.L = mapping["device"]["levels"] - 1
        self.g_off = chip.device.g_min_us / ((chip.device.g_max_us - chip.device.g_min_us) / self.L)
        self.R, self.C = chip.tile.rows, chip.tile.cols
        self.dac_bits = chip.dac_bits
        self.dac_levels = 2**chip.dac_bits - 1
        self.adc_levels = 2 ** (chip.adc_bits - 1) - 1
        self.passes = chip.passes
        self.digital = chip.subtraction == "digital"
        self.ratio = mapping["adc_dac_ratio"] if chip.adc_ratio == "pow2" else None
        self.ops: list[dict[str, float]] | None = None  # count_operations' accumulators, per layer
        # exact float32 sums: |input code| x level x rows per tile (x 2 slices of a pair) below 2^24; a digital
        # conversion's sums hold G_min / dG x the inputs (not integers: float32 rounds them, by summation order). A
        # wider DAC (the baseline's fit) passes to float64 here; with the ADC off, the slices' shift-and-add is float64
        exact32 = self.dac_levels * self.L * self.R * 2 < 2**24 and not self.digital
        self.dtype = torch.float32 if exact32 else torch.float64
        self.levels: list[torch.Tensor] = []  # (K, N*S*P) levels of the used cells, matrix-row order
        self.tiles: list[list[tuple[int, int]]] = []  # per row tile: its matrix rows [a, b)
        self.row_sign: list[torch.Tensor] = []  # (K, N*S*P) the digital sign of the column each cell sums into
        self.bias: list[torch.Tensor | None] = []
        self.ref_cols: list[int] = []  # reference columns appended to a one-device layer's levels (analog offset)
        for i, spec in enumerate(self.layers):
            lev, rows, sign = self._matrix(arrays, i, spec)
            refs = int(spec["col_tiles"]) if spec["pair"] == 1 and not self.digital else 0
            if refs:  # one column of G_min cells (level 0) per column tile, read with the tile's inputs
                lev = torch.cat([lev, torch.zeros(lev.shape[0], refs)], 1)
            self.ref_cols.append(refs)
            self.levels.append(lev.to(self.device))
            self.tiles.append(rows)
            self.row_sign.append(sign.to(self.device))
            b = arrays.get(f"L{i}.bias")
            self.bias.append(None if b is None else torch.from_numpy(b).to(self.device, torch.float64))
        self.geometry = [self._tile_geometry(i, spec) for i, spec in enumerate(self.layers)]
        self.row_pos = [tile_wires.row_positions(arrays, i, len(lev)) for i, lev in enumerate(self.levels)]
        self.dg_us = (chip.device.g_max_us - chip.device.g_min_us) / self.L
        self._phases: dict[int, list] = {}  # per layer, its IR-drop problems (tile_wires.phases), built when needed
        self._tile_rows = [{a: e - a for a, e in tiles} for tiles in self.tiles]  # rows of each row tile
        self.nominal = self.chips(None)
        self.recorded: list[float] = []
        self.activity: list[list[float]] | None = None  # read_activity's accumulators, one per layer

    def _matrix(
        self, arrays: dict[str, np.ndarray], i: int, spec: dict
    ) -> tuple[torch.Tensor, list[tuple[int, int]], torch.Tensor]:
        """The used cells of layer i from its tiles: levels and column signs (K, N*S*P), and each row tile's
        matrix rows."""
        lev_t = arrays[f"L{i}.levels"]  # (rt, ct, R, C)
        rt, ct, R, C = lev_t.shape
        row_index = arrays[f"L{i}.row_index"].astype(np.int64)
        K, ncol = int(spec["rows"]), spec["outputs"] * spec["slices"] * spec["pair"]
        phys = lev_t.transpose(0, 2, 1, 3).reshape(rt * R, ct * C)[:, :ncol]
        sign = np.repeat(arrays[f"L{i}.sign"].reshape(rt, ct * C)[:, :ncol], R, axis=0)
        driven = np.flatnonzero(row_index >= 0)
        order = row_index[driven]
        lev = np.zeros((K, ncol), dtype=np.float32)
        sgn = np.ones((K, ncol), dtype=np.float32)
        lev[order], sgn[order] = phys[driven], sign[driven]
        tiles = []
        for t in range(rt):
            m = row_index[t * R : (t + 1) * R]
            m = m[m >= 0]
            if len(m) == 0:
                continue
            if not np.array_equal(m, np.arange(m[0], m[0] + len(m))):
                raise ValueError(f"layer {i}: row tile {t} does not hold a contiguous range of matrix rows")
            tiles.append((int(m[0]), int(m[-1]) + 1))
        return torch.from_numpy(lev), tiles, torch.from_numpy(sgn)

    def wired(self, i: int, g: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Layer i's chips ``g`` (I, K, columns [+ references], dG units) under IR drop at ``scale`` x the chip's
        wires (:func:`nvmxbar.core.tile_wires.wired`): each cell's contribution, and each column's reference's."""
        if i not in self._phases:
            refs = self.ref_cols[i]
            self._phases[i] = tile_wires.phases(self.chip, self.layers[i], self.tiles[i], self.row_pos[i], refs)
        return tile_wires.wired(g, self._phases[i], self.chip, self.dg_us, scale)

    def _tile_geometry(self, i: int, spec: dict) -> list[tuple]:
        """Per row tile: the weight rows it reads as [c0, c1) (a dense layer: matrix rows; a convolution: input
        channels, with the mask of the tile's rows among those channels' kernel rows), and its bias rows with their
        drive (+ or - the DAC full-scale)."""
        Kw = int(spec["weight_rows"])
        per_ch = 1 if spec["kind"] == "linear" else int(np.prod(spec["kernel"]))
        full = 1.0 if self.passes > 1 else float(self.dac_levels)  # bit-serial: the full code's every bit, each pass
        drive = [full, -full]
        out = []
        for a, e in self.tiles[i]:
            c0, c1, m = tile_span(a, e, per_ch, Kw)
            mask = m.flatten().to(self.device, self.dtype) if per_ch > 1 else None
            out.append((c0, c1, mask, [(k, drive[k - Kw]) for k in range(max(a, Kw), e)]))
        return out

    def _tile_ops(
        self, i: int, w: torch.Tensor, var: torch.Tensor | None, rvar: torch.Tensor | None = None
    ) -> list[tuple]:
        """Layer i's row tiles for a chip population's matrices ``w`` (I, K, N*S): per tile (its weight rows: a
        matrix (I, rows, N*S), or a convolution kernel (I*N*S, channels, *k); the same of the read-noise variances or
        None; the sum its driven bias rows add (I, N*S); that sum's variance or None; the same two of the reference
        columns' read-noise variances ``rvar`` (I, K, column tiles), or None)."""
        spec, I, NS = self.layers[i], w.shape[0], w.shape[2]
        k, per_ch = spec["kernel"], 1 if spec["kind"] == "linear" else int(np.prod(spec["kernel"]))

        def rows(m: torch.Tensor, c0: int, c1: int, mask: torch.Tensor | None) -> torch.Tensor | None:
            if c1 <= c0:
                return None
            blk = m[:, c0 * per_ch : c1 * per_ch]
            if mask is None:
                return blk
            blk = blk * mask[None, :, None]
            return blk.permute(0, 2, 1).reshape(I * blk.shape[2], c1 - c0, *k).contiguous()

        ops = []
        for c0, c1, mask, bias in self.geometry[i]:
            const = sum((d * w[:, r] for r, d in bias), torch.zeros(I, NS, dtype=w.dtype, device=w.device))
            cvar = None if var is None else sum((d * d * var[:, r] for r, d in bias), torch.zeros_like(const))
            vk = None if var is None else rows(var, c0, c1, mask)
            rk = None if rvar is None else rows(rvar, c0, c1, mask)
            rc = None if rvar is None else sum((d * d * rvar[:, r] for r, d in bias), rvar.new_zeros(I, rvar.shape[2]))
            ops.append((rows(w, c0, c1, mask), vk, const, cvar, rk, rc))
        return ops

    def effective(self, i: int, g: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """(I, K, N*S*P [+ reference columns]) conductances (dG units) -> what each converted signal sums per input:
        analog (I, K, N*S): a pair's G+ - G- (G_min, perturbed or not, on both sides), a one-device column's G minus
        its tile's reference column (G_min cells), times the column's digital sign; digital (I, K, N*S*P): every
        column as it is, G_min included (one-device: times its sign), converted before any subtraction. ``ref``:
        under IR drop, ``g`` holds the columns only and ``ref`` each column's own reference contribution."""
        spec = self.layers[i]
        if spec["pair"] == 2:
            if self.digital:
                return g
            g = g.reshape(*g.shape[:-1], -1, 2)
            return g[..., 0] - g[..., 1]
        refs = self.ref_cols[i]
        if ref is not None:
            g = g - ref
        elif refs:
            ncol = g.shape[-1] - refs
            tile_of = torch.arange(ncol, device=g.device) // self.C
            g = g[..., :ncol] - g[..., ncol:][..., tile_of]
        return g * self.row_sign[i]

    def _variance(self, i: int, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per converted signal, the sum of its own cells' read-noise variances ``s2`` (per cell and unit input):
        both devices of an analog pair, else the column; and an analog one-device layer's reference columns' (I, K,
        column tiles), or None. A reference column is read once per tile and MVM and subtracted from every column
        of its tile: its noise is one draw shared by them (:meth:`_mvm`), not a variance added to each."""
        if self.digital:
            return s2, None
        if self.layers[i]["pair"] == 2:
            return s2.reshape(*s2.shape[:-1], -1, 2).sum(-1), None
        refs = self.ref_cols[i]
        if not refs:
            return s2, None
        return s2[..., :-refs], s2[..., -refs:]

    def chips(self, perturb: Perturb | None) -> Chips:
        """The effective matrices of ideal devices (``perturb`` None: one chip, exact integers) or of the chips
        ``perturb`` draws (once: they are reused for every batch)."""
        w, var = [], []
        read_std = getattr(perturb, "read_std", None)
        for i, lev in enumerate(self.levels):
            if perturb is None:
                eff = self.effective(i, (lev.double() + self.g_off)[None])  # G_min / dG is no float32
                w.append((eff if self.digital else eff.round()).to(self.dtype))  # analog: exact integers
                var.append((None, None))
                continue
            g = perturb(i, lev + self.g_off).to(self.device, torch.float32)  # (I, K, N*S*P [+ references])
            scale = float(getattr(perturb, "wire_scale", 0.0) or 0.0)
            w.append((self.effective(i, *self.wired(i, g, scale)) if scale else self.effective(i, g)).to(self.dtype))
            sd = None if read_std is None else read_std(i, g)  # each cell's read-noise sigma, dG units
            var.append((None, None) if sd is None else tuple(self._variance(i, sd.to(self.dtype) ** 2)))
        gen, n, conv_err = getattr(perturb, "generator", None), len(w[0]), getattr(perturb, "converter_errors", None)
        dacs = tile_dacs.draw_chips(self.chip, self.layers, [len(lev) for lev in self.levels], n, conv_err, gen)
        if dacs:  # bias rows at the full code through their own drivers
            w = [tile_dacs.bias_rows(wi, E, spec, self.chip) for wi, E, spec in zip(w, dacs, self.layers, strict=True)]
        ops = [self._tile_ops(i, wi, *vi) for i, (wi, vi) in enumerate(zip(w, var))]
        for i, E in enumerate(dacs or []):  # weight rows: one GEMM row per (row, DAC element)
            ops[i] = tile_dacs.expand_layer(ops[i], E, self.geometry[i], self.layers[i], self.chip)
        adcs = tile_adcs.draw_chips(self.chip, self.layers, self.tiles, n, conv_err, gen)
        return Chips(n, ops, gen, adcs, dacs)

    @torch.no_grad()
    def forward(
        self,
        x: torch.Tensor,
        perturb: Perturb | Chips | None = None,
        adc: bool = True,
        record: bool = False,
        dac: bool = True,
    ) -> torch.Tensor:
        """x: normalised network input (B, ...). ``perturb``: the chips to run on (:meth:`chips`, or a Perturb that
        draws them); None = ideal devices (one chip). ``adc``/``dac`` False: the column sums are not converted / the
        inputs not quantized (exact analog values in float64: a loss breakdown). Logits (I, B, classes), x's device."""
        chips = perturb if isinstance(perturb, Chips) else self.nominal if perturb is None else self.chips(perturb)
        if self.device.type == "cuda":  # full float32 products (no TF32) and deterministic cuDNN algorithms
            with torch.backends.cudnn.flags(enabled=True, deterministic=True, allow_tf32=False):
                return self._forward(x, chips, adc, record, dac)
        return self._forward(x, chips, adc, record, dac)

    def _forward(self, x: torch.Tensor, chips: Chips, adc: bool, record: bool, dac: bool = True) -> torch.Tensor:
        self.recorded = []
        if not dac:  # exact analog inputs: float64 sums
            if self.passes > 1 or chips.dacs:  # bit-serial passes, or drawn DACs' bit planes, are of integer codes
                raise ValueError("dac=False needs multi-bit inputs and ideal DACs (the passes or planes of codes)")
            tiles = [[tuple(None if t is None else t.double() for t in op) for op in ops] for ops in chips.tiles]
            chips = Chips(chips.n, tiles, chips.generator)
        B = x.shape[0]
        vd = x.dtype if x.is_floating_point() else torch.float32  # the digital side's dtype: the network's
        h = x.to(self.device, vd)[None]  # (1, B, ...): the chips share the network input
        if self.layers[0].get("input_split"):  # the first layer's rows see [x, -x]
            h = torch.cat([h, -h], 2)
        for i, spec in enumerate(self.layers):
            if spec["kind"] == "linear":
                h = h.flatten(2)
            a_step = spec["dac_fullscale"] / self.dac_levels
            lo = -self.dac_levels if i == 0 else 0
            if dac:  # DAC: integer input codes
                u = (h / a_step).round_().clamp_(lo, self.dac_levels).to(self.dtype)
            else:  # inputs as they are, in input-step units
                u = (h / a_step).double()
            if self.activity is not None:
                self._read_activity(i, u[0], spec)
            if self.passes > 1:  # bit-serial: pass j drives sign x bit j of |code|, passes stacked on the batch axis
                u = bit_planes(u, self.dac_bits)
            y = self._mvm(i, u, spec, chips, adc, record, vd)  # (I, passes x B, N, *spatial), network units
            if self.passes > 1:  # the passes' outputs shifted by their bit and added (digital)
                y = sum(part * float(2**j) for j, part in enumerate(y.unflatten(1, (self.passes, B)).unbind(1)))
            if self.ops is not None:
                self._count_layer(i, spec, B * int(np.prod(y.shape[3:], dtype=np.int64)), u[0, :B].numel())
            if self.bias[i] is not None:
                y = y + self.bias[i].to(vd).reshape(-1, *[1] * (y.dim() - 3))
            h = self._between_layers(i, spec, y, B) if i < len(self.layers) - 1 else y  # ReLU, max-pools
        return h.to(x.device)

    def _tile_sum(self, spec: dict, u: torch.Tensor, c0: int, c1: int, m: torch.Tensor | None, I: int) -> torch.Tensor:
        """One row tile's column (pair) sums, before its bias rows: (I, B, N*S, *spatial). ``u``: the layer's input
        codes (1 or I, B, features) or (1 or I, B, channels, *spatial); ``m``: the tile's matrix or kernel."""
        if spec["kind"] == "linear":
            return matmul(u[..., c0:c1], m)
        conv = layer_conv(spec)
        x = u[:, :, c0:c1]
        B, sp = x.shape[1], x.shape[3:]
        if x.shape[0] == 1:  # one input (the network's, or one chip's) for every chip: one convolution
            out = conv(x[0], m)
        else:  # a chip per group
            out = conv(x.transpose(0, 1).reshape(B, I * x.shape[2], *sp), m, groups=I)
        return out.reshape(B, I, out.shape[1] // I, *out.shape[2:]).transpose(0, 1)

    def _input_sum(
        self, spec: dict, u: torch.Tensor, c0: int, c1: int, mask: torch.Tensor | None, bias: list
    ) -> torch.Tensor:
        """Sum of a tile's input codes per MVM (its weight rows', and its bias rows' drives): (1 or I, B, 1, *spatial).
        A one-device column converted with its G_min offset holds G_min / dG x this; the digital side subtracts it."""
        ones = torch.ones(1, c1 - c0, 1, dtype=u.dtype, device=u.device)
        if spec["kind"] != "linear":
            k = spec["kernel"]
            ones = torch.ones(1, c1 - c0, *k, dtype=u.dtype, device=u.device)
            if mask is not None:
                ones = ones * mask.reshape(1, c1 - c0, *k)
        I, B = u.shape[:2]  # every chip's inputs as one batch (one all-ones kernel, not one per chip)
        out = self._tile_sum(spec, u.reshape(1, I * B, *u.shape[2:]), c0, c1, ones, 1) if c1 > c0 else None
        out = None if out is None else out.reshape(I, B, *out.shape[2:])
        drive = sum(d for _, d in bias)
        if out is None:
            return torch.full((u.shape[0], u.shape[1], 1, *u.shape[3:]), float(drive), dtype=u.dtype, device=u.device)
        return out + drive

    def _draw(
        self,
        spec: dict,
        u: torch.Tensor,
        c0: int,
        c1: int,
        vm: torch.Tensor | None,
        cvar: torch.Tensor,
        bias: list,
        like: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """One read's noise on a tile's signals (``cvar.shape[1]`` of them; the MVMs as in ``like``): Gaussian, of
        variance the tile's rows' u^2 x ``vm`` (+ its bias rows' ``cvar``), exact per MVM."""
        I, extra = like.shape[0], like.dim() - 3
        shape = (I, like.shape[1], cvar.shape[1], *like.shape[3:])
        var = self._tile_sum(spec, u * u, c0, c1, vm, I) if vm is not None else like.new_zeros(shape)
        if bias:
            var += cvar.reshape(I, 1, -1, *[1] * extra)
        noise = torch.randn(var.shape, generator=generator, dtype=like.dtype).to(like.device)
        return noise.mul_(var.clamp_(min=0).sqrt_())

    def _mvm(
        self, i: int, u: torch.Tensor, spec: dict, chips: Chips, adc: bool, record: bool, vd: torch.dtype
    ) -> torch.Tensor:
        """Per row tile: the converted signals' sums for every chip, read noise, the ADC, the digital subtraction (a
        pair's two codes, or a one-device column's offset) when it is digital; then the digital shift-and-add over
        slices, the sum over row tiles and the offset encoding's correction: (I, B, N, *spatial) in dtype ``vd``, in
        the network's units (an ADC code times its step). The ADC codes and their shift-and-add are small integers,
        exact in the sums' dtype."""
        I, N, S = max(u.shape[0], chips.n), spec["outputs"], spec["slices"]
        pc = 2 if self.digital and spec["pair"] == 2 else 1  # conversions per signal: a pair's two columns
        b = self.mapping["bits"]
        steps, values = adc_steps(self.chip, self.mapping, spec) if adc else (None, None)
        lo, hi = adc_code_range(spec, self.chip.adc_bits)  # signed, or unsigned (offset encoding, inputs >= 0)
        unit = spec["weight_step"] * spec["dac_fullscale"] / self.dac_levels
        extra = u.dim() - 3  # spatial dims of a convolution's output
        y, diffs = None, []
        dense = chips.dacs and spec["kind"] == "linear"  # drawn row DACs: drive outputs, or (conv) bit planes
        up, nb = tile_dacs.planes(u, self.chip) if chips.dacs and not dense else (u, 1)
        for t, ((c0, c1, mask, bias), (m, vm, const, cvar, rm, rc), (a, _)) in enumerate(
            zip(self.geometry[i], chips.tiles[i], self.tiles[i], strict=True)
        ):
            if m is None:  # a tile of bias rows only
                cur = const.reshape(I, 1, -1, *[1] * extra).expand(I, u.shape[1], -1, *u.shape[3:]).clone()
            else:
                cur = tile_dacs.dense_sum(u[..., c0:c1], m, chips.dacs[i][:, c0:c1], self.chip, spec) if dense else (
                    self._tile_sum(spec, up, c0 * nb, c1 * nb, m, I))  # fmt: skip
                if bias:
                    cur += const.reshape(I, 1, -1, *[1] * extra)
            if cvar is not None:  # read noise of each signal's own cells
                cur += self._draw(spec, u, c0, c1, vm, cvar, bias, cur, chips.generator)
            if rc is not None:  # the tile's reference columns: one read per MVM, subtracted from each of its columns
                ref = self._draw(spec, u, c0, c1, rm, rc, bias, cur, chips.generator)
                tile_of = torch.arange(cur.shape[2], device=cur.device) // self.C
                cur -= self.row_sign[i][a].reshape(1, 1, -1, *[1] * extra).to(cur.dtype) * ref[:, :, tile_of]
            cur = cur.reshape(I, cur.shape[1], N, S, pc, *cur.shape[3:])
            if record:  # as the ADC sees them: (chips, MVMs (batch, positions), outputs, slices, columns)
                diffs.append(cur.movedim(2, -1).movedim(2, -1).movedim(2, -1).reshape(I, -1, N, S, pc).clone())
            shape = (1, 1, 1, S, 1) + (1,) * extra
            if adc:  # codes: round(sum / step), clipped; or each signal's own drawn ADC
                cur = cur.div_(steps.to(cur.device, cur.dtype).reshape(shape))
                adcs = chips.adcs[i] if chips.adcs else None
                cur = cur.round_().clamp_(lo, hi) if adcs is None else tile_adcs.quantize(cur, adcs, t, chips.generator)
            cur = cur[:, :, :, :, 0] - cur[:, :, :, :, 1] if pc == 2 else cur[:, :, :, :, 0]  # digital pair: c+ - c-
            if self.digital and spec["pair"] == 1:  # the offset the conversion held: G_min/dG x the inputs' sum
                off = self.g_off * self._input_sum(spec, u, c0, c1, mask, bias)[:, :, :, None]  # (., B, 1, 1, *sp)
                if adc:  # in ADC codes (a digital constant times the inputs' sum, not rounded)
                    off = off / steps.to(cur.device, cur.dtype).reshape((1, 1, 1, S) + (1,) * extra)
                cur = cur - self.row_sign[i][a].reshape(1, 1, N, S, *[1] * extra).to(cur.dtype) * off
            if self.ops is not None:
                self._count_tile(i, spec, a, cur, pc)
            if not adc:  # exact sums: shift-added, up to dac_levels x 2^weight_bits x rows (past float32's 2^24)
                cur = cur.double()
            tile = None
            for k in range(S):  # digital shift-and-add of the slices: weight = sum_s level_s 2^(b s)
                rel = float(steps[k] / steps[0]) if adc else 1.0  # baseline: 2^shift (pow2) or a multiply (free)
                part = cur[:, :, :, k] if k == 0 and rel == 1.0 else cur[:, :, :, k] * (rel * 2 ** (b * k))
                tile = part if tile is None else tile.add_(part)
            if adc:  # each tile's codes times the step, added in tile order: the network's own floats (ties of the
                # next DAC's rounding then fall the same way)
                tile = tile.to(vd) * float(values[0])
            tile = tile.to(vd if adc else torch.float64)
            y = tile if y is None else y.add_(tile)
        if record:  # per slice, the 99.9th percentile of |partial sums| as the ADC sees them (chips, MVMs, tiles)
            d = torch.stack(diffs, 2).abs()  # (I, MVMs, tiles, N, S, pc)
            self.recorded.append([abs_quantile(d[..., k, :], 0.999) for k in range(S)])
        if spec.get("weight_offset"):  # offset encoding: - 2^(wb-1) x the sum of the layer's input codes
            bias = [r for *_, rows in self.geometry[i] for r in rows]
            c1 = int(spec["weight_rows"] if spec["kind"] == "linear" else spec["in_channels"])
            y = remove_weight_offset(spec, self._input_sum(spec, u, 0, c1, None, bias), y, unit if adc else 1.0)
        return y if adc else y.to(vd) * unit  # the network's units

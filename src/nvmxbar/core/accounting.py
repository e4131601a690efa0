"""What a mapped circuit does besides computing: every operation it performs (the cost model prices these counts)
and what its inputs actually read (the cell-read energy), accumulated while :class:`nvmxbar.core.simulator.Simulator`
runs (its counters ``ops`` and ``activity`` are on while these methods run, None otherwise)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .layout import OPERATION_KEYS, tile_cycles
from .networks import pool


def layer_conv(spec: dict) -> Callable[..., torch.Tensor]:
    """The layer's convolution with its padding (stride 1): conv(x, weight, groups=1)."""
    if spec["kind"] == "conv1d":
        pad1 = spec["padding"][0]
        return lambda x, w, groups=1: F.conv1d(x, w, padding=pad1, groups=groups)
    pad2 = tuple(spec["padding"])
    return lambda x, w, groups=1: F.conv2d(x, w, padding=pad2, groups=groups)


class Accounting:
    """The Simulator's counting side (a mixin: it reads the simulator's layers, tiles and circuit)."""

    def _cycles(self, i: int, pc: int) -> list[int]:
        """Mux cycles per pass of each column tile of layer i: its physical columns (those of the simulator's matrix,
        reference columns aside) on C-column tiles, converted in turn on each tile's ADCs."""
        spec = self.layers[i]
        columns = self.levels[i].shape[1] - self.ref_cols[i]
        return tile_cycles(columns, self.C, int(spec["pair"]), pc, self.chip.adc_mux)

    def _count_tile(self, i: int, spec: dict, a: int, cur: torch.Tensor, pc: int) -> None:
        """Add one row tile's operations on this batch to the counters: ``cur`` (I, B x passes, N, S, *spatial) are
        its converted signals after the subtraction; every chip runs the same operations, counted once. Its rows are
        driven in every mux cycle of every column tile; a column conducts in its own cycle, a reference column in
        every cycle of its tile."""
        ops, rows = self.ops[i], self._tile_rows[i][a]
        reads = cur.shape[1] * int(np.prod(cur.shape[4:], dtype=np.int64))  # MVMs x passes
        signals = spec["outputs"] * spec["slices"]
        cycles = sum(self._cycles(i, pc))
        columns = signals * spec["pair"] + (cycles if self.ref_cols[i] else 0)  # conducting, per pass
        ops["adc_conversions"] += reads * signals * pc
        ops["dac_activations"] += reads * rows * cycles
        ops["cell_reads"] += reads * rows * columns
        ops["column_reads"] += reads * columns
        ops["subtractions"] += reads * signals if self.digital else 0
        ops["sign_flips"] += reads * int((self.row_sign[i][a] < 0).sum())
        many = spec["slices"] > 1 or len(self.tiles[i]) > 1 or self.passes > 1
        ops["shift_adds"] += reads * signals if many else 0
        if spec.get("converters", {}).get("combination") == "free":  # the baseline's free slice ranges: a multiply
            ops["rescales"] += reads * spec["outputs"] * (spec["slices"] - 1)  # per code of every slice but the LSB

    def _count_layer(self, i: int, spec: dict, mvms: int, inputs: int) -> None:
        """Per-layer digital operations around the tiles: its ``inputs`` values written to the buffer, every MVM
        reading its weight rows' inputs from it, a rescale of every output (the baseline's per-layer scale, or uniform
        scaling's ADC-to-DAC ratio when it is not a power of two); the offset encoding's input-code sum (K adds) and
        its subtraction from every output."""
        self.ops[i]["mvms"] += mvms
        self.ops[i]["buffer_writes"] += inputs
        self.ops[i]["buffer_reads"] += mvms * int(spec["weight_rows"])
        if self.ratio is None:  # the baseline's and perlayer's circuits are "free" too
            self.ops[i]["rescales"] += mvms * spec["outputs"]
        if spec.get("weight_offset"):  # offset encoding: the K input codes summed, that sum x 2^(wb-1) subtracted
            self.ops[i]["subtractions"] += mvms * (spec["rows"] + spec["outputs"])  # from each output

    def _between_layers(self, i: int, spec: dict, y: torch.Tensor, B: int) -> torch.Tensor:
        """The digital stage after layer i (not the last): ReLU, then its 2x max-pools; ``y`` (I, B, N, *spatial).
        Counted: a comparison per ReLU output, window - 1 per output each pool keeps (once, for every chip)."""
        h = torch.relu(y)
        dims = 1 if spec["kind"] == "conv1d" else 2
        if self.ops is not None:
            self.ops[i]["relus"] += h[0].numel()
        for _ in range(int(spec["pool"])):
            flat = pool(h.flatten(0, 1), 1, dims)
            h = flat.reshape(h.shape[0], B, *flat.shape[1:])
            if self.ops is not None:
                self.ops[i]["pool_comparisons"] += h[0].numel() * (2**dims - 1)
        return h

    @torch.no_grad()
    def count_operations(self, x: torch.Tensor, bs: int = 256) -> list[dict[str, float]]:
        """Run ``x`` on the ideal crossbar and count, per layer and inference, every operation the circuit performs
        (nvmxbar.core.layout.OPERATION_KEYS): ADC conversions, row-driver activations (every pass and mux cycle),
        cell reads and bit lines charged, digital subtractions, sign flips, shift-adds of converted partial sums,
        per-output rescales, ReLU and max-pool comparisons, buffer writes and reads, and MVMs. The cost model prices
        these counts; mapping.json's analytic counts (nvmxbar.core.layout.count) must agree."""
        self.ops = [dict.fromkeys(OPERATION_KEYS, 0) for _ in self.layers]
        try:
            for a in range(0, len(x), bs):
                self.forward(x[a : a + bs])
            return [{k: v / len(x) for k, v in layer.items()} for layer in self.ops]
        finally:
            self.ops = None

    def _read_activity(self, i: int, u: torch.Tensor, spec: dict) -> None:
        """Accumulate what layer i's input codes ``u`` (B, features) or (B, channels, *spatial) read: per MVM and
        driven row, a_r x the row's conductance and a_r x the row's number of cells (a convolution's MVMs are its
        output positions: a convolution of a_r with the rows' two sums, so inputs are never unfolded)."""
        code = u.abs().round().long()
        ones = torch.tensor([bin(c).count("1") for c in range(self.dac_levels + 1)], dtype=torch.float64)
        ones = ones.to(code.device)[code]  # 1-bits of each code: the bit-serial passes that drive the row
        sq = (code.double() / self.dac_levels) ** 2
        gn, Kw = self._row_gn[i], int(spec["weight_rows"])  # (2, K): per row its G and its number of cells
        acc = self.activity[i]
        if spec["kind"] == "linear":
            mvms = u.shape[0]
            drives = ((ones @ gn[:, :Kw].T).sum(0), (sq @ gn[:, :Kw].T).sum(0))
        else:
            conv = layer_conv(spec)
            kern = gn[:, :Kw].reshape(2, u.shape[1], *spec["kernel"])
            out = conv(ones, kern)
            mvms = out[:, 0].numel()
            sums = lambda y: y.transpose(0, 1).reshape(2, -1).sum(1)  # noqa: E731
            drives = (sums(out), sums(conv(sq, kern)))
        bias = gn[:, Kw:].sum(1)  # driven at full scale: every bit on, (code / full code)^2 = 1
        full = (mvms * bin(self.dac_levels).count("1") * bias, mvms * bias)
        for k, (d, f) in enumerate(zip(drives, full, strict=True)):  # k: bit_serial, multibit
            acc[k] += float(d[0] + f[0])
            acc[3 + k] += float(d[1] + f[1])
        acc[2] += mvms

    @torch.no_grad()
    def read_activity(self, x: torch.Tensor, bs: int = 64) -> list[dict]:
        """What the inputs actually read, per layer and per MVM (ideal devices): sum over driven rows of
        a_r x (the row's used-cell conductance, uS), averaged over the MVMs of ``x``. ``bit_serial``: a_r = the
        number of 1-bits of the row's input code (one pass per bit; a negative code drives -V, same energy);
        ``multibit``: a_r = (code / full code)^2 (one pass). A reference column conducts in every mux cycle of its tile
        (it is subtracted from every converted column): its G counts once per cycle. Times V_read^2 t_cycle it is the
        array's column-current energy (nvmxbar.core.array_energy).

        ``read_cells_per_mvm`` (bit_serial, multibit): the same sums with every cell's G replaced by 1, i.e. sum over
        driven rows of a_r x the row's number of used cells (reference cells once per cycle): the G_min coefficient
        A of the read conductance S = A G_min + dG x (sum of a_r x the rows' levels), so that under another device
        (G_min', dG') it is exactly A G_min' + (S - A G_min) / dG x dG' (nvmxbar.report.sensitivity reprices it)."""
        dev = self.chip.device
        dg = (dev.g_max_us - dev.g_min_us) / self.L
        self._row_gn = []  # (2, K) per matrix row: the G its input reads per pass, and the number of cells it reads
        for i, lev in enumerate(self.levels):
            times = torch.ones(lev.shape[1], dtype=torch.float64, device=lev.device)
            if self.ref_cols[i]:
                times[lev.shape[1] - self.ref_cols[i] :] = torch.tensor(self._cycles(i, 1), dtype=torch.float64)
            g = ((lev.double() * dg + dev.g_min_us) * times).sum(1)
            self._row_gn.append(torch.stack([g, torch.ones_like(lev, dtype=torch.float64).mul(times).sum(1)]))
        self.activity = [[0.0, 0.0, 0, 0.0, 0.0] for _ in self.layers]
        try:
            for a in range(0, len(x), bs):
                self.forward(x[a : a + bs])
            return [
                {
                    "bit_serial": s / n,
                    "multibit": m / n,
                    "mvms_measured": n,
                    "samples": len(x),
                    "read_cells_per_mvm": {"bit_serial": cs / n, "multibit": cm / n},
                }
                for s, m, n, cs, cm in self.activity
            ]
        finally:
            self.activity = None

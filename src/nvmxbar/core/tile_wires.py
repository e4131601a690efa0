"""IR drop in the simulator: a layer's used cells, placed where they sit on their tiles, replaced by the transfer
conductances their wires leave them (:func:`nvmxbar.core.ir_drop.effective_conductance`, checked against the exact
nodal solve of :mod:`nvmxbar.core.parasitics` and against ngspice).

The read it models is the one the cost model prices (docs/COSTMODEL.md, "time base"): a tile's ADCs convert its
signals in ``adc_mux`` cycles; in cycle k each ADC senses its k-th signal (a pair's two columns, or one column), and
only those columns conduct, each held at its sense amplifier's virtual ground; the other columns are disconnected
(absent). A one-device tile's reference column (analog offset removal) is read in every cycle, at the far end of
the tile's rows (physical position C; ``chip.wires.reference_column`` first: position 0, middle: C / 2, the data
columns from there on one position further). The rows are driven in every cycle. So each (row tile, column tile, cycle)
is one problem: the tile's R physical rows (a matrix row at the physical row it is mapped to, unused rows not
driven and their access transistors off: no cell), its active columns at their physical positions, the chip's
wires (``chip.wires``) times a scale. Its transfer matrix W gives every active column's current for any input, so
the simulator runs unchanged on W (a cell's W in place of its G); a column's reference is its own cycle's.

Linear cells, as the exact solver and CrossSim assume. Read noise is drawn on the cells' conductances (not
attenuated by the wires) and the drift compensation's reference reads see no wires: both second order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..chip import Chip
from .ir_drop import effective_conductance

#: The largest wire load, G_max x (r_row C^2 + r_col R^2) / 2 (the first-order relative drop of a full tile at
#: G_max, every wire resistance scaled), at which the fast model was checked against the exact nodal solve
#: (tests/unit/test_tile_wires.py: 128 x 128 tiles of neurosim_v13's 166.7 uS cells at 5 x the 22 nm wires, 31.9;
#: benchmarks/ir_drop_check.py on the deployed HAR layers); the simulator refuses a chip beyond it.
LOAD_CHECKED = 32.0


def wire_load(g_max_s: float, chip: Chip, scale: float) -> float:
    """G_max x (r_row C^2 + r_col R^2) / 2 at ``scale`` x the chip's wires (siemens x ohms: dimensionless)."""
    w, t = chip.wires, chip.tile
    return g_max_s * scale * (w.row_ohm_per_cell * t.cols**2 + w.col_ohm_per_cell * t.rows**2) / 2


def check_load(g_max_s: float, chip: Chip, scale: float) -> None:
    """Refuse, naming it, a wire load (:func:`wire_load`, cells up to ``g_max_s`` siemens) beyond LOAD_CHECKED."""
    load = wire_load(g_max_s, chip, scale)
    if load > LOAD_CHECKED:
        raise ValueError(
            f"IR drop: a wire load G_max x (r_row C^2 + r_col R^2) / 2 of {load:.1f} (wire_scale {scale:g}, "
            f"{chip.tile.rows} x {chip.tile.cols} tiles, cells up to {g_max_s * 1e6:.1f} uS) is outside the "
            f"range where the fast model was checked against the exact solver (up to {LOAD_CHECKED:g}); use a "
            "smaller wire_scale, smaller tiles or a device of lower conductance"
        )


@dataclass(frozen=True)
class Phase:
    """One (row tile, column tile, mux cycle) of a layer: the matrix rows [a, e) at physical rows ``rows``, the
    layer's columns ``cols`` (its used-cell matrix's) and the column index of the reference column read with them
    (None: no reference); ``positions`` the physical positions of [cols, ref] in increasing order, ``order`` which of
    [cols, ref] each of them is (None: [cols, ref] already in that order)."""

    a: int
    e: int
    rows: torch.Tensor
    cols: torch.Tensor
    positions: torch.Tensor
    ref: int | None
    order: torch.Tensor | None = None


def reference_position(chip: Chip) -> int:
    """The physical position of a one-device tile's reference column (``chip.wires.reference_column``); the data
    columns at or after it move one position on."""
    C = chip.tile.cols
    return {"last": C, "first": 0, "middle": C // 2}[chip.wires.reference_column]


def row_positions(arrays: dict[str, np.ndarray], i: int, K: int) -> np.ndarray:
    """(K,) the physical row (within its tile) each matrix row of layer i is mapped to (crossbar.npz row_index)."""
    row_index = arrays[f"L{i}.row_index"].astype(np.int64)
    R = arrays[f"L{i}.levels"].shape[2]
    pos = np.zeros(K, dtype=np.int64)
    driven = np.flatnonzero(row_index >= 0)
    pos[row_index[driven]] = driven % R
    return pos


def cycle_of(position: np.ndarray, chip: Chip, pair: int) -> np.ndarray:
    """The mux cycle in which a tile's column at ``position`` is sensed: its signal (a pair's two columns when the
    pair is subtracted in analog, else the column) is the u-th of its tile, converted by ADC u // mux in cycle u % mux
    (the layout's contiguous groups of ``adc_mux`` signals per ADC)."""
    unit = position // 2 if pair == 2 and chip.subtraction == "analog" else position
    return unit % chip.adc_mux


def phases(chip: Chip, spec: dict, tiles: list[tuple[int, int]], row_pos: np.ndarray, refs: int) -> list[Phase]:
    """Every (row tile, column tile, cycle) problem of a layer whose used-cell matrix has the row tiles ``tiles``
    (matrix rows [a, e)), each matrix row at physical row ``row_pos[m]`` of its tile, and ``refs`` reference columns
    appended after its N*S*P columns (one per column tile)."""
    C, r = chip.tile.cols, reference_position(chip)
    ncol = spec["outputs"] * spec["slices"] * spec["pair"]
    out = []
    for a, e in tiles:
        rows = torch.from_numpy(row_pos[a:e].astype(np.int64))
        for j in range(-(-ncol // C)):
            cols = np.arange(j * C, min((j + 1) * C, ncol))
            pos = cols - j * C
            cyc = cycle_of(pos, chip, spec["pair"])
            for k in np.unique(cyc):
                sel, p = cols[cyc == k], pos[cyc == k]
                ref, order = (ncol + j, None) if refs else (None, None)
                if refs:
                    p = np.concatenate([p + (p >= r), [r]])  # the reference at r, the columns from r on shifted
                    order = np.argsort(p, kind="stable")
                    p, order = p[order], (None if r == C else torch.from_numpy(order))
                out.append(Phase(a, e, rows, torch.from_numpy(sel), torch.from_numpy(p), ref, order))
    return out


def wired(
    g: torch.Tensor, problems: list[Phase], chip: Chip, dg_us: float, scale: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chips' conductances ``g`` (I, K, columns [+ references]) in dG units (``dg_us`` microsiemens) -> (what each
    used cell contributes to its column's current under IR drop, (I, K, columns); and per column, its own cycle's
    reference column's contribution on each row, (I, K, columns), or None without references), in dG units. The
    chip's four wire resistances are multiplied by ``scale``. Problems with the same number of active columns are
    solved in one batch."""
    w = chip.wires
    R = chip.tile.rows
    I = g.shape[0]
    check_load(float(g.max()) * dg_us * 1e-6, chip, scale)
    refs = any(p.ref is not None for p in problems)
    ncol = g.shape[-1] - (len({p.ref for p in problems}) if refs else 0)
    to_s = dg_us * 1e-6
    out = g[..., :ncol].clone()
    ref_out = torch.zeros_like(out) if refs else None
    by_n: dict[int, list[Phase]] = {}
    for p in problems:
        by_n.setdefault(len(p.positions), []).append(p)
    for n, group in by_n.items():
        G = g.new_zeros(len(group), I, R, n, dtype=torch.float64)
        for b, p in enumerate(group):
            src = (
                g[:, p.a : p.e, p.cols]
                if p.ref is None
                else g[:, p.a : p.e, torch.cat([p.cols, torch.tensor([p.ref])])]
            )
            G[b][:, p.rows, :] = (src if p.order is None else src[..., p.order]).double() * to_s
        pos = torch.stack([p.positions for p in group])[:, None, :].expand(len(group), I, n)
        W = effective_conductance(
            G,
            pos,
            w.row_ohm_per_cell * scale,
            w.col_ohm_per_cell * scale,
            w.driver_ohm * scale,
            w.sense_ohm * scale,
        ).W
        for b, p in enumerate(group):
            cells = W[b][:, p.rows, :] / to_s  # (I, e - a, n), by position
            if p.order is not None:  # back to [cols, ref]
                cells = cells[..., torch.argsort(p.order)]
            k = len(p.cols)
            out[:, p.a : p.e, p.cols] = cells[..., :k].to(out.dtype)
            if p.ref is not None:
                ref_out[:, p.a : p.e, p.cols] = cells[..., k:].expand(-1, -1, k).to(out.dtype)
    return out, ref_out

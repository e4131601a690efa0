"""Wire parasitics (IR drop) of one crossbar tile, solved exactly: the linear resistive network of the tile's row
and column wires, its cells, the row drivers and the column sense amplifiers, by one sparse factorisation.

**Convention** (fixed: the fast torch model is written against the same one). A tile has R physical rows i = 0..R-1
and n ACTIVE columns at integer physical positions p_0 < p_1 < ... < p_{n-1} (>= 0, in cell pitches); an inactive
column is disconnected at both ends and carries nothing, so it is simply absent.

* Row wire of row i: ideal source V_i -> r_drv -> (p_0 + 1) x r_row -> row node a(i,0) of the cell at active column
  0 -> (p_1 - p_0) x r_row -> a(i,1) -> ... -> a(i,n-1). With p = 0, 1, 2, ... every cell has one r_row segment
  before it (CrossSim's convention: N segments per line).
* Cell (i,k) joins a(i,k) and the column node b(i,k) with conductance G[i,k] >= 0 (0: no conducting cell).
* Column wire of active column k: b(i,k) -- r_col -- b(i+1,k) for i = 0..R-2; b(R-1,k) -- (r_col + r_sense) -- the
  sense node, held at 0 V (the sense amplifier's virtual ground). Output I_k: the current into the sense node.
* Green's-function form: with cell currents I[i,k] = G[i,k] (a(i,k) - b(i,k)),
  V_i - a(i,k) = sum_k' I[i,k'] (r_drv + r_row (p_min(k,k') + 1)) and
  b(i,k) = sum_i' I[i',k] (r_sense + r_col (R - max(i,i'))).
* Transfer matrix W (R, n): W[i,k] = dI_k / dV_i, so I = V @ W; with every wire resistance 0, W = G. SI units.

**Method** (docs/sources/irdrop.md section 4.1). Kirchhoff's current law at the 2 R n nodes, unknowns
x = [a; b] (row nodes first, then column nodes, each row-major (i, k)), gives K x = B V with the symmetric positive
definite block matrix K = [[L_row + D_in + D_G, -D_G], [-D_G, L_col + D_out + D_G]] (path-graph Laplacians of the
row and column wires, D_G = diag(G), D_in / D_out the driver and sense conductances at the line ends) and B the
driver conductances injecting V_i at a(i,0). This is the network of CrossSim's Topology A (sandialabs/cross-sim,
simulator/circuits/array/NonInterleaved_InputSource.py, which relaxes it iteratively) and the block structure of
A. Chen, "A comprehensive crossbar array model with solutions for line resistance and nonlinear device
characteristics", IEEE TED 60(4):1318-1326, 2013. K does not depend on V: one factorisation serves every input.

**Zero-ohm segments** are merged: with r_row = 0 a row's nodes are one node (the source node itself when r_drv = 0
too); with r_col = 0 a column's nodes are one node (the sense node itself when r_sense = 0 too). Every wire
resistance 0: the ideal W = G, without any solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


@dataclass(frozen=True)
class Wires:
    """Wire resistances of a tile, ohms: ``row_ohm`` per cell pitch of a row wire, ``col_ohm`` per cell pitch of a
    column wire, ``driver_ohm`` the row driver's output resistance, ``sense_ohm`` the series resistance between a
    column's last cell segment and its sense amplifier's virtual ground (a mux switch)."""

    row_ohm: float
    col_ohm: float
    driver_ohm: float = 0.0
    sense_ohm: float = 0.0

    def __post_init__(self) -> None:
        for name in ("row_ohm", "col_ohm", "driver_ohm", "sense_ohm"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"Wires.{name} = {value!r}: need a number of ohms") from None
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Wires.{name} = {value!r}: need a finite resistance >= 0 ohm")
            object.__setattr__(self, name, value)

    @property
    def ideal(self) -> bool:
        """Every resistance 0: the tile computes exactly G.V."""
        return self.row_ohm == self.col_ohm == self.driver_ohm == self.sense_ohm == 0


class NodalSystem(NamedTuple):
    """The tile's network: K x = B V for the free node voltages x, and I = C x + D V for the column currents.

    ``K`` (N, N) scipy.sparse csc, symmetric positive definite; ``B`` (N, R) csc, the input injection; ``C`` (n, N)
    csc, the sense conductances; ``D`` (n, R) dense, the cells tied straight from a source to a sense node (only with
    r_row = r_drv = r_col = r_sense = 0). ``index`` (2, R, n) int: where each physical node's voltage is found in
    the extended vector [x; V; 0 x n]: [0] the row nodes a(i,k), [1] the column nodes b(i,k). Without zero-ohm
    segments N = 2 R n and index[0] = i n + k, index[1] = R n + i n + k (the layout of section 4.1)."""

    K: sp.csc_matrix
    B: sp.csc_matrix
    C: sp.csc_matrix
    D: np.ndarray
    index: np.ndarray


def _check_tile(G: np.ndarray, positions: np.ndarray | None, wires: Wires) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 conductances (R, n) and int64 positions (n,)."""
    if not isinstance(wires, Wires):
        raise ValueError(f"wires: need a Wires instance, got {type(wires).__name__}")
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
        raise ValueError(f"G: need a 2-D (rows, active columns) array with both >= 1, got shape {G.shape}")
    if not np.all(np.isfinite(G)) or np.any(G < 0):
        raise ValueError("G: conductances must be finite and >= 0 siemens")
    n = G.shape[1]
    if positions is None:
        return G, np.arange(n, dtype=np.int64)
    p = np.asarray(positions)
    if p.ndim != 1 or p.shape[0] != n:
        raise ValueError(f"positions: need one position per active column ({n}), got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p != np.round(p)):
        raise ValueError(f"positions: need integers (cell pitches), got {p.tolist()}")
    p = p.astype(np.int64)
    if np.any(p < 0):
        raise ValueError(f"positions: need positions >= 0, got {p.tolist()}")
    if np.any(np.diff(p) <= 0):
        raise ValueError(f"positions: need strictly increasing positions, got {p.tolist()}")
    return G, p


def _check_inputs(V: np.ndarray, R: int) -> np.ndarray:
    V = np.asarray(V, dtype=np.float64)
    if V.ndim not in (1, 2) or V.shape[0] != R:
        raise ValueError(f"V: need shape ({R},) or ({R}, m) for a tile of {R} rows, got {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ValueError("V: input voltages must be finite")
    return V


def nodal_system(G: np.ndarray, positions: np.ndarray | None, wires: Wires) -> NodalSystem:
    """The sparse nodal system of a tile (module docstring: convention, method, zero-ohm merging). ``G`` (R, n)
    siemens, ``positions`` (n,) the active columns' physical positions (None: 0 .. n-1), ``wires`` ohms."""
    G, p = _check_tile(G, positions, wires)
    R, n = G.shape
    rn = R * n
    row_merged, col_merged = wires.row_ohm == 0, wires.col_ohm == 0
    row_fixed = row_merged and wires.driver_ohm == 0  # a row is its source node
    col_fixed = col_merged and wires.sense_ohm == 0  # a column is its sense node
    ii, kk = np.meshgrid(np.arange(R), np.arange(n), indexing="ij")
    # the class (index in [x; V; 0 x n]) of every physical node: a(i,k), b(i,k), then the sources, the sense nodes
    n_row = 0 if row_fixed else (R if row_merged else rn)
    n_col = 0 if col_fixed else (n if col_merged else rn)
    N = n_row + n_col
    a_cls = ii + N if row_fixed else (ii if row_merged else ii * n + kk)
    b_cls = kk + N + R if col_fixed else n_row + (kk if col_merged else ii * n + kk)
    src_cls, sense_cls = N + np.arange(R), N + R + np.arange(n)

    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (class, class, conductance); zero-ohm: merged

    def edge(x: np.ndarray, y: np.ndarray, conductance: np.ndarray | float) -> None:
        x, y = np.ravel(x), np.ravel(y)
        edges.append((x, y, np.broadcast_to(np.ravel(conductance), x.shape)))

    if not row_fixed:  # driver plus the first row segment
        edge(src_cls, a_cls[:, 0], 1.0 / (wires.driver_ohm + (p[0] + 1) * wires.row_ohm))
    if not row_merged and n > 1:  # the row segments between active columns, (p_k - p_k-1) r_row each
        edge(a_cls[:, :-1], a_cls[:, 1:], np.broadcast_to(1.0 / (np.diff(p) * wires.row_ohm), (R, n - 1)))
    on = G > 0
    edge(a_cls[on], b_cls[on], G[on])  # the cells
    if not col_merged and R > 1:  # the column segments
        edge(b_cls[:-1], b_cls[1:], 1.0 / wires.col_ohm)
    if not col_fixed:  # last column segment plus the sense resistance
        edge(b_cls[-1], sense_cls, 1.0 / (wires.col_ohm + wires.sense_ohm))
    u, v, g = (np.concatenate(e) for e in zip(*edges))

    # every edge has at least one free end unless it is a cell from a fixed row to a fixed column (D)
    fu, fv = u < N, v < N
    both = fu & fv
    diag_i = np.concatenate([u[fu], v[fv]])
    diag_g = np.concatenate([g[fu], g[fv]])
    K = sp.coo_matrix(
        (
            np.concatenate([diag_g, -g[both], -g[both]]),
            (np.concatenate([diag_i, u[both], v[both]]), np.concatenate([diag_i, v[both], u[both]])),
        ),
        (N, N),
    ).tocsc()
    # a free node tied to a source (the other end of an edge from class N + j): injection g V_j
    free = np.concatenate([u[fu & ~fv], v[fv & ~fu]])
    other = np.concatenate([v[fu & ~fv], u[fv & ~fu]])
    gf = np.concatenate([g[fu & ~fv], g[fv & ~fu]])
    src, sense = (other >= N) & (other < N + R), other >= N + R
    B = sp.coo_matrix((gf[src], (free[src], other[src] - N)), (N, R)).tocsc()
    C = sp.coo_matrix((gf[sense], (other[sense] - N - R, free[sense])), (n, N)).tocsc()
    D = np.zeros((n, R))
    tied = ~fu & ~fv
    np.add.at(D, (v[tied] - N - R, u[tied] - N), g[tied])
    return NodalSystem(K, B, C, D, np.stack([a_cls, b_cls]).astype(np.int64))


class _Factored:
    """A tile's nodal system with K factorised once (scipy SuperLU)."""

    def __init__(self, G: np.ndarray, positions: np.ndarray | None, wires: Wires):
        self.system = nodal_system(G, positions, wires)
        N = self.system.K.shape[0]
        self.lu = spla.splu(self.system.K, permc_spec="COLAMD") if N else None

    def nodes(self, V: np.ndarray) -> np.ndarray:
        """The free node voltages x for inputs V (R,) or (R, m)."""
        rhs = self.system.B @ V
        return self.lu.solve(np.asarray(rhs, dtype=np.float64)) if self.lu is not None else rhs

    def currents(self, V: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.system.C @ x + self.system.D @ V


def column_currents(G: np.ndarray, V: np.ndarray, positions: np.ndarray | None, wires: Wires) -> np.ndarray:
    """Column currents I (amperes, into the sense nodes) of a tile driven by ``V``: (R,) volts -> (n,), or (R, m),
    m input vectors at once (one factorisation) -> (n, m). Ideal wires: G.T @ V."""
    G, p = _check_tile(G, positions, wires)
    V = _check_inputs(V, G.shape[0])
    if wires.ideal:
        return G.T @ V
    f = _Factored(G, p, wires)
    return f.currents(V, f.nodes(V))


def solve_nodes(
    G: np.ndarray, V: np.ndarray, positions: np.ndarray | None, wires: Wires
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node voltages and column currents of a tile driven by ``V`` (R,) or (R, m): (a, b, I), a and b the row and
    column node voltages (R, n) or (R, n, m) volts, I as :func:`column_currents`."""
    G, p = _check_tile(G, positions, wires)
    V = _check_inputs(V, G.shape[0])
    R, n = G.shape
    if wires.ideal:
        a = np.broadcast_to(V[:, None], (R, n) + V.shape[1:]).copy()
        return a, np.zeros_like(a), G.T @ V
    f = _Factored(G, p, wires)
    x = f.nodes(V)
    full = np.concatenate([x, V, np.zeros((n,) + V.shape[1:])])[f.system.index]
    return full[0], full[1], f.currents(V, x)


def transfer_matrix(G: np.ndarray, positions: np.ndarray | None, wires: Wires) -> np.ndarray:
    """The exact transfer matrix W (R, n) siemens of a tile, W[i,k] = dI_k / dV_i (I = V @ W; ideal wires: W = G).
    W^T = C K^-1 B + D: min(R, n) solves, forward (K X = B, one per row) or adjoint (K Y = C^T, one per column;
    K is symmetric, so W^T = Y^T B + D)."""
    G, p = _check_tile(G, positions, wires)
    if wires.ideal:
        return G.copy()
    f = _Factored(G, p, wires)
    s = f.system
    if f.lu is None:
        return s.D.T.copy()
    if G.shape[0] <= G.shape[1]:  # forward: one solve per row
        return np.asarray(s.C @ f.lu.solve(s.B.toarray()) + s.D).T.copy()
    return np.asarray(s.B.T @ f.lu.solve(s.C.T.toarray())) + s.D.T  # adjoint: one solve per column

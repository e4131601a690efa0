"""IR drop on the wires of a crossbar tile: the tile's effective conductance (transfer) matrix, for many tiles at once.

Convention (CrossSim's "Topology A": the cell current is sourced from the input line, so both the row and the column
wires carry drops; docs/sources/irdrop.md sections 1.2 and 4.1). A tile has R physical rows i = 0..R-1 and n ACTIVE
columns k = 0..n-1 at integer physical positions p_0 < ... < p_{n-1} (inactive columns are absent electrically).

- Row i is driven at its LEFT end by an ideal source V_i through the driver resistance r_drv, then (p_0 + 1) row
  segments of r_row reach the row node of cell (i, 0), then (p_k - p_{k-1}) segments reach that of cell (i, k).
- Cell (i, k) joins its row node and its column node with conductance G[i, k] >= 0.
- Column k runs down: column node (i, k) -- r_col -- column node (i + 1, k), and column node (R - 1, k) --
  (r_col + r_sense) -- the sense node, held at 0 V (a virtual ground, as CrossSim assumes). I_k is the current into
  the sense node. Every line thus has one segment per cell, as in CrossSim and NeuroSim (irdrop.md 1.2, 3, 4.1).

With the cell voltages u[i, k] (row node - column node) and cell currents G o u, the two wires are resistance
Green's functions (the resistance of the common path to the source, resp. to the sense node):

    V_i - rownode(i, k) = sum_k' G u[i, k'] (r_drv + r_row (p_min(k,k') + 1))      =: Lrow(G o u)
    colnode(i, k)       = sum_i' G u[i', k] (r_sense + r_col (R - max(i, i')))      =: Lcol(G o u)

so (Id + L diag(G)) u = V 1^T with L = Lrow + Lcol symmetric positive semi-definite. Each L is applied in O(R n)
with two cumulative sums (the sum of segment resistance x the current through the segment). With S = sqrt(G) and
w = S o u the system becomes symmetric, A w = S o (V 1^T) with A = Id + S L S, positive definite with eigenvalues
>= 1, and I_k = sum_i S[i, k] w[i, k]. It is solved by conjugate gradients (Hestenes & Stiefel, "Methods of
conjugate gradients for solving linear systems", J. Res. NBS 49(6):409-436, 1952): 5 to 20 iterations in the
tests, including a 64 x 64 tile of 1 kOhm cells on 2.5 Ohm wires where CrossSim's point (Jacobi) relaxation of the
same equations diverges (irdrop.md section 5, last bullet). Batched: every problem and right-hand side at once, a
problem leaving the batch once all its right-hand sides have converged.

The circuit is linear, so I = V^T W with W[i, k] = dI_k / dV_i, the tile's effective conductance matrix: the
simulator uses it in place of G. W comes from either

- the forward form, one right-hand side per row: V = e_j gives W[j, :] (R solves), or
- the adjoint form, one per column (A is symmetric): A z_k = S o E_k, with E_k the indicator of column k, gives
  W[i, k] = sum_k' S[i, k'] z_k[i, k'] (n solves),

whichever has fewer right-hand sides (the adjoint one for a mux phase: 16 columns of 128 rows). Only the products
G x r matter. Everything is computed in float64 and returned in G's dtype, on G's device.

Assumed, as CrossSim does (irdrop.md 1.1, 4.2): linear cells, ideal select switches, every active column's sense
node at 0 V; columns outside ``positions`` (e.g. those of the other mux phases) are left floating: absent.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import torch

#: Bytes of one CG array (a chunk's problems x right-hand sides x R x n, float64) the default chunk aims at, per
#: device type. On the CPU, 1 MiB keeps the working set near the caches: a 128 x 16 mux phase's 16 right-hand sides
#: are 256 KiB, and 4 of them at once ran 4.5 x faster than 64 at once (one thread of a shared 2-core CPU).
#: On a GPU, 24 MiB: large enough to fill it. With STATE_ARRAYS such arrays, a chunk holds ~10 MiB on the CPU and
#: ~240 MiB on a GPU, whatever the batch (G, W and their float64 copies aside).
ARRAY_BYTES = {"cpu": 2**20, "other": 24 * 2**20}
#: float64 arrays of a chunk's size that the solve holds at most: the CG state (x, r, p), the operator's three
#: buffers (A p among them) and the four arrays that recompute the true residual of the problems that finish.
STATE_ARRAYS = 10
#: The stiffest case the tests check (tests/unit/test_ir_drop.py): 64 x 64 cells of up to 1 kOhm on 2.5 Ohm wires,
#: G x r = 2.5e-3 and G x r x (R^2 + n^2) = 20.5 (the largest eigenvalue of S L S grows like this product): 12 CG
#: iterations at rtol 1e-6, 20 at 1e-10. For the non-convergence message.
CHECKED_STIFFNESS = 20.5


class IRDrop(NamedTuple):
    """What :func:`effective_conductance` returns; ``batch`` is G's shape without its last two dimensions."""

    W: torch.Tensor  #: (..., R, n), G's dtype and device: I_k = sum_i V_i W[i, k]
    iterations: torch.Tensor  #: (batch) int64: the CG iterations each problem took (0 without wires)
    residual: torch.Tensor  #: (batch) float64: max over right-hand sides of ||b - A x|| / ||b||, recomputed at the end


def effective_conductance(
    G: torch.Tensor,
    positions: torch.Tensor | np.ndarray | list[int],
    r_row: float,
    r_col: float,
    r_drv: float = 0.0,
    r_sense: float = 0.0,
    *,
    rtol: float = 1e-6,
    max_iter: int = 200,
    chunk: int | None = None,
    method: str = "auto",
) -> IRDrop:
    """The effective conductance matrix W of every tile in ``G`` under IR drop on its wires (module docstring).

    G: (..., R, n) cell conductances in siemens (any leading batch dimensions: chips, tiles, mux phases).
    positions: (n,) integer physical positions of the active columns, shared by the batch, or a (..., n) tensor
    broadcastable to G's batch dimensions (per-problem positions); non-negative and strictly increasing.
    r_row, r_col: ohms per row / column segment; r_drv: driver resistance; r_sense: sense (mux) resistance.
    rtol: relative residual ||b - A x|| / ||b|| every right-hand side of a problem must reach. max_iter: CG
    iterations at most (ValueError naming the problem beyond). chunk: problems solved at once (default: as many as
    fit ARRAY_BYTES with all their right-hand sides, at least one; a problem larger than that solves its
    right-hand sides in groups that fit). method: "adjoint" (n right-hand sides), "forward" (R right-hand sides) or
    "auto" (the fewer of the two).

    Returns :class:`IRDrop` (W, iterations, residual). All wire resistances 0: W is G (a copy), exactly.
    """
    G, positions, batch = _check(G, positions, r_row, r_col, r_drv, r_sense, rtol, max_iter, chunk, method)
    r_row, r_col, r_drv, r_sense = float(r_row), float(r_col), float(r_drv), float(r_sense)
    R, n = G.shape[-2:]
    nprob = math.prod(batch)
    iterations = torch.zeros(batch, dtype=torch.int64, device=G.device)
    residual = torch.zeros(batch, dtype=torch.float64, device=G.device)
    if nprob == 0 or not (r_row or r_col or r_drv or r_sense):
        return IRDrop(G.clone(), iterations, residual)
    adjoint = method == "adjoint" or (method == "auto" and n <= R)
    m = n if adjoint else R  # right-hand sides per problem
    target = ARRAY_BYTES["cpu" if G.device.type == "cpu" else "other"] // (8 * R * n)  # problems x right-hand sides
    if chunk is None:
        chunk = max(1, target // m)
    group = min(m, max(1, target // chunk))  # one problem larger than the target: its right-hand sides in groups

    g = G.reshape(nprob, R, n).to(torch.float64)
    # row segments: rho_0 = r_drv + (p_0 + 1) r_row, rho_k = (p_k - p_{k-1}) r_row; column segments: sigma_i = r_col,
    # sigma_{R-1} = r_col + r_sense (the last one ends at the sense node)
    p = positions.to(device=G.device, dtype=torch.float64)
    steps = torch.cat([p[..., :1] + 1, p[..., 1:] - p[..., :-1]], dim=-1) * r_row
    steps[..., 0] += r_drv
    rho = steps.expand(*batch, n).reshape(nprob, n)
    sigma = torch.full((R, 1), r_col, dtype=torch.float64, device=G.device)
    sigma[-1] += r_sense

    W = torch.empty_like(g)
    its = iterations.view(nprob)
    res = residual.view(nprob)
    for start in range(0, nprob, chunk):
        sl = slice(start, min(start + chunk, nprob))
        for first in range(0, m, group):
            rhs = slice(first, min(first + group, m))
            _solve(
                g[sl], rho[sl], sigma, adjoint, rhs, rtol, max_iter, W[sl], its[sl], res[sl], start, batch, r_row, r_col
            )
    return IRDrop(W.reshape(G.shape).to(G.dtype), iterations, residual)


def _check(
    G: torch.Tensor,
    positions: torch.Tensor | np.ndarray | list[int],
    r_row: float,
    r_col: float,
    r_drv: float,
    r_sense: float,
    rtol: float,
    max_iter: int,
    chunk: int | None,
    method: str,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """The arguments checked (ValueError naming what is wrong); positions as an int64 tensor on G's device."""
    if not isinstance(G, torch.Tensor) or not G.is_floating_point() or G.dim() < 2:
        what = f"a {G.dtype} tensor of shape {tuple(G.shape)}" if isinstance(G, torch.Tensor) else type(G).__name__
        raise ValueError(f"G: a floating-point tensor of shape (..., R, n) (siemens), got {what}")
    R, n = G.shape[-2:]
    batch = tuple(G.shape[:-2])
    if R < 1 or n < 1:
        raise ValueError(f"G: a tile needs at least one row and one column, got shape {tuple(G.shape)}")
    bad = ~torch.isfinite(G) | (G < 0)
    if bad.any():
        cell = tuple(int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(f"G: conductances must be finite and >= 0; G{list(cell)} = {G[cell].item()!r}")
    for name, r in (("r_row", r_row), ("r_col", r_col), ("r_drv", r_drv), ("r_sense", r_sense)):
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not math.isfinite(r) or r < 0:
            raise ValueError(f"{name}: a resistance in ohms, finite and >= 0, got {r!r}")
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol: between 0 and 1, got {rtol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter: an integer >= 1, got {max_iter!r}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk: an integer >= 1 (problems at once) or None, got {chunk!r}")
    if method not in ("auto", "adjoint", "forward"):
        raise ValueError(f"method: 'auto', 'adjoint' or 'forward', got {method!r}")

    p = torch.as_tensor(positions, device=G.device)
    if p.is_floating_point():
        if not (torch.isfinite(p).all() and (p == p.round()).all()):
            raise ValueError(f"positions: integer column positions, got {p.tolist()}")
        p = p.round()
    elif p.dtype == torch.bool or p.is_complex():
        raise ValueError(f"positions: integer column positions, got dtype {p.dtype}")
    p = p.to(torch.int64)
    if p.dim() < 1 or p.shape[-1] != n:
        raise ValueError(
            f"positions: shape (n,) or (..., n) with n = {n} active columns (G's last dim), got {tuple(p.shape)}"
        )
    try:
        ok = torch.broadcast_shapes(p.shape[:-1], batch) == batch
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"positions: batch shape {tuple(p.shape[:-1])} does not broadcast to G's batch shape {batch}")
    if (p < 0).any():
        raise ValueError(f"positions: physical column positions >= 0, got a minimum of {int(p.min())}")
    if n > 1 and not (p[..., 1:] > p[..., :-1]).all():
        raise ValueError("positions: strictly increasing along the last dimension (p_0 < ... < p_{n-1})")
    return G, p, batch


class _Operator:
    """A y = y + S o (Lrow + Lcol)(S o y) on y (b, m, R, n), into its own buffers (three arrays of y's shape, made
    once per active set: no allocation per iteration). S (b, 1, R, n), rho (b, 1, 1, n), sigma (R, 1)."""

    def __init__(self, shape: tuple[int, ...], S: torch.Tensor, rho: torch.Tensor, sigma: torch.Tensor) -> None:
        self.S, self.rho, self.sigma = S, rho, sigma
        self.t1, self.t2, self.out = (torch.empty(shape, dtype=S.dtype, device=S.device) for _ in range(3))

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        t1, t2, out = self.t1, self.t2, self.out
        torch.mul(y, self.S, out=t1)  # the cell currents
        # row wire: sum over its segments m <= k of rho_m x (the current through m: the cells at k' >= m)
        torch.cumsum(t1, -1, out=t2)
        torch.sub(t1, t2, out=out).add_(t2[..., -1:]).mul_(self.rho).cumsum_(-1)
        # column wire: sum over its segments m >= i of sigma_m x (the current through m: the cells at i' <= m)
        t1.cumsum_(-2).mul_(self.sigma)
        torch.cumsum(t1, -2, out=t2)
        out.add_(t1).sub_(t2).add_(t2[..., -1:, :])
        return out.mul_(self.S).add_(y)

    def dot(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """<a, b> over the last two dimensions, kept (size 1)."""
        return torch.mul(a, b, out=self.t1).sum((-2, -1), keepdim=True)


def _solve(
    g: torch.Tensor,
    rho: torch.Tensor,
    sigma: torch.Tensor,
    adjoint: bool,
    sl: slice,
    rtol: float,
    max_iter: int,
    W: torch.Tensor,
    its: torch.Tensor,
    res: torch.Tensor,
    offset: int,
    batch: tuple[int, ...],
    r_row: float,
    r_col: float,
) -> None:
    """Batched CG on a chunk of problems g (b, R, n) and their right-hand sides ``sl`` (columns k of W for the
    adjoint form, rows j for the forward one), all at once: writes those of W and updates its and res (maxima over
    the groups of right-hand sides) in place. A problem leaves the active set once all its right-hand sides have
    reached rtol."""
    b, R, n = g.shape
    S = g.sqrt().unsqueeze(1)  # (b, 1, R, n)
    rho = rho[:, None, None, :]

    def rhs(S: torch.Tensor) -> torch.Tensor:
        if adjoint:  # A z_k = S o E_k: [k, i, k'] = S[i, k] delta(k, k')
            eye = torch.eye(n, dtype=S.dtype, device=S.device)[sl]
            return S[:, 0, :, sl].transpose(-1, -2).unsqueeze(-1) * eye[:, None, :]
        eye = torch.eye(R, dtype=S.dtype, device=S.device)[sl]  # A w_j = S o (e_j 1^T): [j, i, k] = S[i, k] d(i, j)
        return S * eye[:, :, None]

    def finish(
        done: torch.Tensor, it: int, active: torch.Tensor, x: torch.Tensor, S: torch.Tensor, rho: torch.Tensor
    ) -> None:
        """The results of the problems ``done`` (a mask on the active set), with their true residual."""
        xd, Sd = x[done], S[done]
        op = _Operator(xd.shape, Sd, rho[done], sigma)
        e = rhs(Sd)
        bn = op.dot(e, e).sqrt()
        e.sub_(op(xd))
        rel = torch.where(bn > 0, op.dot(e, e).sqrt() / bn, 0)
        index = active[done]
        res[index] = torch.maximum(res[index], rel.flatten(1).amax(1))
        its[index] = torch.clamp(its[index], min=it)
        out = xd.mul_(Sd)
        if adjoint:
            W[index, :, sl] = out.sum(-1).transpose(-1, -2)
        else:
            W[index, sl] = out.sum(-2)

    active = torch.arange(b, device=g.device)
    r = rhs(S)
    x = torch.zeros_like(r)
    p = r.clone()
    op = _Operator(x.shape, S, rho, sigma)
    rr = op.dot(r, r)
    bn = rr.sqrt()
    for it in range(max_iter + 1):
        rel = torch.where(bn > 0, rr.sqrt() / bn, 0).flatten(1).amax(1)  # the worst right-hand side of each
        done = rel <= rtol
        if done.any():
            finish(done, it, active, x, S, rho)
            keep = ~done
            if not keep.any():
                return
            active, x, r, p, rr, bn, S, rho, rel = (t[keep] for t in (active, x, r, p, rr, bn, S, rho, rel))
            op = _Operator(x.shape, S, rho, sigma)
        if it == max_iter:
            break
        Ap = op(p)
        pAp = op.dot(p, Ap)
        alpha = torch.where(pAp > 0, rr / pAp, 0)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, Ap, value=-1)
        rr_new = op.dot(r, r)
        p.mul_(torch.where(rr > 0, rr_new / rr, 0)).add_(r)
        rr = rr_new
    k = int(rel.argmax())
    worst = int(active[k])
    index = tuple(int(v) for v in np.unravel_index(offset + worst, batch)) if batch else ()
    gmax = float(g[worst].max())
    stiff = gmax * max(r_row, r_col) * (R**2 + n**2)
    beyond = " (this problem is beyond that: check the units, ohms and siemens, and raise max_iter)"
    raise ValueError(
        f"IR drop: problem {index} (of batch shape {batch}) did not converge in {max_iter} CG iterations: relative "
        f"residual {float(rel[k]):.3g} > rtol {rtol:g}. Its largest G x r: G_max x r_row = {gmax * r_row:.3g}, "
        f"G_max x r_col = {gmax * r_col:.3g} (G_max = {gmax:.3g} S), G_max x r x (R^2 + n^2) = {stiff:.3g}; "
        f"the tests check up to {CHECKED_STIFFNESS} (1 kOhm cells, 2.5 Ohm wires, 64 x 64: 20 iterations at rtol "
        f"1e-10){beyond if stiff > CHECKED_STIFFNESS else ''}"
    )

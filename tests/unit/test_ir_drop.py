"""IR drop (nvmxbar.core.ir_drop): the batched CG transfer matrix against circuits solved by hand and a nodal
solve written here from the convention (KCL at every row and column node), and the physics it must show."""

import math

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

from nvmxbar.core import ir_drop
from nvmxbar.core.ir_drop import effective_conductance


def nodal_W(G, pos, r_row, r_col, r_drv=0.0, r_sense=0.0, sparse=False):
    """W[i, k] = I_k for V = e_i, from the 2 R n node system: row nodes a(i, k), column nodes b(i, k) (the module's
    convention, docs/sources/irdrop.md 4.1); every series resistance must be > 0. Dense numpy.linalg.solve, or a
    sparse LU of the same matrix for the larger tiles."""
    R, n = G.shape
    N = 2 * R * n

    def a(i, k):
        return i * n + k

    def b(i, k):
        return R * n + i * n + k

    rows, cols, vals = [], [], []
    rhs = np.zeros((N, R))

    def to_fixed(u, g):  # a conductance from node u to a fixed voltage (its current goes on the right-hand side)
        rows.append(u), cols.append(u), vals.append(g)

    def link(u, v, g):
        rows.extend([u, v, u, v]), cols.extend([u, v, v, u]), vals.extend([g, g, -g, -g])

    g_in = 1 / (r_drv + (pos[0] + 1) * r_row)  # the source V_i to the first cell's row node
    g_out = 1 / (r_col + r_sense)  # the last column node to the sense node (0 V)
    for i in range(R):
        to_fixed(a(i, 0), g_in)
        rhs[a(i, 0), i] = g_in  # V = e_i in right-hand side i
        for k in range(n):
            if k:
                link(a(i, k - 1), a(i, k), 1 / ((pos[k] - pos[k - 1]) * r_row))
            link(a(i, k), b(i, k), G[i, k])
            if i < R - 1:
                link(b(i, k), b(i + 1, k), 1 / r_col)
            else:
                to_fixed(b(i, k), g_out)
    if sparse:
        K = scipy.sparse.csc_matrix(scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(N, N)))
        X = scipy.sparse.linalg.splu(K).solve(rhs)
    else:
        K = np.zeros((N, N))
        np.add.at(K, (rows, cols), vals)
        X = np.linalg.solve(K, rhs)
    return g_out * X[[b(R - 1, k) for k in range(n)]].T


def green(R, pos, r_row, r_col, r_drv, r_sense):
    """The two wires' resistance Green's functions as dense matrices: Lrow(X) = X @ Mr, Lcol(X) = Mc @ X."""
    p = np.asarray(pos)
    Mr = r_drv + r_row * (np.minimum.outer(p, p) + 1)
    i = np.arange(R)
    Mc = r_sense + r_col * (R - np.maximum.outer(i, i))
    return Mr, Mc


def rel_err(W, ref):
    W = W.numpy() if isinstance(W, torch.Tensor) else W
    return np.abs(W - ref).max() / np.abs(ref).max()


def random_case(rng, R, n, g_on=1e-4):
    """G uniform in [0.1, 1] x g_on; n active columns spread over 3 n physical ones."""
    G = rng.uniform(0.1, 1, (R, n)) * g_on
    pos = np.sort(rng.choice(3 * n, n, replace=False))
    return G, pos


# ---------------------------------------------------------------------------------------------- circuits by hand
def test_one_cell_is_its_series_resistance():
    G, p0, r_row, r_col, r_drv, r_sense = 2e-3, 3, 2.0, 3.0, 5.0, 7.0
    out = effective_conductance(torch.tensor([[G]], dtype=torch.float64), [p0], r_row, r_col, r_drv, r_sense)
    expected = 1 / (1 / G + r_drv + (p0 + 1) * r_row + r_col + r_sense)
    assert out.W.item() == pytest.approx(expected, rel=1e-12)
    assert out.iterations.shape == () and out.iterations.item() == 1 and out.residual.item() < 1e-12


def ladder(g0, g1, gap, r_row, r_col):
    """A 1 x 2 tile (positions 0 and gap, no driver or sense resistance) by series-parallel reduction: I_0, I_1."""
    y0, y1 = 1 / (1 / g0 + r_col), 1 / (1 / g1 + r_col)  # each cell in series with its column wire
    y_far = 1 / (gap * r_row + 1 / y1)  # the second column seen from the first cell's row node
    v0 = 1 / (1 + r_row * (y0 + y_far))  # V = 1 through the first row segment
    return y0 * v0, y_far * v0


def test_one_row_two_columns_by_hand_and_a_column_wire_that_raises_a_current():
    """Per-column monotonicity does not hold in general: a longer column wire starves the strong column, which lifts
    the row wire and raises the weak column's current (Rayleigh's law bounds only the total; next test)."""
    G = torch.tensor([[1e-1, 1e-6]], dtype=torch.float64)
    for r_col in (1.0, 2.0):
        W = effective_conductance(G, [0, 5], 10.0, r_col, rtol=1e-12).W
        assert W[0].tolist() == pytest.approx(ladder(1e-1, 1e-6, 5, 10.0, r_col), rel=1e-10)
    I1, I2 = ladder(1e-1, 1e-6, 5, 10.0, 1.0), ladder(1e-1, 1e-6, 5, 10.0, 2.0)
    assert I2[0] < I1[0] and I2[1] > 1.04 * I1[1]  # strong column down 4.5 %, weak one up 4.1 %


# ------------------------------------------------------------------------------------------- against the nodal solve
@pytest.mark.parametrize(
    "R, n, wires",
    [
        (2, 2, (300.0, 200.0, 0.0, 0.0)),
        (2, 2, (300.0, 200.0, 500.0, 400.0)),
        (8, 8, (40.0, 25.0, 150.0, 80.0)),
        (16, 16, (20.0, 10.0, 300.0, 60.0)),
        (12, 5, (30.0, 45.0, 100.0, 20.0)),
        (5, 12, (30.0, 45.0, 100.0, 20.0)),
    ],
)
def test_matches_the_dense_nodal_solve(R, n, wires):
    G, pos = random_case(np.random.default_rng(R * 100 + n), R, n)
    ref = nodal_W(G, pos, *wires)
    assert 1 - ref.sum() / G.sum() > 0.03  # the wires matter here (3 % to 50 % of the current)
    out = effective_conductance(torch.tensor(G), pos, *wires, rtol=1e-10)
    assert out.W.dtype == torch.float64 and out.W.shape == (R, n)
    assert rel_err(out.W, ref) < 1e-8
    assert 0 < out.iterations.item() <= 40 and out.residual.item() <= 1e-10
    # at the default tolerance (1e-6 on the residual) W is within a few 1e-6
    assert rel_err(effective_conductance(torch.tensor(G), pos, *wires).W, ref) < 1e-5
    # the Green's-function form the module solves, assembled densely: (Id + L diag(G)) u = V 1^T
    Mr, Mc = green(R, pos, *wires)
    Wg = np.empty((R, n))
    for i in range(R):
        V = np.zeros((R, n))
        V[i] = 1
        L = np.zeros((R * n, R * n))
        for c in range(R * n):  # column c of L diag(G): the cell voltages one cell's unit current pulls down
            e = np.zeros(R * n)
            e[c] = G.flat[c]
            L[:, c] = (e.reshape(R, n) @ Mr + Mc @ e.reshape(R, n)).ravel()
        u = np.linalg.solve(np.eye(R * n) + L, V.ravel()).reshape(R, n)
        Wg[i] = (G * u).sum(0)
    assert rel_err(Wg, ref) < 1e-10


def test_forward_and_adjoint_forms_agree():
    rng = np.random.default_rng(1)
    for R, n in ((12, 5), (5, 12), (16, 16)):
        G, pos = random_case(rng, R, n)
        G = torch.tensor(G)
        fwd = effective_conductance(G, pos, 40.0, 20.0, 80.0, 30.0, rtol=1e-11, method="forward")
        adj = effective_conductance(G, pos, 40.0, 20.0, 80.0, 30.0, rtol=1e-11, method="adjoint")
        assert rel_err(fwd.W, adj.W.numpy()) < 1e-9
        auto = effective_conductance(G, pos, 40.0, 20.0, 80.0, 30.0, rtol=1e-11)
        assert torch.equal(auto.W, (adj if n <= R else fwd).W)  # auto: the form with fewer right-hand sides


# ----------------------------------------------------------------------------------------------- batches and dtypes
def test_a_batch_is_each_problem_alone_and_positions_may_differ_per_problem():
    R, n = 10, 6
    rng = np.random.default_rng(2)
    G = torch.tensor(rng.uniform(0.1, 1, (3, 2, R, n)) * 1e-4)
    G[1, 0, :, 2] = 0  # a dead column: S = 0
    G[2, 1] = 0  # a dead tile: nothing to solve (0 iterations)
    shared = [0, 2, 3, 7, 9, 14]
    per = torch.tensor(np.array([np.sort(rng.choice(24, n, replace=False)) for _ in range(6)])).reshape(3, 2, n)
    wires = (40.0, 25.0, 100.0, 50.0)
    for positions, pos_of in ((shared, lambda a, b: shared), (per, lambda a, b: per[a, b])):
        out = effective_conductance(G, positions, *wires, rtol=1e-10, chunk=4)  # two chunks, the second of 2
        assert out.W.shape == G.shape and out.iterations.shape == out.residual.shape == (3, 2)
        for a in range(3):
            for b in range(2):
                alone = effective_conductance(G[a, b], pos_of(a, b), *wires, rtol=1e-10)
                assert torch.allclose(out.W[a, b], alone.W, rtol=0, atol=1e-12 * alone.W.abs().max())
                if G[a, b].any():
                    assert rel_err(out.W[a, b], nodal_W(G[a, b].numpy(), np.asarray(pos_of(a, b)), *wires)) < 1e-8
        assert out.iterations[2, 1] == 0 and torch.equal(out.W[2, 1], G[2, 1])
        assert (out.W[1, 0, :, 2] == 0).all()
    # positions broadcast along a batch dimension: (3, 1, n) for all chips' two tiles
    out = effective_conductance(G, per[:, :1], *wires, rtol=1e-10)
    assert torch.allclose(out.W[:, 1], effective_conductance(G[:, 1], per[:, 0], *wires, rtol=1e-10).W, atol=1e-18)


@pytest.mark.parametrize("method", ["adjoint", "forward"])
def test_right_hand_sides_in_groups_give_the_same(monkeypatch, method):
    """A problem larger than the memory target solves its right-hand sides in groups (here 3, 3 and 1 of 7)."""
    R, n = 7, 7
    G = torch.tensor(np.random.default_rng(7).uniform(0.1, 1, (5, R, n)) * 1e-4)
    G[3, 2:4] *= 30  # a stiffer problem: its groups take more iterations than the others
    wires = (40.0, 25.0, 100.0, 50.0)
    whole = effective_conductance(G, range(n), *wires, rtol=1e-10, method=method)
    monkeypatch.setitem(ir_drop.ARRAY_BYTES, "cpu", 8 * R * n * 3)  # 3 right-hand sides of one problem
    for chunk in (None, 2):  # default chunk 1, groups of 3; chunk 2, groups of 1
        parts = effective_conductance(G, range(n), *wires, rtol=1e-10, method=method, chunk=chunk)
        # a group stops when its own right-hand sides converge, the whole when its worst one does: equal to ~rtol
        assert rel_err(parts.W, whole.W.numpy()) < 1e-9
        assert torch.equal(parts.iterations, whole.iterations)  # the group that took longest is the whole's count
        assert (parts.residual <= 1e-10).all() and parts.iterations[3] > parts.iterations[0]


def test_zero_wires_give_G_exactly_and_dtype_is_kept():
    G = torch.rand(4, 16, 8, dtype=torch.float32) * 1e-4
    out = effective_conductance(G, range(8), 0.0, 0.0, 0.0, 0.0)
    assert torch.equal(out.W, G) and out.W is not G
    assert (out.iterations == 0).all() and (out.residual == 0).all()
    Wf = effective_conductance(G, range(8), np.float32(1.0), 1)  # any real resistances
    assert Wf.W.dtype == torch.float32
    W64 = effective_conductance(G.double(), range(8), 1.0, 1.0).W
    assert rel_err(Wf.W.double(), W64.numpy()) < 1e-6  # float32 in, float64 inside


# ------------------------------------------------------------------------------------------------------ physics
def test_total_current_never_grows_with_any_wire_rayleigh():
    """All rows at one voltage make a two-terminal network (sources tied, sense nodes tied): its conductance, the
    total current, cannot grow when any resistance grows (Rayleigh monotonicity), at any conductance spread."""
    rng = np.random.default_rng(3)
    for trial in range(12):
        R, n = (int(v) for v in rng.integers(1, 13, 2))
        spread = (1, 10, 1e3)[trial % 3]
        G = np.exp(rng.uniform(0, np.log(spread), (R, n))) * 1e-4 * (rng.random((R, n)) > 0.2)
        pos = np.sort(rng.choice(3 * n, n, replace=False))
        wires = rng.uniform(0, 50, 4)
        base = effective_conductance(torch.tensor(G), pos, *wires, rtol=1e-12).W.sum().item()
        assert base <= G.sum() * (1 + 1e-12)
        for w in range(4):
            more = wires.copy()
            more[w] *= 2
            total = effective_conductance(torch.tensor(G), pos, *more, rtol=1e-12).W.sum().item()
            assert total <= base * (1 + 1e-10), (trial, w)


def test_column_deficit_at_128_matches_the_exact_solver_table():
    """docs/sources/irdrop.md section 5: 128 x 128, G uniform in [0.1, 1] / 10 kOhm, 0.93 Ohm row and column wires,
    ideal driver and sense, all rows at one voltage: 35 % mean (43 % max) column-current deficit."""
    G = torch.tensor(np.random.default_rng(4).uniform(0.1, 1, (128, 128)) * 1e-4)
    out = effective_conductance(G, range(128), 0.93, 0.93)
    deficit = 1 - out.W.sum(0) / G.sum(0)
    assert deficit.mean().item() == pytest.approx(0.35, abs=0.02)
    assert deficit.max().item() == pytest.approx(0.43, abs=0.02)
    assert out.iterations.item() <= 15 and out.residual.item() <= 1e-6


def point_relaxation(G, Mr, Mc, iters):
    """CrossSim's point iteration with gamma = 1 (irdrop.md 1.2): u <- V - Lrow(G u) - Lcol(G u), all rows at 1 V;
    the residual norm after each sweep."""
    u = np.ones_like(G)
    out = []
    for _ in range(iters):
        I = G * u
        new = 1 - I @ Mr - Mc @ I
        out.append(np.linalg.norm(new - u))
        u = new
    return out


def test_a_stiff_tile_where_point_relaxation_diverges_still_converges():
    R = n = 64
    G = np.random.default_rng(5).uniform(0.1, 1, (R, n)) * 1e-3  # 1 kOhm cells
    wires = (2.5, 2.5, 0.0, 0.0)
    res = point_relaxation(G, *green(R, range(n), *wires), 30)
    assert res[-1] > 1e6 * res[0]  # diverges (as irdrop.md section 5 reports for 1 kOhm cells)
    out = effective_conductance(torch.tensor(G), range(n), *wires, rtol=1e-10)
    ref = nodal_W(G, np.arange(n), 2.5, 2.5, sparse=True)
    assert 1 - ref.sum() / G.sum() > 0.7  # 77 % of the current lost
    assert rel_err(out.W, ref) < 1e-8
    assert out.iterations.item() <= 40
    assert rel_err(effective_conductance(torch.tensor(G), range(n), *wires).W, ref) < 1e-5  # default rtol


# ----------------------------------------------------------------------------------------------------- refusals
def test_non_convergence_names_the_problem():
    G = torch.full((2, 2, 32, 32), 1e-10, dtype=torch.float64)
    G[1, 0] = torch.tensor(np.random.default_rng(6).uniform(0.1, 1, (32, 32)) * 1e-3)
    G[1, 0, 0, 0] = 1e-3  # its G_max x r x (R^2 + n^2) = 1e-3 x 2.5 x 2048 = 5.12
    its = effective_conductance(G, range(32), 2.5, 2.5).iterations
    assert its[1, 0] > 2 and (its[0] <= 2).all() and its[1, 1] <= 2  # only (1, 0) needs more than 2
    with pytest.raises(ValueError, match=r"problem \(1, 0\) .* did not converge in 2 CG iterations") as e:
        effective_conductance(G, range(32), 2.5, 2.5, max_iter=2)
    assert "G_max x r_row = 0.0025" in str(e.value)
    assert "x (R^2 + n^2) = 5.12; the tests check up to 20.5" in str(e.value) and "beyond" not in str(e.value)
    with pytest.raises(ValueError, match=r"problem \(\) .* did not converge"):
        effective_conductance(G[1, 0], range(32), 2.5, 2.5, max_iter=2)


@pytest.mark.parametrize(
    "args, kwargs, problem",
    [
        ((torch.ones(4),), {}, r"G: a floating-point tensor of shape \(\.\.\., R, n\)"),
        ((torch.ones(4, 4, dtype=torch.int64),), {}, "G: a floating-point tensor"),
        ((torch.ones(0, 4),), {}, "at least one row and one column"),
        ((-torch.ones(2, 4),), {}, r"finite and >= 0; G\[0, 0\] = -1.0"),
        ((torch.ones(2, 4), [0, 1, 2]), {}, r"positions: shape \(n,\) or \(\.\.\., n\) with n = 4"),
        ((torch.ones(2, 4), [0, 2, 2, 3]), {}, "strictly increasing"),
        ((torch.ones(2, 4), [-1, 2, 3, 4]), {}, "positions: physical column positions >= 0"),
        ((torch.ones(2, 4), [0, 1.5, 2, 3]), {}, "positions: integer column positions"),
        ((torch.ones(3, 2, 4), torch.zeros(2, 4)), {}, r"batch shape \(2,\) does not broadcast"),
        ((torch.ones(2, 4), range(4), -1.0), {}, "r_row: a resistance in ohms, finite and >= 0, got -1.0"),
        ((torch.ones(2, 4), range(4), 1.0, math.inf), {}, "r_col: a resistance in ohms"),
        ((torch.ones(2, 4), range(4), 1.0, 1.0, -2.0), {}, "r_drv: a resistance"),
        ((torch.ones(2, 4), range(4), 1.0, 1.0, 0.0, -1e-3), {}, "r_sense: a resistance"),
        ((torch.ones(2, 4), range(4), 1.0, 1.0), {"max_iter": 0}, "max_iter: an integer >= 1"),
        ((torch.ones(2, 4), range(4), 1.0, 1.0), {"chunk": 0}, "chunk: an integer >= 1"),
        ((torch.ones(2, 4), range(4), 1.0, 1.0), {"rtol": 0.0}, "rtol: between 0 and 1"),
        ((torch.ones(2, 4), range(4), 1.0, 1.0), {"method": "jacobi"}, "method: 'auto', 'adjoint' or 'forward'"),
    ],
)
def test_bad_arguments_are_refused_by_name(args, kwargs, problem):
    full = [*args, *[range(4), 1.0, 1.0][len(args) - 1 :]]  # G, positions, r_row, r_col at least
    with pytest.raises(ValueError, match=problem):
        effective_conductance(*full, **kwargs)
